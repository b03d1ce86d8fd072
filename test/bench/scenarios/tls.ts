/**
 * The TLS port against the plain one, on the same server in the same run:
 * full TLS handshakes per second (a new connection, no session resumption,
 * for every GET /healthz) against new plain TCP connections per second, and
 * GET /client/status over kept-alive TLS connections against kept-alive
 * plain ones. The school's certificate is made the way an admin makes it:
 * `keyring init --ca`, then `tls init`.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { Agent as HttpAgent, request as httpRequest } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import { join } from "node:path";
import { binPath } from "../../support/paths.js";
import { testEnv } from "../../support/server.js";
import type { Scenario } from "../context.js";
import { unknownUid, writeRegistryUsers } from "../fixtures.js";
import { measure } from "../load.js";
import { startSubject } from "../procs.js";
import { throughputRow } from "../report.js";
import { subjectArgs } from "./rest.js";

/** The name the default ca-server-names gives the bench's school (site "school"): what a client dials. */
const NAME = "school.schoolserver.lan";

type Get = (path: string) => Promise<{ status: number; body: string }>;

/** GET over one agent: plain or TLS (checked against the district CA, for NAME). */
function getter(port: number, agent: HttpAgent | HttpsAgent, tls: boolean): Get {
  return (path) =>
    new Promise((resolve, reject) => {
      const options = { host: "127.0.0.1", port, path, agent, ...(tls ? { servername: NAME } : {}) };
      const req = (tls ? httpsRequest : httpRequest)(options, (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (body += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
        res.on("error", reject);
      });
      req.setTimeout(30_000, () => req.destroy(new Error(`GET ${path}: no answer in 30 s`)));
      req.on("error", reject);
      req.end();
    });
}

function checked(get: Get, path: (i: number) => string, want: string): (i: number) => Promise<void> {
  return async (i) => {
    const r = await get(path(i));
    if (r.status !== 200 || !r.body.includes(want)) throw new Error(`GET ${path(i)}: HTTP ${r.status} ${r.body.slice(0, 200)}`);
  };
}

export const tls: Scenario = {
  id: "tls",
  what: "TLS port vs plain port on the same server: full handshakes/s (GET /healthz on a new connection each) vs new plain connections/s; GET /client/status req/s over kept-alive TLS vs plain",
  async run(bench) {
    const { concurrency, warmupMs, measureMs, rounds, users } = bench.sizes;
    const root = bench.dir("school-tls");
    const known = users > 0 ? writeRegistryUsers(root, users) : [unknownUid()];
    const cli = (...args: string[]) => execFileSync(process.execPath, [binPath, ...args, "--root", root], { env: testEnv(), stdio: ["ignore", "ignore", "pipe"] });
    cli("keyring", "init", "--ca");
    cli("tls", "init");
    const ca = readFileSync(join(root, "tls", "ca.crt"));
    const proc = await startSubject("tls", ["start", ...subjectArgs(root), "--https-port", "0"], ["http", "https"]);
    bench.onCleanup(() => proc.stop(bench.sizes.settleMs));
    const plainPort = proc.ports.http!;
    const tlsPort = proc.ports.https!;
    // A new connection per request; no TLS session cache, so every one is a full handshake.
    const fresh = { tls: new HttpsAgent({ keepAlive: false, maxSockets: concurrency, maxCachedSessions: 0, ca }), plain: new HttpAgent({ keepAlive: false, maxSockets: concurrency }) };
    const kept = { tls: new HttpsAgent({ keepAlive: true, maxSockets: concurrency, maxFreeSockets: concurrency, ca }), plain: new HttpAgent({ keepAlive: true, maxSockets: concurrency, maxFreeSockets: concurrency }) };
    const status = (i: number) => `/client/status?uid=${known[i % known.length]}`;
    const healthz = () => "/healthz";
    bench.progress(`tls: handshakes vs plain connections, then status over TLS vs plain: ${concurrency} in flight, ${measureMs} ms each in ${rounds} round(s)`);
    const serverCpu = proc.cpuSeconds;
    const [hs, conn] = await measure({ warmupMs, durationMs: measureMs, rounds }, [
      { concurrency, op: checked(getter(tlsPort, fresh.tls, true), healthz, ""), serverCpu },
      { concurrency, op: checked(getter(plainPort, fresh.plain, false), healthz, ""), serverCpu },
    ]);
    const [overTls, plain] = await measure({ warmupMs, durationMs: measureMs, rounds }, [
      { concurrency, op: checked(getter(tlsPort, kept.tls, true), status, '"success":"OK"'), serverCpu },
      { concurrency, op: checked(getter(plainPort, kept.plain, false), status, '"success":"OK"'), serverCpu },
    ]);
    for (const a of [fresh.tls, fresh.plain, kept.tls, kept.plain]) a.destroy();
    await proc.stop(bench.sizes.settleMs);
    const cert = "ECDSA P-256 server key, certificate signed by the district CA (keyring init --ca, tls init)";
    return [
      throughputRow("tls/handshakes", hs!, conn, undefined, `full TLS 1.3 handshakes (no session cache) with one GET /healthz each; baseline: a new plain TCP connection with one GET /healthz each, same server, alternately; ${cert}`),
      throughputRow("tls/status", overTls!, plain, undefined, `GET /client/status over kept-alive TLS connections; baseline: the same over the plain REST port, same server, alternately; ${users} users`),
    ];
  },
};
