/**
 * The one HTTP listener every port uses (httpd-port, xmlrpc-port, the TLS
 * port): it binds, and for each request
 *
 *   1. on the TLS port, refuses a client certificate that did not verify
 *      (401 in the protocol of the route asked for, never silent anonymity);
 *   2. applies the admin-path rule (admin-rule.ts), before any handler;
 *   3. asks the mounted handlers, by their route tables, in order; a path no
 *      table has goes to `fallback` as not_found.
 *
 * A handler answers its own refusals and failures through its `fail`, so
 * each client hears them in its own protocol.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { authClient, registryClient } from "../../src/codec.js";
import { formatAddress, once, type Context, type Listener } from "../../src/component.js";
import { SugarError } from "../../src/errors.js";
import { adminRule, checkCanonical } from "./admin-rule.js";
import { pathOf, pick, servesMethod, servesPath, type HttpHandler, type Route } from "./handler.js";
import type { Metrics } from "../../src/metrics.js";
import { closeServer, harden } from "./http.js";
import { certificateRefusal, identifier } from "./identify.js";
import { listen } from "./listen.js";
import type { Server as TlsServer } from "node:https";
import { createTlsServer, secureContextOf, type TlsSettings } from "./tls.js";

export interface ListenerOptions {
  /** The component's name: its log lines and `ready` say it. */
  name: string;
  /** The option that names the port, for errors. */
  option: string;
  port: number;
  /** Asked in this order. */
  handlers: readonly HttpHandler[];
  /** Answers what no handler's table has (a 404 in its protocol). */
  fallback: HttpHandler;
  /** Serve TLS with these (loadTls), else plain HTTP. */
  tls?: TlsSettings;
}

/** A running listener, and every route its handlers serve (for tests that walk them all). */
export interface HttpListener extends Listener {
  readonly routes: readonly Route[];
  /** A TLS listener serves new connections with these (a renewed certificate) from now on; a plain one refuses. */
  reloadTls(settings: TlsSettings): void;
}

export async function startListener(ctx: Context, o: ListenerOptions): Promise<HttpListener> {
  const { bus, config } = ctx;
  const log = ctx.log.child(o.name);
  const opts = { timeoutMs: config["bus-timeout"] };
  const identify = identifier(config, authClient(bus, config.site, opts));
  const admin = adminRule(registryClient(bus, config.site, opts));

  async function dispatch(req: IncomingMessage, res: ServerResponse, handler: HttpHandler | undefined): Promise<void> {
    const who = identify(req);
    if (who.peer && !who.peer.authorized) throw certificateRefusal(who.peer);
    await admin.check(req.url ?? "/", who);
    if (!handler) throw new SugarError("not_found", `no such endpoint: ${pathOf(req.url)}`);
    await handler.handle(req, res, who);
  }

  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    try {
      checkCanonical(req.url ?? "/");
    } catch (err) {
      return o.fallback.fail(req, res, err);
    }
    const handler = pick(o.handlers, req.method ?? "", pathOf(req.url));
    if (ctx.metrics) count(ctx.metrics, req, res, handler);
    dispatch(req, res, handler).catch((err: unknown) => {
      if (res.headersSent) res.destroy(err instanceof Error ? err : undefined);
      else (handler ?? o.fallback).fail(req, res, err);
    });
  };

  /** Requests by handler, route (its table's path: a closed set) and status; latency by handler. */
  function count(m: Metrics, req: IncomingMessage, res: ServerResponse, handler: HttpHandler | undefined): void {
    const started = performance.now();
    const path = pathOf(req.url);
    const route = handler?.routes.find((r) => servesPath(r, path) && servesMethod(r, req.method ?? "")) ?? handler?.routes.find((r) => servesPath(r, path));
    const adapter = handler?.name ?? o.fallback.name;
    res.once("finish", () => {
      m.requests.inc({ adapter, op: `${req.method === "HEAD" ? "GET" : req.method === "POST" ? "POST" : "other"} ${route?.path ?? "(none)"}`, result: String(res.statusCode) });
      m.latency.observe({ adapter }, (performance.now() - started) / 1000);
    });
  }

  const server: Server = o.tls ? createTlsServer(o.tls, log, onRequest) : createServer(onRequest);
  // A WebSocket's upgrade passes the same certificate check and admin-path rule as any request.
  server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const handler = pick(o.handlers, "GET", pathOf(req.url));
    socket.on("error", (err) => log.debug(`upgrade: ${err.message}`));
    if (!handler?.upgrade) return void socket.end(rawStatus(404, "Not Found"));
    const who = identify(req);
    (async () => {
      checkCanonical(req.url ?? "/");
      if (who.peer && !who.peer.authorized) throw certificateRefusal(who.peer);
      await admin.check(req.url ?? "/", who);
    })().then(
      () => handler.upgrade!(req, socket, head, who),
      (err: unknown) => {
        const code = err instanceof SugarError ? err.code : "internal";
        const [status, text] = code === "forbidden" ? [403, "Forbidden"] : code.startsWith("auth_") ? [401, "Unauthorized"] : code === "invalid_input" ? [400, "Bad Request"] : [503, "Service Unavailable"];
        socket.end(rawStatus(status, text));
      },
    );
  });
  harden(server, config["max-connections"]);
  const address = await listen(server, config.host, o.port, o.option);
  log.info(`listening on ${formatAddress(address)}${o.tls ? ` (TLS; client certificates ${o.tls.clientAuth})` : ""}`);
  const reloadTls = (settings: TlsSettings) => {
    if (!o.tls) throw new SugarError("internal", `${o.name} is no TLS listener`);
    (server as TlsServer).setSecureContext(secureContextOf(settings));
    log.info("serving the renewed TLS certificate");
  };
  return {
    name: o.name,
    address,
    routes: [...o.handlers, o.fallback].flatMap((h) => h.routes),
    reloadTls,
    stop: once(async () => {
      for (const h of o.handlers) await h.stop?.();
      await closeServer(server);
    }),
  };
}

/** A bare HTTP answer on a socket that asked to upgrade (no ServerResponse exists for it). */
function rawStatus(status: number, text: string): string {
  return `HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${text.length + 1}\r\n\r\n${text}\n`;
}
