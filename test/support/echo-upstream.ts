/**
 * The protected app of the forward-auth tests: a node:http server on
 * 127.0.0.1 that answers every request with 200 and JSON of what it
 * received (method, path, headers; `rawHeaders` keeps repeats and spelling),
 * so a test sees exactly what a service behind nginx or Caddy would see.
 */
import { startHttpServer, type SeenRequest, type TestHttpServer } from "./http-server.js";

export type EchoUpstream = TestHttpServer;

/** The JSON body of an echo answer. */
export type Echo = SeenRequest;

export function startEchoUpstream(): Promise<EchoUpstream> {
  return startHttpServer((_req, res, seen) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify(seen));
  });
}

/** Parses an echo answer's body. */
export function echoOf(body: string): Echo {
  return JSON.parse(body) as Echo;
}

/** Every value the app received for a header (any spelling of the name), in order. */
export function headerValues(echo: Echo, name: string): string[] {
  return echo.rawHeaders.filter(([n]) => n.toLowerCase() === name.toLowerCase()).map(([, v]) => v);
}
