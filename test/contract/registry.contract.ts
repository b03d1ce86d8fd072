/**
 * The registry's behaviour, run unchanged on every Bus implementation
 * (test/contract/registry.test.ts runs it on each kind of test/contract/buses.ts).
 * A kind whose tools are missing (nats-server), or a missing ssh-keygen for
 * the tests that make real keys, registers its tests as skipped.
 */
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { sugar } from "../../schemas/gen/messages.js";
import { startAuth } from "../../actors/auth/index.js";
import { startRegistry } from "../../actors/registry/index.js";
import type { Component } from "../../src/component.js";
import { subjects } from "../../src/bus/subjects.js";
import type { Bus } from "../../src/bus/types.js";
import { authClient, decodeReply, registryClient, TOKEN_HEADERS, type RegistryClient } from "../../src/codec.js";
import { configWith, type Config } from "../../src/config.js";
import { SugarError } from "../../src/errors.js";
import { silentLogger } from "../../src/log.js";
import { registryOnDisk } from "../support/registry-files.js";
import { describeDiff, sameSnapshot, snapshot } from "../support/disk.js";
import { makeKey } from "../support/keys.js";
import { allOf, requires, testsNeeding, TOOLS } from "../support/requires.js";
import { tempDir } from "../support/tmp.js";
import { waitFor } from "../support/wait.js";
import type { BusFactory, BusKind } from "./buses.js";
import { expectError } from "../support/bus-errors.js";

interface Ctx {
  dir: { path: string; remove(): void };
  bus: Bus;
  config: Config;
  registry: Component;
  client: RegistryClient;
}


export function registryContract(kind: BusKind): void {
  const busName = kind.name;
  const t = suite<Ctx & { site: string }>(`registry[${busName}]`);
  let n = 0;
  let factory: BusFactory | undefined;

  // uvu runs hooks even when every test is skipped: start nothing whose tool is missing.
  t.before(async () => {
    if (kind.requirement.ok) factory = await kind.start();
  });
  t.after(async () => {
    await factory?.cleanup();
  });

  const setup = async (ctx: Ctx & { site: string }, overrides: Record<string, string> = {}) => {
    ctx.dir = tempDir();
    ctx.site = `s${process.pid}x${++n}`; // one site per test: NATS subjects never cross tests
    ctx.bus = await factory!.bus();
    ctx.config = configWith({ root: ctx.dir.path, site: ctx.site, "jabber-url": "school.example", "backup-user": "sugar", "backup-host": "xs.example", ...overrides });
    ctx.registry = await startRegistry({ bus: ctx.bus, config: ctx.config, log: silentLogger });
    ctx.client = registryClient(ctx.bus, ctx.site, { timeoutMs: 3000 });
  };
  const teardown = async (ctx: Ctx) => {
    await ctx.registry?.stop();
    await ctx.bus?.close();
    ctx.dir?.remove();
  };
  t.before.each(async (ctx) => {
    if (!factory) return;
    await setup(ctx);
  });
  t.after.each(async (ctx) => {
    if (!factory) return;
    await teardown(ctx);
  });

  const onBus = testsNeeding(t, kind.requirement);
  const withKeys = testsNeeding(t, allOf(kind.requirement, requires(TOOLS.sshKeygen)));
  /** A test that makes real SSH keys (ssh-keygen). */
  const it = (name: string, fn: (ctx: Ctx & { site: string }) => Promise<void>) => withKeys(`registry[${busName}]: ${name}`, fn);
  /** A test that needs only the bus. */
  const busOnly = (name: string, fn: (ctx: Ctx & { site: string }) => Promise<void>) => onBus(`registry[${busName}]: ${name}`, fn);

  const usersDir = (c: Ctx) => join(c.config.root, "home", "registry", "users");
  /** The files and the index are written by the checkpoint, a moment after a write is acknowledged. */
  const onDisk = (c: Ctx) => registryOnDisk(c.config.root);
  const snap = async (c: Ctx) => (await onDisk(c), snapshot(c.config.root));

  it("register stores one JSON file named by the uid, with the canonical key", async (c) => {
    const key = makeKey(c.dir.path, "ed25519", "kid@xo with spaces");
    const r = await c.client.call("register", { nickname: "Ana María", pubkey: key.line, machineSn: "SHF706002A7", machineUuid: "8BF9AC40-26F8-4BCC-A699-BE51FD366419" });
    assert.is(r.user?.uid, key.uid);
    assert.is(r.created, true);
    assert.is(r.jabberServer, "school.example");
    assert.is(r.backupUrl, "sugar@xs.example:datastore-current");
    await onDisk(c);
    const file = JSON.parse(readFileSync(join(usersDir(c), key.uid), "utf8"));
    assert.is(file.uid, key.uid);
    assert.is(file.nickname, "Ana María");
    assert.is(file.machine_sn, "SHF706002A7");
    assert.is(file.machine_uuid, "8BF9AC40-26F8-4BCC-A699-BE51FD366419");
    assert.is(file.pubkey, `${key.type} ${key.body}`);
    assert.ok(file.created && file.updated);
  });

  it("the same key registering again is idempotent and keeps the uid", async (c) => {
    const key = makeKey(c.dir.path);
    const a = await c.client.call("register", { nickname: "Ana", pubkey: key.line });
    const before = (await snap(c));
    const b = await c.client.call("register", { nickname: "Ana", pubkey: key.body }); // XML-RPC style: bare body
    assert.is(b.user?.uid, a.user?.uid);
    assert.is(b.created, false);
    assert.ok(sameSnapshot(before, (await snap(c))), "an identical registration rewrites nothing");
    // A public key proves nothing: without a login of this uid, registering it again changes nothing stored.
    const renamed = await c.client.call("register", { nickname: "Ana B", pubkey: key.line, machineSn: "SHF706002A7" });
    assert.is(renamed.user?.nickname, "Ana");
    assert.is(renamed.user?.machineSn, "");
    assert.is(renamed.credential, "", "no second credential for a key that is already registered");
    assert.ok(sameSnapshot(before, (await snap(c))), "a re-registration without proof rewrites nothing");
  });

  it("status: registered with the Jabber server, unknown uid is not registered, malformed uid is refused", async (c) => {
    const key = makeKey(c.dir.path);
    await c.client.call("register", { nickname: "Ana", pubkey: key.line });
    const s = await c.client.call("status", { uid: key.uid });
    assert.is(s.registered, true);
    assert.is(s.jabberUrl, "school.example");
    assert.is((await c.client.call("status", { uid: "f".repeat(40) })).registered, false);
    await expectError(c.client.call("status", { uid: "F".repeat(40) }), "invalid_input", /uid/);
    await expectError(c.client.call("status", { uid: "../etc/passwd" }), "invalid_input");
  });

  it("publishes a registered event with the user", async (c) => {
    const seen: sugar.registry.Event[] = [];
    const sub = c.bus.subscribe(subjects.event(c.site, "registered"), (d) => void seen.push(sugar.registry.Event.decode(d)));
    const key = makeKey(c.dir.path);
    await c.client.call("register", { nickname: "Ana", pubkey: key.line });
    const ev = await waitFor("registered event", () => seen[0]);
    assert.is(ev.registered?.user?.uid, key.uid);
    assert.is(ev.registered?.created, true);
    sub.unsubscribe();
  });

  it("remove deletes the file, unregisters, publishes removed; removing again is not_registered", async (c) => {
    const seen: string[] = [];
    const sub = c.bus.subscribe(subjects.event(c.site, "removed"), (d) => void seen.push(sugar.registry.Event.decode(d).removed?.user?.uid ?? ""));
    const key = makeKey(c.dir.path);
    await c.client.call("register", { nickname: "Ana", pubkey: key.line });
    await c.client.call("remove", { uid: key.uid });
    await onDisk(c);
    assert.not.ok(existsSync(join(usersDir(c), key.uid)));
    assert.is((await c.client.call("status", { uid: key.uid })).registered, false);
    await waitFor("removed event", () => seen.includes(key.uid));
    await expectError(c.client.call("remove", { uid: key.uid }), "not_registered");
    sub.unsubscribe();
  });

  it("admin: the role is set and cleared, shown by lookup and list; an unknown uid is not_registered and writes nothing", async (c) => {
    const key = makeKey(c.dir.path);
    await c.client.call("register", { nickname: "Profe", pubkey: key.line });
    assert.is((await c.client.call("lookup", { uid: key.uid })).user?.admin, false);
    assert.equal((await c.client.call("admin", { uid: key.uid, admin: true })).changed, true);
    assert.equal((await c.client.call("admin", { uid: key.uid, admin: true })).changed, false);
    assert.is((await c.client.call("lookup", { uid: key.uid })).user?.admin, true);
    await onDisk(c);
    assert.is(JSON.parse(readFileSync(join(usersDir(c), key.uid), "utf8")).admin, true);
    assert.is((await c.client.call("list", {})).users?.find((u) => u.uid === key.uid)?.admin, true);
    await c.client.call("admin", { uid: key.uid, admin: false });
    assert.is((await c.client.call("lookup", { uid: key.uid })).user?.admin, false);
    const before = (await snap(c));
    await expectError(c.client.call("admin", { uid: "f".repeat(40), admin: true }), "not_registered");
    await expectError(c.client.call("admin", { uid: "../x", admin: true }), "invalid_input");
    assert.ok(sameSnapshot(before, (await snap(c))));
  });

  it("re-flash (approve): a new key with a registered serial number is its own user, a claim and a reflash_pending event; reject and approve settle it with their events", async (c) => {
    const seen: sugar.registry.Event[] = [];
    const subs = (["reflash_pending", "reflash_rejected", "reflash_approved", "removed"] as const).map((k) => c.bus.subscribe(subjects.event(c.site, k), (d) => void seen.push(sugar.registry.Event.decode(d))));
    const old = makeKey(c.dir.path);
    await c.client.call("register", { nickname: "Ana", pubkey: old.line, machineSn: "SHF706002A7" });
    const g = makeKey(c.dir.path);
    const r = await c.client.call("register", { nickname: "Ana 2", pubkey: g.line, machineSn: "SHF706002A7" });
    assert.equal([r.user?.uid, r.created, r.claimedUid, r.approved, r.user?.machineSn], [g.uid, true, old.uid, false, ""]);
    await onDisk(c);
    assert.ok(existsSync(join(c.config.root, "home", "registry", "claims", g.uid)));
    const pending = (await waitFor("reflash_pending", () => seen.find((e) => e.reflashPending)?.reflashPending))!;
    assert.equal([pending.newUid, pending.oldUid, pending.machineSn, pending.newNickname, pending.oldNickname], [g.uid, old.uid, "SHF706002A7", "Ana 2", "Ana"]);
    assert.is((await c.client.call("lookup", { machineSn: "SHF706002A7" })).user?.uid, old.uid, "the old user keeps the serial number meanwhile");
    await c.client.call("reject", { newUid: g.uid });
    await waitFor("reflash_rejected", () => seen.find((e) => e.reflashRejected));
    await onDisk(c);
    assert.not.ok(existsSync(join(c.config.root, "home", "registry", "claims", g.uid)));
    // A third key files a claim that is approved: the old user goes, the serial number is the new uid's.
    const h = makeKey(c.dir.path);
    await c.client.call("register", { nickname: "Ana 3", pubkey: h.line, machineSn: "SHF706002A7" });
    assert.equal(((await c.client.call("claims", {})).claims ?? []).map((x) => x.newUid), [h.uid]);
    await c.client.call("approve", { newUid: h.uid });
    await waitFor("reflash_approved and removed", () => seen.some((e) => e.reflashApproved?.newUid === h.uid) && seen.some((e) => e.removed?.user?.uid === old.uid));
    assert.is((await c.client.call("status", { uid: old.uid })).registered, false);
    assert.is((await c.client.call("lookup", { machineSn: "SHF706002A7" })).user?.uid, h.uid);
    await expectError(c.client.call("approve", { newUid: h.uid }), "not_found", /no re-flash claim/);
    await expectError(c.client.call("reject", { newUid: g.uid }), "not_found");
    for (const s of subs) s.unsubscribe();
  });

  it("a re-registration with a login of its own uid cannot move the key to a serial number another user holds (conflict, nothing written); to a free one it may", async (c) => {
    const auth = await startAuth({ bus: c.bus, config: c.config, log: silentLogger });
    try {
      const login = authClient(c.bus, c.site, { timeoutMs: 3000 });
      const proofOf = async (credential: string) => {
        const h = (await login.call("login", { credential })).headers ?? {};
        return { uid: h[TOKEN_HEADERS.uid], time: h[TOKEN_HEADERS.time], lifetime: h[TOKEN_HEADERS.lifetime], auth: h[TOKEN_HEADERS.auth] };
      };
      const x = makeKey(c.dir.path);
      await c.client.call("register", { nickname: "X", pubkey: x.line, machineSn: "SHF706002A7" });
      const y = makeKey(c.dir.path);
      const ry = await c.client.call("register", { nickname: "Y", pubkey: y.line, machineSn: "SHF706002A8" });
      const before = (await snap(c));
      // Y proves it is Y, but X's serial number is X's: taking it this way would skip the re-flash rules.
      await expectError(c.client.call("register", { nickname: "Y", pubkey: y.line, machineSn: "SHF706002A7", proof: await proofOf(ry.credential!) }), "conflict", /SHF706002A7/);
      // A claimant (its serial number waits for an admin) cannot take the serial number by registering again either.
      const k = makeKey(c.dir.path);
      const rk = await c.client.call("register", { nickname: "X again", pubkey: k.line, machineSn: "SHF706002A7" });
      assert.is(rk.claimedUid, x.uid);
      const withClaim = (await snap(c));
      await expectError(c.client.call("register", { nickname: "X again", pubkey: k.line, machineSn: "SHF706002A7", proof: await proofOf(rk.credential!) }), "conflict");
      assert.ok(sameSnapshot(withClaim, (await snap(c))), describeDiff(withClaim, (await snap(c))));
      assert.ok(!sameSnapshot(before, withClaim), "the claim itself was written");
      assert.is((await c.client.call("lookup", { machineSn: "SHF706002A7" })).user?.uid, x.uid, "X keeps its serial number");
      // A free serial number, or its own again, is Y's to move to.
      const moved = await c.client.call("register", { nickname: "Y", pubkey: y.line, machineSn: "SHF706002A9", proof: await proofOf(ry.credential!) });
      assert.is(moved.user?.machineSn, "SHF706002A9");
      assert.is((await c.client.call("lookup", { machineSn: "SHF706002A9" })).user?.uid, y.uid);
    } finally {
      await auth.stop();
    }
  });

  it("re-flash (refuse): the registration is refused and nothing is written", async (c) => {
    await teardown(c);
    await setup(c, { reflash: "refuse" });
    const old = makeKey(c.dir.path);
    await c.client.call("register", { nickname: "Ana", pubkey: old.line, machineSn: "SHF706002A7" });
    const stranger = makeKey(c.dir.path);
    const before = (await snap(c));
    await expectError(c.client.call("register", { nickname: "X", pubkey: stranger.line, machineSn: "SHF706002A7" }), "conflict", /admin must remove/);
    assert.ok(sameSnapshot(before, (await snap(c))), describeDiff(before, (await snap(c))));
  });

  it("sshkey model: two keys may share a serial number (Sugar's fallback SHF00000000)", async (c) => {
    const a = makeKey(c.dir.path);
    const b = makeKey(c.dir.path);
    await c.client.call("register", { nickname: "A", pubkey: a.line, machineSn: "SHF00000000" });
    await c.client.call("register", { nickname: "B", pubkey: b.line, machineSn: "SHF00000000" });
    assert.is((await c.client.call("status", { uid: a.uid })).registered, true);
    assert.is((await c.client.call("status", { uid: b.uid })).registered, true);
    assert.is((await c.client.call("lookup", { machineSn: "SHF00000000" })).user?.uid, b.uid);
  });

  it("hardware model: unknown serial refused; known serial registers only with the UUID the server knows; with reflash = allow a new key for it replaces the old uid", async (c) => {
    await teardown(c);
    await setup(c, { "identity-model": "hardware", reflash: "allow" });
    const a = makeKey(c.dir.path);
    const b = makeKey(c.dir.path);
    const before = (await snap(c));
    await expectError(c.client.call("register", { nickname: "A", pubkey: a.line, machineSn: "SHF706002A7" }), "unknown_machine");
    await expectError(c.client.call("register", { nickname: "A", pubkey: a.line }), "invalid_input", /machine_sn is required/);
    assert.ok(sameSnapshot(before, (await snap(c))), describeDiff(before, (await snap(c))));
    const m = await c.client.call("machine", { machineSn: "SHF706002A7", machineUuid: "8BF9AC40-26F8-4BCC-A699-BE51FD366419", source: "admin" });
    assert.is(m.created, true);
    await onDisk(c);
    assert.ok(existsSync(join(c.config.root, "home", "registry", "machines", "SHF706002A7")));
    const uuid = "8BF9AC40-26F8-4BCC-A699-BE51FD366419";
    const known = (await snap(c));
    await expectError(c.client.call("register", { nickname: "A", pubkey: a.line, machineSn: "SHF706002A7" }), "unknown_machine", /machine_uuid is missing/);
    await expectError(c.client.call("register", { nickname: "A", pubkey: a.line, machineSn: "SHF706002A7", machineUuid: "00000000-0000-0000-0000-000000000000" }), "unknown_machine", /does not match/);
    assert.ok(sameSnapshot(known, (await snap(c))), describeDiff(known, (await snap(c))));
    const ra = await c.client.call("register", { nickname: "A", pubkey: a.line, machineSn: "SHF706002A7", machineUuid: uuid.toLowerCase() });
    assert.is(ra.user?.uid, a.uid);
    const rb = await c.client.call("register", { nickname: "A again", pubkey: b.line, machineSn: "SHF706002A7", machineUuid: uuid });
    assert.is(rb.user?.uid, b.uid);
    assert.is(rb.replacedUid, a.uid);
    assert.is((await c.client.call("status", { uid: a.uid })).registered, false, "someone registered the same serial number");
    assert.is((await c.client.call("status", { uid: b.uid })).registered, true);
    const machines = (await c.client.call("machines", {})).machines ?? [];
    assert.is(machines[0]?.uid, b.uid);
  });

  it("restart rebuilds the index from the files", async (c) => {
    const key = makeKey(c.dir.path);
    await c.client.call("register", { nickname: "Ana", pubkey: key.line, machineSn: "SHF706002A7", machineUuid: "8bf9ac40-26f8-4bcc-a699-be51fd366419" });
    await c.registry.stop();
    c.registry = await startRegistry({ bus: c.bus, config: c.config, log: silentLogger });
    assert.is((await c.client.call("status", { uid: key.uid })).registered, true);
    assert.is((await c.client.call("lookup", { machineSn: "SHF706002A7" })).user?.uid, key.uid);
    assert.is((await c.client.call("lookup", { machineUuid: "8BF9AC40-26F8-4BCC-A699-BE51FD366419" })).user?.uid, key.uid);
    const list = await c.client.call("list", { offset: 0, limit: 10 });
    assert.is(list.total, 1);
  });

  it("concurrent registrations all land, each durable", async (c) => {
    const keys = Array.from({ length: 30 }, () => makeKey(c.dir.path));
    const replies = await Promise.all(keys.map((k, i) => c.client.call("register", { nickname: `kid ${i}`, pubkey: k.line })));
    assert.equal(new Set(replies.map((r) => r.user?.uid)).size, 30);
    await onDisk(c);
    for (const k of keys) assert.ok(existsSync(join(usersDir(c), k.uid)));
    assert.is((await c.client.call("list", {})).total, 30);
  });

  // Browser devices (register_device): users without an SSH key, so without a Journal backup.
  const MAC = "3C:5A:B4:01:02:03";
  /** [admins, users], as the registry's admins op counts them. */
  const counts = async (c: Ctx) => {
    const a = await c.client.call("admins", {});
    return [a.admins, a.users];
  };
  const macUid = createHash("sha1").update("sugar-device:3c:5a:b4:01:02:03").digest("hex");

  busOnly("register_device without a device_id: a browser user with a random uid, no key, stored and published; each call is a new user", async (c) => {
    const seen: sugar.registry.Event[] = [];
    const sub = c.bus.subscribe(subjects.event(c.site, "registered"), (d) => void seen.push(sugar.registry.Event.decode(d)));
    const r = await c.client.call("registerDevice", { nickname: "Teléfono de Ana" });
    const uid = r.user?.uid ?? "";
    assert.match(uid, /^[0-9a-f]{40}$/);
    assert.equal([r.created, r.user?.kind, r.user?.deviceId, r.user?.pubkey, r.user?.machineSn, r.user?.admin], [true, "browser", "", "", "", false]);
    assert.equal([r.jabberServer, r.backupUrl, r.backupPath], ["school.example", "", ""], "no backup URL for a user with no Journal backup");
    await onDisk(c);
    const file = JSON.parse(readFileSync(join(usersDir(c), uid), "utf8"));
    assert.equal([file.uid, file.nickname, file.kind, file.device_id, file.pubkey, file.admin], [uid, "Teléfono de Ana", "browser", "", "", false]);
    const ev = await waitFor("registered event", () => seen[0]);
    assert.equal([ev.registered?.user?.uid, ev.registered?.user?.kind, ev.registered?.created], [uid, "browser", true]);
    const again = await c.client.call("registerDevice", { nickname: "Teléfono de Ana" });
    assert.is(again.created, true);
    assert.is.not(again.user?.uid, uid, "without a device_id nothing says it is the same device");
    assert.is((await c.client.call("lookup", { uid })).user?.kind, "browser");
    assert.is((await c.client.call("status", { uid })).registered, true);
    sub.unsubscribe();
  });

  busOnly("register_device with a device_id: the uid is SHA-1 of sugar-device:<mac, lower case>; the same device again changes nothing and publishes nothing", async (c) => {
    const seen: string[] = [];
    const sub = c.bus.subscribe(subjects.event(c.site, "registered"), (d) => void seen.push(sugar.registry.Event.decode(d).registered?.user?.uid ?? ""));
    const r = await c.client.call("registerDevice", { nickname: "Tablet 7", deviceId: MAC });
    assert.equal([r.user?.uid, r.user?.deviceId, r.user?.kind, r.created], [macUid, "3c:5a:b4:01:02:03", "browser", true]);
    await onDisk(c);
    assert.is(JSON.parse(readFileSync(join(usersDir(c), macUid), "utf8")).device_id, "3c:5a:b4:01:02:03");
    const before = (await snap(c));
    // A MAC address is no secret: registering it again (another nickname, another case) changes nothing stored.
    const again = await c.client.call("registerDevice", { nickname: "Someone else", deviceId: MAC.toLowerCase() });
    assert.equal([again.user?.uid, again.user?.nickname, again.created, again.credential], [macUid, "Tablet 7", false, ""]);
    assert.ok(sameSnapshot(before, (await snap(c))), describeDiff(before, (await snap(c))));
    // Events arrive in order: once the next registration's event is in, a second one for the device would have been too.
    const next = await c.client.call("registerDevice", { nickname: "Next" });
    await waitFor("the next registered event", () => seen.includes(next.user?.uid ?? "-"));
    assert.equal(seen, [macUid, next.user?.uid]);
    sub.unsubscribe();
  });

  busOnly("register_device: the first registration gets a credential that logs in as that uid (auth actor)", async (c) => {
    const auth = await startAuth({ bus: c.bus, config: c.config, log: silentLogger });
    try {
      const r = await c.client.call("registerDevice", { nickname: "Phone", deviceId: MAC });
      assert.match(r.credential ?? "", /^sugar1\./);
      const login = await authClient(c.bus, c.site, { timeoutMs: 3000 }).call("login", { credential: r.credential! });
      assert.is(login.uid, macUid);
    } finally {
      await auth.stop();
    }
  });

  const badDevices: Array<[string, Record<string, string>, RegExp]> = [
    ["a device_id with five octets", { deviceId: "3c:5a:b4:01:02" }, /device_id .* is not a MAC address/],
    ["a device_id with dashes", { deviceId: "3c-5a-b4-01-02-03" }, /not a MAC address/],
    ["a device_id that is not hex", { deviceId: "3c:5a:b4:01:02:0g" }, /not a MAC address/],
    ["a device_id with a path in it", { deviceId: "../../etc/passwd" }, /not a MAC address/],
    ["a device_id with a newline", { deviceId: "3c:5a:b4:01:02:03\n" }, /not a MAC address/],
    ["Android's placeholder MAC 02:00:00:00:00:00", { deviceId: "02:00:00:00:00:00" }, /placeholder/],
    ["an all-zero MAC", { deviceId: "00:00:00:00:00:00" }, /placeholder/],
    ["an empty nickname", { nickname: "" }, /empty/],
    ["a nickname with control characters", { nickname: "Ana\u0007" }, /control/],
    ["a nickname with a bidi override", { nickname: "Ana\u202Egnp" }, /format characters/],
    ["a nickname over 200 characters", { nickname: "x".repeat(201) }, /200/],
  ];
  for (const [what, fields, re] of badDevices) {
    busOnly(`register_device refuses ${what} (invalid_input) and writes nothing`, async (c) => {
      const before = (await snap(c));
      await expectError(c.client.call("registerDevice", { nickname: "Phone", deviceId: MAC, ...fields }), "invalid_input", re);
      const after = (await snap(c));
      assert.ok(sameSnapshot(before, after), describeDiff(before, after));
      assert.is((await c.client.call("admins", {})).users, 0);
    });
  }

  it("admins counts admins and users, across keys and browsers, changes and a restart", async (c) => {
    assert.equal(await counts(c), [0, 0]);
    const key = makeKey(c.dir.path);
    await c.client.call("register", { nickname: "Profe", pubkey: key.line });
    const phone = await c.client.call("registerDevice", { nickname: "Phone" });
    assert.equal(await counts(c), [0, 2]);
    await c.client.call("admin", { uid: phone.user!.uid!, admin: true });
    await c.client.call("admin", { uid: key.uid, admin: true });
    await c.client.call("admin", { uid: key.uid, admin: true }); // no change: counted once
    assert.equal(await counts(c), [2, 2]);
    await c.client.call("admin", { uid: key.uid, admin: false });
    assert.equal(await counts(c), [1, 2]);
    await c.registry.stop();
    c.registry = await startRegistry({ bus: c.bus, config: c.config, log: silentLogger });
    assert.equal(await counts(c), [1, 2]);
    await c.client.call("remove", { uid: phone.user!.uid! });
    assert.equal(await counts(c), [0, 1]);
  });

  busOnly("a user file written before browser users existed (no kind, no device_id) is a key's user; a file with an unknown kind is skipped", async (c) => {
    await c.registry.stop();
    const old = "a".repeat(40);
    const odd = "b".repeat(40);
    const t = "2020-01-01T00:00:00.000Z";
    writeFileSync(join(usersDir(c), old), JSON.stringify({ uid: old, nickname: "Old", machine_sn: "", machine_uuid: "", pubkey: "ssh-ed25519 AAAA", pending_restore: false, created: t, updated: t }));
    writeFileSync(join(usersDir(c), odd), JSON.stringify({ uid: odd, nickname: "Odd", kind: "robot", created: t, updated: t }));
    c.registry = await startRegistry({ bus: c.bus, config: c.config, log: silentLogger });
    const u = (await c.client.call("lookup", { uid: old })).user;
    assert.equal([u?.nickname, u?.kind, u?.deviceId, u?.admin], ["Old", "", "", false]);
    assert.is((await c.client.call("status", { uid: odd })).registered, false);
  });

  it("first-admin = first-registrant: the first user ever registered is admin, the next is not; a browser can be the first", async (c) => {
    await teardown(c);
    await setup(c, { "first-admin": "first-registrant" });
    const first = makeKey(c.dir.path);
    const r1 = await c.client.call("register", { nickname: "First", pubkey: first.line });
    assert.is(r1.user?.admin, true);
    await onDisk(c);
    assert.is(JSON.parse(readFileSync(join(usersDir(c), first.uid), "utf8")).admin, true);
    const second = makeKey(c.dir.path);
    assert.is((await c.client.call("register", { nickname: "Second", pubkey: second.line })).user?.admin, false);
    assert.is((await c.client.call("registerDevice", { nickname: "Phone" })).user?.admin, false);
    assert.equal(await counts(c), [1, 3]);
    // On a new root a browser may be the first; a key registering after it is not.
    await teardown(c);
    await setup(c, { "first-admin": "first-registrant" });
    assert.is((await c.client.call("registerDevice", { nickname: "Phone first", deviceId: MAC })).user?.admin, true);
    assert.is((await c.client.call("register", { nickname: "Key second", pubkey: first.line })).user?.admin, false);
  });

  it("first-admin = first-registrant: concurrent first registrations (keys and browsers) make exactly one admin", async (c) => {
    await teardown(c);
    await setup(c, { "first-admin": "first-registrant" });
    const keys = Array.from({ length: 12 }, () => makeKey(c.dir.path));
    const replies = await Promise.all([
      ...keys.map((k, i) => c.client.call("register", { nickname: `kid ${i}`, pubkey: k.line })),
      ...Array.from({ length: 12 }, (_, i) => c.client.call("registerDevice", { nickname: `phone ${i}` })),
    ]);
    assert.is(replies.filter((r) => r.user?.admin).length, 1, "one reply says admin");
    assert.equal(await counts(c), [1, 24]);
    await onDisk(c);
    const admins = readdirSync(usersDir(c)).filter((n) => JSON.parse(readFileSync(join(usersDir(c), n), "utf8")).admin === true);
    assert.is(admins.length, 1, "one file says admin");
  });

  busOnly("first-admin = claim (the default): nobody becomes admin by registering", async (c) => {
    assert.is((await c.client.call("registerDevice", { nickname: "Phone" })).user?.admin, false);
    assert.equal(await counts(c), [0, 1]);
  });

  const badRegistrations: Array<[string, () => Record<string, string>, RegExp]> = [
    ["a serial number with /", () => ({ machineSn: "SHF/06002A7" }), /machine_sn/],
    ["a serial number with ..", () => ({ machineSn: "SHF..6002A7" }), /machine_sn/],
    ["a serial number of the wrong length", () => ({ machineSn: "SHF706002A" }), /machine_sn/],
    ["a lower-case serial number on the bus", () => ({ machineSn: "shf706002a7" }), /machine_sn/],
    ["a malformed uuid", () => ({ machineUuid: "not-a-uuid" }), /machine_uuid/],
    ["a public key with a newline", () => ({ pubkey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDKz\nssh-rsa AAAA" }), /one line/],
    ["a public key with authorized_keys options", () => ({ pubkey: 'command="/bin/sh" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHCfCpPd3Ddw6CKU0Rd24+9kfN8bN2SyQkxvQWu2Cc0d' }), /options/],
    ["a public key of an unknown type", () => ({ pubkey: "ssh-foo AAAAB3NzaC1yc2EAAAADAQABAAABAQ==" }), /not supported/],
    ["a public key that is not base64", () => ({ pubkey: "ssh-ed25519 AAAA$$$###" }), /base64/],
    ["a public key whose body is another type", () => ({ pubkey: "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIHCfCpPd3Ddw6CKU0Rd24+9kfN8bN2SyQkxvQWu2Cc0d" }), /says ssh-rsa/],
    ["an empty public key", () => ({ pubkey: "" }), /empty/],
    ["a nickname with control characters", () => ({ nickname: "Ana\u0007" }), /control/],
    ["a nickname over 200 characters", () => ({ nickname: "x".repeat(201) }), /200/],
    ["an empty nickname", () => ({ nickname: "" }), /empty/],
  ];
  for (const [what, fields, re] of badRegistrations) {
    it(`refuses ${what} and writes nothing`, async (c) => {
      const key = makeKey(c.dir.path);
      const before = (await snap(c));
      await expectError(c.client.call("register", { nickname: "Ana", pubkey: key.line, ...fields() }), "invalid_input", re);
      const after = (await snap(c));
      assert.ok(sameSnapshot(before, after), describeDiff(before, after));
    });
  }

  busOnly("a message that is not a valid protobuf request is refused with invalid_input", async (c) => {
    const reply = await c.bus.request(subjects.actor(c.site, "registry", "status"), new Uint8Array([0xff, 0xff, 0xff, 0x0f, 0x01]), { timeoutMs: 3000 });
    try {
      decodeReply(reply);
      assert.unreachable("garbage accepted");
    } catch (err) {
      assert.is((err as SugarError).code, "invalid_input");
    }
  });

  busOnly("a request whose op does not match its subject is refused", async (c) => {
    const data = sugar.registry.Request.encode({ remove: { uid: "a".repeat(40) } }).finish();
    try {
      decodeReply(await c.bus.request(subjects.actor(c.site, "registry", "status"), data, { timeoutMs: 3000 }));
      assert.unreachable("mismatch accepted");
    } catch (err) {
      assert.is((err as SugarError).code, "invalid_input");
    }
  });

  t.run();
}
