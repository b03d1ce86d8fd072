/**
 * A browser's session: the value of its `sugar_session` cookie,
 *
 *   s1.<token key id>.<uid>.<expires unix s>.<base64url HMAC-SHA256 over purpose, key id, uid, expires>
 *
 * MACed under the token keys (store.ts) with its own purpose label, so a
 * session and a token never pass for each other. Like the token headers it
 * needs no per-browser lookup to check; it lasts `session-hours` and is
 * renewed from the browser's device cookie (devices.ts). A session names no
 * level: it is only ever made for a device, never for an xoid.
 */
import { SugarError } from "../../src/errors.js";
import type { Uid } from "../../src/validate.js";
import { fromBase64url, mac, sameBytes, toBase64url } from "./mac.js";
import type { TokenKey } from "./store.js";

const PREFIX = "s1";
/** A real value is 2 + 16 + 40 + at most 12 + 43 characters and 4 dots; anything much longer is not one. */
const MAX_LENGTH = 160;
const SESSION = /^s1\.([0-9a-f]{16})\.([0-9a-f]{40})\.(0|[1-9][0-9]{0,11})\.([A-Za-z0-9_-]{43})$/;
/** How far a session's expiry may lie beyond what session-hours allows now (another server's clock). */
const CLOCK_SKEW = 60;

const macOf = (key: TokenKey, uid: string, expires: number) => mac(key.secret, "sugar-server session v1", key.id, [uid, String(expires)]);

export interface Session {
  value: string;
  uid: Uid;
  /** When it stops working (ms). */
  expires: number;
}

/** A session for `uid` under `key`, lasting `hours` from now. */
export function makeSession(key: TokenKey, uid: Uid, nowMs: number, hours: number): Session {
  const expires = Math.floor(nowMs / 1000) + hours * 3600;
  return { value: `${PREFIX}.${key.id}.${uid}.${expires}.${toBase64url(macOf(key, uid, expires))}`, uid, expires: expires * 1000 };
}

const invalid = (why: string) => new SugarError("auth_invalid", `session is not valid: ${why}`);

/**
 * Checks a presented value. `keyFor` finds a token key that may still check
 * (current, or superseded within its grace period); a session lasts no longer
 * than `hours` from now, so lowering session-hours shortens the ones out
 * there too. Throws auth_required, auth_invalid or auth_expired; a reason
 * never quotes the value.
 */
export function checkSession(value: string, keyFor: (id: string) => TokenKey | undefined, nowMs: number, hours: number): { uid: Uid; expires: number } {
  if (!value) throw new SugarError("auth_required", "no session");
  if (value.length > MAX_LENGTH) throw invalid("too long");
  const m = SESSION.exec(value);
  const tag = m ? fromBase64url(m[4]!) : undefined;
  if (!m || !tag || tag.length !== 32) throw invalid("not s1.<key id>.<uid>.<expires>.<MAC>");
  const key = keyFor(m[1]!);
  if (!key) throw invalid("its key is unknown or retired");
  const uid = m[2]!;
  const expires = Number(m[3]!);
  if (!sameBytes(macOf(key, uid, expires), tag)) throw invalid("the MAC does not match");
  const now = Math.floor(nowMs / 1000);
  if (expires > now + hours * 3600 + CLOCK_SKEW) throw invalid("it lasts longer than session-hours allows");
  if (expires <= now) throw new SugarError("auth_expired", "session has expired");
  return { uid: uid as Uid, expires: expires * 1000 };
}
