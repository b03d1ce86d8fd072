/**
 * OLPC keys: RSA-2048 with e = 65537, written as `key01` values (the PKCS#1
 * RSAPublicKey DER, not SPKI, which the firmware ignores, as 540 lower-case
 * hex) and named by key ids (the last 32 bytes of that DER).
 */
import { KeyObject, createPublicKey } from "node:crypto";
import { KEY_ID_HEX_LENGTH } from "./constants.js";
import { fail, show } from "./errors.js";
import { checkKey01Hex, fieldsOf } from "./fields.js";

/** Why a key is not usable as an OLPC key, or undefined if it is RSA-2048 with e = 65537. */
function rsa2048Problem(key: KeyObject): string | undefined {
  if (key.asymmetricKeyType !== "rsa") return `is a ${key.asymmetricKeyType ?? key.type} key, not RSA (rsaEncryption)`;
  const details = key.asymmetricKeyDetails;
  if (details?.modulusLength !== 2048) return `has a ${details?.modulusLength ?? "?"}-bit modulus, not 2048`;
  if (details.publicExponent !== 65537n) return `has public exponent ${details.publicExponent ?? "?"}, not 65537`;
  return undefined;
}

/** The public half of a public or private key object. */
export function publicHalf(key: KeyObject, what: string): KeyObject {
  if (!(key instanceof KeyObject)) throw fail(`${what} is not a KeyObject`);
  if (key.type === "secret") throw fail(`${what} is a secret key, not an RSA key pair`);
  return key.type === "private" ? createPublicKey(key) : key;
}

/** A private key fit to sign OLPC records, or a clear refusal. */
export function signingKey(key: KeyObject, what: string): KeyObject {
  if (!(key instanceof KeyObject) || key.type !== "private") throw fail(`${what} must be a private key`);
  const problem = rsa2048Problem(key);
  if (problem) throw fail(`${what} ${problem}`);
  return key;
}

/** The key as a `key01` value (540 lower-case hex). A private key gives its public half. */
export function key01Hex(publicKey: KeyObject): string {
  const key = publicHalf(publicKey, "key");
  const problem = rsa2048Problem(key);
  if (problem) throw fail(`key ${problem}`);
  const hex = key.export({ type: "pkcs1", format: "der" }).toString("hex");
  return checkKey01Hex("key", hex);
}

/** The `key01: <hex>` line (with LF) for a key, as mfg-data tools and the vectors write it. */
export function key01Line(publicKey: KeyObject): string {
  return `key01: ${key01Hex(publicKey)}\n`;
}

/** The key id the firmware matches: the last 32 bytes of the PKCS#1 DER, 64 hex. */
export function keyIdHex(keyHex: string): string {
  return checkKey01Hex("key01", keyHex).slice(-KEY_ID_HEX_LENGTH);
}

/** The key of a 540-hex key01 value, checked to be RSA-2048 with e = 65537. */
export function publicKeyFromKey01(hex: string): KeyObject {
  checkKey01Hex("key01", hex);
  let key: KeyObject;
  try {
    key = createPublicKey({ key: Buffer.from(hex, "hex"), format: "der", type: "pkcs1" });
  } catch (cause) {
    throw fail("key01 is not a valid PKCS#1 RSAPublicKey", cause);
  }
  const problem = rsa2048Problem(key);
  if (problem) throw fail(`key01 ${problem}`);
  return key;
}

/** The hex of a `key01: <hex>` line; one trailing LF is allowed (files end with one). */
export function parseKey01Line(line: string): string {
  const fields = fieldsOf("key01 line", line);
  if (fields[0] !== "key01:") throw fail(`key01 line must start with "key01: ", got ${show(line)}`);
  if (fields.length !== 2) throw fail(`key01 line must be "key01: <540 hex>", got ${fields.length} fields`);
  return checkKey01Hex("key01", fields[1] as string);
}
