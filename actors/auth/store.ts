/**
 * The auth actor's secrets on disk, under `<root>/auth/` (directory 0700,
 * files 0600, written atomically):
 *
 *   client-key      {"secret", "created"}: the key every per-client secret is
 *                   derived from (HMAC-SHA256 over the uid and its generation)
 *   clients/<uid>   {"uid", "generation", "updated"}: a uid's generation, once
 *                   it is past 0 — its secret was replaced (a new credential)
 *                   or revoked (the user was removed). A key's first
 *                   registration writes nothing here, so a credential costs
 *                   registration no disk sync, and 100,000 users cost no
 *                   100,000 files
 *   token-keys      {"keys": [{"id", "secret", "created", "superseded"}]}:
 *                   the current token key (superseded "") and the ones a
 *                   rotation replaced, kept until their tokens have expired
 *
 * A per-client secret is HMAC(client-key, uid, generation): a different one
 * for every uid, and a new one (so older credentials stop working) whenever
 * the generation moves on. File names come only from validated uids.
 * Secrets are base64url text and never reach a log line or an error message.
 */
import { promises as fsp } from "node:fs";
import { join } from "node:path";
import { SugarError } from "../../src/errors.js";
import { ensureDir, readFileIfExists, writeFileAtomic, writingTo } from "../../src/fs.js";
import type { Logger } from "../../src/log.js";
import { KeyedMutex } from "../../src/mutex.js";
import * as validate from "../../src/validate.js";
import type { Uid } from "../../src/validate.js";
import { fromBase64url, KEY_ID, mac, newKeyId, newSecret, toBase64url } from "./mac.js";

const DIR_MODE = 0o700;
const FILE_MODE = 0o600;

export interface ClientSecret {
  uid: Uid;
  /** Names the secret in the credential: changes with the generation. */
  keyId: string;
  secret: Buffer;
  generation: number;
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
  private readonly clientKeyFile: string;
  private clientKey: Buffer | undefined;
  /** uid → generation, for the uids past generation 0 (few: the files under clients/). */
  private readonly generations = new Map<Uid, number>();
  private keys: TokenKey[] = [];
  /** Token-key writes (rotate, prune) run one at a time. */
  private readonly writes = new KeyedMutex();

  constructor(readonly dir: string, private readonly log: Logger) {
    this.clientsDir = join(dir, "clients");
    this.tokenFile = join(dir, "token-keys");
    this.clientKeyFile = join(dir, "client-key");
  }

  /** Makes the directories private (even if they existed with looser modes) and loads the token keys. */
  async open(now: number): Promise<void> {
    for (const d of [this.dir, this.clientsDir]) {
      await ensureDir(d, DIR_MODE);
      await fsp.chmod(d, DIR_MODE);
    }
    await this.loadClientKey(now);
    for (const name of await fsp.readdir(this.clientsDir)) {
      if (name.startsWith(".")) continue;
      try {
        const uid = validate.uid(name);
        this.generations.set(uid, parseGeneration(uid, (await readFileIfExists(join(this.clientsDir, name))) ?? ""));
      } catch (err) {
        throw new SugarError("internal", `${join(this.clientsDir, name)} is unreadable: ${(err as Error).message}`, { cause: err });
      }
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

  /** The key per-client secrets are derived from; made once, at the first start. */
  private async loadClientKey(now: number): Promise<void> {
    const text = await readFileIfExists(this.clientKeyFile);
    if (text !== undefined) {
      try {
        this.clientKey = secretOf(str(record(text), "secret"));
        return;
      } catch (err) {
        // Unlike the token keys, losing this one would silently void every credential: refuse to go on.
        throw new SugarError("internal", `${this.clientKeyFile} is unreadable (${(err as Error).message}); restore it from a backup, or delete it to void every credential`, { cause: err });
      }
    }
    const secret = newSecret();
    await writeFileAtomic(this.clientKeyFile, JSON.stringify({ secret: toBase64url(secret), created: new Date(now).toISOString() }) + "\n", FILE_MODE);
    this.clientKey = secret;
  }

  private derive(uid: Uid, generation: number): ClientSecret {
    const key = this.clientKey!;
    const fields = [uid, String(generation)];
    return {
      uid,
      generation,
      keyId: mac(key, "sugar-server client key id v1", "client-key", fields).subarray(0, 8).toString("hex"),
      secret: mac(key, "sugar-server client secret v1", "client-key", fields),
    };
  }

  /** The uid's current secret. */
  clientSecret(uid: Uid): ClientSecret {
    return this.derive(uid, this.generations.get(uid) ?? 0);
  }

  /** A new secret for the uid (the generation moves on: older credentials stop working), durable before it is returned. */
  async newClientSecret(uid: Uid, now: number): Promise<ClientSecret> {
    const generation = (this.generations.get(uid) ?? 0) + 1;
    await this.saveGeneration(uid, generation, now);
    return this.derive(uid, generation);
  }

  /** Revokes the uid's secret (a removed user): its credentials stop working, and a later registration of the uid gets a fresh one. */
  async removeClientSecret(uid: Uid, now = Date.now()): Promise<boolean> {
    await this.saveGeneration(uid, (this.generations.get(uid) ?? 0) + 1, now);
    return true;
  }

  private async saveGeneration(uid: Uid, generation: number, now: number): Promise<void> {
    await writingTo("the new credential", () =>
      writeFileAtomic(join(this.clientsDir, uid), JSON.stringify({ uid, generation, updated: new Date(now).toISOString() }) + "\n", FILE_MODE),
    );
    this.generations.set(uid, generation);
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

function parseGeneration(uid: Uid, text: string): number {
  const v = record(text);
  if (str(v, "uid") !== uid) throw new Error("uid does not match the file name");
  const g = v.generation;
  if (typeof g !== "number" || !Number.isSafeInteger(g) || g < 1) throw new Error("generation is not a whole number above 0");
  return g;
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
