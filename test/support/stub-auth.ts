/**
 * A stand-in for sugar-server's forward-auth endpoint: a node:http server
 * whose answer (status and headers, no body) the test decides per request,
 * and which keeps the requests the proxy sent it (X-Original-URI, cookies).
 */
import type { OutgoingHttpHeaders } from "node:http";
import { startHttpServer, type SeenRequest, type TestHttpServer } from "./http-server.js";

export interface AuthAnswer {
  readonly status: number;
  readonly headers?: OutgoingHttpHeaders;
}

export type AuthDecision = (req: SeenRequest) => AuthAnswer;

export interface StubAuth extends TestHttpServer {
  /** Changes how later requests are answered. */
  decide(decision: AuthDecision): void;
}

/** Starts the stub; until `decide` says otherwise it answers 401. */
export async function startStubAuth(decision: AuthDecision = () => ({ status: 401 })): Promise<StubAuth> {
  let current = decision;
  const server = await startHttpServer((_req, res, seen) => {
    const answer = current(seen);
    res.writeHead(answer.status, { "content-length": "0", ...answer.headers });
    res.end();
  });
  return Object.assign(server, { decide: (d: AuthDecision) => void (current = d) });
}
