/**
 * The long-lived client credential (the Spacewalk systemid, done right):
 *
 *   sugar1.<base64url(JSON payload)>.<base64url(HMAC-SHA256)>
 *   payload = {"v":1,"uid":…,"sn":…,"iat":<unix seconds>,"kid":…}
 *
 * The MAC is keyed by the uid's own secret and covers purpose, key id, uid,
 * serial number and issue time. The server stores no credential: it parses
 * one, finds the uid's secret, and recomputes. The payload must be exactly
 * the canonical JSON the server writes, so no two texts carry the same fields.
 */
import { isMachineSn, type MachineSn, type Uid } from "../../src/validate.js";
import { fromBase64url, KEY_ID, mac, sameBytes, toBase64url } from "./mac.js";

const PREFIX = "sugar1";
const MAX_LENGTH = 1024;
const UID = /^[0-9a-f]{40}$/;

export interface CredentialFields {
  uid: Uid;
  sn: MachineSn | "";
  /** Issue time, unix seconds. */
  iat: number;
  kid: string;
}

/** The canonical payload text: fixed key order, no spaces. */
const payloadText = (f: CredentialFields) => JSON.stringify({ v: 1, uid: f.uid, sn: f.sn, iat: f.iat, kid: f.kid });

const macOf = (secret: Buffer, f: CredentialFields) => mac(secret, "sugar-server credential v1", f.kid, [f.uid, f.sn, String(f.iat)]);

export function makeCredential(secret: Buffer, f: CredentialFields): string {
  return `${PREFIX}.${toBase64url(Buffer.from(payloadText(f), "utf8"))}.${toBase64url(macOf(secret, f))}`;
}

export interface ParsedCredential {
  fields: CredentialFields;
  mac: Buffer;
}

/** The fields and MAC of a credential, or the reason it is not one (the reason never quotes the text). */
export function parseCredential(text: string): ParsedCredential | string {
  if (text.length > MAX_LENGTH) return "too long";
  const parts = text.split(".");
  if (parts.length !== 3 || parts[0] !== PREFIX) return "not a sugar1 credential";
  const payload = fromBase64url(parts[1]!);
  const tag = fromBase64url(parts[2]!);
  if (!payload) return "payload is not base64url";
  if (!tag || tag.length !== 32) return "MAC is not 32 bytes of base64url";
  let v: unknown;
  try {
    v = JSON.parse(payload.toString("utf8"));
  } catch {
    return "payload is not JSON"; // the reason is the answer; the parser's message adds nothing
  }
  if (typeof v !== "object" || v === null) return "payload is not an object";
  const o = v as Record<string, unknown>;
  const { uid, sn, iat, kid } = o;
  if (o.v !== 1) return "unknown version";
  if (typeof uid !== "string" || !UID.test(uid)) return "bad uid";
  if (typeof sn !== "string" || (sn !== "" && !isMachineSn(sn))) return "bad serial number";
  if (typeof iat !== "number" || !Number.isSafeInteger(iat) || iat < 0) return "bad issue time";
  if (typeof kid !== "string" || !KEY_ID.test(kid)) return "bad key id";
  const fields: CredentialFields = { uid: uid as Uid, sn: sn as MachineSn | "", iat, kid };
  if (payloadText(fields) !== payload.toString("utf8")) return "payload is not canonical";
  return { fields, mac: tag };
}

/** Whether the credential's MAC is right under this secret (constant time). */
export function credentialMacOk(secret: Buffer, c: ParsedCredential): boolean {
  return sameBytes(macOf(secret, c.fields), c.mac);
}
