/**
 * The XO's `xoid` cookie: what Sugar's Browse writes once the XO is
 * registered, Python's `json.dumps({"color": "<stroke>,<fill>", "pkey_hash":
 * sha1(pubkey body)})` as the raw cookie value — spaces, quotes and commas,
 * not RFC 6265-clean. Proxies and browsers pass it on in several shapes, so
 * the parse is lenient about the wrapping (surrounding quotes, `\"` and
 * Python's `\ooo` escapes, URL-encoding) and strict about the content: a
 * JSON object whose `pkey_hash` is 40 lower-case hex digits. Anything else is
 * no identity at all (fail closed). It identifies, it proves nothing: the
 * public key is no secret.
 */
import type { Uid } from "../../src/validate.js";

/** Browse's value is about 90 characters; far longer is not an xoid. */
const MAX_LENGTH = 2048;
const PKEY_HASH = /^[0-9a-f]{40}$/;
const ENCODED = /%[0-9A-Fa-f]{2}/;

/** The uid an xoid cookie value names, or undefined when it names none. */
export function xoidUid(raw: string): Uid | undefined {
  if (raw.length > MAX_LENGTH) return undefined;
  const s = raw.trim();
  let v = unwrap(s);
  if (v === undefined && ENCODED.test(s)) {
    try {
      // Form encoding writes a space as "+"; a JSON xoid has no "+" of its own.
      v = unwrap(decodeURIComponent(s.replace(/\+/g, " ")).trim());
    } catch {
      return undefined; // "%" with no valid escape after it: not a cookie anyone wrote
    }
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) return undefined;
  const hash = Object.hasOwn(v, "pkey_hash") ? (v as Record<string, unknown>).pkey_hash : undefined;
  return typeof hash === "string" && PKEY_HASH.test(hash) ? (hash as Uid) : undefined;
}

/** The JSON inside a quoted cookie string, or inside one whose quotes were dropped and escapes left, or the text as JSON. */
function unwrap(s: string): unknown {
  if (s.length >= 2 && s.startsWith('"') && s.endsWith('"')) return json(unquote(s.slice(1, -1)));
  return json(s) ?? (s.includes('\\"') ? json(unquote(s)) : undefined);
}

/** The parsed JSON, or undefined when it is not JSON (broken JSON names nobody; the parser's message adds nothing). */
function json(s: string): unknown {
  try {
    return JSON.parse(s);
  } catch {
    return undefined;
  }
}

/** A quoted cookie string's escapes: `\"`, `\\` and Python http.cookies' octal `\054`. */
function unquote(s: string): string {
  return s.replace(/\\([0-7]{3}|.)/g, (_, e: string) => (e.length === 3 ? String.fromCharCode(parseInt(e, 8)) : e));
}
