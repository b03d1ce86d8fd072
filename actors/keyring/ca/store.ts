/**
 * The district CA in the keyring directory:
 *   ca.pem   the CA's ECDSA P-256 private key (PKCS#8, mode 0600): signs X.509 and OpenSSH certificates
 *   ca.crt   its self-signed certificate, what schools and their clients pin
 * `init` creates both once and never replaces them; issuing writes nothing.
 */
import { createPrivateKey, createPublicKey, randomBytes } from "node:crypto";
import { promises as fsp } from "node:fs";
import { dirname, join } from "node:path";
import type sshpk from "sshpk";
import { SugarError } from "../../../src/errors.js";
import { readFileIfExists, syncDir, writeFileAtomic } from "../../../src/fs.js";
import { fingerprintOf } from "../../../src/tls.js";
import { readPrivateKeyFile } from "../key-file.js";
import { sshCaKey, sshPublicKeyLine } from "./ssh.js";
import { createCa, loadCa, type Ca } from "./x509.js";

/**
 * Writes a new file durably under `path` only if no file is there (a link of
 * a synced temporary file: never a rename over one); false when one was.
 */
async function createExclusive(path: string, data: string, mode: number): Promise<boolean> {
  const tmp = `${path}.${randomBytes(6).toString("hex")}.tmp`;
  await writeFileAtomic(tmp, data, mode);
  try {
    await fsp.link(tmp, path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw err;
  } finally {
    await fsp.rm(tmp, { force: true });
    await syncDir(dirname(path));
  }
}

/** How long the loser of two inits at once waits for the winner's ca.crt. */
const WINNER_GRACE_MS = 5000;

export interface HeldCa extends Ca {
  fingerprint: string;
  ssh: sshpk.PrivateKey;
  sshPublicKey: string;
}

export class CaStore {
  ca: HeldCa | undefined;

  constructor(readonly dir: string) {}

  private get keyPath() {
    return join(this.dir, "ca.pem");
  }
  private get certPath() {
    return join(this.dir, "ca.crt");
  }

  async load(): Promise<void> {
    const key = await readPrivateKeyFile(this.keyPath);
    const cert = await readFileIfExists(this.certPath);
    if (!key && cert === undefined) return;
    if (!key || cert === undefined) {
      throw new SugarError("invalid_config", `${key ? this.certPath : this.keyPath} is missing beside ${key ? this.keyPath : this.certPath}: the district CA is incomplete; restore it from a backup`);
    }
    this.ca = await this.hold(key.toString("utf8"), cert);
  }

  /** Creates the CA when there is none; true when it did. */
  async init(commonName: string): Promise<boolean> {
    if (this.ca) return false;
    // Another process (a second keyring, a CLI run) may have made one since this store was loaded.
    await this.load();
    if (this.ca) return false;
    const { keyPem, certPem } = await createCa(commonName);
    const held = await this.hold(keyPem, certPem);
    // The key first, and only if there is none: of two inits at once one wins, the other keeps the winner's CA.
    if (!(await createExclusive(this.keyPath, keyPem, 0o600))) {
      // The winner writes ca.crt right after its key: give it a moment before reading the pair.
      for (const until = Date.now() + WINNER_GRACE_MS; Date.now() < until && (await readFileIfExists(this.certPath)) === undefined; ) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      await this.load();
      return false;
    }
    await writeFileAtomic(this.certPath, certPem);
    this.ca = held;
    return true;
  }

  private async hold(keyPem: string, certPem: string): Promise<HeldCa> {
    const priv = createPrivateKey(keyPem);
    if (priv.asymmetricKeyType !== "ec" || priv.asymmetricKeyDetails?.namedCurve !== "prime256v1") {
      throw new SugarError("invalid_config", `${this.keyPath} is not an ECDSA P-256 key`);
    }
    const ca = await loadCa(priv.export({ type: "pkcs8", format: "der" }), certPem);
    const fromKey = createPublicKey(priv).export({ type: "spki", format: "der" });
    if (!fromKey.equals(Buffer.from(ca.cert.publicKey.rawData))) throw new SugarError("invalid_config", `${this.certPath} is not the certificate of the key in ${this.keyPath}`);
    const ssh = sshCaKey(keyPem);
    return { ...ca, fingerprint: fingerprintOf(certPem), ssh, sshPublicKey: sshPublicKeyLine(ssh) };
  }
}
