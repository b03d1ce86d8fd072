/**
 * REST adapter (httpd-port, default 8000): JSON dictionaries both ways,
 * `{success: "OK", ...}` or `{success: "ERR", error}` (the sugar-server
 * convention sugar-client reads). It checks the shape of what arrives, asks
 * the actor that owns the answer over the bus, and maps errors to HTTP in
 * one function. No domain rule lives here.
 */
import type { Duplex } from "node:stream";
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from "node:http";
import { formatAddress, once, type Context, type Listener } from "../../src/component.js";
import { authClient, backupClient, leaseClient, registryClient } from "../../src/codec.js";
import { SugarError, describe, toSugarError, type ErrorCode } from "../../src/errors.js";
import * as validate from "../../src/validate.js";
import { closeServer, harden, readBody, send, sourceOf, type HttpHandler } from "../kit/http.js";
import { listen } from "../kit/listen.js";
import { guard, loginBody, proofFrom, wantsCredential } from "./auth.js";

export const REST_BODY_LIMIT = 64 * 1024;

type Json = Record<string, unknown>;
/** A route's answer: the fields besides `success`, and the HTTP status when not 200. */
interface Answer {
  status?: number;
  body: Json;
}
interface Route {
  method: "GET" | "POST";
  /** Exact path, or a prefix when it ends with "/" (the rest is `input.rest`). */
  path: string;
  handle(input: Input): Promise<Answer>;
  /** Answers in its own format instead of the JSON dictionary (ds-backup reads only the status). */
  raw?: boolean;
}
interface Input {
  query: URLSearchParams;
  /** The POST body's fields (JSON object or form fields); empty for GET. */
  fields: Map<string, unknown>;
  /** For a prefix route: the path after the prefix. */
  rest: string;
  headers: IncomingHttpHeaders;
  /** The client's address: failed logins are counted per source. */
  source: string;
}

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

/** A text field, by its current name or an old alias; absent → "", wrong type → invalid_input. */
function field(input: Map<string, unknown> | URLSearchParams, names: readonly string[], required: boolean): string {
  for (const name of names) {
    const v = input.get(name);
    if (v === undefined || v === null) continue;
    if (typeof v !== "string") throw new SugarError("invalid_input", `${name} must be a string`);
    return v;
  }
  if (required) throw new SugarError("invalid_input", `${names[0]} is required`);
  return "";
}

/** A serial number as a person or a tool typed it (validate.typedMachineSn); absent stays absent. */
const typedSn = (v: string) => (v === "" ? "" : validate.typedMachineSn(v));

/**
 * The REST listener (httpd-port). `mounted` are other adapters' handlers
 * (the web routes) that the composition root hands in; each is asked first
 * and the REST routes answer whatever none of them took.
 */
export async function startHttp(ctx: Context, mounted: readonly HttpHandler[] = []): Promise<Listener> {
  const { bus, config } = ctx;
  const log = ctx.log.child("http");
  const registry = registryClient(bus, config.site, { timeoutMs: config["bus-timeout"] });
  const backup = backupClient(bus, config.site, { timeoutMs: config["bus-timeout"] });
  const lease = leaseClient(bus, config.site, { timeoutMs: config["bus-timeout"] });
  const auth = authClient(bus, config.site, { timeoutMs: config["bus-timeout"] });
  const allowed = guard(config, auth, registry);

  const routes: Route[] = [
    {
      method: "POST",
      path: "/client/register",
      async handle({ fields, headers }) {
        // A device without an SSH key (a client utility on a phone): device_id in place of a serial number, no pubkey.
        if (fields.has("device_id") && !fields.has("pubkey")) {
          const d = await registry.call("registerDevice", { nickname: field(fields, ["nickname"], true), deviceId: field(fields, ["device_id"], true) });
          return { body: { uid: d.user?.uid, created: d.created, kind: "browser", ...(d.credential ? { credential: d.credential } : {}) } };
        }
        const r = await registry.call("register", {
          nickname: field(fields, ["nickname"], true),
          pubkey: field(fields, ["pubkey"], true),
          machineSn: typedSn(field(fields, ["machine_sn", "serial"], false)),
          machineUuid: field(fields, ["machine_uuid", "uuid"], false).trim(),
          proof: proofFrom(headers) ?? null,
        });
        return {
          body: {
            uid: r.user?.uid,
            jabberserver: r.jabberServer,
            backupurl: r.backupUrl,
            backuppath: r.backupPath,
            created: r.created,
            ...(r.credential ? { credential: r.credential } : {}),
            ...(r.claimedUid ? { reflash: r.approved ? "approved" : "pending" } : {}),
          },
        };
      },
    },
    {
      // With the credential from registration, or with the key itself: an SSHSIG over a nonce from /client/challenge.
      method: "POST",
      path: "/client/login",
      async handle({ fields, source }) {
        const credential = fields.get("credential");
        if (fields.has("signature") || fields.has("nonce")) {
          const r = await auth.call("prove", {
            uid: field(fields, ["uid"], true),
            nonce: field(fields, ["nonce"], true),
            signature: field(fields, ["signature"], true),
            credential: wantsCredential(credential),
            source,
          });
          return { body: loginBody(r) };
        }
        return { body: loginBody(await auth.call("login", { credential: field(fields, ["credential"], true), source })) };
      },
    },
    {
      method: "GET",
      path: "/client/challenge",
      async handle({ query }) {
        const c = await auth.call("challenge", { uid: field(query, ["uid"], true) });
        return { body: { nonce: c.nonce, namespace: c.namespace, expires: c.expires } };
      },
    },
    {
      method: "GET",
      path: "/client/status",
      async handle({ query, headers }) {
        // Registration is the registry's answer, backups the backup actor's (asked only for a registered uid).
        const uid = field(query, ["uid", "uuid"], true);
        await allowed.forUid(headers, uid);
        const s = await registry.call("status", { uid });
        if (!s.registered) return { body: { registered: false } };
        const b = await backup.call("status", { uid });
        return { body: { registered: true, "jabber-url": s.jabberUrl, "backup-url": b.backupUrl, "pending-restore": !!b.pendingRestore } };
      },
    },
    {
      method: "GET",
      path: "/healthz",
      async handle() {
        // A real round trip to the registry: healthy means registrations can be answered.
        await registry.call("status", { uid: "0".repeat(40) });
        return { body: { status: "ok", bus: bus.kind } };
      },
    },
    {
      method: "GET",
      path: "/client/backup",
      async handle({ query, headers }) {
        const uid = field(query, ["uid", "uuid"], true);
        await allowed.forUid(headers, uid);
        const a = await backup.call("admit", { uid });
        return { body: { accepted: a.accepted, "backup-url": a.backupUrl, ...(a.accepted ? {} : { reason: a.reason, "retry-after": a.retryAfter }) } };
      },
    },
    {
      method: "GET",
      path: "/client/lease",
      async handle({ query, headers }) {
        const sn = typedSn(field(query, ["machine_sn", "serial"], true));
        await allowed.forSn(headers, sn);
        const r = await lease.call("get", { machineSn: sn, source: "rest" });
        return { body: { lease: r.lease } };
      },
    },
    {
      // The OLPC ds-backup client: 200 = go ahead, 503 = busy (it backs off and retries), 403 = not allowed.
      method: "GET",
      path: "/backup/1/available/",
      raw: true,
      async handle({ rest }) {
        const a = await backup.call("admit", { machineSn: rest });
        return a.accepted ? { status: 200, body: {} } : { status: 503, body: { "retry-after": a.retryAfter } };
      },
    },
  ];

  const reply = (res: ServerResponse, status: number, body: Json, close = false, extra: Record<string, string> = {}) =>
    send(res, status, "application/json; charset=utf-8", JSON.stringify(body) + "\n", extra, close);
  const replyError = (res: ServerResponse, err: unknown, close = false, extra: Record<string, string> = {}) => {
    const f = httpFailure(err);
    if (f.status >= 500) log.warn(describe(err));
    reply(res, f.status, { success: "ERR", error: f.message, code: f.code }, close, f.status === 429 ? { "Retry-After": "60", ...extra } : extra);
  };

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://localhost");
    const forPath = routes.filter((r) => (r.path.endsWith("/") ? url.pathname.startsWith(r.path) : r.path === url.pathname));
    const route = forPath.find((r) => r.method === req.method || (r.method === "GET" && req.method === "HEAD"));
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
    const input: Input = { query: url.searchParams, fields, rest: url.pathname.slice(route.path.length), headers: req.headers, source: sourceOf(req, config["trust-proxy"]) };
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

  const server = createServer((req, res) => {
    (async () => {
      for (const h of mounted) if (await h(req, res)) return;
      await handle(req, res);
    })().catch((err) => {
      if (!res.headersSent) replyError(res, err);
      else res.destroy(err as Error);
    });
  });
  server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    for (const h of mounted) if (h.upgrade?.(req, socket, head)) return;
    socket.destroy();
  });
  harden(server, config["max-connections"]);
  const address = await listen(server, config.host, config["httpd-port"], "httpd-port");
  log.info(`listening on ${formatAddress(address)}`);
  return {
    name: "http",
    address,
    stop: once(async () => {
      for (const h of mounted) await h.stop?.();
      await closeServer(server);
    }),
  };
}

/** JSON object or form fields; anything else is the client's mistake. */
function parseFields(body: Buffer, contentType: string): Map<string, unknown> {
  const text = body.toString("utf8");
  if (/^application\/x-www-form-urlencoded/i.test(contentType)) return new Map(new URLSearchParams(text));
  if (text.trim() === "") throw new SugarError("invalid_input", "request body is empty; send a JSON object");
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (cause) {
    throw new SugarError("invalid_input", `malformed JSON: ${(cause as Error).message}`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new SugarError("invalid_input", "request body must be a JSON object");
  return new Map(Object.entries(parsed));
}

export type { Route as HttpRoute, Answer as HttpAnswer, Input as HttpInput };
