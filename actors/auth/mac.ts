/**
 * The auth actor's few cryptographic primitives, in one place so every MAC
 * is made the same way: HMAC-SHA256 over a fixed-order, NUL-separated list
 * of fields that starts with a purpose label and a key id. No field may
 * contain NUL, so two different lists can never encode to the same bytes,
 * and a MAC made for one purpose never checks for another.
 */
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";

/** What a MAC is for; part of the MACed bytes. */
export type Purpose =
  | "sugar-server credential v1"
  | "sugar-server token v1"
  | "sugar-server key-proven token v1"
  | "sugar-server client secret v1"
  | "sugar-server client key id v1"
  | "sugar-server session v1";

/** A new secret: 32 bytes from the CSPRNG. */
export const newSecret = (): Buffer => randomBytes(32);

/** A new key id: 8 random bytes as 16 lower-case hex digits (names keys, never secret). */
export const newKeyId = (): string => randomBytes(8).toString("hex");
export const KEY_ID = /^[0-9a-f]{16}$/;

export function mac(secret: Buffer, purpose: Purpose, keyId: string, fields: readonly string[]): Buffer {
  const all = [purpose, keyId, ...fields];
  // A NUL inside a field would make the encoding ambiguous: refuse rather than MAC it.
  if (all.some((f) => f.includes("\0"))) throw new Error("a MAC field contains NUL");
  return createHmac("sha256", secret).update(all.join("\0"), "utf8").digest();
}

/** Constant-time comparison; different lengths are simply unequal. */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

const B64URL = /^[A-Za-z0-9_-]*$/;

export const toBase64url = (b: Uint8Array): string => Buffer.from(b).toString("base64url");

/** Strict base64url (no padding): undefined unless decoding and encoding again gives the same text. */
export function fromBase64url(text: string): Buffer | undefined {
  if (!B64URL.test(text)) return undefined;
  const bytes = Buffer.from(text, "base64url");
  return bytes.toString("base64url") === text ? bytes : undefined;
}
