/**
 * `sugar-server stolen ...`: this school's list through the lease actor, and
 * with --district the district's (a mark sent as this site, which only an
 * allowed school's hub routes). The district is a test double
 * (test/support/district-double.ts) on a MemoryBus.
 */
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { startLease } from "../../actors/lease/index.js";
import { startRegistry } from "../../actors/registry/index.js";
import { MemoryBus } from "../../src/bus/memory.js";
import { districtClient, districtFromClient, leaseClient } from "../../src/codec.js";
import type { Component } from "../../src/component.js";
import { configWith } from "../../src/config.js";
import { main } from "../../src/cli/main.js";
import { stolenCommand, STOLEN_USAGE } from "../../src/cli/stolen.js";
import { silentLogger } from "../../src/log.js";
import { startDistrictDouble, type DistrictDouble } from "../support/district-stolen-double.js";
import { tempDir } from "../support/tmp.js";
import { waitFor } from "../support/wait.js";

const SN = "SHF00000042";

interface Run {
  code: number;
  out: string;
  err: string;
}

async function setup(site: string, opts: { district?: boolean } = {}) {
  const dir = tempDir();
  const bus = new MemoryBus({ timeoutMs: 2000 });
  const config = configWith({ root: join(dir.path, "root"), site, district: true });
  const double: DistrictDouble | undefined = opts.district === false ? undefined : await startDistrictDouble(bus, { allowMarksFrom: ["school1"] });
  const ctx = { bus, config, log: silentLogger };
  const running: Component[] = [await startRegistry(ctx), await startLease(ctx)];
  const clients = { lease: leaseClient(bus, site), district: districtClient(bus), districtFrom: districtFromClient(bus, site), site };
  const run = async (...args: string[]): Promise<Run> => {
    const r = { code: 0, out: "", err: "" };
    const flags = new Set(args.filter((a) => a.startsWith("--")).map((a) => a.slice(2)));
    r.code = await stolenCommand(args.filter((a) => !a.startsWith("--")), flags, clients, { out: (t) => void (r.out += t), err: (t) => void (r.err += t) });
    return r;
  };
  return {
    run,
    double,
    async done() {
      for (const c of running.reverse()) await c.stop();
      await double?.stop();
      await bus.close();
      dir.remove();
    },
  };
}

test("stolen-cli: add --district from a school allowed to mark puts it on the district's list; list shows each mark's source", async () => {
  const s = await setup("school1");
  try {
    const added = await s.run("add", SN, "--district");
    assert.is(added.code, 0, added.err);
    assert.match(added.out, /^SHF00000042 added to the district's stolen list \(by school1 at \d{4}-\d\d-\d\dT[\d:.]+Z\): every school of the district answers STOLEN\n$/);
    assert.equal(s.double!.stolen(), [SN]);
    assert.match((await s.run("add", SN, "--district")).out, /already on the district's stolen list/);
    await s.run("add", "SHF00000041");
    await waitFor("the school follows the district's mark", async () => (await s.run("list")).out.includes(`${SN} district by school1 at`));
    assert.match((await s.run("list")).out, /^SHF00000041 local\nSHF00000042 district by school1 at \S+\n$/);
    assert.match((await s.run("list", "--district")).out, /^SHF00000042 district by school1 at \S+\n$/);
    const removed = await s.run("remove", SN, "--district");
    assert.match(removed.out, /^SHF00000042 removed from the district's stolen list/);
    assert.equal(s.double!.stolen(), []);
    assert.match((await s.run("remove", SN, "--district")).out, /was not on the district's stolen list/);
  } finally {
    await s.done();
  }
});

test("stolen-cli: add --district from a school the hub does not route marks for says it is not allowed, and fails", async () => {
  const s = await setup("school2");
  try {
    const r = await s.run("add", SN, "--district");
    assert.is(r.code, 1);
    assert.is(r.out, "");
    assert.match(r.err, /this school \(site school2\) is not allowed to publish district stolen marks/);
    assert.equal(s.double!.stolen(), []);
  } finally {
    await s.done();
  }
});

test("stolen-cli: with the district down, add/remove/list --district say the district is not reachable, and fail", async () => {
  const s = await setup("school1", { district: false });
  try {
    for (const args of [["add", SN], ["remove", SN], ["list"]]) {
      const r = await s.run(...args, "--district");
      assert.is(r.code, 1, args.join(" "));
      assert.match(r.err, /the district is not reachable \(unavailable\)/);
    }
  } finally {
    await s.done();
  }
});

test("stolen-cli: removing a local mark says so when the district's mark stays in force", async () => {
  const s = await setup("school1");
  try {
    await s.run("add", SN);
    await s.run("add", SN, "--district");
    await waitFor("the district's mark", async () => (await s.run("list")).out.includes("district by"));
    const r = await s.run("remove", SN);
    assert.is(r.code, 0);
    assert.match(r.out, /^SHF00000042 removed from the stolen list\nSHF00000042 is still on the district's stolen list \(by school1 at \S+\): port 191 still answers STOLEN; only `sugar-server stolen remove SHF00000042 --district`/);
    // Without a district mark (here: nothing at all the lease actor knows of the serial number) only the removal is said.
    await s.run("add", "SHF00000043");
    const plain = await s.run("remove", "SHF00000043");
    assert.equal([plain.code, plain.out], [0, "SHF00000043 removed from the stolen list\n"]);
    assert.equal((await s.run("remove", "SHF00000044")).out, "SHF00000044 was not on the stolen list\n");
  } finally {
    await s.done();
  }
});

test("stolen-cli: a bad serial number or missing argument is refused with the usage", async () => {
  const s = await setup("school1");
  try {
    for (const args of [["add"], ["remove"], ["list", SN], ["add", SN, SN], ["frob"]]) {
      const r = await s.run(...args);
      assert.is(r.code, 2, args.join(" "));
      assert.is(r.err, STOLEN_USAGE);
    }
    assert.match(STOLEN_USAGE, /add SN \[--district\]/);
    const bad = await s.run("add", "shf0000004", "--district").catch((err: Error) => err);
    assert.ok(bad instanceof Error && /not a serial number/.test(bad.message));
    assert.equal(s.double!.stolen(), []);
  } finally {
    await s.done();
  }
});

test("stolen-cli: sugar-server stolen ... --district takes --district as its flag (no lease actor needed); elsewhere it is still the option", async () => {
  const dir = tempDir();
  try {
    const r = { out: "", err: "" };
    const io = { out: (t: string) => void (r.out += t), err: (t: string) => void (r.err += t) };
    const code = await main(["stolen", "add", SN, "--district", "--root", join(dir.path, "root")], io);
    assert.is(code, 1);
    assert.match(r.err, /the district is not reachable/);
    const usage = { out: "", err: "" };
    await main(["--help"], { out: (t) => void (usage.out += t), err: () => undefined });
    assert.match(usage.out, /stolen add SN\|remove SN\|list --district/);
    const cfg = { out: "", err: "" };
    assert.is(await main(["config", "--district", "--root", join(dir.path, "root")], { out: (t) => void (cfg.out += t), err: (t) => void (cfg.err += t) }), 0, cfg.err);
    assert.match(cfg.out, /^district = true$/m);
  } finally {
    dir.remove();
  }
});

test.run();
