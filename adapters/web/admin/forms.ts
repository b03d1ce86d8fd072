/**
 * What every console form goes through: a CSRF token (a cookie and its twin
 * in the form), the Origin naming our own host, and bounded bodies: a form
 * of a few fields, or a multipart upload of one lease file.
 */
import { randomBytes, timingSafeEqual } from "node:crypto";
import type { IncomingHttpHeaders, IncomingMessage } from "node:http";
import { SugarError } from "../../../src/errors.js";
import { readBody } from "../../kit/http.js";
import { COOKIE, ours, readCookies, setCookie } from "../../kit/cookies.js";

const FORM_LIMIT = 8 * 1024;
const CSRF_SECONDS = 3600;
const CSRF_MIN = 22;

export const one = (headers: IncomingHttpHeaders, name: string): string | undefined => {
  const v = headers[name];
  return Array.isArray(v) ? undefined : v;
};

const sameText = (a: string, b: string) => a.length > 0 && a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));

export const hostOf = (req: IncomingMessage) => (one(req.headers, "host") ?? "").toLowerCase().replace(/:\d+$/, "").replace(/^\[|\]$/g, "");

/** The host name an Origin header names, lower-cased; "" for one that names none ("null", garbage). */
export function originHost(origin: string): string {
  if (!/^https?:\/\//i.test(origin)) return "";
  try {
    return new URL(origin).hostname.toLowerCase().replace(/^\[|\]$/g, "");
  } catch {
    return ""; // not a URL: no host, so never ours
  }
}

/** The Origin, when sent, names our host (only the name: a proxy in front may end TLS and drop the port). */
export function sameOrigin(req: IncomingMessage): boolean {
  const o = one(req.headers, "origin");
  return o === undefined || (originHost(o) !== "" && originHost(o) === hostOf(req));
}

/**
 * A WebSocket upgrade must carry an Origin naming our host: every browser
 * sends one, and a page of another site opening our socket with the admin's
 * cookies is exactly what this refuses.
 */
export function sameOriginStrict(req: IncomingMessage): boolean {
  const o = one(req.headers, "origin");
  return o !== undefined && originHost(o) !== "" && originHost(o) === hostOf(req);
}

/** The CSRF token for this browser's forms, and the cookie carrying its twin (renewed). */
export function csrfFor(req: IncomingMessage, secure: boolean): { token: string; cookie: string } {
  const had = ours(readCookies(req.headers), COOKIE.csrf);
  const token = had.length >= CSRF_MIN ? had : randomBytes(16).toString("base64url");
  return { token, cookie: setCookie(COOKIE.csrf, token, { maxAgeSeconds: CSRF_SECONDS, secure }) };
}

/** A form from our own page: Origin, and the csrf field equal to its cookie. */
export function fromOurPage(req: IncomingMessage, csrf: string): boolean {
  return sameOrigin(req) && sameText(csrf, ours(readCookies(req.headers), COOKIE.csrf));
}

export async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  const type = one(req.headers, "content-type") ?? "";
  if (!/^application\/x-www-form-urlencoded/i.test(type)) throw new SugarError("invalid_input", "send the page's form");
  return new URLSearchParams((await readBody(req, FORM_LIMIT)).toString("utf8"));
}

/** The parts of a multipart/form-data body: field name → bytes (the first of a repeated name). */
export async function readMultipart(req: IncomingMessage, limit: number): Promise<Map<string, Buffer>> {
  const type = one(req.headers, "content-type") ?? "";
  const m = /^multipart\/form-data;.*boundary=(?:"([^"]{1,70})"|([^\s;]{1,70}))/i.exec(type);
  if (!m) throw new SugarError("invalid_input", "send the page's upload form");
  const body = await readBody(req, limit);
  return parseMultipart(body, m[1] ?? m[2]!);
}

/** RFC 7578 parts: headers, a blank line, the bytes up to the next boundary. Malformed is invalid_input. */
export function parseMultipart(body: Buffer, boundary: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const delim = Buffer.from(`--${boundary}`);
  let pos = body.indexOf(delim);
  if (pos < 0) throw new SugarError("invalid_input", "the upload has no parts");
  for (;;) {
    pos += delim.length;
    if (body.subarray(pos, pos + 2).toString() === "--") return out; // the closing delimiter
    if (body.subarray(pos, pos + 2).toString() !== "\r\n") throw new SugarError("invalid_input", "malformed upload");
    pos += 2;
    const headEnd = body.indexOf("\r\n\r\n", pos);
    if (headEnd < 0) throw new SugarError("invalid_input", "malformed upload");
    const head = body.subarray(pos, headEnd).toString("latin1");
    const next = body.indexOf(Buffer.concat([Buffer.from("\r\n"), delim]), headEnd + 4);
    if (next < 0) throw new SugarError("invalid_input", "malformed upload: no closing boundary");
    const name = /content-disposition:[^\r\n]*\bname="([^"]*)"/i.exec(head)?.[1];
    if (name !== undefined && !out.has(name)) out.set(name, body.subarray(headEnd + 4, next));
    pos = next + 2;
  }
}
