/**
 * What an adapter that speaks HTTP exposes, so that one listener can mount
 * several and one TLS port can serve every route without a second copy of
 * any of them: the table of routes it serves, a function that answers a
 * request for one of them, and one that answers a refusal in its protocol
 * (REST's JSON, XML-RPC's struct, the web's pages).
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import type { RequestIdentity } from "./identify.js";

export type Method = "GET" | "POST";

export interface Route {
  method: Method;
  /** An exact path, or with `prefix` every path that starts with it. */
  path: string;
  prefix?: boolean;
}

export interface HttpHandler {
  /** For log lines and tests. */
  readonly name: string;
  readonly routes: readonly Route[];
  /**
   * Answers a request whose path is in `routes` (with a method it may not
   * serve: then a 405 in its protocol). `who` says who the request is, asked
   * of the auth actor only when a route wants to know.
   */
  handle(req: IncomingMessage, res: ServerResponse, who: RequestIdentity): Promise<void>;
  /** Answers a refusal (not_found, forbidden, auth_*) or a failure that escaped `handle`, in this handler's protocol. */
  fail(req: IncomingMessage, res: ServerResponse, err: unknown): void;
  /**
   * Takes a connection upgrade (a WebSocket) for a path in `routes`, after
   * the listener applied the admin-path rule to it; absent = this handler
   * takes none.
   */
  upgrade?(req: IncomingMessage, socket: Duplex, head: Buffer, who: RequestIdentity): void;
  /** Releases what the handler holds open (WebSockets) when a listener mounting it stops. Idempotent. */
  stop?(): Promise<void>;
}

/** Does the route serve this path (any method)? */
export const servesPath = (r: Route, path: string): boolean => (r.prefix ? path.startsWith(r.path) : r.path === path);

/** Does the route serve this method? A GET route answers HEAD too. */
export const servesMethod = (r: Route, method: string): boolean => r.method === method || (r.method === "GET" && method === "HEAD");

/**
 * The handler for a request: the first whose table has the path with this
 * method, else the first that has the path at all (it answers the 405), else
 * none.
 */
export function pick(handlers: readonly HttpHandler[], method: string, path: string): HttpHandler | undefined {
  let anyMethod: HttpHandler | undefined;
  for (const h of handlers) {
    for (const r of h.routes) {
      if (!servesPath(r, path)) continue;
      if (servesMethod(r, method)) return h;
      anyMethod ??= h;
    }
  }
  return anyMethod;
}

/** The path of a request target as every handler reads it (origin-form; "" when it cannot be parsed). */
export function pathOf(url: string | undefined): string {
  try {
    // Concatenated, not resolved: "//admin" is the path //admin, not a host named admin.
    const target = url ?? "/";
    return new URL(target.startsWith("/") ? `http://sugar-server.invalid${target}` : target).pathname;
  } catch {
    return ""; // not a URL at all: no route has it, and the admin rule reads the raw target itself
  }
}
