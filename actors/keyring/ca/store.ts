/**
 * The district CA in the keyring directory:
 *   ca.pem   the CA's ECDSA P-256 private key (PKCS#8, mode 0600): signs X.509 and OpenSSH certificates
 *   ca.crt   its self-signed certificate, what schools and their clients pin
 * `init` creates both once and never replaces them; issuing writes nothing.
 */
import { createPrivateKey, createPublicKey } from "node:crypto";
import { join } from "node:path";
import type sshpk from "sshpk";
import { SugarError } from "../../../src/errors.js";
import { readFileIfExists, writeFileAtomic } from "../../../src/fs.js";
import { fingerprintOf } from "../../../src/tls.js";
import { readPrivateKeyFile } from "../key-file.js";
import { sshCaKey, sshPublicKeyLine } from "./ssh.js";
import { createCa, loadCa, type Ca } from "./x509.js";

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
    const { keyPem, certPem } = await createCa(commonName);
    const held = await this.hold(keyPem, certPem);
    // The key first: a ca.crt without its key would be a CA nobody can use.
    await writeFileAtomic(this.keyPath, keyPem, 0o600);
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
