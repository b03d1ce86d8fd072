/**
 * The auth actor's secrets on disk, under `<root>/auth/` (directory 0700,
 * files 0600, written atomically):
 *
 *   clients/<uid>   {"uid", "key_id", "secret", "created"}: the per-client
 *                   secret a credential is MACed with (one per uid; issuing
 *                   again replaces it, so older credentials stop working)
 *   token-keys      {"keys": [{"id", "secret", "created", "superseded"}]}:
 *                   the current token key (superseded "") and the ones a
 *                   rotation replaced, kept until their tokens have expired
 *
 * File names come only from validated uids. Secrets are base64url text and
 * never reach a log line or an error message.
 */
import { promises as fsp } from "node:fs";
import { join } from "node:path";
import { SugarError } from "../../src/errors.js";
import { ensureDir, readFileIfExists, removeFileDurable, writeFileAtomic } from "../../src/fs.js";
import type { Logger } from "../../src/log.js";
import { KeyedMutex } from "../../src/mutex.js";
import type { Uid } from "../../src/validate.js";
import { fromBase64url, KEY_ID, newKeyId, newSecret, toBase64url } from "./mac.js";

const DIR_MODE = 0o700;
const FILE_MODE = 0o600;

export interface ClientSecret {
  uid: Uid;
  keyId: string;
  secret: Buffer;
  created: string;
}

export interface TokenKey {
  id: string;
  secret: Buffer;
  created: number;
  /** When a rotation replaced it (ms); undefined for the current key. */
  superseded: number | undefined;
}

export class AuthStore {
  readonly clientsDir: string;
  private readonly tokenFile: string;
  private keys: TokenKey[] = [];
  /** Token-key writes (rotate, prune) run one at a time. */
  private readonly writes = new KeyedMutex();

  constructor(readonly dir: string, private readonly log: Logger) {
    this.clientsDir = join(dir, "clients");
    this.tokenFile = join(dir, "token-keys");
  }

  /** Makes the directories private (even if they existed with looser modes) and loads the token keys. */
  async open(now: number): Promise<void> {
    for (const d of [this.dir, this.clientsDir]) {
      await ensureDir(d, DIR_MODE);
      await fsp.chmod(d, DIR_MODE);
    }
    const text = await readFileIfExists(this.tokenFile);
    if (text !== undefined) {
      try {
        this.keys = parseTokenKeys(text);
      } catch (err) {
        // Losing the token keys only makes clients log in again; refusing to start would stop the school.
        this.log.warn(`${this.tokenFile} is unreadable (${(err as Error).message}): starting new token keys; clients log in again`);
        this.keys = [];
      }
    }
    if (!this.keys.some((k) => k.superseded === undefined)) await this.rotate(now);
  }

  // --- per-client secrets ---

  async clientSecret(uid: Uid): Promise<ClientSecret | undefined> {
    const text = await readFileIfExists(join(this.clientsDir, uid));
    if (text === undefined) return undefined;
    try {
      return parseClientSecret(uid, text);
    } catch (err) {
      throw new SugarError("internal", `the stored secret of ${uid} is unreadable: ${(err as Error).message}`, { cause: err });
    }
  }

  /** A new secret with a new key id for the uid, durable before it is returned. */
  async newClientSecret(uid: Uid, now: number): Promise<ClientSecret> {
    const s: ClientSecret = { uid, keyId: newKeyId(), secret: newSecret(), created: new Date(now).toISOString() };
    const text = JSON.stringify({ uid, key_id: s.keyId, secret: toBase64url(s.secret), created: s.created }) + "\n";
    await writeFileAtomic(join(this.clientsDir, uid), text, FILE_MODE);
    return s;
  }

  removeClientSecret(uid: Uid): Promise<boolean> {
    return removeFileDurable(join(this.clientsDir, uid));
  }

  // --- token keys ---

  current(): TokenKey {
    const k = this.keys.find((x) => x.superseded === undefined);
    if (!k) throw new SugarError("internal", "no current token key");
    return k;
  }

  /** A token key that may still check tokens: the current one, or one superseded less than `keepMs` ago. */
  tokenKey(id: string, now: number, keepMs: number): TokenKey | undefined {
    const k = this.keys.find((x) => x.id === id);
    if (!k || (k.superseded !== undefined && k.superseded + keepMs <= now)) return undefined;
    return k;
  }

  /** Whether a superseded key has outlived `keepMs` and is still on disk. */
  hasPrunable(now: number, keepMs: number): boolean {
    return this.keys.some((k) => k.superseded !== undefined && k.superseded + keepMs <= now);
  }

  /** A new current key; the old current key is kept as superseded, and keys past `keepMs` go. */
  rotate(now: number, keepMs = Infinity): Promise<TokenKey> {
    return this.writes.run(["token-keys"], async () => {
      const fresh: TokenKey = { id: newKeyId(), secret: newSecret(), created: now, superseded: undefined };
      const next = [fresh, ...this.keys.map((k) => (k.superseded === undefined ? { ...k, superseded: now } : k))].filter(
        (k) => k.superseded === undefined || k.superseded + keepMs > now,
      );
      await this.saveKeys(next);
      return fresh;
    });
  }

  /** Deletes superseded keys whose tokens have all expired; true when any went. */
  prune(now: number, keepMs: number): Promise<boolean> {
    return this.writes.run(["token-keys"], async () => {
      const next = this.keys.filter((k) => k.superseded === undefined || k.superseded + keepMs > now);
      if (next.length === this.keys.length) return false;
      await this.saveKeys(next);
      return true;
    });
  }

  /** Durable first, then in effect. */
  private async saveKeys(keys: TokenKey[]): Promise<void> {
    const text = JSON.stringify(
      {
        keys: keys.map((k) => ({
          id: k.id,
          secret: toBase64url(k.secret),
          created: new Date(k.created).toISOString(),
          superseded: k.superseded === undefined ? "" : new Date(k.superseded).toISOString(),
        })),
      },
      null,
      2,
    );
    await writeFileAtomic(this.tokenFile, text + "\n", FILE_MODE);
    this.keys = keys;
  }

  idle(): Promise<void> {
    return this.writes.idle();
  }
}

function record(text: string): Record<string, unknown> {
  const v: unknown = JSON.parse(text);
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new Error("not a JSON object");
  return v as Record<string, unknown>;
}

function str(v: Record<string, unknown>, key: string): string {
  const x = v[key];
  if (typeof x !== "string") throw new Error(`${key} is not a string`);
  return x;
}

function secretOf(text: string): Buffer {
  const b = fromBase64url(text);
  if (!b || b.length !== 32) throw new Error("secret is not 32 bytes of base64url");
  return b;
}

function keyIdOf(text: string): string {
  if (!KEY_ID.test(text)) throw new Error("key id is not 16 hex digits");
  return text;
}

function timeOf(text: string): number {
  const t = Date.parse(text);
  if (Number.isNaN(t)) throw new Error(`${JSON.stringify(text)} is not a time`);
  return t;
}

function parseClientSecret(uid: Uid, text: string): ClientSecret {
  const v = record(text);
  if (str(v, "uid") !== uid) throw new Error("uid does not match the file name");
  return { uid, keyId: keyIdOf(str(v, "key_id")), secret: secretOf(str(v, "secret")), created: str(v, "created") };
}

function parseTokenKeys(text: string): TokenKey[] {
  const v = record(text);
  if (!Array.isArray(v.keys)) throw new Error("keys is not a list");
  const keys = v.keys.map((raw: unknown) => {
    if (typeof raw !== "object" || raw === null) throw new Error("a key is not an object");
    const k = raw as Record<string, unknown>;
    const superseded = str(k, "superseded");
    return { id: keyIdOf(str(k, "id")), secret: secretOf(str(k, "secret")), created: timeOf(str(k, "created")), superseded: superseded ? timeOf(superseded) : undefined };
  });
  if (keys.filter((k) => k.superseded === undefined).length > 1) throw new Error("more than one current key");
  return keys;
}
