/**
 * A school's own stolen list in pages (sugar.<site>.lease.stolenlist with
 * after_sn / limit / more / total), run on every Bus implementation: pages
 * are sorted by serial number and capped, a mark made between pages neither
 * repeats nor hides one listed all along, bad page requests are refused and
 * change nothing, the request from before pages still gets the whole list
 * (or too_large, never a part of it), and a list larger than one NATS
 * message (max_payload 1 MB) is listed whole by `sugar-server stolen list`.
 * The lists are written to the lease actor's disk before it starts (tens of
 * thousands of marks through the bus would be slow).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as assert from "uvu/assert";
import { startLease } from "../../actors/lease/index.js";
import { sugar } from "../../schemas/gen/messages.js";
import { districtClient, districtFromClient, leaseClient, type LeaseClient } from "../../src/codec.js";
import { configWith } from "../../src/config.js";
import { stolenCommand } from "../../src/cli/stolen.js";
import { LEASE_STOLEN_PAGE, fetchLeaseStolenList } from "../../src/lease-pages.js";
import { silentLogger } from "../../src/log.js";
import { expectError } from "../support/bus-errors.js";
import { describeDiff, sameSnapshot, snapshot } from "../support/disk.js";
import { contractSuite, type BusKind, type ContractCtx } from "./buses.js";

interface Ctx extends ContractCtx {
  site: string;
}

const sn = (i: number) => `SHF${i.toString(16).toUpperCase().padStart(8, "0")}`;
const AT = "2024-01-01T00:00:00.000Z";
/** A site name as long as a site may be: the largest a district mark gets on the wire. */
const LONG_SITE = "s".repeat(63);

interface Lists {
  /** This school's own marks (the `stolen` file). */
  local?: string[];
  /** The district's, as the school holds them (`stolen-district`). */
  district?: string[];
  by?: string;
}

export function leaseStolenPagesContract(kind: BusKind): void {
  let n = 0;
  const { t, test } = contractSuite<Ctx>("lease-stolen-pages", kind, { setUp: (c) => (c.site = `p${process.pid}x${++n}`), timeoutMs: 10_000 });
  const it = (name: string, fn: (c: Ctx) => Promise<void>) => test(`lease-stolen-pages[${kind.name}]: ${name}`, fn);

  /** A lease actor whose stolen files hold `lists` before it starts. */
  async function school(c: Ctx, lists: Lists): Promise<{ root: string; lease: LeaseClient }> {
    const root = join(c.dir.path, "root");
    mkdirSync(join(root, "share"), { recursive: true });
    writeFileSync(join(root, "share", "stolen"), (lists.local ?? []).map((s) => `${s}\n`).join(""));
    writeFileSync(join(root, "share", "stolen-district"), (lists.district ?? []).map((s) => `${s} ${lists.by ?? "school1"} ${AT}\n`).join(""));
    c.running.push(await startLease({ bus: c.bus, config: configWith({ root, site: c.site }), log: silentLogger }));
    await c.bus.flush();
    return { root, lease: leaseClient(c.bus, c.site, { timeoutMs: 10_000 }) };
  }
  const marks = (r: sugar.lease.IStolenListReply) => (r.entries ?? []).map((e) => `${e.machineSn} ${e.source}`);

  it("stolenlist answers pages of at most limit serial numbers, sorted, each after after_sn with all its marks (this school's first), more until the last, and the whole list's total", async (c) => {
    // SHF...02 and ...04 on both lists: one serial number, two marks, never split over two pages.
    const { lease } = await school(c, { local: [sn(4), sn(1), sn(2)], district: [sn(2), sn(3), sn(4), sn(5)] });
    const p1 = await lease.call("stolenlist", { limit: 2 });
    assert.equal([p1.machineSns, marks(p1), p1.more, p1.total], [[sn(1), sn(2)], [`${sn(1)} local`, `${sn(2)} local`, `${sn(2)} district`], true, 5]);
    const p2 = await lease.call("stolenlist", { limit: 2, afterSn: sn(2) });
    assert.equal([p2.machineSns, marks(p2), p2.more, p2.total], [[sn(3), sn(4)], [`${sn(3)} district`, `${sn(4)} local`, `${sn(4)} district`], true, 5]);
    assert.equal(p2.entries!.find((e) => e.source === "district")?.by, "school1");
    const p3 = await lease.call("stolenlist", { limit: 2, afterSn: sn(4) });
    assert.equal([p3.machineSns, marks(p3), p3.more], [[sn(5)], [`${sn(5)} district`], false]);
    const whole = await fetchLeaseStolenList((req) => lease.call("stolenlist", req), { limit: 2 });
    assert.equal(whole.machineSns, [1, 2, 3, 4, 5].map(sn));
    assert.equal(whole.entries.map((e) => `${e.machineSn} ${e.source}`), [...marks(p1), ...marks(p2), ...marks(p3)]);
  });

  it("a mark made or cleared between pages repeats nothing and hides nothing listed all along: the cursor is a serial number, not a position", async (c) => {
    const { lease } = await school(c, { local: [2, 4, 6, 8, 10].map(sn) });
    const pages: sugar.lease.IStolenListReply[] = [await lease.call("stolenlist", { limit: 2 })];
    assert.equal(pages[0]!.machineSns, [sn(2), sn(4)]);
    assert.equal((await lease.call("stolenlist", { limit: 2, afterSn: sn(3) })).machineSns, [sn(4), sn(6)], "a cursor held by no mark: what sorts after it");
    // Before the cursor (not in this pass), after it (in it), and one not yet listed cleared.
    await lease.call("stolen", { machineSn: sn(1), stolen: true });
    await lease.call("stolen", { machineSn: sn(3), stolen: true });
    await lease.call("stolen", { machineSn: sn(7), stolen: true });
    await lease.call("stolen", { machineSn: sn(8), stolen: false });
    while (pages.at(-1)!.more) pages.push(await lease.call("stolenlist", { limit: 2, afterSn: pages.at(-1)!.machineSns!.at(-1)! }));
    const listed = pages.flatMap((p) => p.machineSns ?? []);
    assert.equal(listed, [2, 4, 6, 7, 10].map(sn));
    assert.is(new Set(listed).size, listed.length, "no serial number twice");
    assert.equal(pages.at(-1)!.total, 7, "the total is the list's as of that page");
  });

  it("the request from before pages (no limit) still gets the whole list in one answer, without more", async (c) => {
    const { lease } = await school(c, { local: [sn(9)], district: [3, 1, 2].map(sn) });
    const r = await lease.call("stolenlist", {});
    assert.equal([r.machineSns, marks(r), r.more, r.total], [[1, 2, 3, 9].map(sn), [`${sn(1)} district`, `${sn(2)} district`, `${sn(3)} district`, `${sn(9)} local`], false, 4]);
    assert.equal((await lease.call("stolenlist", { afterSn: sn(2) })).machineSns, [sn(3), sn(9)], "no limit after a cursor: the rest");
  });

  it("a limit of 0 for a list larger than one answer is too_large, naming the pages, never a part that looks whole; nothing changes on disk", async (c) => {
    const { root, lease } = await school(c, { district: Array.from({ length: 30_000 }, (_, i) => sn(i + 1)), by: LONG_SITE });
    const before = snapshot(root);
    await expectError(lease.call("stolenlist", { limit: 0 }), "too_large", /30000 serial numbers.*ask for it in pages \(limit, after_sn\)/);
    assert.ok(sameSnapshot(before, snapshot(root)), describeDiff(before, snapshot(root)));
  });

  it("a limit larger than the page size, or negative (a uint32 on the wire: huge), is capped at the page size", async (c) => {
    const n = LEASE_STOLEN_PAGE + 1;
    const { root, lease } = await school(c, { district: Array.from({ length: n }, (_, i) => sn(i + 1)) });
    const before = snapshot(root);
    for (const limit of [LEASE_STOLEN_PAGE + 1, 4_000_000_000, 2 ** 32 - 1, -1]) {
      const p = await lease.call("stolenlist", { limit });
      assert.equal([p.machineSns!.length, p.more, p.total], [LEASE_STOLEN_PAGE, true, n], `limit ${limit}`);
    }
    const last = await lease.call("stolenlist", { limit: 1, afterSn: sn(LEASE_STOLEN_PAGE) });
    assert.equal([last.machineSns, last.more], [[sn(n)], false]);
    assert.ok(sameSnapshot(before, snapshot(root)), describeDiff(before, snapshot(root)));
  });

  it("an after_sn that is not a serial number (lower case, too long, a path, garbage) is invalid_input, and nothing changes on disk", async (c) => {
    const { root, lease } = await school(c, { local: [sn(1)], district: [sn(2)] });
    const before = snapshot(root);
    for (const afterSn of ["shf00000001", `${sn(1)}${"0".repeat(5000)}`, "../../etc/passwd", "SHF0000000G", " SHF00000001", "\u0000"]) {
      for (const limit of [0, 2]) await expectError(lease.call("stolenlist", { afterSn, limit }), "invalid_input", /machine_sn/);
    }
    assert.ok(sameSnapshot(before, snapshot(root)), describeDiff(before, snapshot(root)));
  });

  it("an after_sn past the end is an empty last page with the total", async (c) => {
    const { lease } = await school(c, { local: [sn(1)], district: [sn(2)] });
    const p = await lease.call("stolenlist", { limit: 10, afterSn: "ZZZFFFFFFFF" });
    assert.equal([p.machineSns, p.entries, p.more, p.total], [[], [], false, 2]);
    assert.equal((await lease.call("stolenlist", { limit: 10, afterSn: sn(2) })).machineSns, [], "after the last one");
  });

  it("a list larger than one NATS message (30,000 district marks, over 1 MB) is listed whole by stolen list, local and district marks as today", async (c) => {
    const n = 30_000;
    const district = Array.from({ length: n }, (_, i) => sn(i + 1));
    const local = [sn(7), sn(n + 1)];
    const { lease } = await school(c, { local, district, by: LONG_SITE });
    const out: string[] = [];
    const err: string[] = [];
    const clients = { lease, district: districtClient(c.bus), districtFrom: districtFromClient(c.bus, c.site), site: c.site };
    const started = performance.now();
    const code = await stolenCommand(["list"], new Set(), clients, { out: (s) => void out.push(s), err: (s) => void err.push(s) });
    const ms = performance.now() - started;
    assert.is(code, 0, err.join(""));
    const lines = out.join("").split("\n").slice(0, -1);
    assert.is(lines.length, n + local.length, "one line per mark");
    assert.is(lines[0], `${sn(1)} district by ${LONG_SITE} at ${AT}`);
    assert.equal(lines.slice(6, 9), [`${sn(7)} local`, `${sn(7)} district by ${LONG_SITE} at ${AT}`, `${sn(8)} district by ${LONG_SITE} at ${AT}`]);
    assert.is(lines.at(-1), `${sn(n + 1)} local`);
    // What one answer would have been: more than max_payload.
    const whole = await fetchLeaseStolenList((req) => lease.call("stolenlist", req));
    const bytes = sugar.lease.StolenListReply.encode({ machineSns: whole.machineSns, entries: whole.entries }).finish().byteLength;
    assert.ok(bytes > 1024 * 1024, `${bytes} bytes in one answer`);
    assert.ok(ms < 30_000, `listed in ${Math.round(ms)} ms`);
  });

  t.run();
}
