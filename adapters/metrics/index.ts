/**
 * The metrics listener (option metrics-port, on metrics-host, loopback by
 * default): `GET /metrics` with no login, for a Prometheus on this machine
 * (deploy/prometheus/). On the public ports /metrics is an admin's alone;
 * here whoever can reach the address reads it, so it binds loopback unless
 * told otherwise. Nothing else is served.
 */
import { createServer } from "node:http";
import { formatAddress, once, type Context, type Listener } from "../../src/component.js";
import { SugarError, describe } from "../../src/errors.js";
import type { Metrics } from "../../src/metrics.js";
import { closeServer, harden, send } from "../kit/http.js";
import { listen } from "../kit/listen.js";

export async function startMetricsListener(ctx: Context, metrics: Metrics): Promise<Listener> {
  const log = ctx.log.child("metrics");
  const port = Number(ctx.config["metrics-port"]);
  if (ctx.config["metrics-port"] === "" || !Number.isInteger(port)) throw new SugarError("invalid_config", "metrics-port is off");
  const server = createServer((req, res) => {
    const path = (req.url ?? "").split("?")[0];
    if (path !== "/metrics") return send(res, 404, "text/plain; charset=utf-8", "not found: only /metrics is here\n");
    if (req.method !== "GET" && req.method !== "HEAD") return send(res, 405, "text/plain; charset=utf-8", "GET /metrics\n", { Allow: "GET, HEAD" });
    metrics.scrape().then(
      (m) => send(res, 200, m.contentType, m.body, { "Cache-Control": "no-store" }),
      (err: unknown) => {
        log.error(`scrape: ${describe(err)}`);
        send(res, 500, "text/plain; charset=utf-8", "metrics unavailable\n");
      },
    );
  });
  harden(server, 32);
  const address = await listen(server, ctx.config["metrics-host"], port, "metrics-port");
  log.info(`listening on ${formatAddress(address)}`);
  return { name: "metrics", address, stop: once(() => closeServer(server)) };
}
