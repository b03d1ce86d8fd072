/**
 * What the lease actor tells the admin console: `status` (counts, the
 * keyring's last answer), a `keyring_error` event when the keyring fails
 * (counted for /metrics), and the last port-191 answer per serial number.
 */
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { startLease } from "../../actors/lease/index.js";
import { startRegistry } from "../../actors/registry/index.js";
import { sugar } from "../../schemas/gen/messages.js";
import { MemoryBus } from "../../src/bus/memory.js";
import { subjects } from "../../src/bus/subjects.js";
import { leaseClient } from "../../src/codec.js";
import { configWith } from "../../src/config.js";
import { silentLogger } from "../../src/log.js";
import { createMetrics } from "../../src/metrics.js";
import { vectors } from "../support/olpc-fixtures.js";
import { tempDir } from "../support/tmp.js";
import { waitFor } from "../support/wait.js";

test("lease-console: a keyring that does not answer is a keyring_error event, a metric and status keyring_ok false; status counts leases and the stolen", async () => {
  const d = tempDir();
  const bus = new MemoryBus({ timeoutMs: 300 });
  const metrics = createMetrics({ process: false });
  const config = configWith({ root: join(d.path, "root"), delegation: true, "bus-timeout": 300 });
  const ctx = { bus, config, log: silentLogger, metrics };
  const registry = await startRegistry(ctx);
  const lease = await startLease(ctx);
  try {
    const errors: sugar.lease.KeyringError[] = [];
    bus.subscribe(subjects.event(config.site, "keyring_error"), (data) => void errors.push(sugar.lease.KeyringError.decode(data)));
    const client = leaseClient(bus, config.site);
    await client.call("get", { machineSn: "SHF706002A7", source: "activation" }).catch(() => undefined);
    await waitFor("the keyring_error event", () => errors.length === 1);
    assert.is(errors[0]!.machineSn, "SHF706002A7");
    assert.is(errors[0]!.op, "sign");
    assert.is(errors[0]!.code, "unavailable");
    const s = await client.call("status", {});
    assert.is(s.keyringOk, false);
    assert.is(s.keyringError, "unavailable");
    assert.match((await metrics.scrape()).body, /sugar_keyring_errors_total\{code="unavailable"\} 1/);

    await client.call("import", { text: vectors.leaseV1 });
    await client.call("stolen", { machineSn: "SHF00000001", stolen: true });
    const after = await client.call("status", {});
    assert.is(after.leases, 1);
    assert.is(after.expiring, 0, "the vector lease runs to 2099");
    assert.is(after.stolen, 1);
  } finally {
    await lease.stop();
    await registry.stop();
    await bus.close();
    d.remove();
  }
});

test("lease-console: show gives the last port-191 answer for a serial number, even one with no lease", async () => {
  const d = tempDir();
  const bus = new MemoryBus();
  const config = configWith({ root: join(d.path, "root") });
  const ctx = { bus, config, log: silentLogger };
  const registry = await startRegistry(ctx);
  const lease = await startLease(ctx);
  try {
    const client = leaseClient(bus, config.site);
    bus.publish(subjects.event(config.site, "activation"), sugar.lease.Activation.encode({ machineSn: "SHF00000042", answer: "empty", latencyMs: 4, time: "2026-12-01T08:00:00.000Z" }).finish());
    const r = await waitFor("the last activation", async () => (await client.call("show", { machineSn: "SHF00000042" }).catch(() => undefined))?.lastActivation ?? undefined);
    assert.is(r.answer, "empty");
    assert.is(r.time, "2026-12-01T08:00:00.000Z");
  } finally {
    await lease.stop();
    await registry.stop();
    await bus.close();
  }
  d.remove();
});

test.run();
