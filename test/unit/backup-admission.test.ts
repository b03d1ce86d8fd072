/** Admission: load, disk (blocks and inodes), slots and their expiry, with probes the test controls. */
import { test } from "uvu";
import * as assert from "uvu/assert";
import { Admission, systemProbes, type DiskFree, type Limits } from "../../actors/backup/admission.js";

function admission(limits: Partial<Limits> = {}, probe: { load?: number; disk?: DiskFree } = {}) {
  let now = 1_000_000;
  const a = new Admission(
    { slots: 2, slotSeconds: 60, minFree: 10, maxLoad: 5, ...limits },
    "/",
    { load: () => probe.load ?? 0.5, disk: async () => probe.disk ?? { blocks: 50, inodes: 50 }, now: () => now },
  );
  return { a, advance: (s: number) => (now += s * 1000) };
}

const A = "a".repeat(40);
const B = "b".repeat(40);
const C = "c".repeat(40);

test("backup: slots: accepted up to backup-slots, then refused with the time until the first slot frees", async () => {
  const { a, advance } = admission();
  assert.equal(await a.decide(A), { accepted: true });
  advance(10);
  assert.equal(await a.decide(B), { accepted: true });
  const r = await a.decide(C);
  assert.equal(r, { accepted: false, reason: "all 2 backup slots are busy", retryAfter: 50 });
  assert.equal(await a.decide(A), { accepted: true }, "a holder asking again keeps its slot");
  assert.is(a.inUse(), 2);
});

test("backup: slots: released when the upload ends, or after backup-slot-seconds", async () => {
  const { a, advance } = admission({ slots: 1 });
  await a.decide(A);
  assert.is((await a.decide(B)).accepted, false);
  assert.ok(a.release(A));
  assert.not.ok(a.release(A), "released once");
  assert.is((await a.decide(B)).accepted, true);
  advance(59);
  assert.is((await a.decide(C)).accepted, false);
  advance(1);
  assert.is((await a.decide(C)).accepted, true, "B's slot expired");
});

test("backup: disk: refused below backup-min-free percent of blocks or of inodes; no inode count is not a refusal", async () => {
  assert.equal(await admission({}, { disk: { blocks: 9.5, inodes: 50 } }).a.decide(A), { accepted: false, reason: "disk full: 9.5% of blocks free, 10% required", retryAfter: 3600 });
  assert.equal(await admission({}, { disk: { blocks: 50, inodes: 2 } }).a.decide(A), { accepted: false, reason: "disk full: 2.0% of inodes free, 10% required", retryAfter: 3600 });
  assert.equal(await admission({}, { disk: { blocks: 50, inodes: undefined } }).a.decide(A), { accepted: true });
  assert.equal(await admission({ minFree: 0 }, { disk: { blocks: 0, inodes: 0 } }).a.decide(A), { accepted: true });
});

test("backup: load: refused above backup-max-load, and a refusal takes no slot", async () => {
  const { a } = admission({ slots: 1 }, { load: 5.01 });
  assert.equal(await a.decide(A), { accepted: false, reason: "server busy: load average 5.01 is above 5", retryAfter: 60 });
  assert.is(a.inUse(), 0);
});

test("backup: the system probes read real numbers", async () => {
  const d = await systemProbes.disk("/");
  assert.ok(d.blocks >= 0 && d.blocks <= 100);
  assert.ok(d.inodes === undefined || (d.inodes >= 0 && d.inodes <= 100));
  assert.ok(systemProbes.load() >= 0);
});

test.run();
