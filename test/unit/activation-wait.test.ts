/**
 * The activation adapter's wait for the lease actor (src/budget.ts): longer
 * than the lease actor's own budget, so a lease the keyring signed near the
 * end of its budget, then written and replied on a starved server, still
 * reaches the XO.
 */
import { test } from "uvu";
import * as assert from "uvu/assert";
import { startActivation } from "../../adapters/activation/index.js";
import { sugar } from "../../schemas/gen/messages.js";
import { keyringBudgetMs, leaseWaitMs } from "../../src/budget.js";
import { MemoryBus } from "../../src/bus/memory.js";
import { subjects } from "../../src/bus/subjects.js";
import { serveOps } from "../../src/codec.js";
import { configWith } from "../../src/config.js";
import { silentLogger } from "../../src/log.js";
import { xoActivate } from "../support/xo-client.js";

test("activation: after the lease actor's keyring budget, its store write and reply get a whole bus-timeout more, not only its margin", () => {
  for (const t of [50, 300, 2000, 8000, 120_000]) {
    assert.ok(leaseWaitMs(t) - keyringBudgetMs(t) >= t, `bus-timeout ${t}: wait ${leaseWaitMs(t)}, keyring budget ${keyringBudgetMs(t)}`);
  }
});

test("activation: a lease the lease actor answers after bus-timeout (a slow write on a starved server) still reaches the XO", async () => {
  const busTimeout = 200;
  const bus = new MemoryBus({ timeoutMs: busTimeout });
  const config = configWith({ "bus-timeout": busTimeout, host: "127.0.0.1", "activation-port": 0, "activation-timeout": 5 });
  const sn = "SHF00000001";
  const line = `act01: ${sn} lease-for-the-test\n`;
  // A lease actor that answers a get 1.5 × bus-timeout late: the keyring took its budget, the write the rest and more.
  const served = serveOps(bus, subjects.actorAll(config.site, "lease"), sugar.lease.Request, sugar.lease.Reply, async (req) => {
    if (req.op === "stolenlist") return { stolenlist: { machineSns: [] } };
    if (req.op !== "get") throw new Error(`unexpected ${req.op}`);
    await new Promise((r) => setTimeout(r, busTimeout * 1.5));
    return { get: { lease: line, origin: "signed" } };
  }, silentLogger, { queue: "lease" });
  const activation = await startActivation({ bus, config, log: silentLogger });
  try {
    const r = await xoActivate({ host: "127.0.0.1", port: activation.address.port, payload: sn, timeoutMs: 10_000 });
    assert.is(r.closedBy, "server");
    assert.is(r.bytes.toString("latin1"), line);
  } finally {
    await activation.stop();
    await served.drain();
    await bus.close();
  }
});

test.run();
