/**
 * Web adapter: what browsers and the proxies in front of the school's web
 * services talk to, mounted beside /client/* on httpd-port and the TLS port.
 *
 *   GET  /auth/verify     forward auth (nginx auth_request, Caddy forward_auth, Traefik forwardAuth):
 *                         200 + X-Sugar-* identity headers, 401 (no identity), 403 (not enough); never a 3xx
 *   GET  /auth/login?rd=  where a proxy sends a browser that got 401: back to rd with a session, or the register page
 *   POST /auth/logout     ends this device's login
 *   GET|POST /register    a phone, tablet or computer without Sugar registers with a nickname
 *   GET  /auth/claim      the first admin's one-time link (not under /admin: the admin-path rule
 *                         lets only admins there, and this link is how the first one becomes admin)
 *
 * The auth actor decides who a request is (cookies, token headers, a client
 * certificate, xoid: adapters/kit/identify.ts); the registry who that user
 * is. This file reads forms, checks their shape, CSRF tokens and Origin, and
 * renders pages.
 */
import { randomBytes, timingSafeEqual } from "node:crypto";
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from "node:http";
import { hostname } from "node:os";
import { authClient, registryClient } from "../../src/codec.js";
import type { Context } from "../../src/component.js";
import { SugarError, describe, toSugarError } from "../../src/errors.js";
import { clearCookie, COOKIE, ours, readCookies, setCookie } from "../kit/cookies.js";
import type { HttpHandler, Route } from "../kit/handler.js";
import { overTls, readBody, sourceOf } from "../kit/http.js";
import type { RequestIdentity } from "../kit/identify.js";
import { messagePage, registerPage, registeredPage } from "./pages.js";
import { allowedRedirect, redirectHosts } from "./redirect.js";
import { stringsFor, type Strings } from "./strings.js";
import { SourceLimit } from "./limit.js";

const FORM_LIMIT = 8 * 1024;
const MAX_URI = 8 * 1024;
const CSRF_SECONDS = 3600;
/** A CSRF token is 16 random bytes (22 base64url characters); a shorter cookie is not one of ours. */
const CSRF_MIN = 22;
/** A browser's device cookie lasts as long as the device is registered (ten years, like Browse's xoid). */
const DEVICE_SECONDS = 10 * 365 * 24 * 3600;
/** Browser registrations one address may make in a minute. */
const REGISTRATIONS_PER_MINUTE = 100;

export const CLAIM_PATH = "/auth/claim";

const ROUTES: readonly Route[] = [
  { method: "GET", path: "/auth/verify" },
  { method: "GET", path: "/auth/login" },
  { method: "POST", path: "/auth/logout" },
  { method: "GET", path: "/register" },
  { method: "POST", path: "/register" },
  { method: "GET", path: CLAIM_PATH },
];

type Headers = Record<string, string | string[]>;

function reply(res: ServerResponse, status: number, body: string, headers: Headers = {}): void {
  const buf = Buffer.from(body);
  res.writeHead(status, { "Content-Type": "text/html; charset=utf-8", "Content-Length": String(buf.length), "Cache-Control": "no-store", ...headers });
  res.end(buf);
}

const one = (headers: IncomingHttpHeaders, name: string): string | undefined => {
  const v = headers[name];
  return Array.isArray(v) ? undefined : v;
};

/** A path as a proxy reports it: one value, starting with "/", no control characters, parseable. */
function wellFormedUri(v: string | string[] | undefined): boolean {
  if (v === undefined) return true;
  if (Array.isArray(v) || v.length === 0 || v.length > MAX_URI || !v.startsWith("/") || /[\u0000-\u001f\u007f]/.test(v)) return false;
  try {
    new URL(v, "http://sugar-server.invalid");
    return true;
  } catch {
    return false;
  }
}

/** The host name an Origin header names, lower-cased; "" for one that names none ("null", garbage), which matches no host. */
function originHost(origin: string): string {
  if (!/^https?:\/\//i.test(origin)) return "";
  try {
    return new URL(origin).hostname.toLowerCase().replace(/^\[|\]$/g, "");
  } catch {
    return ""; // not a URL: no host, so never ours
  }
}

/**
 * The `rd` of a login link. nginx cannot percent-encode what it writes
 * there (`rd=$request_uri`), so an rd that is not encoded (it starts with
 * "/" or "http") is the rest of the query, `&`s and all; an encoded one
 * (Caddy's and Traefik's redirect, a link) is one parameter.
 */
function rdOf(url: URL): string {
  const raw = url.search.slice(1);
  return /^rd=(\/|https?:)/i.test(raw) ? raw.slice(3) : (url.searchParams.get("rd") ?? "");
}

const sameText = (a: string, b: string) => a.length > 0 && a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));

export function createWeb(ctx: Context): HttpHandler {
  const { bus, config } = ctx;
  const log = ctx.log.child("web");
  const registry = registryClient(bus, config.site, { timeoutMs: config["bus-timeout"] });
  const auth = authClient(bus, config.site, { timeoutMs: config["bus-timeout"] });
  const ownNames = [config["backup-host"], config["jabber-url"], hostname()];
  const registrations = new SourceLimit(REGISTRATIONS_PER_MINUTE, 60_000);
  const sessionSeconds = config["session-hours"] * 3600;

  // Cookies get Secure when the browser spoke TLS, to us or to the proxy in front (trust-proxy).
  const secure = (req: IncomingMessage) => overTls(req, config["trust-proxy"]);
  const sessionCookie = (req: IncomingMessage, value: string) => setCookie(COOKIE.session, value, { maxAgeSeconds: sessionSeconds, secure: secure(req) });
  const hostOf = (req: IncomingMessage) => (one(req.headers, "host") ?? "").toLowerCase().replace(/:\d+$/, "").replace(/^\[|\]$/g, "");
  const hostsFor = (req: IncomingMessage) => redirectHosts([...ownNames, hostOf(req)], config["auth-redirect-hosts"]);

  /**
   * The CSRF token for a form, and the cookie that carries its twin (its
   * lifetime renewed). A browser that has one keeps it: behind a proxy every
   * request of a browser that is nobody yet gets the register page, the
   * browser's own /favicon.ico too, and a new token each time would void the
   * form it is showing.
   */
  function csrf(req: IncomingMessage): { token: string; cookie: string } {
    const had = ours(readCookies(req.headers), COOKIE.csrf);
    const token = had.length >= CSRF_MIN ? had : randomBytes(16).toString("base64url");
    return { token, cookie: setCookie(COOKIE.csrf, token, { maxAgeSeconds: CSRF_SECONDS, secure: secure(req) }) };
  }

  /**
   * A form POST from our own page: the Origin (when the browser sends one)
   * names our host, and the CSRF field matches its cookie. Only the host
   * name is compared: a proxy in front may end TLS (the browser's Origin is
   * https, what reaches us plain HTTP), and nginx's `$host` drops the port.
   */
  function fromOurPage(req: IncomingMessage, form: URLSearchParams): boolean {
    const o = one(req.headers, "origin");
    if (o !== undefined && (originHost(o) === "" || originHost(o) !== hostOf(req))) return false;
    return sameText(form.get("csrf") ?? "", ours(readCookies(req.headers), COOKIE.csrf));
  }

  async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
    const type = one(req.headers, "content-type") ?? "";
    if (!/^application\/x-www-form-urlencoded/i.test(type)) throw new SugarError("invalid_input", "send the page's form");
    return new URLSearchParams((await readBody(req, FORM_LIMIT)).toString("utf8"));
  }

  async function verify(req: IncomingMessage, res: ServerResponse, who: RequestIdentity, query: URLSearchParams): Promise<void> {
    // Fail closed on anything that cannot be read; never a redirect (nginx makes anything but 2xx/401/403 a 500).
    if (!wellFormedUri(req.headers["x-original-uri"]) || !wellFormedUri(req.headers["x-forwarded-uri"])) return reply(res, 401, "");
    const id = await who.browser();
    if (!id) return nobody(req, res, query);
    let user;
    try {
      user = (await registry.call("lookup", { uid: id.uid })).user;
    } catch (err) {
      if (err instanceof SugarError && err.code === "not_registered") return nobody(req, res, query);
      throw err;
    }
    if (!user) return nobody(req, res, query);
    // An xoid identifies but proves nothing: never admin, and not enough where a service asks for a device.
    const admin = !!user.admin && id.level !== "xoid";
    if (query.get("admin") === "1" && !admin) return reply(res, 403, "");
    if (query.get("level") === "device" && id.level === "xoid") return reply(res, 403, "");
    const headers: Headers = {
      "X-Sugar-Uid": id.uid,
      "X-Sugar-Nick": encodeURIComponent(user.nickname ?? ""),
      "X-Sugar-Sn": user.machineSn ?? "",
      "X-Sugar-Admin": admin ? "true" : "false",
      "X-Sugar-Auth-Level": id.level,
    };
    if (id.session) headers["Set-Cookie"] = sessionCookie(req, id.session);
    reply(res, 200, "", headers);
  }

  /**
   * Nobody: 401 for nginx (which redirects itself: it makes anything else a
   * 500), or with `?redirect=1` — for Caddy and Traefik, which pass the auth
   * answer to the browser — a 302 to the login page for the URL the proxy
   * reports in X-Forwarded-Proto/Host/Uri.
   */
  function nobody(req: IncomingMessage, res: ServerResponse, query: URLSearchParams): void {
    if (query.get("redirect") !== "1") return reply(res, 401, "");
    const proto = one(req.headers, "x-forwarded-proto") === "https" ? "https" : "http";
    const host = one(req.headers, "x-forwarded-host") ?? one(req.headers, "host") ?? "";
    const uri = one(req.headers, "x-forwarded-uri") ?? "/";
    const back = allowedRedirect(`${proto}://${host}${uri}`, hostsFor(req)) ?? "";
    reply(res, 302, "", { Location: `/auth/login${back ? `?rd=${encodeURIComponent(back)}` : ""}` });
  }

  async function login(req: IncomingMessage, res: ServerResponse, who: RequestIdentity, url: URL, t: Strings): Promise<void> {
    const rdText = rdOf(url);
    const rd = rdText ? allowedRedirect(rdText, hostsFor(req)) : "";
    if (rd === undefined) return reply(res, 400, messagePage(t, t.errorHeading, t.badRedirect));
    const id = await who.browser();
    if (id && id.level !== "xoid") {
      const headers: Headers = { Location: rd || "/register" };
      if (id.session) headers["Set-Cookie"] = sessionCookie(req, id.session);
      return reply(res, 302, "", headers);
    }
    const c = csrf(req);
    reply(res, 200, registerPage(t, { csrf: c.token, rd }), { "Set-Cookie": c.cookie });
  }

  async function registerForm(req: IncomingMessage, res: ServerResponse, who: RequestIdentity, url: URL, t: Strings): Promise<void> {
    const rd = allowedRedirect(rdOf(url), hostsFor(req)) ?? "";
    const id = await who.browser();
    const c = csrf(req);
    if (id && id.level !== "xoid") {
      const user = (await registry.call("lookup", { uid: id.uid })).user;
      const headers: Headers = { "Set-Cookie": [c.cookie, ...(id.session ? [sessionCookie(req, id.session)] : [])] };
      return reply(res, 200, registeredPage(t, { nickname: user?.nickname ?? "", rd, csrf: c.token }), headers);
    }
    reply(res, 200, registerPage(t, { csrf: c.token, rd }), { "Set-Cookie": c.cookie });
  }

  async function register(req: IncomingMessage, res: ServerResponse, t: Strings): Promise<void> {
    const source = sourceOf(req, config["trust-proxy"]);
    if (!registrations.take(source)) return reply(res, 429, messagePage(t, t.errorHeading, t.tooMany), { "Retry-After": "60" });
    const form = await readForm(req);
    if (!fromOurPage(req, form)) return reply(res, 403, messagePage(t, t.errorHeading, t.badForm));
    const rdText = form.get("rd") ?? "";
    const rd = rdText ? allowedRedirect(rdText, hostsFor(req)) : "";
    if (rd === undefined) return reply(res, 400, messagePage(t, t.errorHeading, t.badRedirect));
    const nickname = (form.get("nickname") ?? "").trim();
    let uid: string;
    try {
      uid = (await registry.call("registerDevice", { nickname })).user?.uid ?? "";
    } catch (err) {
      if (err instanceof SugarError && err.code === "invalid_input") {
        const c = csrf(req);
        return reply(res, 400, registerPage(t, { csrf: c.token, rd, error: err.message, nickname }), { "Set-Cookie": c.cookie });
      }
      throw err;
    }
    const d = await auth.call("device", { uid, source });
    const cookies = [
      setCookie(COOKIE.device, d.device ?? "", { maxAgeSeconds: DEVICE_SECONDS, secure: secure(req) }),
      sessionCookie(req, d.session ?? ""),
      clearCookie(COOKIE.csrf, secure(req)),
    ];
    log.info(`a browser registered as ${uid}`);
    reply(res, 303, "", { Location: rd || "/register", "Set-Cookie": cookies });
  }

  async function logout(req: IncomingMessage, res: ServerResponse, t: Strings): Promise<void> {
    const form = await readForm(req);
    if (!fromOurPage(req, form)) return reply(res, 403, messagePage(t, t.errorHeading, t.badForm));
    const device = ours(readCookies(req.headers), COOKIE.device);
    if (device) await auth.call("logout", { device });
    const s = secure(req);
    reply(res, 200, messagePage(t, t.loggedOutHeading, t.loggedOutText), { "Set-Cookie": [clearCookie(COOKIE.device, s), clearCookie(COOKIE.session, s), clearCookie(COOKIE.csrf, s)] });
  }

  async function claim(req: IncomingMessage, res: ServerResponse, who: RequestIdentity, query: URLSearchParams, t: Strings): Promise<void> {
    const code = query.get("code") ?? "";
    const id = await who.browser();
    if (!id || id.level !== "device") {
      const c = csrf(req);
      const here = `${CLAIM_PATH}?code=${encodeURIComponent(code)}`;
      return reply(res, 200, registerPage(t, { csrf: c.token, rd: here, error: t.claimNeedsDevice }), { "Set-Cookie": c.cookie });
    }
    try {
      await auth.call("claim", { code, uid: id.uid, source: sourceOf(req, config["trust-proxy"]) });
    } catch (err) {
      if (err instanceof SugarError && err.code === "rate_limited") return reply(res, 429, messagePage(t, t.claimHeading, t.tooMany), { "Retry-After": "60" });
      if (err instanceof SugarError && (err.code.startsWith("auth_") || err.code === "invalid_input")) return reply(res, 403, messagePage(t, t.claimHeading, t.claimRefused));
      throw err;
    }
    log.info(`${id.uid} claimed the first admin link: now an admin`);
    reply(res, 200, messagePage(t, t.claimHeading, t.claimDone), id.session ? { "Set-Cookie": sessionCookie(req, id.session) } : {});
  }

  async function handle(req: IncomingMessage, res: ServerResponse, who: RequestIdentity): Promise<void> {
    const url = new URL(req.url ?? "/", "http://sugar-server.invalid");
    const t = stringsFor(one(req.headers, "accept-language"));
    const route = `${req.method} ${url.pathname}`;
    try {
      switch (route) {
        case "GET /auth/verify":
        case "HEAD /auth/verify":
          await verify(req, res, who, url.searchParams);
          break;
        case "GET /auth/login":
          await login(req, res, who, url, t);
          break;
        case "POST /auth/logout":
          await logout(req, res, t);
          break;
        case "GET /register":
          await registerForm(req, res, who, url, t);
          break;
        case "POST /register":
          await register(req, res, t);
          break;
        case `GET ${CLAIM_PATH}`:
          await claim(req, res, who, url.searchParams, t);
          break;
        default:
          reply(res, 405, messagePage(t, t.errorHeading, `${req.method} ${url.pathname}`), { Allow: url.pathname === "/register" ? "GET, POST" : url.pathname === "/auth/logout" ? "POST" : "GET" });
      }
    } catch (err) {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      const e = toSugarError(err);
      // /auth/verify fails closed; a page says what happened in words, never the server's own message.
      if (url.pathname === "/auth/verify") {
        log.warn(`verify: ${describe(err)}`);
        reply(res, e.code === "too_large" || e.code === "invalid_input" ? 401 : 500, "");
      } else if (e.code === "invalid_input" || e.code === "too_large") reply(res, 400, messagePage(t, t.errorHeading, t.badForm));
      else {
        log.warn(`${route}: ${describe(err)}`);
        reply(res, 503, messagePage(t, t.errorHeading, t.unavailable));
      }
    }
  }

  /**
   * A refusal before any route ran (the listener's: a client certificate
   * that did not verify, the admin rule) or a failure that escaped: for
   * /auth/verify a bare status (a proxy reads nothing else), else a page.
   */
  function fail(req: IncomingMessage, res: ServerResponse, err: unknown): void {
    const e = toSugarError(err);
    const status = e.code.startsWith("auth_") ? 401 : e.code === "forbidden" ? 403 : e.code === "not_found" ? 404 : 503;
    if (status === 503) log.warn(`${req.method} ${req.url}: ${describe(err)}`);
    if (new URL(req.url ?? "/", "http://sugar-server.invalid").pathname === "/auth/verify") return reply(res, status, "");
    const t = stringsFor(one(req.headers, "accept-language"));
    const text = status === 401 ? t.certificateRefused : status === 403 ? t.forbidden : status === 404 ? t.notFound : t.unavailable;
    reply(res, status, messagePage(t, t.errorHeading, text));
  }

  return { name: "web", routes: ROUTES, handle, fail };
}
