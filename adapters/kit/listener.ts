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
import { authClient, registryClient } from "../../src/codec.js";
import { formatAddress, once, type Context, type Listener } from "../../src/component.js";
import { SugarError } from "../../src/errors.js";
import { adminRule, checkCanonical } from "./admin-rule.js";
import { pathOf, pick, type HttpHandler, type Route } from "./handler.js";
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
    dispatch(req, res, handler).catch((err: unknown) => {
      if (res.headersSent) res.destroy(err instanceof Error ? err : undefined);
      else (handler ?? o.fallback).fail(req, res, err);
    });
  };

  const server: Server = o.tls ? createTlsServer(o.tls, log, onRequest) : createServer(onRequest);
  harden(server, config["max-connections"]);
  const address = await listen(server, config.host, o.port, o.option);
  log.info(`listening on ${formatAddress(address)}${o.tls ? ` (TLS; client certificates ${o.tls.clientAuth})` : ""}`);
  const reloadTls = (settings: TlsSettings) => {
    if (!o.tls) throw new SugarError("internal", `${o.name} is no TLS listener`);
    (server as TlsServer).setSecureContext(secureContextOf(settings));
    log.info("serving the renewed TLS certificate");
  };
  return { name: o.name, address, routes: [...o.handlers, o.fallback].flatMap((h) => h.routes), reloadTls, stop: once(() => closeServer(server)) };
}
