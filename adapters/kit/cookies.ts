/**
 * Cookies both ways, bounded. A Cookie header over 8 KB or with more than 100
 * cookies is not read at all (the request then carries no identity: closed,
 * not open); a value that is not valid text for its cookie is absent. The
 * `xoid` value Sugar's Browse writes is not RFC 6265-clean (JSON with spaces,
 * quotes and commas), so values are taken as they stand, up to the next `;`.
 */
import type { IncomingHttpHeaders } from "node:http";

export const COOKIE = { device: "sugar_device", session: "sugar_session", csrf: "sugar_csrf", xoid: "xoid" } as const;

const MAX_HEADER = 8 * 1024;
const MAX_COOKIES = 100;
/** A cookie value of ours: base64url and dots (session values), nothing else. */
const OURS = /^[A-Za-z0-9._-]{1,512}$/;

/** The cookies of a request by name (the first of a repeated name wins), or an empty map when the header is out of bounds. */
export function readCookies(headers: IncomingHttpHeaders): Map<string, string> {
  const out = new Map<string, string>();
  const raw = headers.cookie;
  if (raw === undefined || raw.length > MAX_HEADER) return out;
  const parts = raw.split(";");
  if (parts.length > MAX_COOKIES) return out;
  for (const part of parts) {
    const eq = part.indexOf("=");
    if (eq < 0) continue;
    const name = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (name && !out.has(name)) out.set(name, value);
  }
  return out;
}

/** One of our own cookies, only when its value has our shape. */
export function ours(cookies: Map<string, string>, name: string): string {
  const v = cookies.get(name) ?? "";
  return OURS.test(v) ? v : "";
}

export interface CookieOptions {
  maxAgeSeconds: number;
  /** Only over TLS. */
  secure: boolean;
  /** Not readable by page scripts. */
  httpOnly?: boolean;
}

/** A Set-Cookie value: Path=/, SameSite=Lax always (a cross-site POST never carries it). */
export function setCookie(name: string, value: string, o: CookieOptions): string {
  return [`${name}=${value}`, "Path=/", `Max-Age=${Math.max(0, Math.floor(o.maxAgeSeconds))}`, "SameSite=Lax", ...(o.httpOnly === false ? [] : ["HttpOnly"]), ...(o.secure ? ["Secure"] : [])].join("; ");
}

export const clearCookie = (name: string, secure: boolean) => setCookie(name, "", { maxAgeSeconds: 0, secure });
