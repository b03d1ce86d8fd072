/**
 * The district stolen list in pages (sugar.district.stolen_list with
 * after_sn / limit / more), run on every Bus implementation: pages are
 * sorted and capped, `unchanged` is answered on the first page only, bad
 * page requests are invalid_input, and a list larger than one NATS message
 * (max_payload 1 MB) still reaches a school's lease actor and a peer
 * district actor. Lists are written to the district actor's disk before it
 * starts (thousands of marks through the bus would be slow).
 */
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as assert from "uvu/assert";
import { startDistrict } from "../../actors/district/index.js";
import { startLease } from "../../actors/lease/index.js";
import { startRegistry } from "../../actors/registry/index.js";
import { districtClient, leaseClient } from "../../src/codec.js";
import { configWith } from "../../src/config.js";
import { STOLEN_PAGE, fetchStolenList } from "../../src/district-pages.js";
import { fetchLeaseStolenList } from "../../src/lease-pages.js";
import { silentLogger } from "../../src/log.js";
import { expectError } from "../support/bus-errors.js";
import { waitFor } from "../support/wait.js";
import { contractSuite, type BusKind, type ContractCtx } from "./buses.js";

type Ctx = ContractCtx;

const sn = (i: number) => `SHF${i.toString(16).toUpperCase().padStart(8, "0")}`;
const stolenDigest = (sns: string[]) => createHash("sha256").update([...sns].sort().join("\n")).digest("hex");
/** `n` marks, every `clearedEvery`-th one cleared (0 = none), written as the district actor's file under `root`. */
function marksFile(root: string, n: number, clearedEvery = 0): string[] {
  const marks = Array.from({ length: n }, (_, i) => ({ machineSn: sn(i + 1), stolen: clearedEvery === 0 || (i + 1) % clearedEvery !== 0, at: "2024-01-01T00:00:00.000Z", by: "school1" }));
  mkdirSync(join(root, "district"), { recursive: true });
  writeFileSync(join(root, "district", "stolen"), JSON.stringify({ marks }));
  return marks.filter((m) => m.stolen).map((m) => m.machineSn);
}

export function districtStolenPagesContract(kind: BusKind): void {
  const { t, test } = contractSuite<Ctx>("district-stolen-pages", kind);
  const it = (name: string, fn: (c: Ctx) => Promise<void>) => test(`district[${kind.name}]: ${name}`, fn);

  async function district(c: Ctx, name: string, n = 0, clearedEvery = 0): Promise<{ root: string; stolen: string[] }> {
    const root = join(c.dir.path, name);
    const stolen = n > 0 ? marksFile(root, n, clearedEvery) : [];
    c.running.push(await startDistrict({ bus: c.bus, config: configWith({ root }), log: silentLogger }));
    await c.bus.flush();
    return { root, stolen };
  }
  const shared = (c: Ctx) => districtClient(c.bus, { timeoutMs: 5000 });

  it("stolen_list answers pages of at most limit marks, sorted, each after after_sn, with more until the last; every page has the whole list's digest", async (c) => {
    const { stolen } = await district(c, "a", 7);
    const digest = stolenDigest(stolen);
    const p1 = await shared(c).call("stolenList", { limit: 3 });
    assert.equal([p1.marks!.map((m) => m.machineSn), p1.more, p1.digest], [stolen.slice(0, 3), true, digest]);
    const p2 = await shared(c).call("stolenList", { limit: 3, afterSn: sn(3) });
    assert.equal([p2.marks!.map((m) => m.machineSn), p2.more, p2.digest], [stolen.slice(3, 6), true, digest]);
    const p3 = await shared(c).call("stolenList", { limit: 3, afterSn: sn(6) });
    assert.equal([p3.marks!.map((m) => m.machineSn), p3.more, p3.digest], [stolen.slice(6), false, digest]);
    // An after_sn held by no mark: the marks after it.
    const p4 = await shared(c).call("stolenList", { limit: 3, afterSn: "SHF000000FF" });
    assert.equal([p4.marks!.length, p4.more], [0, false]);
    const whole = await fetchStolenList((req) => shared(c).call("stolenList", req), {}, { limit: 2 });
    assert.equal([whole.unchanged, whole.digest, whole.marks.map((m) => m.machineSn)], [false, digest, stolen]);
  });

  it("with_cleared pages count the cleared marks too", async (c) => {
    const { stolen } = await district(c, "a", 9, 3);
    const all = await fetchStolenList((req) => shared(c).call("stolenList", req), { withCleared: true }, { limit: 4 });
    assert.equal(all.marks.map((m) => m.machineSn), Array.from({ length: 9 }, (_, i) => sn(i + 1)));
    assert.equal(all.marks.filter((m) => m.stolen).map((m) => m.machineSn), stolen);
  });

  it("the digest held answers unchanged on the first page only; a later page with it gets its marks", async (c) => {
    const { stolen } = await district(c, "a", 5);
    const digest = stolenDigest(stolen);
    const first = await shared(c).call("stolenList", { digest, limit: 2 });
    assert.equal([first.unchanged, first.marks!.length, first.more, first.digest], [true, 0, false, digest]);
    const later = await shared(c).call("stolenList", { digest, limit: 2, afterSn: sn(2) });
    assert.equal([later.unchanged, later.marks!.map((m) => m.machineSn), later.more], [false, stolen.slice(2, 4), true]);
    assert.is((await fetchStolenList((req) => shared(c).call("stolenList", req), { digest }, { limit: 2 })).unchanged, true);
  });

  it("a limit larger than the page size (or 0) is capped at the page size", async (c) => {
    const { stolen } = await district(c, "a", STOLEN_PAGE + 1);
    for (const limit of [0, 4_000_000_000]) {
      const p = await shared(c).call("stolenList", { limit });
      assert.equal([p.marks!.length, p.more], [STOLEN_PAGE, true], `limit ${limit}`);
    }
    const last = await shared(c).call("stolenList", { afterSn: stolen[STOLEN_PAGE - 1]! });
    assert.equal([last.marks!.map((m) => m.machineSn), last.more], [[stolen[STOLEN_PAGE]!], false]);
  });

  it("a malformed after_sn is invalid_input", async (c) => {
    await district(c, "a", 3);
    await expectError(shared(c).call("stolenList", { afterSn: "shf00000001" }), "invalid_input", /machine_sn/);
  });

  it("an after_sn too long to be a serial number is invalid_input", async (c) => {
    await district(c, "a", 3);
    await expectError(shared(c).call("stolenList", { afterSn: "SHF00000001" + "0".repeat(5000) }), "invalid_input", /machine_sn/);
  });

  it("a list larger than one NATS message (over 1 MB) reaches a school's lease actor and a peer district actor whole", async (c) => {
    const n = 25_000; // ~53 bytes a mark on the wire: ~1.3 MB
    const a = await district(c, "a", n, 50);
    assert.ok(a.stolen.length * 53 > 1024 * 1024, "more than max_payload in total");
    // A peer with nothing on disk catches up at start, page by page.
    const b = await district(c, "b");
    const onDisk = (JSON.parse(readFileSync(join(b.root, "district", "stolen"), "utf8")) as { marks: Array<{ stolen: boolean }> }).marks;
    assert.equal([onDisk.length, onDisk.filter((m) => m.stolen).length], [n, a.stolen.length], "every mark, the cleared ones too");
    const root = join(c.dir.path, "school");
    const ctx = { bus: c.bus, config: configWith({ root, site: "school2", district: true, "district-sync-seconds": 3600 }), log: silentLogger };
    c.running.push(await startRegistry(ctx), await startLease(ctx));
    const lease = leaseClient(c.bus, "school2", { timeoutMs: 5000 });
    await waitFor("the school's district set", async () => (await lease.call("status", {})).districtStolen === a.stolen.length, 20_000);
    // What it holds, in its file and through its own stolenlist (in pages too: the same list, over max_payload).
    const held = readFileSync(join(root, "share", "stolen-district"), "utf8").split("\n").filter((l) => l && !l.startsWith("#")).map((l) => l.split(" ")[0]);
    assert.equal(held, a.stolen);
    assert.equal((await fetchLeaseStolenList((req) => lease.call("stolenlist", req))).machineSns, a.stolen);
  });

  t.run();
}
