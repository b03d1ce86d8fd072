/** src/metrics.ts: counters, the metered bus, and the loopback metrics listener. */
import { test } from "uvu";
import * as assert from "uvu/assert";
import { startMetricsListener } from "../../adapters/metrics/index.js";
import { MemoryBus } from "../../src/bus/memory.js";
import { leaseClient, serveOps } from "../../src/codec.js";
import { configWith } from "../../src/config.js";
import { SugarError } from "../../src/errors.js";
import { silentLogger } from "../../src/log.js";
import { createMetrics, meteredBus } from "../../src/metrics.js";
import { sugar } from "../../schemas/gen/messages.js";
import { subjects } from "../../src/bus/subjects.js";

/** The value of one sample line `name{labels} value` in Prometheus text, or undefined. */
function sample(text: string, name: string, labels = ""): number | undefined {
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    if (m && m[1] === name && (m[2] ?? "") === labels) return Number(m[3]);
  }
  return undefined;
}

test("metrics: the metered bus counts a transport failure and an actor's error reply by code, and nothing for a success", async () => {
  const m = createMetrics({ process: false });
  const raw = new MemoryBus({ timeoutMs: 200 });
  const bus = meteredBus(raw, m);
  assert.is(bus.kind, raw.kind);
  serveOps(raw, subjects.actorAll("s", "lease"), sugar.lease.Request, sugar.lease.Reply, (req) => {
    if (req.op === "show") throw new SugarError("not_found", "none");
    return { stolenlist: { machineSns: [] } };
  }, silentLogger);
  const lease = leaseClient(bus, "s");
  await lease.call("stolenlist", {});
  await lease.call("show", { machineSn: "SHF00000000" }).catch(() => undefined);
  await leaseClient(bus, "nobody").call("stolenlist", {}).catch(() => undefined);
  const { body } = await m.scrape();
  assert.is(sample(body, "sugar_bus_request_errors_total", '{code="not_found"}'), 1);
  assert.is(sample(body, "sugar_bus_request_errors_total", '{code="unavailable"}'), 1);
  await raw.close();
});

test("metrics: the metrics-port listener serves /metrics with the process metrics and nothing else", async () => {
  const m = createMetrics();
  const config = configWith({ "metrics-port": 0, "metrics-host": "127.0.0.1" });
  const l = await startMetricsListener({ bus: new MemoryBus(), config, log: silentLogger, metrics: m }, m);
  try {
    const base = `http://127.0.0.1:${l.address.port}`;
    const res = await fetch(`${base}/metrics`);
    assert.is(res.status, 200);
    const text = await res.text();
    assert.ok(sample(text, "process_cpu_user_seconds_total") !== undefined, "process metrics are there");
    assert.match(text, /# TYPE sugar_activation_answers_total counter/);
    assert.is((await fetch(`${base}/admin`)).status, 404);
    assert.is((await fetch(`${base}/metrics`, { method: "POST" })).status, 405);
  } finally {
    await l.stop();
  }
});

test.run();
