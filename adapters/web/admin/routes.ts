/**
 * The admin console's routes. Who may reach them is decided before these
 * handlers run: the listener's one admin-path rule (adapters/kit/admin-rule.ts)
 * refuses every request under /admin and /metrics, upgrades too, that is not
 * an admin's. Each action is the same bus request to the owning actor that
 * the CLI makes.
 *
 *   GET  /admin                     overview and the live feed
 *   GET  /admin/users?q=            search by nickname, serial number or uid; pending re-flash claims
 *   GET  /admin/user?uid=           one user: machine, backups, admin flag
 *   POST /admin/user/admin          uid, admin=on|off
 *   POST /admin/user/remove         uid
 *   POST /admin/claims/approve      uid (the claim's new uid)
 *   POST /admin/claims/reject       uid
 *   GET  /admin/leases?sn=&after=   a serial number's lease and last activation; a page of the stolen list after a serial number
 *   POST /admin/stolen              sn, stolen=1|0
 *   POST /admin/leases/import       multipart: file (act01 lines or compact JSON)
 *   GET  /admin/backups             last backup per user, running now
 *   GET  /metrics                   Prometheus text
 *   GET  /admin/live                WebSocket upgrade (live.ts)
 *
 * Every POST carries the page's CSRF token and our Origin; then a 303 back
 * to the page with what happened (the import answers its counts directly).
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { backupClient, leaseClient, registryClient } from "../../../src/codec.js";
import type { Context } from "../../../src/component.js";
import { SugarError, describe, toSugarError } from "../../../src/errors.js";
import * as validate from "../../../src/validate.js";
import { importLeaseFile } from "../../../src/cli/imports.js";
import type { HttpHandler, Route } from "../../kit/handler.js";
import { overTls } from "../../kit/http.js";
import { startLiveHub, type LiveHub } from "../live.js";
import { overviewSource, registerGauges } from "./data.js";
import { csrfFor, fromOurPage, one, readForm, readMultipart, sameOriginStrict } from "./forms.js";
import { backupsPage, leasesPage, messagePage, overviewPage, userPage, usersPage, type ImportSummary, type LeaseLookup, type StolenPage } from "./pages.js";
import { adminStringsFor, type AdminStrings } from "./strings.js";

/** A lease file through the browser: a school's USB stick, not a deployment's (that is `leases import`). */
export const UPLOAD_LIMIT_MB = 16;
const UPLOAD_LIMIT = UPLOAD_LIMIT_MB * 1024 * 1024;
/** Users shown for one search. */
const SEARCH_LIMIT = 100;
/** Stolen serial numbers per page of the leases page (each with one or two marks). */
const STOLEN_ROWS = 200;
const UID = /^[0-9a-f]{40}$/;
const pathOfTarget = (url: string | undefined) => (url ?? "").split("?")[0];

const GETS = new Set(["/admin", "/admin/", "/admin/users", "/admin/user", "/admin/leases", "/admin/backups", "/admin/live", "/metrics"]);
const POSTS = new Set(["/admin/user/admin", "/admin/user/remove", "/admin/claims/approve", "/admin/claims/reject", "/admin/stolen", "/admin/leases/import"]);
/** Each page and action by its path (what /metrics counts them by), then every other path under /admin: the console's 404. */
const ROUTES: readonly Route[] = [
  ...[...GETS].map((path): Route => ({ method: "GET", path })),
  ...[...POSTS].map((path): Route => ({ method: "POST", path })),
  { method: "GET", path: "/admin/", prefix: true },
  { method: "POST", path: "/admin/", prefix: true },
];

type Headers = Record<string, string | string[]>;

function html(res: ServerResponse, status: number, body: string, headers: Headers = {}): void {
  const buf = Buffer.from(body);
  res.writeHead(status, {
    "Content-Type": "text/html; charset=utf-8",
    "Content-Length": String(buf.length),
    "Cache-Control": "no-store",
    // The console's own scripts are inline; nothing may load from elsewhere, and no other site may frame it.
    "Content-Security-Policy": "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    ...headers,
  });
  res.end(buf);
}

/** A back link from a form: one of our own pages, nothing else. */
const backTo = (v: string | null) => (v && /^\/admin(\/[a-z/]*)?(\?[A-Za-z0-9=&%._-]*)?$/.test(v) ? v : "/admin");

export function createAdminConsole(ctx: Context): HttpHandler & Required<Pick<HttpHandler, "upgrade" | "stop">> {
  const { bus, config } = ctx;
  const log = ctx.log.child("admin");
  const registry = registryClient(bus, config.site, { timeoutMs: config["bus-timeout"] });
  const lease = leaseClient(bus, config.site, { timeoutMs: 60_000 });
  const backup = backupClient(bus, config.site, { timeoutMs: config["bus-timeout"] });
  const source = overviewSource(ctx);
  registerGauges(ctx, source);
  const live: LiveHub = startLiveHub(bus, config.site, log.child("live"), ctx.metrics);
  const secure = (req: IncomingMessage) => overTls(req, config["trust-proxy"]);

  /** A page with a CSRF token for its forms; `notice` is what the last action did (?done=, ?error=). */
  function page(req: IncomingMessage, res: ServerResponse, url: URL, render: (csrf: string, notice?: string, error?: boolean) => string, status = 200): void {
    const c = csrfFor(req, secure(req));
    const done = url.searchParams.get("done");
    const error = url.searchParams.get("error");
    html(res, status, render(c.token, (error ?? done ?? "").slice(0, 200) || undefined, error !== null), { "Set-Cookie": c.cookie });
  }

  async function users(req: IncomingMessage, res: ServerResponse, url: URL, t: AdminStrings): Promise<void> {
    const q = (url.searchParams.get("q") ?? "").trim().slice(0, 64);
    let found: Array<NonNullable<Awaited<ReturnType<typeof registry.call<"list">>>["users"]>[number]> | undefined = [];
    let total = 0;
    try {
      if (UID.test(q) || validate.isMachineSn(q.toUpperCase())) {
        const r = await registry.call("lookup", UID.test(q) ? { uid: q } : { machineSn: q.toUpperCase() }).catch((err: unknown) => {
          if (err instanceof SugarError && err.code === "not_registered") return { user: null };
          throw err;
        });
        found = r.user ? [r.user] : [];
        total = found.length;
      } else {
        const r = await registry.call("list", { offset: 0, limit: SEARCH_LIMIT, query: q });
        found = r.users ?? [];
        total = r.total ?? found.length;
      }
    } catch (err) {
      log.warn(`users: ${describe(err)}`);
      found = undefined;
    }
    const claims = await registry.call("claims", {}).then((r) => r.claims ?? [], () => undefined);
    page(req, res, url, (csrf, notice, error) => usersPage(t, { query: q, users: found, total, claims }, { csrf, notice, error }));
  }

  async function user(req: IncomingMessage, res: ServerResponse, url: URL, t: AdminStrings): Promise<void> {
    const uid = url.searchParams.get("uid") ?? "";
    if (!UID.test(uid)) return html(res, 404, messagePage(t, t.errorHeading, t.notFound));
    const u = await registry.call("lookup", { uid }).catch((err: unknown) => {
      if (err instanceof SugarError && err.code === "not_registered") return undefined;
      throw err;
    });
    if (!u?.user) return html(res, 404, messagePage(t, t.errorHeading, t.notFound));
    const b = await backup.call("show", { uid }).then((r) => r.backup ?? undefined, () => undefined);
    page(req, res, url, (csrf, notice, error) => userPage(t, { user: u.user!, backup: b }, { csrf, notice, error }));
  }

  async function leases(req: IncomingMessage, res: ServerResponse, url: URL, t: AdminStrings, result?: ImportSummary, status = 200, failure?: string): Promise<void> {
    const raw = (url.searchParams.get("sn") ?? "").trim().toUpperCase();
    let lookup: LeaseLookup | undefined;
    if (raw && validate.isMachineSn(raw)) {
      try {
        lookup = { sn: raw, show: await lease.call("show", { machineSn: raw }, { timeoutMs: config["bus-timeout"] }), none: false };
      } catch (err) {
        lookup = { sn: raw, show: undefined, none: err instanceof SugarError && err.code === "not_found" };
      }
    }
    // One page of the list (a district's can be tens of thousands), after the ?after= of its Next link.
    const after = url.searchParams.get("after") ?? "";
    // Only our own Next link writes it: anything else is a bad link, answered with the first page and why.
    const afterSn = validate.isMachineSn(after) ? after : "";
    const badAfter = after && !afterSn ? `${after.slice(0, 40)}: ${t.notSerial}` : undefined;
    const stolen = await lease.call("stolenlist", { afterSn, limit: STOLEN_ROWS }, { timeoutMs: config["bus-timeout"] }).then(
      (r): StolenPage => ({
        // One entry per mark (this school's, the district's); a lease actor without entries gives serial numbers only.
        entries: r.entries?.length ? r.entries : (r.machineSns ?? []).map((machineSn) => ({ machineSn, source: "local" })),
        serials: r.machineSns?.length ?? 0,
        total: r.total || (r.machineSns?.length ?? 0),
        after: afterSn,
        next: r.more ? (r.machineSns?.at(-1) ?? "") : "",
      }),
      () => undefined,
    );
    const bad = (raw && !lookup ? `${raw}: ${t.notFound}` : undefined) ?? badAfter;
    page(req, res, url, (csrf, notice, error) => leasesPage(t, { lookup, stolen, result, uploadMb: UPLOAD_LIMIT_MB }, { csrf, notice: failure ?? bad ?? notice, error: !!failure || !!bad || error }), badAfter ? 400 : status);
  }

  async function backups(req: IncomingMessage, res: ServerResponse, url: URL, t: AdminStrings): Promise<void> {
    const [summary, list] = await Promise.all([
      backup.call("summary", {}).then((r) => r, () => undefined),
      backup.call("list", {}, { timeoutMs: 30_000 }).then((r) => r.backups ?? [], () => undefined),
    ]);
    page(req, res, url, (csrf, notice, error) => backupsPage(t, { summary, backups: list }, { csrf, notice, error }));
  }

  /** A form action: checked, done through the actor, then back to the page with what happened. */
  async function action(req: IncomingMessage, res: ServerResponse, path: string, t: AdminStrings): Promise<void> {
    const form = await readForm(req);
    if (!fromOurPage(req, form.get("csrf") ?? "")) return html(res, 403, messagePage(t, t.errorHeading, t.badForm));
    const back = backTo(form.get("back"));
    const to = (key: "done" | "error", text: string) => html(res, 303, "", { Location: `${back}${back.includes("?") ? "&" : "?"}${key}=${encodeURIComponent(text)}` });
    try {
      const uid = form.get("uid") ?? "";
      switch (path) {
        case "/admin/user/admin": {
          const on = form.get("admin") === "on";
          const r = await registry.call("admin", { uid, admin: on });
          return to("done", `${r.user?.nickname ?? uid}: ${t.admin} ${on ? t.yes : t.no}`);
        }
        case "/admin/user/remove":
          await registry.call("remove", { uid });
          return to("done", `${uid}: ${t.done}`);
        case "/admin/claims/approve": {
          const c = (await registry.call("approve", { newUid: uid })).claim ?? {};
          return to("done", `${t.approve}: ${c.newNickname} → ${c.machineSn}`);
        }
        case "/admin/claims/reject": {
          const c = (await registry.call("reject", { newUid: uid })).claim ?? {};
          return to("done", `${t.reject}: ${c.newNickname} (${c.machineSn})`);
        }
        case "/admin/stolen": {
          const sn = validate.typedMachineSn(form.get("sn") ?? "");
          const stolen = form.get("stolen") === "1";
          await lease.call("stolen", { machineSn: sn, stolen });
          return to("done", `${sn}: ${stolen ? t.markStolen : t.markNotStolen}`);
        }
      }
    } catch (err) {
      const e = toSugarError(err);
      if (e.code === "internal") throw err;
      // An actor's refusal (not found, invalid) is the admin's to read; the server's own failures are not.
      return to("error", `${e.code}: ${e.message}`.slice(0, 200));
    }
    html(res, 404, messagePage(t, t.errorHeading, t.notFound));
  }

  async function upload(req: IncomingMessage, res: ServerResponse, url: URL, t: AdminStrings): Promise<void> {
    let parts: Map<string, Buffer>;
    try {
      parts = await readMultipart(req, UPLOAD_LIMIT);
    } catch (err) {
      if (err instanceof SugarError && err.code === "too_large") return leases(req, res, url, t, undefined, 413, t.tooLarge(UPLOAD_LIMIT_MB));
      throw err;
    }
    if (!fromOurPage(req, parts.get("csrf")?.toString("utf8") ?? "")) return html(res, 403, messagePage(t, t.errorHeading, t.badForm));
    const file = parts.get("file") ?? Buffer.alloc(0);
    const text = file.toString("utf8");
    // Not text at all (a photo picked by mistake): said at once, nothing sent to the actor.
    if (file.length === 0 || text.includes("\u0000") || text.includes("\ufffd")) return leases(req, res, url, t, undefined, 400, t.notLeaseFile);
    let r: ImportSummary;
    try {
      r = await importLeaseFile(text, lease, { isTTY: false, write: () => undefined });
    } catch (err) {
      if (err instanceof SugarError && err.code === "invalid_input") return leases(req, res, url, t, undefined, 400, `${t.notLeaseFile} ${err.message}`);
      throw err;
    }
    log.info(`lease file uploaded: ${r.imported} imported, ${r.replaced} replaced, ${r.refused.length} refused`);
    return leases(req, res, url, t, r, r.imported + r.replaced === 0 && r.refused.length > 0 ? 400 : 200);
  }

  async function metrics(res: ServerResponse): Promise<void> {
    if (!ctx.metrics) {
      res.writeHead(404, { "Content-Type": "text/plain; charset=utf-8" });
      return void res.end("no metrics in this process\n");
    }
    const m = await ctx.metrics.scrape();
    res.writeHead(200, { "Content-Type": m.contentType, "Cache-Control": "no-store" });
    res.end(m.body);
  }


  let stopped: Promise<void> | undefined;
  return {
    name: "admin",
    routes: ROUTES,
    async handle(req, res) {
      const url = new URL(req.url ?? "/", "http://sugar-server.invalid");
      const path = url.pathname;
      const t = adminStringsFor(one(req.headers, "accept-language"));
      if (!GETS.has(path) && !POSTS.has(path)) return html(res, 404, messagePage(t, t.errorHeading, t.notFound));
      try {
        if (path === "/admin/live") {
          html(res, 426, messagePage(t, t.live, t.liveOff), { Upgrade: "websocket" });
        } else if (req.method === "GET" || req.method === "HEAD") {
          if (!GETS.has(path)) html(res, 405, messagePage(t, t.errorHeading, `${req.method} ${path}`), { Allow: "POST" });
          else if (path === "/metrics") await metrics(res);
          else if (path === "/admin/users") await users(req, res, url, t);
          else if (path === "/admin/user") await user(req, res, url, t);
          else if (path === "/admin/leases") await leases(req, res, url, t);
          else if (path === "/admin/backups") await backups(req, res, url, t);
          else {
            const o = await source.overview();
            page(req, res, url, (csrf, notice, error) => overviewPage(t, o, { csrf, notice, error }));
          }
        } else if (req.method === "POST" && POSTS.has(path)) {
          if (path === "/admin/leases/import") await upload(req, res, url, t);
          else await action(req, res, path, t);
        } else {
          html(res, 405, messagePage(t, t.errorHeading, `${req.method} ${path}`), { Allow: POSTS.has(path) ? "POST" : "GET" });
        }
      } catch (err) {
        const e = toSugarError(err);
        if (res.headersSent) {
          res.destroy();
          return;
        }
        if (e.code === "invalid_input" || e.code === "too_large") html(res, e.code === "too_large" ? 413 : 400, messagePage(t, t.errorHeading, t.badForm), e.code === "too_large" ? { Connection: "close" } : {});
        else {
          log.warn(`${req.method} ${path}: ${describe(err)}`);
          html(res, 503, messagePage(t, t.errorHeading, t.unavailable));
        }
      }
    },
    /** A refusal before any page ran (the admin rule's 403, a certificate's 401) or a failure that escaped. */
    fail(req, res, err) {
      const e = toSugarError(err);
      const t = adminStringsFor(one(req.headers, "accept-language"));
      const status = e.code.startsWith("auth_") ? 401 : e.code === "forbidden" ? 403 : e.code === "not_found" ? 404 : 503;
      if (status === 503) log.warn(`${req.method} ${req.url}: ${describe(err)}`);
      html(res, status, messagePage(t, t.errorHeading, status === 403 ? t.notAdmin : status === 404 ? t.notFound : status === 401 ? t.notAdmin : t.unavailable));
    },
    upgrade(req, socket, head) {
      // The listener applied the admin rule; what is left is the page's own origin (no cross-site WebSocket).
      if (pathOfTarget(req.url) !== "/admin/live") return void socket.end("HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
      live.upgrade(req, socket, head, async () => sameOriginStrict(req));
    },
    stop: () => (stopped ??= live.close()),
  };
}
