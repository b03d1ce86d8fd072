/**
 * The auth actor's browser side (issue 12), run unchanged on every Bus
 * implementation (test/contract/auth-sessions.test.ts): device secrets and
 * sessions, `check` in its order (session, device cookie, token headers,
 * xoid), logout and removal, the first-admin claim code, and the `login`
 * event. A registry actor runs beside it so there are users. Keys are made
 * with node:crypto (Ed25519), so these tests need no ssh-keygen.
 */
import { createHash, generateKeyPairSync, sign, type KeyObject } from "node:crypto";
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { sugar } from "../../schemas/gen/messages.js";
import { startAuth, TOKEN_HEADERS, type AuthOptions } from "../../actors/auth/index.js";
import { startRegistry } from "../../actors/registry/index.js";
import { subjects } from "../../src/bus/subjects.js";
import type { Bus, Subscription } from "../../src/bus/types.js";
import { authClient, registryClient, type AuthClient, type RegistryClient } from "../../src/codec.js";
import type { Component } from "../../src/component.js";
import { configWith, type Config, type OptionName } from "../../src/config.js";
import { SugarError } from "../../src/errors.js";
import { createLogger, type Logger } from "../../src/log.js";
import type { Uid } from "../../src/validate.js";
import { expectError } from "../support/bus-errors.js";
import { describeDiff, sameSnapshot, snapshot } from "../support/disk.js";
import { testsNeeding } from "../support/requires.js";
import { tempDir } from "../support/tmp.js";
import { waitFor } from "../support/wait.js";
import type { BusFactory, BusKind } from "./buses.js";

type Overrides = Partial<Record<OptionName, string | number | boolean>>;
type LoginEvent = { uid: string; how: string; source: string };

interface Stack {
  config: Config;
  bus: Bus;
  registry: RegistryClient;
  auth: AuthClient;
  /** Stops the auth actor and starts it again on the same root (new options, same clock). */
  restartAuth(overrides?: Overrides): Promise<void>;
  stop(): Promise<void>;
}

interface Ctx {
  tmp: ReturnType<typeof tempDir>;
  root: string;
  site: string;
  log: Logger;
  logText: () => string;
  stacks: Stack[];
  /** Added to the auth actor's clock (ms). */
  offset: number;
}

/** An Ed25519 key as Sugar registers one, and what it needs to sign an SSHSIG. */
interface EdKey {
  line: string;
  uid: Uid;
  wire: Buffer;
  privateKey: KeyObject;
}

const sshString = (b: Buffer) => {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(b.length);
  return Buffer.concat([len, b]);
};
const str = (s: string) => sshString(Buffer.from(s, "utf8"));

function edKey(): EdKey {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const raw = publicKey.export({ type: "spki", format: "der" }).subarray(-32);
  const wire = Buffer.concat([str("ssh-ed25519"), sshString(raw)]);
  const body = wire.toString("base64");
  return { line: `ssh-ed25519 ${body} test@sugar`, uid: createHash("sha1").update(body).digest("hex") as Uid, wire, privateKey };
}

/** `ssh-keygen -Y sign -n sugar-server` over `message`, done with node:crypto (PROTOCOL.sshsig). */
function sshsig(key: EdKey, message: string): string {
  const data = Buffer.concat([Buffer.from("SSHSIG"), str("sugar-server"), sshString(Buffer.alloc(0)), str("sha512"), sshString(createHash("sha512").update(message).digest())]);
  const version = Buffer.alloc(4);
  version.writeUInt32BE(1);
  const blob = Buffer.concat([str("ssh-ed25519"), sshString(sign(null, data, key.privateKey))]);
  const raw = Buffer.concat([Buffer.from("SSHSIG"), version, sshString(key.wire), str("sugar-server"), sshString(Buffer.alloc(0)), str("sha512"), sshString(blob)]);
  return `-----BEGIN SSH SIGNATURE-----\n${raw.toString("base64").match(/.{1,70}/g)!.join("\n")}\n-----END SSH SIGNATURE-----\n`;
}

/** Browse's value: Python json.dumps of the colour and the key hash. */
const browseXoid = (pkeyHash: string) => `{"color": "#FF8F00,#00A0FF", "pkey_hash": "${pkeyHash}"}`;

const SESSION = /^s1\.([0-9a-f]{16})\.([0-9a-f]{40})\.(\d+)\.([A-Za-z0-9_-]{43})$/;
const modeOf = (p: string) => statSync(p).mode & 0o777;
const HOUR = 3600_000;

let sites = 0;

export function authSessionsContract(kind: BusKind): void {
  const t = suite<Ctx>(`auth-sessions[${kind.name}]`);
  const test = testsNeeding(t, kind.requirement);
  let factory: BusFactory | undefined;

  t.before(async () => {
    if (kind.requirement.ok) factory = await kind.start({ timeoutMs: 3000 });
  });
  t.after(async () => {
    await factory?.cleanup();
  });

  t.before.each((c) => {
    c.tmp = tempDir("sugar-auth-sessions-");
    c.root = join(c.tmp.path, "root");
    c.site = `s${process.pid}x${++sites}`; // one site per test: on NATS the subjects of two tests never meet
    c.stacks = [];
    c.offset = 0;
    let text = "";
    const stream = { write: (chunk: string) => ((text += chunk), process.env.TEST_VERBOSE ? process.stderr.write(chunk) : true) } as unknown as NodeJS.WritableStream;
    c.log = createLogger({ level: "debug", stream, prefix: "sugar-server" });
    c.logText = () => text;
  });
  t.after.each(async (c) => {
    for (const s of c.stacks.reverse()) await s.stop();
    c.tmp.remove();
  });

  /** A registry and an auth actor (clock: real time + c.offset) for the test's site on a new bus connection. */
  async function start(c: Ctx, overrides: Overrides = {}): Promise<Stack> {
    const configFor = (o: Overrides) => configWith({ root: c.root, site: c.site, "bus-timeout": 3000, ...overrides, ...o });
    const opts: AuthOptions = { now: () => Date.now() + c.offset };
    const bus = await factory!.bus();
    const registryActor = await startRegistry({ bus, config: configFor({}), log: c.log });
    let authActor: Component | undefined = await startAuth({ bus, config: configFor({}), log: c.log }, opts);
    let stopped = false;
    const s: Stack = {
      config: configFor({}),
      bus,
      registry: registryClient(bus, c.site, { timeoutMs: 3000 }),
      auth: authClient(bus, c.site, { timeoutMs: 3000 }),
      async restartAuth(o = {}) {
        await authActor?.stop();
        authActor = undefined;
        authActor = await startAuth({ bus, config: configFor(o), log: c.log }, opts);
      },
      async stop() {
        if (stopped) return;
        stopped = true;
        await authActor?.stop();
        await registryActor.stop();
        await bus.close();
      },
    };
    c.stacks.push(s);
    return s;
  }

  async function register(s: Stack, nickname = "Ana"): Promise<EdKey & { credential: string }> {
    const key = edKey();
    const r = await s.registry.call("register", { nickname, pubkey: key.line });
    assert.is(r.user?.uid, key.uid);
    return { ...key, credential: r.credential ?? "" };
  }

  /** Every login event on the site, decoded, in arrival order. */
  async function loginEvents(s: Stack, c: Ctx): Promise<{ events: LoginEvent[]; sub: Subscription }> {
    const events: LoginEvent[] = [];
    const sub = s.bus.subscribe(subjects.event(c.site, "login"), (data) => {
      const e = sugar.auth.LoginEvent.decode(data);
      events.push({ uid: e.uid, how: e.how, source: e.source });
    });
    await s.bus.flush();
    return { events, sub };
  }

  const authDir = (c: Ctx) => join(c.root, "auth");
  const devicesDir = (c: Ctx) => join(authDir(c), "devices");
  const deviceFile = (c: Ctx, device: string) => join(devicesDir(c), createHash("sha256").update(Buffer.from(device, "base64url")).digest("hex"));
  const sessionParts = (v: string) => {
    const m = SESSION.exec(v);
    assert.ok(m, `not a session: ${v.slice(0, 20)}…`);
    return { kid: m![1]!, uid: m![2]!, expires: Number(m![3]!), mac: m![4]! };
  };
  const joinSession = (p: { kid: string; uid: string; expires: number; mac: string }) => `s1.${p.kid}.${p.uid}.${p.expires}.${p.mac}`;

  // --- device and session ---

  test("auth: device gives a device secret and a session of session-hours; only the secret's SHA-256 is on disk, 0600 in 0700", async (c) => {
    const s = await start(c, { "session-hours": 5 });
    const key = await register(s);
    const before = Date.now();
    const r = await s.auth.call("device", { uid: key.uid, source: "10.0.0.5" });
    assert.match(r.device!, /^[A-Za-z0-9_-]{43}$/);
    assert.is(Buffer.from(r.device!, "base64url").length, 32);
    const p = sessionParts(r.session!);
    assert.is(p.uid, key.uid);
    assert.ok(Math.abs(p.expires * 1000 - (before + 5 * HOUR)) < 5000, `expires ${p.expires}`);
    assert.is(Date.parse(r.sessionExpires!), p.expires * 1000);
    assert.is(p.kid, JSON.parse(readFileSync(join(authDir(c), "token-keys"), "utf8")).keys[0].id, "the session is MACed under the current token key");

    assert.is(modeOf(devicesDir(c)), 0o700);
    assert.equal(readdirSync(devicesDir(c)), [deviceFile(c, r.device!).split("/").pop()]);
    assert.is(modeOf(deviceFile(c, r.device!)), 0o600);
    const stored = JSON.parse(readFileSync(deviceFile(c, r.device!), "utf8")) as Record<string, string>;
    assert.equal(Object.keys(stored), ["uid", "created"]);
    assert.is(stored.uid, key.uid);
    assert.ok(Math.abs(Date.parse(stored.created!) - before) < 5000);
    const disk = readdirSync(authDir(c), { recursive: true }).map((n) => join(authDir(c), String(n))).filter((f) => statSync(f).isFile());
    for (const f of disk) assert.not.ok(readFileSync(f, "utf8").includes(r.device!), `${f} holds the device secret`);

    // A second browser of the same user gets its own secret.
    const second = await s.auth.call("device", { uid: key.uid });
    assert.is.not(second.device, r.device);
    assert.is(readdirSync(devicesDir(c)).length, 2);
  });

  test("auth: check with a session is level device and renews nothing; with the device cookie alone it renews the session", async (c) => {
    const s = await start(c);
    const key = await register(s);
    const r = await s.auth.call("device", { uid: key.uid });
    const bySession = await s.auth.call("check", { session: r.session, device: r.device });
    assert.equal([bySession.uid, bySession.level, bySession.session, bySession.sessionExpires], [key.uid, "device", "", ""]);
    const byDevice = await s.auth.call("check", { device: r.device });
    assert.equal([byDevice.uid, byDevice.level], [key.uid, "device"]);
    assert.is(sessionParts(byDevice.session!).uid, key.uid);
    assert.is(Date.parse(byDevice.sessionExpires!), sessionParts(byDevice.session!).expires * 1000);
    const again = await s.auth.call("check", { session: byDevice.session });
    assert.equal([again.uid, again.level, again.session], [key.uid, "device", ""]);
  });

  test("auth: device for an unregistered or malformed uid is not_registered / invalid_input and writes nothing", async (c) => {
    const s = await start(c);
    await register(s);
    const before = snapshot(c.root);
    await expectError(s.auth.call("device", { uid: "e".repeat(40) }), "not_registered");
    await expectError(s.auth.call("device", { uid: "../../etc/passwd" }), "invalid_input");
    await expectError(s.auth.call("device", { uid: "" }), "invalid_input");
    await expectError(s.auth.call("device", { uid: "E".repeat(40) }), "invalid_input");
    const after = snapshot(c.root);
    assert.ok(sameSnapshot(before, after), describeDiff(before, after));
  });

  for (const field of ["uid", "expires", "kid", "mac"] as const) {
    test(`auth: a session with its ${field} changed is auth_invalid`, async (c) => {
      const s = await start(c);
      const key = await register(s);
      const other = await register(s, "Bea");
      const r = await s.auth.call("device", { uid: key.uid });
      const p = sessionParts(r.session!);
      const { keyId: newKid } = await s.auth.call("rotate", {}); // another key id that is real and still checks
      const changed = {
        uid: other.uid,
        expires: p.expires + 1,
        kid: newKid!,
        mac: (p.mac[0] === "A" ? "B" : "A") + p.mac.slice(1),
      }[field];
      await expectError(s.auth.call("check", { session: joinSession({ ...p, [field]: changed }) }), "auth_invalid");
      if (field === "kid") await expectError(s.auth.call("check", { session: joinSession({ ...p, kid: "0123456789abcdef" }) }), "auth_invalid", /unknown or retired/);
      if (field === "expires") await expectError(s.auth.call("check", { session: joinSession({ ...p, expires: p.expires - 3600 }) }), "auth_invalid");
      assert.is((await s.auth.call("check", { session: r.session })).uid, key.uid, "the real session still checks");
    });
  }

  test("auth: an expired session is auth_expired; with the device cookie it is renewed; session-hours lowered shortens sessions out there", async (c) => {
    const s = await start(c, { "session-hours": 2 });
    const key = await register(s);
    const r = await s.auth.call("device", { uid: key.uid });
    c.offset = 2 * HOUR - 5000;
    assert.is((await s.auth.call("check", { session: r.session })).uid, key.uid, "valid until its expiry");
    c.offset = 2 * HOUR + 1000;
    await expectError(s.auth.call("check", { session: r.session }), "auth_expired");
    const renewed = await s.auth.call("check", { session: r.session, device: r.device });
    assert.equal([renewed.uid, renewed.level], [key.uid, "device"]);
    assert.ok(sessionParts(renewed.session!).expires * 1000 > Date.now() + c.offset + HOUR, "the renewed session runs from the moved clock");
    assert.is((await s.auth.call("check", { session: renewed.session })).uid, key.uid);

    // A session made under session-hours = 2 is refused once session-hours is 1 (it lasts longer than allowed now).
    c.offset = 0;
    const fresh = await s.auth.call("device", { uid: key.uid });
    await s.restartAuth({ "session-hours": 1 });
    await expectError(s.auth.call("check", { session: fresh.session }), "auth_invalid", /session-hours/);
    assert.is(sessionParts((await s.auth.call("check", { device: fresh.device })).session!).expires * 1000 <= Date.now() + HOUR + 1000, true);
  });

  test("auth: session-hours is 1 to 720", async () => {
    for (const bad of [0, 721, -1]) {
      try {
        configWith({ "session-hours": bad });
        assert.unreachable(`session-hours = ${bad} accepted`);
      } catch (err) {
        assert.instance(err, SugarError);
        assert.is((err as SugarError).code, "invalid_config");
      }
    }
    assert.is(configWith({})["session-hours"], 12);
    assert.is(configWith({})["xoid-login"], "on");
  });

  test("auth: a session under a token key rotated out long ago is auth_invalid; the device cookie renews it under the new key", async (c) => {
    const s = await start(c, { "token-seconds": 60 });
    const key = await register(s);
    const r = await s.auth.call("device", { uid: key.uid });
    const { keyId } = await s.auth.call("rotate", {});
    assert.is((await s.auth.call("check", { session: r.session })).uid, key.uid, "a superseded key still checks for token-seconds");
    c.offset = 61_000;
    await expectError(s.auth.call("check", { session: r.session }), "auth_invalid", /unknown or retired/);
    const renewed = await s.auth.call("check", { session: r.session, device: r.device });
    assert.is(sessionParts(renewed.session!).kid, keyId);
  });

  test("auth: a session is not a token and a token is not a session", async (c) => {
    const s = await start(c);
    const key = await register(s);
    const r = await s.auth.call("device", { uid: key.uid });
    const login = await s.auth.call("login", { credential: key.credential });
    const p = sessionParts(r.session!);
    const h = login.headers!;
    // The token's MAC and key id in a session's shape, and the session's in the token's.
    const tokenMac = h[TOKEN_HEADERS.auth]!.split(":")[1]!;
    await expectError(s.auth.call("check", { session: joinSession({ ...p, mac: tokenMac }) }), "auth_invalid");
    await expectError(
      s.auth.call("verify", { uid: key.uid, time: String(p.expires - 3600), lifetime: "3600", auth: `${p.kid}:${p.mac}` }),
      "auth_invalid",
    );
  });

  // --- logout and removal ---

  test("auth: logout revokes that device (its cookie is auth_invalid, its file gone); the user's other devices still work", async (c) => {
    const s = await start(c);
    const key = await register(s);
    const a = await s.auth.call("device", { uid: key.uid });
    const b = await s.auth.call("device", { uid: key.uid });
    assert.ok(await s.auth.call("logout", { device: a.device }));
    await expectError(s.auth.call("check", { device: a.device }), "auth_invalid", /unknown or revoked/);
    assert.throws(() => statSync(deviceFile(c, a.device!)));
    assert.is((await s.auth.call("check", { device: b.device })).uid, key.uid);
    // Logging out again is fine; a malformed value or none is refused, and none of it writes.
    const before = snapshot(c.root);
    assert.ok(await s.auth.call("logout", { device: a.device }));
    await expectError(s.auth.call("logout", { device: "not a device" }), "auth_invalid");
    await expectError(s.auth.call("logout", { device: "x".repeat(8192) }), "auth_invalid");
    await expectError(s.auth.call("logout", {}), "auth_required");
    const after = snapshot(c.root);
    assert.ok(sameSnapshot(before, after), describeDiff(before, after));
  });

  test("auth: a removed user's devices are all revoked; a restart keeps the others", async (c) => {
    const s = await start(c);
    const key = await register(s);
    const other = await register(s, "Bea");
    const mine = [await s.auth.call("device", { uid: key.uid }), await s.auth.call("device", { uid: key.uid })];
    const theirs = await s.auth.call("device", { uid: other.uid });
    await s.registry.call("remove", { uid: key.uid });
    await waitFor("the removed user's devices to go", () => readdirSync(devicesDir(c)).length === 1);
    for (const d of mine) await expectError(s.auth.call("check", { device: d.device }), "auth_invalid");
    await s.restartAuth();
    for (const d of mine) await expectError(s.auth.call("check", { device: d.device }), "auth_invalid");
    assert.is((await s.auth.call("check", { device: theirs.device })).uid, other.uid, "a device survives a restart");
    assert.is((await s.auth.call("check", { session: theirs.session })).uid, other.uid, "so does a session");
  });

  test("auth: a device whose user went while the actor did not hear of it is revoked at its next check", async (c) => {
    const s = await start(c);
    const key = await register(s);
    const d = await s.auth.call("device", { uid: key.uid });
    // The removal happens while no auth actor runs: no event reaches it.
    await s.stop();
    const bus = await factory!.bus();
    const registryOnly = await startRegistry({ bus, config: s.config, log: c.log });
    await registryClient(bus, c.site, { timeoutMs: 3000 }).call("remove", { uid: key.uid });
    await registryOnly.stop();
    await bus.close();
    const s2 = await start(c);
    assert.ok(readdirSync(devicesDir(c)).length === 1, "the device is still on disk");
    await expectError(s2.auth.call("check", { device: d.device }), "auth_invalid", /not registered/);
    await waitFor("the device file to go", () => readdirSync(devicesDir(c)).length === 0);
  });

  // --- bad values ---

  test("auth: cookie values with bad encodings or 8 KB are auth_invalid, never a crash, and write nothing", async (c) => {
    const s = await start(c);
    const key = await register(s);
    const r = await s.auth.call("device", { uid: key.uid });
    const before = snapshot(c.root);
    const big = "a".repeat(8192);
    const std = Buffer.from(r.device!, "base64url").toString("base64"); // with + / and = padding
    const values = [
      big,
      "%".repeat(8192),
      "\0".repeat(100),
      "é".repeat(4096),
      `${r.device}=`,
      std,
      r.device!.slice(0, 42),
      `${r.device}A`,
      ` ${r.device}`,
      r.device!.toUpperCase(),
      `${r.session}.`,
      r.session!.replace(/^s1/, "s2"),
      r.session!.split(".").slice(0, 4).join("."),
      `s1.${"0".repeat(16)}.${key.uid}.99999999999999999999.${"A".repeat(43)}`,
      `s1.${"0".repeat(16)}.${key.uid}.-1.${"A".repeat(43)}`,
      "s1....",
      "%zz",
    ];
    for (const v of values) {
      await expectError(s.auth.call("check", { session: v }), "auth_invalid");
      await expectError(s.auth.call("check", { device: v }), "auth_invalid");
      await expectError(s.auth.call("check", { xoid: v }), "auth_invalid");
      await expectError(s.auth.call("check", { session: v, device: v, xoid: v, token: { uid: v, time: v, lifetime: v, auth: v } }), "auth_invalid");
    }
    // A lone surrogate cannot be encoded as UTF-8: the request itself does not decode (the codec's invalid_input).
    await expectError(s.auth.call("check", { session: "\ud800" }), "invalid_input", /not a valid request/);
    const after = snapshot(c.root);
    assert.ok(sameSnapshot(before, after), describeDiff(before, after));
    assert.is((await s.auth.call("check", { session: r.session })).uid, key.uid, "the actor still answers");
  });

  test("auth: check with nothing is auth_required; token headers are level token; bad or partial ones auth_invalid", async (c) => {
    const s = await start(c);
    const key = await register(s);
    await expectError(s.auth.call("check", {}), "auth_required");
    await expectError(s.auth.call("check", { token: {} }), "auth_required");
    const h = (await s.auth.call("login", { credential: key.credential })).headers!;
    const token = { uid: h[TOKEN_HEADERS.uid], time: h[TOKEN_HEADERS.time], lifetime: h[TOKEN_HEADERS.lifetime], auth: h[TOKEN_HEADERS.auth] };
    const r = await s.auth.call("check", { token });
    assert.equal([r.uid, r.level, r.session, r.sessionExpires], [key.uid, "token", "", ""]);
    await expectError(s.auth.call("check", { token: { ...token, lifetime: "3599" } }), "auth_invalid");
    await expectError(s.auth.call("check", { token: { ...token, auth: "" } }), "auth_invalid");
    c.offset = 3601_000;
    await expectError(s.auth.call("check", { token }), "auth_expired");
  });

  test("auth: check goes session, device cookie, token headers, xoid; a wrong value outweighs one that ran out", async (c) => {
    const s = await start(c);
    const ana = await register(s, "Ana");
    const bea = await register(s, "Bea");
    const cai = await register(s, "Cai");
    const d = await s.auth.call("device", { uid: ana.uid });
    const h = (await s.auth.call("login", { credential: cai.credential })).headers!;
    const token = { uid: h[TOKEN_HEADERS.uid], time: h[TOKEN_HEADERS.time], lifetime: h[TOKEN_HEADERS.lifetime], auth: h[TOKEN_HEADERS.auth] };
    const xoid = browseXoid(bea.uid);
    const level = async (req: sugar.auth.CheckRequest.$Properties) => {
      const r = await s.auth.call("check", req);
      return [r.uid, r.level, r.session ? "renewed" : ""];
    };
    assert.equal(await level({ session: d.session, device: d.device, token, xoid }), [ana.uid, "device", ""]);
    assert.equal(await level({ session: "junk", device: d.device, token, xoid }), [ana.uid, "device", "renewed"]);
    assert.equal(await level({ session: "junk", device: "junk", token, xoid }), [cai.uid, "token", ""]);
    assert.equal(await level({ session: "junk", device: "junk", token: { ...token, auth: "x" }, xoid }), [bea.uid, "xoid", ""]);
    // Expired session, revoked device: the revoked device is the answer (register again, not just renew).
    const gone = await s.auth.call("device", { uid: ana.uid });
    await s.auth.call("logout", { device: gone.device });
    c.offset = 13 * HOUR;
    await expectError(s.auth.call("check", { session: gone.session }), "auth_expired");
    await expectError(s.auth.call("check", { session: gone.session, device: gone.device }), "auth_invalid");
  });

  // --- xoid ---

  test("auth: an xoid naming a registered uid is level xoid, however Browse or a proxy wrapped it", async (c) => {
    const s = await start(c);
    const key = await register(s);
    const raw = browseXoid(key.uid);
    const pythonQuoted = `"${raw.replace(/"/g, '\\"').replace(/,/g, "\\054")}"`; // Python http.cookies
    const forms = [
      raw,
      `  ${raw} `,
      `{"pkey_hash":"${key.uid}"}`,
      `"${raw.replace(/"/g, '\\"')}"`,
      raw.replace(/"/g, '\\"'),
      pythonQuoted,
      encodeURIComponent(raw),
      encodeURIComponent(raw).replace(/%20/g, "+"),
      encodeURIComponent(`"${raw.replace(/"/g, '\\"')}"`),
      `"${encodeURIComponent(raw)}"`,
    ];
    for (const xoid of forms) {
      const r = await s.auth.call("check", { xoid });
      assert.equal([r.uid, r.level, r.session], [key.uid, "xoid", ""], xoid);
    }
  });

  test("auth: an xoid for an unregistered hash, with broken JSON, or a pkey_hash that is not 40 lower-case hex is auth_invalid", async (c) => {
    const s = await start(c);
    const key = await register(s);
    const bad = [
      browseXoid("e".repeat(40)),
      browseXoid(key.uid.slice(0, 39)),
      browseXoid(key.uid + "0"),
      browseXoid(key.uid.toUpperCase()),
      browseXoid(` ${key.uid}`),
      `{"color": "#FF8F00,#00A0FF", "pkey_hash": "${key.uid}"`,
      `{"color": "#FF8F00,#00A0FF" "pkey_hash": "${key.uid}"}`,
      `{'pkey_hash': '${key.uid}'}`,
      `{"pkey_hash": ${JSON.stringify([key.uid])}}`,
      `{"pkey_hash": null}`,
      `{"pkey": "${key.uid}"}`,
      `["${key.uid}"]`,
      `"${key.uid}"`,
      key.uid,
      "null",
      "{}",
      `{"__proto__": {"pkey_hash": "${key.uid}"}}`,
      encodeURIComponent(browseXoid(key.uid)) + "%zz",
      browseXoid(key.uid) + " ".repeat(4096),
    ];
    for (const xoid of bad) await expectError(s.auth.call("check", { xoid }), "auth_invalid");
    assert.is((await s.auth.call("check", { xoid: browseXoid(key.uid) })).uid, key.uid, "the real one still works");
  });

  test("auth: an admin's xoid is still level xoid (the web adapter grants admin only above it); its session is level device", async (c) => {
    const s = await start(c);
    const key = await register(s);
    await s.registry.call("admin", { uid: key.uid, admin: true });
    assert.is((await s.auth.call("check", { xoid: browseXoid(key.uid) })).level, "xoid");
    const d = await s.auth.call("device", { uid: key.uid });
    assert.is((await s.auth.call("check", { session: d.session, xoid: browseXoid(key.uid) })).level, "device");
    assert.is((await s.auth.call("check", { session: "junk", xoid: browseXoid(key.uid) })).level, "xoid", "a broken session does not lift an xoid");
  });

  test("auth: with xoid-login = off an xoid is ignored (auth_required), even for a registered uid", async (c) => {
    const s = await start(c, { "xoid-login": "off" });
    const key = await register(s);
    await expectError(s.auth.call("check", { xoid: browseXoid(key.uid) }), "auth_required");
    const d = await s.auth.call("device", { uid: key.uid });
    assert.is((await s.auth.call("check", { session: d.session, xoid: browseXoid(key.uid) })).level, "device");
    await expectError(s.auth.call("check", { session: "junk", xoid: browseXoid(key.uid) }), "auth_invalid");
  });

  test("auth: an xoid of a user that was removed is auth_invalid", async (c) => {
    const s = await start(c);
    const key = await register(s);
    assert.is((await s.auth.call("check", { xoid: browseXoid(key.uid) })).level, "xoid");
    await s.registry.call("remove", { uid: key.uid });
    await expectError(s.auth.call("check", { xoid: browseXoid(key.uid) }), "auth_invalid", /not registered/);
  });

  // --- the login event ---

  test("auth: a login event for device registration, renewal, credential login, key proof and an xoid (once a session-hours), none for a session check", async (c) => {
    const s = await start(c, { "session-hours": 1 });
    const key = await register(s);
    const { events, sub } = await loginEvents(s, c);
    const d = await s.auth.call("device", { uid: key.uid, source: "10.0.0.9" });
    await waitFor("the registration's login event", () => events.length === 1);
    assert.equal(events[0], { uid: key.uid, how: "device", source: "10.0.0.9" });
    for (let i = 0; i < 3; i++) await s.auth.call("check", { session: d.session });
    await s.auth.call("check", { device: d.device });
    await waitFor("the renewal's login event", () => events.length === 2);
    await s.auth.call("login", { credential: key.credential, source: "10.0.0.10" });
    const ch = await s.auth.call("challenge", { uid: key.uid });
    await s.auth.call("prove", { uid: key.uid, nonce: ch.nonce, signature: sshsig(key, ch.nonce!), source: "10.0.0.11" });
    for (let i = 0; i < 3; i++) await s.auth.call("check", { xoid: browseXoid(key.uid) });
    c.offset = HOUR + 1000;
    await s.auth.call("check", { xoid: browseXoid(key.uid) });
    await waitFor("every login event", () => events.length === 6);
    assert.equal(events.slice(1), [
      { uid: key.uid, how: "device", source: "" },
      { uid: key.uid, how: "credential", source: "10.0.0.10" },
      { uid: key.uid, how: "key", source: "10.0.0.11" },
      { uid: key.uid, how: "xoid", source: "" },
      { uid: key.uid, how: "xoid", source: "" },
    ]);
    // Nothing more arrives: the session checks published nothing (a marker event proves delivery is done).
    await s.auth.call("login", { credential: key.credential, source: "marker" });
    await waitFor("the marker event", () => events.length === 7);
    assert.is(events[6]!.source, "marker");
    await sub.drain();
  });

  test("auth: failed logins, checks and device requests publish no login event", async (c) => {
    const s = await start(c);
    const key = await register(s);
    const { events, sub } = await loginEvents(s, c);
    await expectError(s.auth.call("login", { credential: key.credential.slice(0, -2) }), "auth_invalid");
    await expectError(s.auth.call("check", { device: "A".repeat(43) }), "auth_invalid");
    await expectError(s.auth.call("check", { xoid: browseXoid("e".repeat(40)) }), "auth_invalid");
    await expectError(s.auth.call("device", { uid: "e".repeat(40) }), "not_registered");
    await s.auth.call("login", { credential: key.credential, source: "marker" });
    await waitFor("the marker event", () => events.length > 0);
    assert.equal(events, [{ uid: key.uid, how: "credential", source: "marker" }]);
    await sub.drain();
  });

  // --- the first-admin claim code ---

  test("auth: claim_code gives a 24 h code kept only hashed; claim uses it up and makes the uid admin; a second use is auth_invalid", async (c) => {
    const s = await start(c);
    const key = await register(s);
    const other = await register(s, "Bea");
    const before = Date.now();
    const cc = await s.auth.call("claimCode", {});
    assert.match(cc.code!, /^[A-Za-z0-9_-]{43}$/);
    assert.ok(Math.abs(Date.parse(cc.expires!) - (before + 24 * HOUR)) < 5000, cc.expires!);
    const file = join(authDir(c), "claim-code");
    assert.is(modeOf(file), 0o600);
    const stored = readFileSync(file, "utf8");
    assert.not.ok(stored.includes(cc.code!), "the code is not on disk");
    assert.is(JSON.parse(stored).hash, createHash("sha256").update(Buffer.from(cc.code!, "base64url")).digest("hex"));

    assert.ok(await s.auth.call("claim", { code: cc.code, uid: key.uid, source: "10.0.0.3" }));
    assert.is((await s.registry.call("lookup", { uid: key.uid })).user?.admin, true);
    assert.throws(() => statSync(file), "a used code leaves the disk");
    await expectError(s.auth.call("claim", { code: cc.code, uid: other.uid, source: "10.0.0.3" }), "auth_invalid");
    assert.is((await s.registry.call("lookup", { uid: other.uid })).user?.admin, false);
    assert.match(c.logText(), new RegExp(`${key.uid} used the first-admin claim code`));
  });

  test("auth: a newer claim code replaces the earlier one; a code survives a restart; an expired one is auth_invalid", async (c) => {
    const s = await start(c);
    const key = await register(s);
    const first = await s.auth.call("claimCode", {});
    const second = await s.auth.call("claimCode", {});
    await expectError(s.auth.call("claim", { code: first.code, uid: key.uid }), "auth_invalid");
    await s.restartAuth();
    c.offset = 24 * HOUR - 60_000;
    // An unregistered uid does not use the code up.
    await expectError(s.auth.call("claim", { code: second.code, uid: "e".repeat(40) }), "not_registered");
    await expectError(s.auth.call("claim", { code: second.code, uid: "nope" }), "invalid_input");
    c.offset = 24 * HOUR + 1000;
    await expectError(s.auth.call("claim", { code: second.code, uid: key.uid }), "auth_invalid", /expired/);
    assert.is((await s.registry.call("lookup", { uid: key.uid })).user?.admin, false);
    c.offset = 24 * HOUR - 60_000;
    assert.ok(await s.auth.call("claim", { code: second.code, uid: key.uid }), "still good before its expiry, after a restart");
    assert.is((await s.registry.call("lookup", { uid: key.uid })).user?.admin, true);
  });

  test("auth: claim with no code made yet, an empty, malformed or 8 KB code is auth_invalid and writes nothing", async (c) => {
    const s = await start(c);
    const key = await register(s);
    const before = snapshot(c.root);
    for (const code of ["", "A".repeat(43), "x", "%".repeat(8192), "A".repeat(8192)]) await expectError(s.auth.call("claim", { code, uid: key.uid }), "auth_invalid");
    const after = snapshot(c.root);
    assert.ok(sameSnapshot(before, after), describeDiff(before, after));
  });

  test("auth: 1000 wrong claim codes from one address: rate_limited after, the right code too; another address still claims", async (c) => {
    const s = await start(c);
    const key = await register(s);
    const cc = await s.auth.call("claimCode", {});
    const wrong = Buffer.alloc(32, 7).toString("base64url");
    const codes = new Map<string, number>();
    for (let i = 0; i < 1001; i++) {
      try {
        await s.auth.call("claim", { code: wrong, uid: key.uid, source: "192.0.2.66" });
        codes.set("ok", (codes.get("ok") ?? 0) + 1);
      } catch (err) {
        const code = (err as SugarError).code;
        codes.set(code, (codes.get(code) ?? 0) + 1);
      }
    }
    assert.equal([...codes], [["auth_invalid", 1000], ["rate_limited", 1]]);
    await expectError(s.auth.call("claim", { code: cc.code, uid: key.uid, source: "192.0.2.66" }), "rate_limited");
    assert.ok(await s.auth.call("claim", { code: cc.code, uid: key.uid, source: "2001:db8::1" }));
    assert.is((await s.registry.call("lookup", { uid: key.uid })).user?.admin, true);
  });

  test("auth: no device secret, session MAC or claim code reaches a log line or an error message", async (c) => {
    const s = await start(c);
    const key = await register(s);
    const messages: string[] = [];
    const fail = async (p: Promise<unknown>) => {
      try {
        await p;
      } catch (err) {
        messages.push((err as Error).message);
      }
    };
    const d = await s.auth.call("device", { uid: key.uid, source: "10.0.0.1" });
    const renewed = await s.auth.call("check", { device: d.device });
    const p = sessionParts(d.session!);
    await fail(s.auth.call("check", { session: joinSession({ ...p, expires: p.expires + 1 }) }));
    await fail(s.auth.call("check", { session: d.session!.slice(0, -1), device: d.device!.slice(0, -1) }));
    await fail(s.auth.call("logout", { device: d.device!.slice(0, -1) }));
    const cc = await s.auth.call("claimCode", {});
    await fail(s.auth.call("claim", { code: cc.code!.slice(0, -1) + (cc.code!.endsWith("A") ? "B" : "A"), uid: key.uid }));
    await s.auth.call("claim", { code: cc.code, uid: key.uid });
    await fail(s.auth.call("claim", { code: cc.code, uid: key.uid }));
    await s.auth.call("logout", { device: d.device });
    await fail(s.auth.call("check", { device: d.device }));
    const text = c.logText() + messages.join("\n");
    assert.ok(messages.length >= 6);
    for (const secret of [d.device!, p.mac, sessionParts(renewed.session!).mac, cc.code!]) assert.not.ok(text.includes(secret), "a secret is in the log or an error message");
  });

  test("auth: an unreadable device file or claim-code file is warned about and works as nothing", async (c) => {
    const s = await start(c);
    const key = await register(s);
    const d = await s.auth.call("device", { uid: key.uid });
    const cc = await s.auth.call("claimCode", {});
    writeFileSync(deviceFile(c, d.device!), "{not json");
    writeFileSync(join(devicesDir(c), "not-a-hash"), "{}");
    writeFileSync(join(authDir(c), "claim-code"), JSON.stringify({ hash: "short", expires: "never" }));
    await s.restartAuth();
    await expectError(s.auth.call("check", { device: d.device }), "auth_invalid");
    await expectError(s.auth.call("claim", { code: cc.code, uid: key.uid }), "auth_invalid");
    assert.match(c.logText(), /is unreadable/);
    assert.is((await s.auth.call("check", { session: d.session })).uid, key.uid, "sessions need no device file");
  });

  t.run();
}
