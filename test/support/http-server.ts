/**
 * Small node:http servers for tests (an upstream app, a stub auth server, a
 * page for the browser) on 127.0.0.1 and a free port, each keeping the
 * requests it saw; and `httpGet`, a client that sends exactly the headers it
 * is given (fetch would refuse some and add others).
 */
import { createServer, request, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from "node:http";

/** A request as the server received it. */
export interface SeenRequest {
  readonly method: string;
  /** The request target: path and query. */
  readonly path: string;
  /** Node's parsed headers (lower-case names; repeated ones joined or in arrays). */
  readonly headers: IncomingHttpHeaders;
  /** Every header line as sent, in order, names as spelled: repeats and odd names stay visible. */
  readonly rawHeaders: readonly (readonly [string, string])[];
}

export interface TestHttpServer {
  readonly port: number;
  /** http://127.0.0.1:PORT */
  readonly url: string;
  /** Every request so far, oldest first. */
  readonly requests: readonly SeenRequest[];
  /** Closes the listener and every open connection (proxies keep some alive). Idempotent. */
  stop(): Promise<void>;
}

export type Handler = (req: IncomingMessage, res: ServerResponse, seen: SeenRequest) => void | Promise<void>;

export function seenRequest(req: IncomingMessage): SeenRequest {
  const raw: [string, string][] = [];
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) raw.push([req.rawHeaders[i]!, req.rawHeaders[i + 1]!]);
  return { method: req.method ?? "", path: req.url ?? "", headers: req.headers, rawHeaders: raw };
}

export function startHttpServer(handler: Handler): Promise<TestHttpServer> {
  const requests: SeenRequest[] = [];
  const server = createServer((req, res) => {
    const seen = seenRequest(req);
    requests.push(seen);
    // The body is not needed; reading it lets keep-alive connections carry on.
    req.resume();
    Promise.resolve()
      .then(() => handler(req, res, seen))
      .catch((err: unknown) => {
        if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain" });
        res.end(`test server handler failed: ${(err as Error).message}\n`);
      });
  });
  return new Promise((resolve, reject) => {
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as { port: number }).port;
      let stopped: Promise<void> | undefined;
      resolve({
        port,
        url: `http://127.0.0.1:${port}`,
        requests,
        stop: () =>
          (stopped ??= new Promise<void>((done) => {
            server.close(() => done());
            server.closeAllConnections();
          })),
      });
    });
  });
}

export interface HttpAnswer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

/**
 * GET (or `method`) `url` with exactly these header lines (a name may repeat,
 * and odd names such as `X_Sugar_Uid` go out as written), on a fresh
 * connection.
 */
export function httpGet(url: string, headers: readonly (readonly [string, string])[] = [], method = "GET", timeoutMs = 10000): Promise<HttpAnswer> {
  // Given header lines as a list, node adds no Host of its own.
  const lines = headers.some(([n]) => n.toLowerCase() === "host") ? headers : [["Host", new URL(url).host] as const, ...headers];
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers: lines.flat() as string[], agent: false, timeout: timeoutMs }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`no answer from ${url} in ${timeoutMs} ms`)));
    req.on("error", reject);
    req.end();
  });
}
