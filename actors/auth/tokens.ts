/**
 * Short-lived token headers (the Spacewalk X-RHN-Auth headers, done right).
 * A login gives four headers the client replays on every request:
 *
 *   X-Sugar-Uid           the uid
 *   X-Sugar-Auth-Time     the server's unix seconds at login (no client clock involved)
 *   X-Sugar-Auth-Expires  lifetime in seconds (at most 3600)
 *   X-Sugar-Auth          <token key id>:<base64url HMAC-SHA256 over purpose, key id, uid, time, lifetime>
 *
 * Verification needs only the token keys: no per-client lookup. The MAC's
 * purpose says how the login was proven: a token from an SSHSIG proof of the
 * registered key (`key`) is told apart from one a credential bought
 * (`credential`), and only the first may settle a re-flash claim at once — a
 * key's first registration proves nothing, so its credential cannot vouch
 * for the key's owner.
 */
import { SugarError } from "../../src/errors.js";
import type { Uid } from "../../src/validate.js";
import { fromBase64url, KEY_ID, mac, sameBytes, toBase64url } from "./mac.js";
import type { TokenKey } from "./store.js";

export { TOKEN_HEADERS } from "../../src/codec.js";
import { TOKEN_HEADERS } from "../../src/codec.js";

/** No token lives longer than this, whatever it says. */
export const MAX_LIFETIME = 3600;
/** How far in the future a token's time may be (another server's clock). */
export const CLOCK_SKEW = 60;

const UID = /^[0-9a-f]{40}$/;
const SECONDS = /^(0|[1-9][0-9]{0,11})$/;
const AUTH = /^([0-9a-f]{16}):([A-Za-z0-9_-]{43})$/;

/** How a login was proven. */
export type Proof = "key" | "credential";
const PURPOSE = { credential: "sugar-server token v1", key: "sugar-server key-proven token v1" } as const;

const macOf = (key: TokenKey, proof: Proof, uid: string, time: number, lifetime: number) =>
  mac(key.secret, PURPOSE[proof], key.id, [uid, String(time), String(lifetime)]);

export interface Token {
  uid: Uid;
  /** When it stops working (ms). */
  expires: number;
  headers: Record<string, string>;
}

/** Headers for `uid`, made now under `key`. */
export function makeToken(key: TokenKey, uid: Uid, nowMs: number, lifetime: number, proof: Proof): Token {
  const time = Math.floor(nowMs / 1000);
  return {
    uid,
    expires: (time + lifetime) * 1000,
    headers: {
      [TOKEN_HEADERS.uid]: uid,
      [TOKEN_HEADERS.time]: String(time),
      [TOKEN_HEADERS.lifetime]: String(lifetime),
      [TOKEN_HEADERS.auth]: `${key.id}:${toBase64url(macOf(key, proof, uid, time, lifetime))}`,
    },
  };
}

export interface PresentedToken {
  uid: string;
  time: string;
  lifetime: string;
  auth: string;
}

const invalid = (why: string) => new SugarError("auth_invalid", `token is not valid: ${why}; log in again`);

/**
 * Checks presented headers. `keyFor` finds a token key that may still check
 * tokens (current, or superseded within its grace period). Throws
 * auth_required, auth_invalid or auth_expired.
 */
export function checkToken(t: PresentedToken, keyFor: (id: string) => TokenKey | undefined, nowMs: number): { uid: Uid; expires: number; proof: Proof } {
  if (!t.uid || !t.time || !t.lifetime || !t.auth) {
    throw new SugarError("auth_required", `this request needs the ${Object.values(TOKEN_HEADERS).join(", ")} headers from a login`);
  }
  if (!UID.test(t.uid)) throw invalid(`${TOKEN_HEADERS.uid} is not a uid`);
  if (!SECONDS.test(t.time)) throw invalid(`${TOKEN_HEADERS.time} is not unix seconds`);
  if (!SECONDS.test(t.lifetime)) throw invalid(`${TOKEN_HEADERS.lifetime} is not a number of seconds`);
  const m = AUTH.exec(t.auth);
  const tag = m ? fromBase64url(m[2]!) : undefined;
  if (!m || !tag || tag.length !== 32) throw invalid(`${TOKEN_HEADERS.auth} is not <key id>:<base64url MAC>`);
  const keyId = m[1]!;
  if (!KEY_ID.test(keyId)) throw invalid("bad key id");
  const key = keyFor(keyId);
  if (!key) throw invalid("its key is unknown or retired");
  const time = Number(t.time);
  const lifetime = Number(t.lifetime);
  // Both purposes are checked, each in constant time: which one matches is the login's proof.
  const asKey = sameBytes(macOf(key, "key", t.uid, time, lifetime), tag);
  const asCredential = sameBytes(macOf(key, "credential", t.uid, time, lifetime), tag);
  if (!asKey && !asCredential) throw invalid("the MAC does not match");
  if (lifetime < 1 || lifetime > MAX_LIFETIME) throw invalid(`lifetime must be 1 to ${MAX_LIFETIME} seconds`);
  const now = Math.floor(nowMs / 1000);
  if (time > now + CLOCK_SKEW) throw invalid("its time is in the future");
  if (time + lifetime <= now) throw new SugarError("auth_expired", "token has expired; log in again");
  return { uid: t.uid as Uid, expires: (time + lifetime) * 1000, proof: asKey ? "key" : "credential" };
}
