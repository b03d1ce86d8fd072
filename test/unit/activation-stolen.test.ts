/**
 * The activation adapter's copy of the stolen list (what lets port 191 answer
 * STOLEN while the lease actor is busy or down) is loaded page by page at
 * start: a district's list is more than one bus message holds.
 */
import { test } from "uvu";
import * as assert from "uvu/assert";
import { startActivation } from "../../adapters/activation/index.js";
import { sugar } from "../../schemas/gen/messages.js";
import { MemoryBus } from "../../src/bus/memory.js";
import { subjects } from "../../src/bus/subjects.js";
import { serveOps } from "../../src/codec.js";
import { configWith } from "../../src/config.js";
import { silentLogger } from "../../src/log.js";
import { pageAfter } from "../../src/pages.js";
import { xoActivate } from "../support/xo-client.js";

test("activation-stolen: the stolen list is loaded in pages until more is false: a serial number on the last page answers STOLEN without asking the lease actor", async () => {
  const bus = new MemoryBus({ timeoutMs: 200 });
  const config = configWith({ "bus-timeout": 200, host: "127.0.0.1", "activation-port": 0, "activation-timeout": 5 });
  const stolen = ["SHF00000001", "SHF00000002", "SHF00000003", "SHF00000004", "SHF00000005"];
  const asked: Array<{ afterSn: string; limit: number }> = [];
  // A lease actor that pages by two whatever the limit, and fails everything else: STOLEN can only come from the adapter's copy.
  const served = serveOps(bus, subjects.actorAll(config.site, "lease"), sugar.lease.Request, sugar.lease.Reply, async (req) => {
    if (req.op !== "stolenlist") throw new Error(`unexpected ${req.op}`);
    const afterSn = req.stolenlist?.afterSn ?? "";
    const limit = req.stolenlist?.limit ?? 0;
    asked.push({ afterSn, limit });
    const page = pageAfter(stolen, (sn) => sn, afterSn, 2);
    return { stolenlist: { machineSns: page.items, entries: page.items.map((machineSn) => ({ machineSn, source: "district" })), more: page.more, total: stolen.length } };
  }, silentLogger, { queue: "lease" });
  const activation = await startActivation({ bus, config, log: silentLogger });
  try {
    assert.equal(asked.map((a) => a.afterSn), ["", "SHF00000002", "SHF00000004"]);
    assert.ok(asked.every((a) => a.limit > 0), "a limit on every request: 0 is the unpaged request from before pages");
    for (const sn of ["SHF00000001", "SHF00000005"]) {
      const r = await xoActivate({ host: "127.0.0.1", port: activation.address.port, payload: sn, timeoutMs: 5000 });
      assert.is(r.bytes.toString("latin1"), "STOLEN", sn);
    }
  } finally {
    await activation.stop();
    await served.drain();
    await bus.close();
  }
});

test.run();
