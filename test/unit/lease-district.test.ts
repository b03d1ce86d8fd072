/**
 * The school's side of the district's stolen list (option `district`): the
 * lease actor follows the district's marks, catches up by asking
 * stolen_list, keeps them in <root>/share/stolen-district apart from its own
 * list, and refuses a machine on either. The district is a test double
 * (test/support/district-double.ts) on a MemoryBus.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { startLease } from "../../actors/lease/index.js";
import { startRegistry } from "../../actors/registry/index.js";
import { sugar } from "../../schemas/gen/messages.js";
import { MemoryBus } from "../../src/bus/memory.js";
import { leaseClient, type LeaseClient } from "../../src/codec.js";
import type { Component } from "../../src/component.js";
import { configWith } from "../../src/config.js";
import { expectError } from "../support/bus-errors.js";
import { startDistrictDouble, type DistrictDouble } from "../support/district-stolen-double.js";
import { captureLogger } from "../support/log.js";
import { vectors } from "../support/olpc-fixtures.js";
import { tempDir } from "../support/tmp.js";
import { waitFor } from "../support/wait.js";

const SN = vectors.v1.sn; // SHF706002A7, with a stored lease below
const OTHER = "SHF00000042";

interface School {
  bus: MemoryBus;
  root: string;
  lease: LeaseClient;
  district: DistrictDouble;
  logs: () => string;
  restart(): Promise<void>;
  done(): Promise<void>;
}

async function school(opts: { config?: Record<string, string | number | boolean>; before?: (d: DistrictDouble) => void; pageSize?: number } = {}): Promise<School> {
  const dir = tempDir();
  const bus = new MemoryBus({ timeoutMs: 2000 });
  const root = join(dir.path, "root");
  const config = configWith({ root, site: "school2", district: true, "district-sync-seconds": 3600, ...opts.config });
  const district = await startDistrictDouble(bus, { allowMarksFrom: ["school1"], pageSize: opts.pageSize });
  opts.before?.(district);
  const captured = captureLogger();
  let running: Component[] = [];
  const start = async () => {
    const ctx = { bus, config, log: captured.log };
    running = [await startRegistry(ctx), await startLease(ctx)];
  };
  const stop = async () => {
    for (const c of running.reverse()) await c.stop();
  };
  await start();
  const lease = leaseClient(bus, "school2");
  await lease.call("import", { text: vectors.leaseV1 });
  return {
    bus,
    root,
    lease,
    district,
    logs: captured.text,
    restart: async () => {
      await stop();
      await start();
    },
    done: async () => {
      await stop();
      await district.stop();
      await bus.close();
      dir.remove();
    },
  };
}

const districtFile = (s: School) => join(s.root, "share", "stolen-district");
const entries = async (s: School) => ((await s.lease.call("stolenlist", {})).entries ?? []).map((e) => `${e.machineSn} ${e.source}${e.by ? ` ${e.by}` : ""}`);

test("lease-district: a district mark reaches the lease actor: get answers stolen, show says district, the file keeps it", async () => {
  const s = await school();
  try {
    assert.is((await s.lease.call("get", { machineSn: SN })).origin, "stored");
    const m = s.district.mark(SN, true, "school1");
    await waitFor("the mark", async () => (await entries(s)).includes(`${SN} district school1`));
    await expectError(s.lease.call("get", { machineSn: SN }), "stolen", /district's stolen list/);
    await expectError(s.lease.call("rtc", { machineSn: SN, currentRtc: "20240101T000000Z", nonce: "1" }), "stolen");
    const shown = await s.lease.call("show", { machineSn: SN });
    assert.is(shown.stolen, true);
    assert.is(shown.stolenSource, "district");
    assert.equal([shown.districtMark?.machineSn, shown.districtMark?.by, shown.districtMark?.at], [SN, "school1", m.at], "who marked it, and when");
    const text = await waitFor("the district file", () => existsSync(districtFile(s)) && readFileSync(districtFile(s), "utf8"));
    assert.match(text, /^# managed by sugar-server/);
    assert.match(text, new RegExp(`^${SN} school1 ${m.at!.replace(/\./g, "\\.")}$`, "m"));
    assert.not.ok(existsSync(join(s.root, "share", "stolen")), "the school's own list is not touched");
    const status = await s.lease.call("status", {});
    assert.equal([status.stolen, status.districtStolen], [1, 1]);
    assert.ok(status.districtSyncedAt, "the start sync answered");
  } finally {
    await s.done();
  }
});

test("lease-district: marks missed while the link was down are caught up by the next stolen_list, and a digest that matches is unchanged", async () => {
  const s = await school({ config: { "district-sync-seconds": 1 }, before: (d) => void d.hold(OTHER, true, "school1") });
  try {
    await waitFor("the start sync", async () => (await entries(s)).includes(`${OTHER} district school1`));
    // Changes the school never heard of: one more, one cleared.
    s.district.hold(SN, true, "school3");
    s.district.hold(OTHER, false, "school1");
    await waitFor("the catch-up", async () => (await entries(s)).join("|") === `${SN} district school3`, 5000);
    await expectError(s.lease.call("get", { machineSn: SN }), "stolen");
    assert.not.match(readFileSync(districtFile(s), "utf8"), new RegExp(OTHER));
    const asked = s.district.listDigests.length;
    await waitFor("a sync with nothing new", () => s.district.listDigests.length > asked && s.district.unchanged > 0, 5000);
  } finally {
    await s.done();
  }
});

const many = (n: number, from = 0x100) => Array.from({ length: n }, (_, i) => `SHF${(from + i).toString(16).toUpperCase().padStart(8, "0")}`);
const districtSns = async (s: School) => ((await s.lease.call("stolenlist", {})).entries ?? []).filter((e) => e.source === "district").map((e) => e.machineSn);

test("lease-district: the district's list comes in pages: the school asks until more is false and holds every page's marks", async () => {
  const sns = many(7);
  const s = await school({ pageSize: 2, before: (d) => sns.forEach((sn) => d.hold(sn, true)) });
  try {
    await waitFor("every page", async () => (await districtSns(s)).length === 7);
    assert.equal(await districtSns(s), sns);
    assert.ok(s.district.pages >= 4, `${s.district.pages} pages`);
  } finally {
    await s.done();
  }
});

test("lease-district: the list changed between pages (another digest): the school starts over and holds the new list", async () => {
  const sns = many(5);
  let changed = false;
  const s = await school({
    pageSize: 2,
    before: (d) => {
      sns.forEach((sn) => d.hold(sn, true));
      d.onPage(() => {
        if (changed) return;
        changed = true;
        d.hold(OTHER, true); // after the first page is made: its next page has another digest
      });
    },
  });
  try {
    await waitFor("the new list", async () => (await districtSns(s)).length === 6);
    assert.equal(await districtSns(s), [...sns, OTHER].sort());
  } finally {
    await s.done();
  }
});

test("lease-district: a list that changes under every page is not taken half: conflict logged, the marks held stay", async () => {
  const sns = many(4);
  const s = await school({ pageSize: 2, config: { "district-sync-seconds": 1 }, before: (d) => sns.forEach((sn) => d.hold(sn, true)) });
  try {
    await waitFor("the first sync", async () => (await districtSns(s)).length === 4);
    let i = 0;
    s.district.onPage(() => void s.district.hold(many(1, 0x9000 + i++)[0]!, true));
    s.district.hold(sns[0]!, false);
    await waitFor("the conflict", () => /district stolen list: conflict/.test(s.logs()), 5000);
    assert.equal(await districtSns(s), sns, "nothing replaced");
  } finally {
    await s.done();
  }
});

test("lease-district: a district clear takes the machine off; its lease is served again", async () => {
  const s = await school();
  try {
    s.district.mark(SN, true, "school1");
    await waitFor("the mark", async () => (await entries(s)).length === 1);
    s.district.mark(SN, false, "school1");
    await waitFor("the clear", async () => (await entries(s)).length === 0);
    assert.is((await s.lease.call("get", { machineSn: SN })).origin, "stored");
    assert.not.match(readFileSync(districtFile(s), "utf8"), new RegExp(SN));
  } finally {
    await s.done();
  }
});

test("lease-district: local and district marks are apart: both listed with their source; removing the local one leaves the district's in force", async () => {
  const s = await school();
  try {
    await s.lease.call("stolen", { machineSn: SN, stolen: true });
    s.district.mark(SN, true, "school1");
    s.district.mark(OTHER, true, "school3");
    await waitFor("both district marks", async () => (await entries(s)).length === 3);
    const list = await s.lease.call("stolenlist", {});
    assert.equal(list.machineSns, [OTHER, SN], "each serial number once");
    assert.equal(await entries(s), [`${OTHER} district school3`, `${SN} local`, `${SN} district school1`]);
    assert.is((await s.lease.call("show", { machineSn: SN })).stolenSource, "local,district");
    assert.is((await s.lease.call("stolen", { machineSn: SN, stolen: false })).changed, true);
    await expectError(s.lease.call("get", { machineSn: SN }), "stolen", /district's/);
    assert.is((await s.lease.call("show", { machineSn: SN })).stolenSource, "district");
    assert.match(s.logs(), /SHF706002A7 removed from the stolen list; still on the district's \(by school1/);
    assert.not.match(readFileSync(join(s.root, "share", "stolen"), "utf8"), new RegExp(SN), "the local file lost it");
    assert.match(readFileSync(districtFile(s), "utf8"), new RegExp(SN), "the district file kept it");
  } finally {
    await s.done();
  }
});

test("lease-district: an older mark does not undo a newer one", async () => {
  const s = await school();
  try {
    s.district.mark(SN, true, "school1", "2030-01-01T00:00:02.000Z");
    s.district.mark(SN, false, "school1", "2030-01-01T00:00:01.000Z");
    s.district.mark(OTHER, true, "school1"); // a marker: the events before it were handled
    await waitFor("the marker", async () => (await entries(s)).includes(`${OTHER} district school1`));
    assert.ok((await entries(s)).includes(`${SN} district school1`));
  } finally {
    await s.done();
  }
});

test("lease-district: with the district down the school keeps its marks, across a restart too", async () => {
  const s = await school();
  try {
    s.district.mark(SN, true, "school1");
    await waitFor("the mark", async () => (await entries(s)).length === 1);
    await s.district.stop();
    await s.restart();
    await expectError(s.lease.call("get", { machineSn: SN }), "stolen");
    await waitFor("the start sync's failure", () => /district stolen list: unavailable/.test(s.logs()));
    assert.is((await s.lease.call("status", {})).districtSyncedAt, "");
    assert.is((await s.lease.call("status", {})).districtStolen, 1);
  } finally {
    await s.done();
  }
});

test("lease-district: without option district the district's marks are not followed", async () => {
  const s = await school({ config: { district: false } });
  try {
    s.district.mark(SN, true, "school1");
    await s.lease.call("stolen", { machineSn: OTHER, stolen: true }); // a round trip after the publish
    assert.equal(await entries(s), [`${OTHER} local`]);
    assert.is((await s.lease.call("get", { machineSn: SN })).origin, "stored");
    assert.not.ok(existsSync(districtFile(s)));
    assert.is(s.district.listDigests.length, 0);
  } finally {
    await s.done();
  }
});

// Each malformed mark on its own: logged, ignored, nothing written.
const mark = (m: sugar.district.Mark.$Properties) => sugar.district.Mark.encode(m).finish();
const GOOD = { machineSn: OTHER, stolen: true, by: "school1", at: "2030-01-01T00:00:00.000Z" };
const BAD_MARKS: Array<[string, Uint8Array, RegExp]> = [
  ["bytes that are no Mark", new Uint8Array([0xff, 0xff, 0xff, 0x0f, 0x01]), /not a valid Mark message/],
  ["a lower-case serial number", mark({ ...GOOD, machineSn: "shf00000042" }), /is not a serial number/],
  ["a serial number with a path in it", mark({ ...GOOD, machineSn: "../../etc/passwd" }), /is not a serial number/],
  ["no serial number", mark({ ...GOOD, machineSn: "" }), /is not a serial number/],
  ["a by that is no site", mark({ ...GOOD, by: "School One" }), /is not a site/],
  ["no by", mark({ ...GOOD, by: "" }), /is not a site/],
  ["an at that is no time", mark({ ...GOOD, at: "yesterday" }), /is not an ISO-8601 UTC time/],
  ["an at with a newline", mark({ ...GOOD, at: "2030-01-01T00:00:00Z\nSHF00000043 x y" }), /is not an ISO-8601 UTC time/],
];
for (const [what, data, why] of BAD_MARKS) {
  test(`lease-district: a mark with ${what} is logged and ignored; nothing is written`, async () => {
    const s = await school();
    try {
      await waitFor("the start sync", async () => (await s.lease.call("status", {})).districtSyncedAt);
      const before = existsSync(districtFile(s)) ? readFileSync(districtFile(s), "utf8") : undefined;
      s.district.publishRaw(data);
      await waitFor("the warning", () => why.test(s.logs()));
      assert.equal(await entries(s), []);
      assert.is(existsSync(districtFile(s)) ? readFileSync(districtFile(s), "utf8") : undefined, before);
      assert.is((await s.lease.call("get", { machineSn: SN })).origin, "stored");
    } finally {
      await s.done();
    }
  });
}

test.run();
