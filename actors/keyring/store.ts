/**
 * The keyring directory (`keyring-dir`, mode 0700):
 *   server.pem        the school server's RSA-2048 private key (PKCS#8, mode 0600)
 *   lease.pem         optional: the deployment's own lease key (signs v1 leases), mode 0600
 *   trusted.key01     key01 lines of the lease keys laptops trust: delegations must chain to one
 *   delegations/<SN[-2:]>/<SN>   one del01 line per serial number, issued to server.pem's key
 *   ca.pem, ca.crt    optional: the district CA (actors/keyring/ca/store.ts)
 * A private key file that group or others can read is refused at start.
 */
import { createPrivateKey, generateKeyPair, type KeyObject } from "node:crypto";
import { promises as fsp } from "node:fs";
import { join } from "node:path";
import { SugarError } from "../../src/errors.js";
import { ensureDir, readFileIfExists, writeFileAtomic } from "../../src/fs.js";
import type { Logger } from "../../src/log.js";
import * as olpc from "../../lib/olpc/index.js";
import { readPrivateKeyFile } from "./key-file.js";
import type { MachineSn, MachineUuid } from "../../src/validate.js";

/** A delegation held for one machine: its del01 line, and until when the server key may sign under it. */
export interface Delegation {
  sn: MachineSn;
  uuid: MachineUuid;
  line: string;
  expiresAt: olpc.OlpcTime;
}

/** An input line refused at import, and why. */
export interface Refusal {
  where: string;
  reason: string;
}

function generateRsa(): Promise<KeyObject> {
  return new Promise((resolve, reject) =>
    generateKeyPair("rsa", { modulusLength: 2048, publicExponent: 65537 }, (err, _pub, priv) => (err ? reject(err) : resolve(priv))),
  );
}

const pem = (k: KeyObject) => k.export({ type: "pkcs8", format: "pem" }) as string;

export class KeyringStore {
  serverKey: KeyObject | undefined;
  leaseKey: KeyObject | undefined;
  private trustedFromFile: string[] = [];
  private readonly delegations = new Map<MachineSn, Delegation>();

  constructor(readonly dir: string, private readonly log: Logger) {}

  /** key01 hex per key object, computed once: every lease carries the server key's. */
  private readonly hexOf = new WeakMap<KeyObject, string>();
  private key01HexOf(key: KeyObject): string {
    let hex = this.hexOf.get(key);
    if (hex === undefined) this.hexOf.set(key, (hex = olpc.key01Hex(key)));
    return hex;
  }

  get serverKey01Hex(): string | undefined {
    return this.serverKey ? this.key01HexOf(this.serverKey) : undefined;
  }

  get leaseKey01Hex(): string | undefined {
    return this.leaseKey ? this.key01HexOf(this.leaseKey) : undefined;
  }

  /** key01 hex of every lease key laptops trust: trusted.key01 plus the lease key held here. */
  get trustedKeys(): string[] {
    const keys = [...this.trustedFromFile];
    if (this.leaseKey) keys.push(this.key01HexOf(this.leaseKey));
    return [...new Set(keys)];
  }

  get delegationCount(): number {
    return this.delegations.size;
  }

  delegation(sn: MachineSn): Delegation | undefined {
    return this.delegations.get(sn);
  }

  async load(): Promise<void> {
    await ensureDir(this.dir, 0o700);
    this.serverKey = await this.readPrivateKey("server.pem");
    this.leaseKey = await this.readPrivateKey("lease.pem");
    this.trustedFromFile = parseKey01Lines((await readFileIfExists(join(this.dir, "trusted.key01"))) ?? "", "trusted.key01").keys;
    await this.loadDelegations();
  }

  /** Creates what is missing; never replaces a key that exists. */
  async init(withLeaseKey: boolean): Promise<boolean> {
    let created = false;
    if (!this.serverKey) {
      const key = await generateRsa();
      await writeFileAtomic(join(this.dir, "server.pem"), pem(key), 0o600);
      await writeFileAtomic(join(this.dir, "server.key01"), olpc.key01Line(key) + "\n");
      this.serverKey = key;
      created = true;
    }
    if (withLeaseKey && !this.leaseKey) {
      const key = await generateRsa();
      await writeFileAtomic(join(this.dir, "lease.pem"), pem(key), 0o600);
      await writeFileAtomic(join(this.dir, "lease.key01"), olpc.key01Line(key) + "\n");
      this.leaseKey = key;
      created = true;
    }
    return created;
  }

  /** Adds key01 lines to trusted.key01. */
  async trust(text: string): Promise<void> {
    const { keys, refused } = parseKey01Lines(text, "input");
    if (refused.length) throw new SugarError("invalid_input", refused.map((r) => `${r.where}: ${r.reason}`).join("; "));
    if (keys.length === 0) throw new SugarError("invalid_input", "no key01 lines found");
    const all = [...new Set([...this.trustedFromFile, ...keys])];
    await writeFileAtomic(join(this.dir, "trusted.key01"), all.map((k) => `key01: ${k}\n`).join(""));
    this.trustedFromFile = all;
  }

  /** Loads del01 lines issued to this server's key by a trusted root; refuses the rest with a reason. */
  async importDelegations(text: string, now: Date): Promise<{ imported: number; replaced: number; refused: Refusal[] }> {
    const serverKey01Hex = this.serverKey01Hex;
    if (!serverKey01Hex) throw new SugarError("unavailable", "the keyring has no server key yet: run `sugar-server keyring init`");
    const trusted = this.trustedKeys;
    if (trusted.length === 0) {
      throw new SugarError("invalid_input", `no trusted lease keys: put the deployment's key01 line(s) in ${join(this.dir, "trusted.key01")} (sugar-server keyring trust FILE)`);
    }
    let imported = 0;
    let replaced = 0;
    const refused: Refusal[] = [];
    const lines = text.split(/\r?\n/);
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!;
      if (line.trim() === "" || line.startsWith("#")) continue;
      const where = `line ${i + 1}`;
      const v = olpc.verifyDelegation(line, serverKey01Hex, trusted, now);
      if (!v.ok) {
        const reason = v.problem === "untrusted_key" ? `signed by an unknown key: ${v.reason}` : v.reason;
        refused.push({ where, reason });
        continue;
      }
      const sn = v.sn;
      const canonical = `${line.trimEnd()}\n`;
      const had = this.delegations.has(sn);
      await ensureDir(join(this.dir, "delegations", sn.slice(-2)), 0o700);
      await writeFileAtomic(join(this.dir, "delegations", sn.slice(-2), sn), canonical);
      this.delegations.set(sn, { sn, uuid: v.uuid, line: canonical, expiresAt: v.expiresAt });
      if (had) replaced++;
      else imported++;
    }
    return { imported, replaced, refused };
  }

  private async readPrivateKey(name: string): Promise<KeyObject | undefined> {
    const bytes = await readPrivateKeyFile(join(this.dir, name));
    if (!bytes) return undefined;
    const key = createPrivateKey(bytes);
    olpc.key01Hex(key); // refuses anything but RSA-2048, e = 65537
    return key;
  }

  private async loadDelegations(): Promise<void> {
    const root = join(this.dir, "delegations");
    await ensureDir(root, 0o700);
    for (const bucket of await fsp.readdir(root)) {
      const dir = join(root, bucket);
      if (!(await fsp.stat(dir)).isDirectory()) continue;
      for (const name of await fsp.readdir(dir)) {
        if (name.startsWith(".")) continue;
        try {
          const d = olpc.parseDelegationLine((await fsp.readFile(join(dir, name), "utf8")).trimEnd());
          if (d.sn !== name) throw new Error(`delegation is for ${d.sn}, not ${name}`);
          this.delegations.set(d.sn, { sn: d.sn, uuid: d.uuid, line: d.line, expiresAt: d.link.expiresAt });
        } catch (err) {
          this.log.warn(`skipping delegation ${join(dir, name)}: ${(err as Error).message}`);
        }
      }
    }
  }
}

/** key01 lines (or bare 540-hex keys), one per line; `#` comments. */
export function parseKey01Lines(text: string, what: string): { keys: string[]; refused: Refusal[] } {
  const keys: string[] = [];
  const refused: Refusal[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    try {
      keys.push(olpc.parseKey01Line(line.startsWith("key01:") ? line : `key01: ${line}`));
    } catch (err) {
      refused.push({ where: `${what} line ${i + 1}`, reason: (err as Error).message });
    }
  });
  return { keys, refused };
}
