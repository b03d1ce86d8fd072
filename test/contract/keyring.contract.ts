/**
 * The keyring actor's behaviour, run unchanged on every Bus implementation
 * (test/contract/keyring.test.ts). The keyring's subjects carry no site, so
 * each test stops its keyring before the next starts. What it signs is
 * checked with the independent XO-side verifier wherever that can.
 */
import { createPrivateKey, generateKeyPairSync } from "node:crypto";
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import * as assert from "uvu/assert";
import { startKeyring } from "../../actors/keyring/index.js";
import * as olpc from "../../lib/olpc/index.js";
import { sugar } from "../../schemas/gen/messages.js";
import { subjects } from "../../src/bus/subjects.js";
import { keyringClient, type KeyringClient } from "../../src/codec.js";
import { configWith, type Config } from "../../src/config.js";
import { silentLogger } from "../../src/log.js";
import { expectError, expectRawError } from "../support/bus-errors.js";
import { describeDiff, sameSnapshot, snapshot } from "../support/disk.js";
import { vectors } from "../support/olpc-fixtures.js";
import { verifyRtcReset } from "../support/olpc-verify.js";
import { xoVerifyLease, xoVerifyRtc } from "../support/xo-verify.js";
import { contractSuite, type BusKind, type ContractCtx } from "./buses.js";
import { VECTOR_KEYRING, writeKeyringDir, type KeyringFiles } from "./keyring.dir.js";

type Ctx = ContractCtx;

interface Keyring {
  config: Config;
  /** The keyring directory. */
  dir: string;
  client: KeyringClient;
}

const DAY_MS = 86_400_000;
const DEL = vectors.delegated;
const V1_MACHINE = { sn: "SHF00000077", uuid: "AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE" };
const master = [vectors.masterKey01];
const keyId = (key01Hex: string) => key01Hex.slice(-64);
const masterKey = createPrivateKey(vectors.masterPem);
const serverKey = createPrivateKey(vectors.serverPem);
const RTC = { currentRtc: "20240101T000000Z", nonce: "7", newRtc: "20300101T000000Z" };

/** Days from now to an OLPC expiry. */
const daysUntil = (exp: string) => (olpc.parseOlpcTime(exp) as Date).getTime() / DAY_MS - Date.now() / DAY_MS;
/** A show reply as a plain object (decoded messages are class instances with defaults on the prototype). */
const shown = (r: sugar.keyring.IShowReply) => ({
  key01: r.key01,
  keyId: r.keyId,
  delegations: r.delegations,
  leaseKey01: r.leaseKey01,
  leaseKeyId: r.leaseKeyId,
  trustedKeyIds: [...(r.trustedKeyIds ?? [])],
  directory: r.directory,
});

export function keyringContract(kind: BusKind): void {
  const { t, test } = contractSuite<Ctx>("keyring", kind);

  let roots = 0;
  /** A keyring actor on the test's bus, over a new directory laid out from the vectors (or `again`'s, restarted). */
  async function keyring(c: Ctx, files: KeyringFiles = VECTOR_KEYRING, again?: Keyring): Promise<Keyring> {
    const config = again?.config ?? configWith({ root: join(c.dir.path, `root${++roots}`) });
    writeKeyringDir(config["keyring-dir"], files);
    c.running.push(await startKeyring({ bus: c.bus, config, log: silentLogger }));
    await c.bus.flush();
    return { config, dir: config["keyring-dir"], client: keyringClient(c.bus, { timeoutMs: 10_000 }) };
  }

  const it = (name: string, fn: (c: Ctx) => Promise<void>) => test(`keyring[${kind.name}]: ${name}`, fn);

  // --- sign -----------------------------------------------------------------

  it("sign under a delegation gives a chained lease the XO accepts with master as its only root, lease-days or days long", async (c) => {
    const k = await keyring(c);
    const r = await k.client.call("sign", { machineSn: DEL.sn });
    assert.is(r.kind, "delegated");
    assert.is(r.needsUuid, false);
    assert.match(r.lease!, /^act01: SHC005007B7 K \d{8}T\d{6}Z sig02: sha256 /);
    assert.ok(r.lease!.endsWith("\n") && r.lease!.indexOf("\n") === r.lease!.length - 1, "one LF-terminated line");
    assert.equal(xoVerifyLease({ line: r.lease!, ...DEL, trustedKey01Hex: master, now: new Date() }), { ok: true });
    assert.equal(xoVerifyLease({ line: r.lease!, ...DEL, trustedKey01Hex: [vectors.serverKey01], now: new Date() }).ok, false, "the server key alone is no root");
    assert.is(r.lease!.split(" ")[3], r.expiry);
    const days = daysUntil(r.expiry!);
    assert.ok(days > 89.9 && days < 90.1, `lease-days (90): ${r.expiry}`);
    const short = await k.client.call("sign", { machineSn: DEL.sn, days: 3 });
    assert.ok(Math.abs(daysUntil(short.expiry!) - 3) < 0.1, `days 3: ${short.expiry}`);
  });

  it("sign with the lease key and a UUID gives a v1 lease for that UUID", async (c) => {
    const k = await keyring(c, { leaseKey: true });
    const r = await k.client.call("sign", { machineSn: V1_MACHINE.sn, machineUuid: V1_MACHINE.uuid });
    assert.is(r.kind, "v1");
    assert.match(r.lease!, /^act01: SHF00000077 K \d{8}T\d{6}Z sig01: sha256 [0-9a-f]{64} [0-9a-f]{512}\n$/);
    assert.equal(xoVerifyLease({ line: r.lease!, ...V1_MACHINE, trustedKey01Hex: master, now: new Date() }), { ok: true });
    assert.equal(xoVerifyLease({ line: r.lease!, sn: V1_MACHINE.sn, uuid: DEL.uuid, trustedKey01Hex: master, now: new Date() }).ok, false);
  });

  it("sign that would use the lease key without a UUID answers needs_uuid; with uuid_unknown it is not_found", async (c) => {
    const k = await keyring(c, { ...VECTOR_KEYRING, leaseKey: true });
    const before = snapshot(k.dir);
    const r = await k.client.call("sign", { machineSn: V1_MACHINE.sn });
    assert.is(r.needsUuid, true);
    assert.is(r.lease, "", "nothing signed");
    await expectError(k.client.call("sign", { machineSn: V1_MACHINE.sn, uuidUnknown: true }), "not_found", /no delegation for SHF00000077 and its UUID is unknown/);
    const delegated = await k.client.call("sign", { machineSn: DEL.sn });
    assert.equal([delegated.kind, delegated.needsUuid], ["delegated", false], "a delegation carries its own UUID");
    assert.ok(sameSnapshot(before, snapshot(k.dir)), describeDiff(before, snapshot(k.dir)));
  });

  it("sign under an expired delegation is forbidden", async (c) => {
    const expired = olpc.signDelegation({ sn: "SHF00000006", uuid: V1_MACHINE.uuid, delegationExpiry: "20200101T000000Z", rootKey: masterKey, serverPublicKey: serverKey });
    const k = await keyring(c, { ...VECTOR_KEYRING, delegations: [expired] });
    await expectError(k.client.call("sign", { machineSn: "SHF00000006" }), "forbidden", /expired at 20200101T000000Z/);
  });

  it("sign without keys is unavailable; with only a server key and no delegation it is not_found", async (c) => {
    const bare = await keyring(c, {});
    await expectError(bare.client.call("sign", { machineSn: DEL.sn }), "unavailable", /keyring init/);
    await expectError(bare.client.call("sign", { machineSn: DEL.sn, machineUuid: DEL.uuid }), "unavailable");
    for (const component of c.running.splice(0)) await component.stop();
    const k = await keyring(c, { serverKey: true, trustMaster: true });
    await expectError(k.client.call("sign", { machineSn: DEL.sn, machineUuid: DEL.uuid }), "not_found", /no delegation for SHC005007B7 and no lease key/);
  });

  it("sign refuses a malformed UUID", async (c) => {
    const k = await keyring(c, { leaseKey: true });
    await expectError(k.client.call("sign", { machineSn: V1_MACHINE.sn, machineUuid: "not-a-uuid" }), "invalid_input", /machine_uuid/);
  });

  // --- rtc ------------------------------------------------------------------

  it("rtc with the lease key and a UUID gives a sig01 rtc01 over the request's values", async (c) => {
    const k = await keyring(c, { ...VECTOR_KEYRING, leaseKey: true });
    const r = await k.client.call("rtc", { machineSn: V1_MACHINE.sn, machineUuid: V1_MACHINE.uuid, ...RTC });
    assert.is(r.line, r.line!.trimEnd() + "\n");
    assert.match(r.line!, /^rtc01: SHF00000077 20240101T000000Z 0000000007 20300101T000000Z sig01: sha256 /);
    assert.equal(xoVerifyRtc({ line: r.line!, ...V1_MACHINE, trustedKey01Hex: master, expect: { currentrtc: RTC.currentRtc, nonce: "0000000007" } }), { ok: true });
    const now = await k.client.call("rtc", { machineSn: V1_MACHINE.sn, machineUuid: V1_MACHINE.uuid, currentRtc: RTC.currentRtc, nonce: RTC.nonce });
    const newRtc = now.line!.split(" ")[4]!;
    assert.ok(Math.abs(daysUntil(newRtc)) < 0.01, `new RTC is the keyring's clock: ${newRtc}`);
  });

  it("rtc prefers the lease key: without a UUID it answers needs_uuid, with uuid_unknown it signs under the delegation", async (c) => {
    const k = await keyring(c, { ...VECTOR_KEYRING, leaseKey: true });
    const asked = await k.client.call("rtc", { machineSn: DEL.sn, ...RTC });
    assert.equal([asked.needsUuid, asked.line], [true, ""]);
    const r = await k.client.call("rtc", { machineSn: DEL.sn, uuidUnknown: true, ...RTC });
    assert.match(r.line!, /^rtc01: SHC005007B7 20240101T000000Z 0000000007 20300101T000000Z sig02: /);
    const verified = verifyRtcReset(r.line!, master, new Date(), DEL.uuid, DEL.sn); // xo-verify reads sig01 rtc01 only
    assert.ok(verified.ok, verified.ok ? "" : verified.reason);
    await expectError(k.client.call("rtc", { machineSn: V1_MACHINE.sn, uuidUnknown: true, ...RTC }), "not_found", /cannot sign an rtc reset/);
  });

  it("rtc refuses a bad timestamp or count before anything else, even without a UUID", async (c) => {
    const k = await keyring(c, { ...VECTOR_KEYRING, leaseKey: true });
    for (const bad of [{ currentRtc: "2024-01-01" }, { currentRtc: "20241301T000000Z" }, { nonce: "12345678901" }, { nonce: "" }, { newRtc: "tomorrow" }]) {
      await expectError(k.client.call("rtc", { machineSn: V1_MACHINE.sn, ...RTC, ...bad }), "invalid_input");
      await expectError(k.client.call("rtc", { machineSn: V1_MACHINE.sn, machineUuid: V1_MACHINE.uuid, ...RTC, ...bad }), "invalid_input");
    }
  });

  // --- show, init, trust ------------------------------------------------------

  it("show names the keys, their ids, the trusted keys, the delegation count and the directory", async (c) => {
    const k = await keyring(c, { ...VECTOR_KEYRING, leaseKey: true });
    assert.equal(shown(await k.client.call("show", {})), {
      key01: `key01: ${vectors.serverKey01}\n`,
      keyId: keyId(vectors.serverKey01),
      delegations: 1,
      leaseKey01: `key01: ${vectors.masterKey01}\n`,
      leaseKeyId: keyId(vectors.masterKey01),
      trustedKeyIds: [keyId(vectors.masterKey01)], // trusted.key01 and the lease key held here: the same key once
      directory: k.dir,
    });
    for (const component of c.running.splice(0)) await component.stop();
    const bare = await keyring(c, {});
    assert.equal(shown(await bare.client.call("show", {})), { key01: "", keyId: "", delegations: 0, leaseKey01: "", leaseKeyId: "", trustedKeyIds: [], directory: bare.dir });
  });

  it("init creates the server key (0600) once, the lease key when asked, and never replaces a key", async (c) => {
    const k = await keyring(c, {});
    const first = await k.client.call("init", {});
    assert.is(first.created, true);
    const key01 = /^key01: ([0-9a-f]{540})\n$/.exec(first.keys?.key01 ?? "")?.[1];
    assert.ok(key01, first.keys?.key01 ?? "");
    assert.is(first.keys?.keyId, keyId(key01!));
    assert.is(first.keys?.leaseKey01, "");
    assert.is(statSync(join(k.dir, "server.pem")).mode & 0o777, 0o600);
    assert.match(readFileSync(join(k.dir, "server.key01"), "utf8"), new RegExp(`^key01: ${key01}\n`));
    const before = snapshot(k.dir);
    const again = await k.client.call("init", {});
    assert.is(again.created, false);
    assert.is(again.keys?.key01, first.keys?.key01);
    assert.ok(sameSnapshot(before, snapshot(k.dir)), describeDiff(before, snapshot(k.dir)));
    const withLease = await k.client.call("init", { leaseKey: true });
    assert.is(withLease.created, true);
    assert.is(withLease.keys?.key01, first.keys?.key01, "the server key stays");
    assert.match(withLease.keys?.leaseKey01 ?? "", /^key01: [0-9a-f]{540}\n$/);
    assert.is(statSync(join(k.dir, "lease.pem")).mode & 0o777, 0o600);
    const afterLease = snapshot(k.dir);
    assert.is((await k.client.call("init", { leaseKey: true })).created, false);
    assert.ok(sameSnapshot(afterLease, snapshot(k.dir)), describeDiff(afterLease, snapshot(k.dir)));
  });

  it("trust adds key01 lines (or bare keys) to trusted.key01; bad input is refused and changes nothing", async (c) => {
    const k = await keyring(c, { serverKey: true });
    const r = await k.client.call("trust", { text: `# the deployment's keys\nkey01: ${vectors.masterKey01}\n${vectors.serverKey01}\n` });
    assert.equal([...(r.trustedKeyIds ?? [])], [keyId(vectors.masterKey01), keyId(vectors.serverKey01)]);
    assert.is(readFileSync(join(k.dir, "trusted.key01"), "utf8"), `key01: ${vectors.masterKey01}\nkey01: ${vectors.serverKey01}\n`);
    const again = await k.client.call("trust", { text: `key01: ${vectors.masterKey01}\n` });
    assert.is(again.trustedKeyIds?.length, 2, "a key is trusted once");
    const before = snapshot(k.dir);
    await expectError(k.client.call("trust", { text: `key01: ${vectors.masterKey01}\nkey01: ${vectors.masterKey01.toUpperCase()}\n` }), "invalid_input", /input line 2: .*lower-case/);
    await expectError(k.client.call("trust", { text: "# nothing here\n\n" }), "invalid_input", /no key01 lines/);
    await expectError(k.client.call("trust", { text: "key01: 3082" }), "invalid_input", /540 hex digits/);
    assert.ok(sameSnapshot(before, snapshot(k.dir)), describeDiff(before, snapshot(k.dir)));
  });

  // --- import -----------------------------------------------------------------

  it("import keeps delegations from a trusted root for this server key and refuses the rest, line by line", async (c) => {
    const k = await keyring(c, { serverKey: true, trustMaster: true });
    const stranger = generateKeyPairSync("rsa", { modulusLength: 2048, publicExponent: 65537 });
    const del = (sn: string, rootKey = masterKey, serverPublicKey = serverKey, delegationExpiry = "20991231T000000Z") =>
      olpc.signDelegation({ sn, uuid: V1_MACHINE.uuid, delegationExpiry, rootKey, serverPublicKey });
    const text = [
      vectors.delegation, // line 1
      "# a comment\n", // line 2
      del("SHF00000005", serverKey), // line 3: signed by a key nobody trusts
      del("SHF00000006", masterKey, serverKey, "20200101T000000Z"), // line 4: expired
      "del01: SHF00000007 nonsense\n", // line 5
      del("SHF00000008", masterKey, stranger.privateKey), // line 6: issued to another server key
    ].join("");
    const r = await k.client.call("import", { text });
    assert.equal([r.imported, r.replaced], [1, 0]);
    assert.equal(r.refused?.map((x) => x.where), ["line 3", "line 4", "line 5", "line 6"]);
    assert.match(r.refused![0]!.reason!, /signed by an unknown key/);
    assert.match(r.refused![1]!.reason!, /expired/);
    assert.match(r.refused![2]!.reason!, /del01: <SN> <UUID> sig02:/);
    assert.match(r.refused![3]!.reason!, /issued to another key/);
    assert.is(readFileSync(join(k.dir, "delegations", "B7", DEL.sn), "utf8"), vectors.delegation);
    for (const sn of ["SHF00000005", "SHF00000006", "SHF00000007", "SHF00000008"]) assert.not.ok(existsSync(join(k.dir, "delegations", sn.slice(-2), sn)), sn);
    assert.is((await k.client.call("show", {})).delegations, 1);
    const again = await k.client.call("import", { text: vectors.delegation });
    assert.equal([again.imported, again.replaced], [0, 1]);
    // What was imported is there after a restart.
    for (const component of c.running.splice(0)) await component.stop();
    const restarted = await keyring(c, {}, k);
    assert.is((await restarted.client.call("sign", { machineSn: DEL.sn })).kind, "delegated");
  });

  it("import of only refused lines changes nothing; without a server key or trusted keys it is refused whole", async (c) => {
    const k = await keyring(c, { serverKey: true, trustMaster: true });
    const before = snapshot(k.dir);
    const r = await k.client.call("import", { text: vectors.delegation.replace("2f85ec86", "2F85EC86") + "del01:\n" });
    assert.equal([r.imported, r.replaced, r.refused?.length], [0, 0, 2]);
    assert.ok(sameSnapshot(before, snapshot(k.dir)), describeDiff(before, snapshot(k.dir)));
    for (const component of c.running.splice(0)) await component.stop();
    const untrusting = await keyring(c, { serverKey: true });
    await expectError(untrusting.client.call("import", { text: vectors.delegation }), "invalid_input", /no trusted lease keys/);
    for (const component of c.running.splice(0)) await component.stop();
    const keyless = await keyring(c, {});
    await expectError(keyless.client.call("import", { text: vectors.delegation }), "unavailable", /no server key/);
  });

  // --- bad input on the bus ---------------------------------------------------

  it("a bad serial number, garbage bytes or a request whose op does not match its subject are invalid_input, and nothing is written", async (c) => {
    const k = await keyring(c, { ...VECTOR_KEYRING, leaseKey: true });
    const before = snapshot(k.dir);
    for (const machineSn of ["shc005007b7", "SHC/05007B7", "SHC..5007B7", "SHC005007B", "", "../../etc/passwd"]) {
      await expectError(k.client.call("sign", { machineSn, machineUuid: DEL.uuid }), "invalid_input", /machine_sn/);
      await expectError(k.client.call("rtc", { machineSn, machineUuid: DEL.uuid, ...RTC }), "invalid_input", /machine_sn/);
    }
    await expectRawError(c.bus, subjects.keyring("sign"), new Uint8Array([0xff, 0xff, 0xff, 0x0f, 0x01]), "invalid_input");
    const init = sugar.keyring.Request.encode({ init: { leaseKey: true } }).finish();
    await expectRawError(c.bus, subjects.keyring("sign"), init, "invalid_input", /does not match/);
    await expectRawError(c.bus, subjects.keyring("import"), sugar.keyring.Request.encode({}).finish(), "invalid_input", /does not match/);
    assert.ok(sameSnapshot(before, snapshot(k.dir)), describeDiff(before, snapshot(k.dir)));
  });

  t.run();
}
