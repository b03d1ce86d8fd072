/**
 * The one-time first-admin claim code (a notebook server's token URL):
 *
 *   claim-code   {"hash", "expires"} (0600, under <root>/auth/)
 *
 * The code is 32 bytes from the CSPRNG as base64url; only its SHA-256 is
 * kept, in memory and on disk, so a restart keeps the printed URL valid and
 * the disk never holds the code. A new code replaces the earlier one; a used
 * one is deleted before the admin is made (fails closed: a registry that
 * fails then costs a new code, never a second use).
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import { SugarError } from "../../src/errors.js";
import { readFileIfExists, removeFileDurable, writeFileAtomic, writingTo } from "../../src/fs.js";
import type { Logger } from "../../src/log.js";
import { fromBase64url, newSecret, sameBytes, toBase64url } from "./mac.js";

const FILE_MODE = 0o600;
const HASH = /^[0-9a-f]{64}$/;
/** How long a code is good for. */
export const CLAIM_CODE_MS = 24 * 3600 * 1000;

interface Pending {
  hash: Buffer;
  expires: number;
}

const hashOf = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest();

export class ClaimCodeStore {
  readonly file: string;
  private pending: Pending | undefined;

  constructor(dir: string, private readonly log: Logger) {
    this.file = join(dir, "claim-code");
  }

  /** Loads a code made before a restart; one that cannot be read is no code (an admin prints a new one). */
  async open(): Promise<void> {
    const text = await readFileIfExists(this.file);
    if (text === undefined) return;
    try {
      this.pending = parsePending(text);
    } catch (err) {
      this.log.warn(`${this.file} is unreadable (${(err as Error).message}): no claim code is valid until a new one is made`);
    }
  }

  /** A new code, durable before it is returned; any earlier one stops working. */
  async issue(now: number): Promise<{ code: string; expires: number }> {
    const code = newSecret();
    const next = { hash: hashOf(code), expires: now + CLAIM_CODE_MS };
    await writingTo("the claim code", () =>
      writeFileAtomic(this.file, JSON.stringify({ hash: next.hash.toString("hex"), expires: new Date(next.expires).toISOString() }) + "\n", FILE_MODE),
    );
    this.pending = next;
    return { code: toBase64url(code), expires: next.expires };
  }

  /** Throws auth_invalid unless `code` is the current code and has not expired (a constant-time comparison); changes nothing. */
  check(code: string, now: number): void {
    const bytes = code.length === 43 ? fromBase64url(code) : undefined;
    const p = this.pending;
    // Hashed first, so the comparison is of two fixed-length digests whatever was sent.
    const ok = bytes !== undefined && bytes.length === 32 && p !== undefined && sameBytes(hashOf(bytes), p.hash);
    if (!ok) throw new SugarError("auth_invalid", "claim code is not valid (wrong, used, or replaced by a newer one)");
    if (p.expires <= now) throw new SugarError("auth_invalid", "claim code has expired; print a new one with sugar-server admin claim-url");
  }

  /** Uses the code up: gone from memory at once (a second claim fails), then from disk. */
  async consume(): Promise<void> {
    this.pending = undefined;
    await removeFileDurable(this.file);
  }
}

function parsePending(text: string): Pending {
  const v: unknown = JSON.parse(text);
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new Error("not a JSON object");
  const { hash, expires } = v as Record<string, unknown>;
  if (typeof hash !== "string" || !HASH.test(hash)) throw new Error("hash is not a SHA-256");
  const t = typeof expires === "string" ? Date.parse(expires) : NaN;
  if (Number.isNaN(t)) throw new Error("expires is not a time");
  return { hash: Buffer.from(hash, "hex"), expires: t };
}
