/**
 * The lease actor's behaviour, run unchanged on every Bus implementation
 * (test/contract/lease.test.ts). Each test is its own site, so the lease and
 * registry subjects never cross tests; the keyring's subjects carry no site,
 * so each test stops its keyring before the next one starts. Every lease
 * served is checked with the independent XO-side verifier.
 */
import { createPrivateKey } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as assert from "uvu/assert";
import { startKeyring } from "../../actors/keyring/index.js";
import { startLease } from "../../actors/lease/index.js";
import { startRegistry } from "../../actors/registry/index.js";
import * as olpc from "../../lib/olpc/index.js";
import { sugar } from "../../schemas/gen/messages.js";
import { subjects } from "../../src/bus/subjects.js";
import { leaseClient, registryClient, type LeaseClient, type RegistryClient } from "../../src/codec.js";
import { configWith, type Config } from "../../src/config.js";
import { silentLogger } from "../../src/log.js";
import { expectError, expectRawError } from "../support/bus-errors.js";
import { describeDiff, sameSnapshot, snapshot } from "../support/disk.js";
import { vectors } from "../support/olpc-fixtures.js";
import { verifyRtcReset } from "../support/olpc-verify.js";
import { waitFor } from "../support/wait.js";
import { xoVerifyLease, xoVerifyRtc } from "../support/xo-verify.js";
import { contractSuite, type BusKind, type ContractCtx } from "./buses.js";
import { VECTOR_KEYRING, writeKeyringDir, type KeyringFiles } from "./keyring.dir.js";

interface Ctx extends ContractCtx {
  site: string;
}

interface SchoolOptions {
  /** The keyring's directory, or false for a school whose keyring is down. */
  keyring?: KeyringFiles | false;
  /** Config overrides (delegation, lease-renew-days, bus-timeout, ...). */
  config?: Record<string, string | number | boolean>;
}

interface School {
  config: Config;
  root: string;
  lease: LeaseClient;
  registry: RegistryClient;
}

const DAY_MS = 86_400_000;
const V1 = vectors.v1;
const DEL = vectors.delegated;
/** A machine the registry knows with its UUID, and no delegation: a v1 lease signed with the lease key. */
const V1_MACHINE = { sn: "SHF00000077", uuid: "AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE" };
const master = [vectors.masterKey01];

/** A delegated lease for the vector machine, expiring `days` from now (the vectors' own one lasts until 2099). */
const delegatedLeaseIn = (days: number) =>
  olpc.signDelegatedLease({ delegationLine: vectors.delegation, serverKey: createPrivateKey(vectors.serverPem), expiry: new Date(Date.now() + days * DAY_MS) });

const leaseFile = (root: string, sn: string) => join(root, "share", "leases", sn.slice(-2), sn);
const expiryOf = (line: string) => line.split(" ")[3] ?? "";
/** A show reply as a plain object (decoded messages are class instances with defaults on the prototype). */
const shown = (r: sugar.lease.IShowReply) => ({ lease: r.lease, kind: r.kind, expiry: r.expiry, stolen: r.stolen });

export function leaseContract(kind: BusKind): void {
  let n = 0;
  // One site per test: subjects never cross tests.
  const { t, test } = contractSuite<Ctx>("lease", kind, { setUp: (c) => (c.site = `l${process.pid}x${++n}`) });

  /** Registry, lease actor and (unless `keyring: false`) a keyring with the vector keys, on the test's bus. */
  async function school(c: Ctx, o: SchoolOptions = {}): Promise<School> {
    const root = join(c.dir.path, "root");
    const config = configWith({ root, site: c.site, "jabber-url": "school.example", "backup-user": "sugar", "backup-host": "xs.example", ...o.config });
    const ctx = { bus: c.bus, config, log: silentLogger };
    if (o.keyring !== false) {
      writeKeyringDir(config["keyring-dir"], o.keyring ?? VECTOR_KEYRING);
      c.running.push(await startKeyring(ctx));
    }
    c.running.push(await startRegistry(ctx));
    c.running.push(await startLease(ctx));
    await c.bus.flush();
    // What the activation adapter does: wait bus-timeout for the answer.
    return { config, root, lease: leaseClient(c.bus, c.site, { timeoutMs: config["bus-timeout"] }), registry: registryClient(c.bus, c.site, { timeoutMs: 3000 }) };
  }

  /** Counts the requests made on a subject (a plain subscriber sees each request too). */
  async function counter(c: Ctx, subject: string): Promise<() => number> {
    let seen = 0;
    c.bus.subscribe(subject, () => void seen++);
    await c.bus.flush();
    return () => seen;
  }

  const it = (name: string, fn: (c: Ctx) => Promise<void>) => test(`lease[${kind.name}]: ${name}`, fn);

  // --- get ------------------------------------------------------------------

  it("get serves a stored lease byte for byte, origin stored", async (c) => {
    const s = await school(c);
    await s.lease.call("import", { text: vectors.leasesCjson });
    const r = await s.lease.call("get", { machineSn: V1.sn, source: "activation" });
    assert.is(r.lease, vectors.leaseV1);
    assert.is(r.origin, "stored");
    assert.equal(xoVerifyLease({ line: r.lease!, ...V1, trustedKey01Hex: master, now: new Date() }), { ok: true });
  });

  it("get without a stored lease and delegation off is unknown_machine, and nothing is written", async (c) => {
    const s = await school(c);
    const before = snapshot(s.root);
    await expectError(s.lease.call("get", { machineSn: DEL.sn }), "unknown_machine", /no lease for SHC005007B7/);
    assert.ok(sameSnapshot(before, snapshot(s.root)), describeDiff(before, snapshot(s.root)));
  });

  it("get with delegation has the keyring sign a delegated lease, stores it, and never asks the registry for a UUID", async (c) => {
    const s = await school(c, { config: { delegation: true } });
    const lookups = await counter(c, subjects.actor(c.site, "registry", "lookup"));
    const signs = await counter(c, subjects.keyring("sign"));
    const r = await s.lease.call("get", { machineSn: DEL.sn, source: "activation" });
    assert.is(r.origin, "signed");
    assert.match(r.lease!, /^act01: SHC005007B7 K \d{8}T\d{6}Z sig02: /);
    assert.equal(xoVerifyLease({ line: r.lease!, ...DEL, trustedKey01Hex: master, now: new Date() }), { ok: true });
    assert.is(readFileSync(leaseFile(s.root, DEL.sn), "utf8"), r.lease);
    assert.is(lookups(), 0, "a delegation carries its own UUID");
    assert.is(signs(), 1);
    const again = await s.lease.call("get", { machineSn: DEL.sn });
    assert.is(again.origin, "stored");
    assert.is(again.lease, r.lease);
  });

  it("get signs a v1 lease with the keyring's lease key, looking the UUID up only when the keyring asks for it", async (c) => {
    const s = await school(c, { config: { delegation: true }, keyring: { ...VECTOR_KEYRING, leaseKey: true } });
    await s.registry.call("machine", { machineSn: V1_MACHINE.sn, machineUuid: V1_MACHINE.uuid, source: "admin" });
    const lookups = await counter(c, subjects.actor(c.site, "registry", "lookup"));
    const signs = await counter(c, subjects.keyring("sign"));
    const r = await s.lease.call("get", { machineSn: V1_MACHINE.sn });
    assert.is(r.origin, "signed");
    assert.match(r.lease!, /^act01: SHF00000077 K \d{8}T\d{6}Z sig01: sha256 /);
    assert.equal(xoVerifyLease({ line: r.lease!, ...V1_MACHINE, trustedKey01Hex: master, now: new Date() }), { ok: true });
    assert.is(lookups(), 1);
    assert.is(signs(), 2, "asked without a UUID, told needs_uuid, asked again with it");
  });

  it("get for a machine with no delegation and no UUID in the registry is unknown_machine; nothing is stored", async (c) => {
    const s = await school(c, { config: { delegation: true }, keyring: { ...VECTOR_KEYRING, leaseKey: true } });
    const before = snapshot(s.root);
    await expectError(s.lease.call("get", { machineSn: "SHF00000078" }), "unknown_machine", /UUID is unknown/);
    assert.ok(sameSnapshot(before, snapshot(s.root)), describeDiff(before, snapshot(s.root)));
  });

  it("get renews a stored lease that expires within lease-renew-days", async (c) => {
    const s = await school(c, { config: { delegation: true, "lease-renew-days": 7 } });
    const short = delegatedLeaseIn(2);
    assert.is((await s.lease.call("import", { text: short })).imported, 1);
    const r = await s.lease.call("get", { machineSn: DEL.sn });
    assert.is(r.origin, "renewed");
    assert.ok(expiryOf(r.lease!) > expiryOf(short), `${expiryOf(r.lease!)} after ${expiryOf(short)}`);
    assert.equal(xoVerifyLease({ line: r.lease!, ...DEL, trustedKey01Hex: master, now: new Date() }), { ok: true });
    assert.is(readFileSync(leaseFile(s.root, DEL.sn), "utf8"), r.lease);
  });

  it("get with the keyring down serves the stored lease as stale, and refuses a machine with none", async (c) => {
    const s = await school(c, { config: { delegation: true, "lease-renew-days": 7 }, keyring: false });
    const short = delegatedLeaseIn(2);
    await s.lease.call("import", { text: short });
    const r = await s.lease.call("get", { machineSn: DEL.sn });
    assert.is(r.origin, "stale");
    assert.is(r.lease, short);
    await expectError(s.lease.call("get", { machineSn: V1_MACHINE.sn }), "unknown_machine", /keyring: unavailable/);
  });

  it("get with a keyring that never answers still serves the stale lease within the bus timeout", async (c) => {
    const busTimeout = 1000;
    const s = await school(c, { config: { delegation: true, "lease-renew-days": 7, "bus-timeout": busTimeout }, keyring: false });
    let release = () => {};
    const released = new Promise<void>((r) => (release = r));
    const silent = c.bus.serve(subjects.keyringAll(), async () => {
      await released;
      return new Uint8Array();
    });
    await c.bus.flush();
    try {
      const short = delegatedLeaseIn(2);
      await s.lease.call("import", { text: short });
      const started = Date.now();
      const r = await s.lease.call("get", { machineSn: DEL.sn }, { timeoutMs: busTimeout });
      const took = Date.now() - started;
      assert.is(r.origin, "stale");
      assert.is(r.lease, short);
      // The keyring gets the budget less a 15% margin (850 of 1000 ms), then the fallback answers.
      assert.ok(took >= 800 && took < busTimeout, `answered after ${took} ms`);
    } finally {
      release();
      await silent.drain();
    }
  });

  it("get for a stolen machine is stolen, even with a stored lease", async (c) => {
    const s = await school(c);
    await s.lease.call("import", { text: vectors.leasesCjson });
    await s.lease.call("stolen", { machineSn: V1.sn, stolen: true });
    await expectError(s.lease.call("get", { machineSn: V1.sn }), "stolen");
  });

  // --- rtc ------------------------------------------------------------------

  it("rtc gets an rtc01 signed with the lease key over the request's values and the registry's UUID", async (c) => {
    const s = await school(c, { keyring: { ...VECTOR_KEYRING, leaseKey: true } });
    await s.registry.call("machine", { machineSn: V1_MACHINE.sn, machineUuid: V1_MACHINE.uuid, source: "admin" });
    const r = await s.lease.call("rtc", { machineSn: V1_MACHINE.sn, currentRtc: "20240101T000000Z", nonce: "7" });
    assert.match(r.line!, /^rtc01: SHF00000077 20240101T000000Z 0000000007 \d{8}T\d{6}Z sig01: sha256 [0-9a-f]{64} [0-9a-f]{512}\n$/);
    const check = { line: r.line!, ...V1_MACHINE, trustedKey01Hex: master, expect: { currentrtc: "20240101T000000Z", nonce: "0000000007" } };
    assert.equal(xoVerifyRtc(check), { ok: true });
  });

  it("rtc without a lease key is signed under the machine's delegation", async (c) => {
    const s = await school(c);
    const lookups = await counter(c, subjects.actor(c.site, "registry", "lookup"));
    const r = await s.lease.call("rtc", { machineSn: DEL.sn, currentRtc: "20240101T000000Z", nonce: "42" });
    assert.match(r.line!, /^rtc01: SHC005007B7 20240101T000000Z 0000000042 \d{8}T\d{6}Z sig02: /);
    const verified = verifyRtcReset(r.line!, master, new Date(), DEL.uuid, DEL.sn); // xo-verify reads sig01 rtc01 only
    assert.ok(verified.ok, verified.ok ? "" : verified.reason);
    assert.is(lookups(), 0);
  });

  it("rtc refuses a bad timestamp or count, a stolen machine, and a machine nothing can sign for", async (c) => {
    const s = await school(c, { keyring: { ...VECTOR_KEYRING, leaseKey: true } });
    for (const [currentRtc, nonce] of [["2024-01-01", "7"], ["20240101T000000Z", "12345678901"], ["20240101T000000Z", "x"], ["", ""]] as const) {
      await expectError(s.lease.call("rtc", { machineSn: V1_MACHINE.sn, currentRtc, nonce }), "invalid_input", /rtcreset needs/);
    }
    await s.lease.call("stolen", { machineSn: V1_MACHINE.sn, stolen: true });
    await expectError(s.lease.call("rtc", { machineSn: V1_MACHINE.sn, currentRtc: "20240101T000000Z", nonce: "7" }), "stolen");
    await expectError(s.lease.call("rtc", { machineSn: "SHF00000079", currentRtc: "20240101T000000Z", nonce: "7" }), "not_found", /cannot sign an rtc reset/);
  });

  it("get after an import serves the file as it is now: one an administrator replaced by hand is read anew", async (c) => {
    const s = await school(c);
    await s.lease.call("import", { text: vectors.leasesCjson });
    assert.is((await s.lease.call("get", { machineSn: V1.sn, source: "activation" })).lease, vectors.leaseV1);
    // Another machine's lease, filed by hand under V1's serial number: not served, whatever was imported before.
    writeFileSync(leaseFile(s.root, V1.sn), vectors.leaseChained);
    await expectError(s.lease.call("get", { machineSn: V1.sn, source: "activation" }), "unknown_machine");
    writeFileSync(leaseFile(s.root, V1.sn), vectors.leaseV1);
    assert.is((await s.lease.call("get", { machineSn: V1.sn, source: "activation" })).lease, vectors.leaseV1);
  });

  // --- import ---------------------------------------------------------------

  it("import counts imported and replaced lines and refuses bad ones with where and why", async (c) => {
    const s = await school(c);
    const text = [
      vectors.leaseV1, // line 1
      "act01: SHF706002A7 K\n", // line 2: truncated
      vectors.leaseV1.replace(" K ", "  K "), // line 3: two spaces
      vectors.leaseChained, // line 4
      vectors.leaseV1, // line 5: the same machine again
    ].join("");
    const r = await s.lease.call("import", { text });
    assert.is(r.imported, 2);
    assert.is(r.replaced, 1, "the later line for a machine wins");
    assert.equal(r.refused?.map((x) => x.where), ["line 2", "line 3"]);
    assert.match(r.refused![0]!.reason!, /truncated/);
    assert.match(r.refused![1]!.reason!, /two spaces/);
    assert.is(readFileSync(leaseFile(s.root, V1.sn), "utf8"), vectors.leaseV1);
    assert.is(readFileSync(leaseFile(s.root, DEL.sn), "utf8"), vectors.leaseChained);
    const again = await s.lease.call("import", { text: vectors.leasesCjson });
    assert.equal([again.imported, again.replaced, again.refused?.length ?? 0], [0, 1, 0]);
  });

  it("import of only refused lines changes nothing on disk", async (c) => {
    const s = await school(c);
    await s.lease.call("import", { text: vectors.leasesCjson });
    const before = snapshot(s.root);
    const misfiled = await s.lease.call("import", { text: `[1,{"SHF00000001":${JSON.stringify(vectors.leaseV1)}}]` });
    assert.equal([misfiled.imported, misfiled.replaced], [0, 0]);
    assert.equal(misfiled.refused?.map((x) => x.where), ['"SHF00000001" line 1']);
    assert.match(misfiled.refused![0]!.reason!, /for SHF706002A7, filed under SHF00000001/);
    const bad = await s.lease.call("import", { text: "dev01: SHF706002A7 A 20991231T000000Z\nact01: shf706002a7 K 20991231T000000Z sig01: x\n" });
    assert.is(bad.refused?.length, 2);
    await expectError(s.lease.call("import", { text: '[1,{"SHF706002A7":' }), "invalid_input", /not valid JSON/);
    assert.ok(sameSnapshot(before, snapshot(s.root)), describeDiff(before, snapshot(s.root)));
    assert.not.ok(existsSync(leaseFile(s.root, "SHF00000001")));
  });

  // --- show -----------------------------------------------------------------

  it("show gives the stored lease, its kind, expiry and stolen flag; an unknown machine is not_found", async (c) => {
    const s = await school(c);
    await s.lease.call("import", { text: vectors.leaseV1 + vectors.leaseChained });
    assert.equal(shown(await s.lease.call("show", { machineSn: V1.sn })), { lease: vectors.leaseV1, kind: "v1", expiry: "20991231T000000Z", stolen: false });
    assert.is((await s.lease.call("show", { machineSn: DEL.sn })).kind, "delegated");
    await expectError(s.lease.call("show", { machineSn: "SHF00000009" }), "not_found");
    await s.lease.call("stolen", { machineSn: "SHF00000009", stolen: true });
    assert.equal(shown(await s.lease.call("show", { machineSn: "SHF00000009" })), { lease: "", kind: "", expiry: "", stolen: true });
  });

  // --- the stolen list --------------------------------------------------------

  it("stolen add and remove change the list and its file once, and publish each change", async (c) => {
    const s = await school(c);
    const events: Array<[string, boolean]> = [];
    c.bus.subscribe(subjects.event(c.site, "stolen"), (d) => {
      const ev = sugar.lease.StolenEvent.decode(d);
      events.push([ev.machineSn, ev.stolen]);
    });
    await c.bus.flush();
    const stolenFile = join(s.root, "share", "stolen");
    assert.is((await s.lease.call("stolen", { machineSn: V1.sn, stolen: true })).changed, true);
    assert.is((await s.lease.call("stolen", { machineSn: DEL.sn, stolen: true })).changed, true);
    assert.is((await s.lease.call("stolen", { machineSn: V1.sn, stolen: true })).changed, false, "already on the list");
    assert.equal((await s.lease.call("stolenlist", {})).machineSns, [DEL.sn, V1.sn]);
    assert.match(readFileSync(stolenFile, "utf8"), /^SHF706002A7$/m);
    await waitFor("two stolen events", () => events.length >= 2);
    assert.is((await s.lease.call("stolen", { machineSn: V1.sn, stolen: false })).changed, true);
    assert.is((await s.lease.call("stolen", { machineSn: V1.sn, stolen: false })).changed, false);
    assert.equal((await s.lease.call("stolenlist", {})).machineSns, [DEL.sn]);
    assert.not.match(readFileSync(stolenFile, "utf8"), /SHF706002A7/);
    await waitFor("three stolen events", () => events.length >= 3);
    assert.equal(events, [[V1.sn, true], [DEL.sn, true], [V1.sn, false]], "one event per change, none for no change");
  });

  it("a stolen event from another lease actor of the site is followed", async (c) => {
    const s = await school(c);
    c.bus.publish(subjects.event(c.site, "stolen"), sugar.lease.StolenEvent.encode({ machineSn: V1.sn, stolen: true }).finish());
    await waitFor("the list follows the event", async () => (await s.lease.call("stolenlist", {})).machineSns?.includes(V1.sn));
    await expectError(s.lease.call("get", { machineSn: V1.sn }), "stolen");
    const stolenFile = join(s.root, "share", "stolen");
    await waitFor("the stolen file", () => existsSync(stolenFile) && /^SHF706002A7$/m.test(readFileSync(stolenFile, "utf8")));
  });

  it("the stolen file an administrator edits may use lower case; the bus takes serial numbers exactly as sent", async (c) => {
    const first = await school(c);
    await first.lease.call("stolen", { machineSn: V1.sn, stolen: true });
    for (const component of c.running.splice(0).reverse()) await component.stop();
    writeFileSync(join(first.root, "share", "stolen"), "# edited by hand\n shf00000009 \nnot a serial\n");
    const s = await school(c);
    assert.equal((await s.lease.call("stolenlist", {})).machineSns, ["SHF00000009"]);
    await expectError(s.lease.call("stolen", { machineSn: "shf00000010", stolen: true }), "invalid_input", /machine_sn/);
  });

  // --- bad input on the bus ---------------------------------------------------

  const badSerials = ["shf706002a7", "SHF/06002A7", "SHF..6002A7", "SHF706002A", "", "../../etc/passwd"];
  it("a bad serial number is invalid_input for every op, and nothing is written", async (c) => {
    const s = await school(c, { config: { delegation: true } });
    const before = snapshot(s.root);
    for (const machineSn of badSerials) {
      await expectError(s.lease.call("get", { machineSn }), "invalid_input", /machine_sn/);
      await expectError(s.lease.call("rtc", { machineSn, currentRtc: "20240101T000000Z", nonce: "1" }), "invalid_input", /machine_sn/);
      await expectError(s.lease.call("show", { machineSn }), "invalid_input", /machine_sn/);
      await expectError(s.lease.call("stolen", { machineSn, stolen: true }), "invalid_input", /machine_sn/);
    }
    assert.ok(sameSnapshot(before, snapshot(s.root)), describeDiff(before, snapshot(s.root)));
  });

  it("garbage bytes and a request whose op does not match its subject are invalid_input, and nothing is written", async (c) => {
    const s = await school(c, { config: { delegation: true } });
    const before = snapshot(s.root);
    await expectRawError(c.bus, subjects.actor(c.site, "lease", "get"), new Uint8Array([0xff, 0xff, 0xff, 0x0f, 0x01]), "invalid_input");
    const stolen = sugar.lease.Request.encode({ stolen: { machineSn: V1.sn, stolen: true } }).finish();
    await expectRawError(c.bus, subjects.actor(c.site, "lease", "get"), stolen, "invalid_input", /does not match/);
    await expectRawError(c.bus, subjects.actor(c.site, "lease", "import"), sugar.lease.Request.encode({}).finish(), "invalid_input", /does not match/);
    assert.equal((await s.lease.call("stolenlist", {})).machineSns, []);
    assert.ok(sameSnapshot(before, snapshot(s.root)), describeDiff(before, snapshot(s.root)));
  });

  t.run();
}
