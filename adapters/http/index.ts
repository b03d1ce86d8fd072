/**
 * REST adapter (served on httpd-port, default 8000, and the TLS port): JSON
 * dictionaries both ways, `{success: "OK", ...}` or `{success: "ERR",
 * error}` (the sugar-server convention sugar-client reads). Its routes
 * (routes.ts) check the shape of what arrives and ask the actor that owns
 * the answer over the bus; errors map to HTTP in one function. No domain
 * rule lives here.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Context } from "../../src/component.js";
import { authClient, backupClient, keyringCaClient, leaseClient, registryClient } from "../../src/codec.js";
import { leaseWaitMs } from "../../src/budget.js";
import { SugarError, describe, toSugarError, type ErrorCode } from "../../src/errors.js";
import { servesMethod, servesPath, type HttpHandler } from "../kit/handler.js";
import type { RequestIdentity } from "../kit/identify.js";
import { readBody, send, sourceOf } from "../kit/http.js";
import { serverCa } from "../kit/server-ca.js";
import { guard } from "./auth.js";
import { parseFields, type Input, type Json, type Route } from "./fields.js";
import { restRoutes } from "./routes.js";

export const REST_BODY_LIMIT = 64 * 1024;

/** What REST tells a client about a failure. */
export interface HttpFailure {
  status: number;
  code: ErrorCode;
  /** Safe to show: a 500 says only "internal server error" (the server's own failures can name files); the log keeps the real message. */
  message: string;
}

/** The one place REST maps errors to HTTP: 4xx for the client's mistakes, 5xx for the server's. */
export function httpFailure(err: unknown): HttpFailure {
  const e = toSugarError(err);
  const status = statusFor(e.code);
  return { status, code: e.code, message: status === 500 ? "internal server error" : e.message };
}

function statusFor(code: ErrorCode): number {
  switch (code) {
    case "invalid_input":
      return 400;
    case "too_large":
      return 413;
    case "forbidden":
    case "stolen":
      return 403;
    case "not_registered":
    case "unknown_machine":
    case "not_found":
      return 404;
    case "auth_required":
    case "auth_expired":
    case "auth_invalid":
      return 401;
    case "conflict":
      return 409;
    case "rate_limited":
      return 429;
    case "disk_full":
      return 507;
    case "busy":
    case "unavailable":
      return 503;
    case "timeout":
      return 504;
    case "internal":
    case "invalid_config": // the server's own configuration or listeners: never a client's doing
    case "listen_failed":
      return 500;
  }
}

/** The REST handler: mounted on httpd-port (after the web routes) and on the TLS port, and the fallback of both for paths no handler has. */
export function createRest(ctx: Context): HttpHandler {
  const { bus, config } = ctx;
  const log = ctx.log.child("http");
  const opts = { timeoutMs: config["bus-timeout"] };
  const registry = registryClient(bus, config.site, opts);
  const auth = authClient(bus, config.site, opts);
  const routes = restRoutes({
    bus,
    registry,
    auth,
    backup: backupClient(bus, config.site, opts),
    // A live get: longer than the lease actor's own budget (src/budget.ts).
    lease: leaseClient(bus, config.site, { timeoutMs: leaseWaitMs(config["bus-timeout"]) }),
    keyring: keyringCaClient(bus, config.site, opts),
    allowed: guard(config, auth, registry),
    serverCa: serverCa(config, log),
  });

  const reply = (res: ServerResponse, status: number, body: Json, close = false, extra: Record<string, string> = {}) =>
    send(res, status, "application/json; charset=utf-8", JSON.stringify(body) + "\n", extra, close);
  const replyError = (res: ServerResponse, err: unknown, close = false, extra: Record<string, string> = {}) => {
    const f = httpFailure(err);
    if (f.status >= 500) log.warn(describe(err));
    reply(res, f.status, { success: "ERR", error: f.message, code: f.code }, close, f.status === 429 ? { "Retry-After": "60", ...extra } : extra);
  };

  async function handle(req: IncomingMessage, res: ServerResponse, who: RequestIdentity): Promise<void> {
    const url = new URL(req.url ?? "/", "http://localhost");
    const forPath = routes.filter((r) => servesPath(r, url.pathname));
    const route = forPath.find((r) => servesMethod(r, req.method ?? ""));
    if (!route) {
      if (forPath.length === 0) return replyError(res, new SugarError("not_found", `no such endpoint: ${url.pathname}`));
      const allow = [...new Set(forPath.map((r) => r.method))].join(", ");
      return reply(res, 405, { success: "ERR", error: `${req.method} is not allowed on ${url.pathname}; use ${allow}`, code: "invalid_input" }, false, { Allow: allow });
    }
    const fields = new Map<string, unknown>();
    if (route.method === "POST") {
      let body: Buffer;
      try {
        body = await readBody(req, REST_BODY_LIMIT);
      } catch (err) {
        return replyError(res, err);
      }
      for (const [k, v] of parseFields(body, String(req.headers["content-type"] ?? ""))) fields.set(k, v);
    }
    const input: Input = { query: url.searchParams, fields, rest: url.pathname.slice(route.path.length), headers: req.headers, source: sourceOf(req, config["trust-proxy"]), who };
    if (route.raw) return handleRaw(route, input, res);
    const answer = await route.handle(input);
    reply(res, answer.status ?? 200, { success: "OK", ...answer.body });
  }

  /** A route that answers with a status and an empty body: 403 for every client error, 5xx as usual. */
  async function handleRaw(route: Route, input: Input, res: ServerResponse): Promise<void> {
    try {
      const answer = await route.handle(input);
      const retry = answer.body["retry-after"];
      send(res, answer.status ?? 200, "text/plain", "", typeof retry === "number" && retry > 0 ? { "Retry-After": String(retry) } : {});
    } catch (err) {
      const { status } = httpFailure(err);
      if (status >= 500) log.warn(describe(err));
      send(res, status < 500 ? 403 : status, "text/plain", "");
    }
  }

  return {
    name: "rest",
    routes: routes.map((r) => ({ method: r.method, path: r.path, ...(r.prefix ? { prefix: true } : {}) })),
    handle,
    fail: (_req, res, err) => replyError(res, err),
  };
}
