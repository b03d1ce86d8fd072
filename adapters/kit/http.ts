/** Small pieces every HTTP handler and the listener share. Imports only src/. */
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import { SugarError } from "../../src/errors.js";

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|::ffff:127\.\d+\.\d+\.\d+)$/;

/**
 * The client's address, for counting failed logins and registrations per
 * source. With `trustProxy` (option trust-proxy: a proxy on this machine, as
 * in deploy/nginx and deploy/caddy, sets X-Forwarded-For to the address it
 * saw), a request from loopback is counted for the last address in that
 * header; any other peer is counted as itself, whatever it claims.
 */
export function sourceOf(req: IncomingMessage, trustProxy: boolean): string {
  const peer = req.socket.remoteAddress ?? "";
  if (!trustProxy || !LOOPBACK.test(peer)) return peer;
  const xff = req.headers["x-forwarded-for"];
  const last = (Array.isArray(xff) ? xff.join(",") : (xff ?? "")).split(",").map((s) => s.trim()).filter(Boolean).pop();
  return last && last.length <= 64 && /^[0-9A-Fa-f:.]+$/.test(last) ? last : peer;
}

/** Did the client speak TLS: to this listener, or (with trust-proxy, from loopback) to the proxy in front, by X-Forwarded-Proto? */
export function overTls(req: IncomingMessage, trustProxy: boolean): boolean {
  if ((req.socket as { encrypted?: boolean }).encrypted === true) return true;
  return trustProxy && LOOPBACK.test(req.socket.remoteAddress ?? "") && req.headers["x-forwarded-proto"] === "https";
}

const tooLarge = (limit: number) => new SugarError("too_large", `request body is larger than ${limit} bytes`);

/** Reads a request body up to `limit` bytes; over it, SugarError `too_large`. */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > limit) {
    req.resume(); // discard it: the client gets to read the 413
    return Promise.reject(tooLarge(limit));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    req.on("data", (chunk: Buffer) => {
      if (done) return;
      size += chunk.length;
      if (size > limit) {
        // The rest is read and thrown away (bounded by the server's requestTimeout),
        // so the client, still sending, can read the 413 instead of a reset.
        done = true;
        chunks.length = 0;
        reject(tooLarge(limit));
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => {
      if (!done) resolve(Buffer.concat(chunks));
    });
    req.on("error", (err) => {
      if (!done) reject(err);
      done = true;
    });
  });
}

/** Sends a complete response with Content-Length; closes the connection when the request body was not read. */
export function send(res: ServerResponse, status: number, contentType: string, body: string | Buffer, extra: Record<string, string> = {}, close = false): void {
  const buf = typeof body === "string" ? Buffer.from(body) : body;
  res.writeHead(status, { "Content-Type": contentType, "Content-Length": String(buf.length), ...(close ? { Connection: "close" } : {}), ...extra });
  res.end(buf);
}

/** Bounded, time-limited listener settings shared by every HTTP server (plain and TLS). */
export function harden(server: Server, maxConnections: number): void {
  server.maxConnections = maxConnections;
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  server.keepAliveTimeout = 5_000;
  server.maxHeadersCount = 100;
}

/** Stops accepting, lets in-flight requests finish, then closes what is left. */
export async function closeServer(server: Server, graceMs = 5000): Promise<void> {
  if (!server.listening) return;
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  const timer = setTimeout(() => server.closeAllConnections(), graceMs);
  await closed;
  clearTimeout(timer);
}
