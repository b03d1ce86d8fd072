/**
 * The auth actor's contract, run unchanged on every Bus implementation
 * (test/contract/auth.test.ts): credentials, token headers, key rotation,
 * SSHSIG challenges with real `ssh-keygen -Y sign` signatures, the
 * per-source failure limit, registry events, and what lands on disk. A
 * registry actor runs beside it so there are users to prove.
 */
import { execFileSync } from "node:child_process";
import { createHash, sign as cryptoSign } from "node:crypto";
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { startAuth, TOKEN_HEADERS, type AuthOptions } from "../../actors/auth/index.js";
import { startRegistry } from "../../actors/registry/index.js";
import type { Bus } from "../../src/bus/types.js";
import { authClient, registryClient, type AuthClient, type RegistryClient } from "../../src/codec.js";
import type { Component } from "../../src/component.js";
import { configWith, type Config, type OptionName } from "../../src/config.js";
import { SugarError } from "../../src/errors.js";
import type { Logger } from "../../src/log.js";
import { describeDiff, sameSnapshot, snapshot } from "../support/disk.js";
import { makeKey, type TestKey } from "../support/keys.js";
import { testsNeeding, requires, TOOLS } from "../support/requires.js";
import { tempDir } from "../support/tmp.js";
import { waitFor } from "../support/wait.js";
import type { BusFactory, BusKind } from "./buses.js";
import { expectError } from "../support/bus-errors.js";
import { captureLogger } from "../support/log.js";

type Overrides = Partial<Record<OptionName, string | number | boolean>>;

interface Stack {
  config: Config;
  bus: Bus;
  registry: RegistryClient;
  auth: AuthClient;
  /** Stops the auth actor alone (to restart it on the same root). */
  stopAuth(): Promise<void>;
  stop(): Promise<void>;
}

interface Ctx {
  tmp: ReturnType<typeof tempDir>;
  root: string;
  site: string;
  log: Logger;
  logText: () => string;
  stacks: Stack[];
  /** Added to the auth actor's clock (ms) when a test starts it with `clocked`. */
  offset: number;
}

let sites = 0;


/** `ssh-keygen -Y sign` over a file holding exactly `text`: what a client does with a nonce. */
function sshSign(dir: string, key: TestKey, text: string, namespace = "sugar-server", extra: string[] = []): string {
  const file = join(dir, `msg-${process.pid}-${++sites}`);
  writeFileSync(file, text);
  execFileSync("ssh-keygen", ["-Y", "sign", "-n", namespace, ...extra, "-f", key.privatePath, file], { stdio: "ignore" });
  return readFileSync(`${file}.sig`, "utf8");
}

const sshString = (b: Buffer) => {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(b.length);
  return Buffer.concat([len, b]);
};
const str = (s: string) => sshString(Buffer.from(s, "utf8"));

/** An SSHSIG envelope built by hand (PROTOCOL.sshsig), armored as ssh-keygen armors it. */
function armor(fields: { publicKey: Buffer; namespace?: string; hash?: string; algorithm: string; blob: Buffer; version?: number }): string {
  const version = Buffer.alloc(4);
  version.writeUInt32BE(fields.version ?? 1);
  const raw = Buffer.concat([
    Buffer.from("SSHSIG"),
    version,
    sshString(fields.publicKey),
    str(fields.namespace ?? "sugar-server"),
    sshString(Buffer.alloc(0)),
    str(fields.hash ?? "sha512"),
    sshString(Buffer.concat([str(fields.algorithm), sshString(fields.blob)])),
  ]);
  const b64 = raw.toString("base64").match(/.{1,70}/g)!.join("\n");
  return `-----BEGIN SSH SIGNATURE-----\n${b64}\n-----END SSH SIGNATURE-----\n`;
}

/** What the key signs for a message (PROTOCOL.sshsig), built independently of the actor's code. */
function sshsigData(message: string, namespace = "sugar-server", hash = "sha512"): Buffer {
  return Buffer.concat([Buffer.from("SSHSIG"), str(namespace), sshString(Buffer.alloc(0)), str(hash), sshString(createHash(hash).update(message).digest())]);
}

/** Decodes an armored signature, lets `edit` change the bytes, armors again. */
function reArmor(sig: string, edit: (raw: Buffer) => Buffer): string {
  const body = sig.trim().split("\n").slice(1, -1).join("");
  const b64 = edit(Buffer.from(body, "base64")).toString("base64").match(/.{1,70}/g)!.join("\n");
  return `-----BEGIN SSH SIGNATURE-----\n${b64}\n-----END SSH SIGNATURE-----\n`;
}

/** A credential's three parts, its payload decoded. */
function splitCredential(credential: string): { payload: Record<string, unknown>; mac: string } {
  const [prefix, payload, mac] = credential.split(".");
  assert.is(prefix, "sugar1");
  return { payload: JSON.parse(Buffer.from(payload!, "base64url").toString("utf8")), mac: mac! };
}
const joinCredential = (payload: Record<string, unknown> | string, mac: string) =>
  `sugar1.${Buffer.from(typeof payload === "string" ? payload : JSON.stringify(payload)).toString("base64url")}.${mac}`;

/** The four header values as VerifyRequest fields. */
const presented = (headers: Record<string, string>, over: Partial<Record<"uid" | "time" | "lifetime" | "auth" | "wantUid", string>> = {}) => ({
  uid: headers[TOKEN_HEADERS.uid] ?? "",
  time: headers[TOKEN_HEADERS.time] ?? "",
  lifetime: headers[TOKEN_HEADERS.lifetime] ?? "",
  auth: headers[TOKEN_HEADERS.auth] ?? "",
  ...over,
});

const modeOf = (p: string) => statSync(p).mode & 0o777;

export function authContract(kind: BusKind): void {
  const t = suite<Ctx>(`auth[${kind.name}]`);
  // Every test makes real keys with ssh-keygen; the NATS half needs nats-server too.
  const test = testsNeeding(t, kind.requirement.ok ? requires(TOOLS.sshKeygen) : kind.requirement);
  let factory: BusFactory | undefined;

  t.before(async () => {
    if (kind.requirement.ok) factory = await kind.start({ timeoutMs: 3000 });
  });
  t.after(async () => {
    await factory?.cleanup();
  });

  t.before.each((c) => {
    c.tmp = tempDir("sugar-auth-");
    c.root = join(c.tmp.path, "root");
    c.site = `a${process.pid}x${++sites}`; // one site per test: on NATS the subjects of two tests never meet
    c.stacks = [];
    c.offset = 0;
    const captured = captureLogger();
    c.log = captured.log;
    c.logText = captured.text;
  });
  t.after.each(async (c) => {
    for (const s of c.stacks.reverse()) await s.stop();
    c.tmp.remove();
  });

  /** A registry and an auth actor for the test's site on a new bus connection. */
  async function start(c: Ctx, overrides: Overrides = {}, opts: AuthOptions = {}): Promise<Stack> {
    const config = configWith({ root: c.root, site: c.site, "bus-timeout": 3000, ...overrides });
    const bus = await factory!.bus();
    const registryActor = await startRegistry({ bus, config, log: c.log });
    let authActor: Component | undefined = await startAuth({ bus, config, log: c.log }, opts);
    let stopped = false;
    const s: Stack = {
      config,
      bus,
      registry: registryClient(bus, c.site, { timeoutMs: 3000 }),
      auth: authClient(bus, c.site, { timeoutMs: 3000 }),
      async stopAuth() {
        await authActor?.stop();
        authActor = undefined;
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
  /** The auth actor's clock runs `c.offset` ms ahead of the real one. */
  const clocked = (c: Ctx): AuthOptions => ({ now: () => Date.now() + c.offset });

  async function register(c: Ctx, s: Stack, type: "ed25519" | "rsa" | "dsa" | "ecdsa" = "ed25519", machineSn?: string): Promise<TestKey> {
    const key = makeKey(c.tmp.path, type);
    await s.registry.call("register", { nickname: "Ana", pubkey: key.line, ...(machineSn ? { machineSn } : {}) });
    return key;
  }
  async function credentialFor(c: Ctx, s: Stack, machineSn = "SHF706002A7"): Promise<{ key: TestKey; credential: string }> {
    const key = await register(c, s, "ed25519", machineSn);
    const { credential } = await s.auth.call("issue", { uid: key.uid, machineSn });
    return { key, credential: credential! };
  }
  /** Challenge, sign with ssh-keygen, prove. */
  async function proveKey(c: Ctx, s: Stack, key: TestKey, more: { credential?: boolean; source?: string } = {}) {
    const ch = await s.auth.call("challenge", { uid: key.uid });
    return s.auth.call("prove", { uid: key.uid, nonce: ch.nonce, signature: sshSign(c.tmp.path, key, ch.nonce!), source: "10.1.1.1", ...more });
  }
  const authDir = (c: Ctx) => join(c.root, "auth");
  const secretFile = (c: Ctx, uid: string) => join(authDir(c), "clients", uid);

  // --- issue and login ---

  test("auth: issue gives a sugar1 credential; login trades it for token headers that verify", async (c) => {
    const s = await start(c);
    const { key, credential } = await credentialFor(c, s);
    assert.match(credential, /^sugar1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$/);
    const { payload } = splitCredential(credential);
    assert.equal(Object.keys(payload), ["v", "uid", "sn", "iat", "kid"]);
    assert.equal([payload.uid, payload.sn], [key.uid, "SHF706002A7"]);
    assert.ok(Math.abs((payload.iat as number) - Date.now() / 1000) < 60);
    assert.match(String(payload.kid), /^[0-9a-f]{16}$/);

    const before = Date.now();
    const r = await s.auth.call("login", { credential, source: "10.0.0.1" });
    assert.equal([r.uid, r.machineSn], [key.uid, "SHF706002A7"]);
    assert.equal(Object.keys(r.headers ?? {}).sort(), Object.values(TOKEN_HEADERS).sort());
    assert.is(r.headers![TOKEN_HEADERS.uid], key.uid);
    assert.is(r.headers![TOKEN_HEADERS.lifetime], "3600");
    assert.ok(Math.abs(Number(r.headers![TOKEN_HEADERS.time]) - before / 1000) < 5);
    assert.match(r.headers![TOKEN_HEADERS.auth]!, /^[0-9a-f]{16}:[A-Za-z0-9_-]{43}$/);
    const expires = Date.parse(r.expires!);
    assert.ok(Math.abs(expires - (Number(r.headers![TOKEN_HEADERS.time]) + 3600) * 1000) < 1, r.expires!);

    const v = await s.auth.call("verify", presented(r.headers!));
    assert.equal([v.uid, v.expires], [key.uid, r.expires]);
    assert.is((await s.auth.call("verify", presented(r.headers!, { wantUid: key.uid }))).uid, key.uid);
    await expectError(s.auth.call("verify", presented(r.headers!, { wantUid: "e".repeat(40) })), "forbidden");
    // The credential keeps working: it is long-lived; tokens are what expire.
    assert.is((await s.auth.call("login", { credential, source: "10.0.0.1" })).uid, key.uid);
  });

  test("auth: issue needs a valid, registered uid and a valid serial number", async (c) => {
    const s = await start(c);
    await expectError(s.auth.call("issue", { uid: "e".repeat(40) }), "not_registered");
    await expectError(s.auth.call("issue", { uid: "nope" }), "invalid_input");
    const key = await register(c, s);
    await expectError(s.auth.call("issue", { uid: key.uid, machineSn: "shf706002a7" }), "invalid_input");
    const { credential } = await s.auth.call("issue", { uid: key.uid });
    assert.is(splitCredential(credential!).payload.sn, "");
    assert.is((await s.auth.call("login", { credential })).machineSn, "");
  });

  for (const field of ["uid", "sn", "iat", "kid", "v"] as const) {
    test(`auth: a credential with its ${field} changed is auth_invalid`, async (c) => {
      const s = await start(c);
      const { credential } = await credentialFor(c, s);
      // Another user with a credential of its own: changing the uid to a real one must fail too.
      const other = await credentialFor(c, s, "SHF706002A8");
      const { payload, mac } = splitCredential(credential);
      const otherPayload = splitCredential(other.credential).payload;
      const changed: Record<string, unknown> = {
        uid: otherPayload.uid,
        sn: "SHF706002A8",
        iat: (payload.iat as number) + 1,
        kid: otherPayload.kid,
        v: 2,
      };
      const forged = joinCredential({ ...payload, [field]: changed[field] }, mac);
      await expectError(s.auth.call("login", { credential: forged, source: "10.0.0.1" }), "auth_invalid");
      // Neither the real owner nor the other user is harmed by the attempt.
      assert.is((await s.auth.call("login", { credential })).uid, payload.uid);
      assert.is((await s.auth.call("login", { credential: other.credential })).uid, otherPayload.uid);
    });
  }

  test("auth: a credential whose payload is not the canonical JSON is auth_invalid, even with its fields intact", async (c) => {
    const s = await start(c);
    const { credential } = await credentialFor(c, s);
    const { payload, mac } = splitCredential(credential);
    for (const text of [JSON.stringify(payload, null, 1), JSON.stringify({ ...payload, extra: 1 }), JSON.stringify({ kid: payload.kid, ...payload })]) {
      if (text === JSON.stringify(payload)) continue; // key order unchanged: not a test of anything
      await expectError(s.auth.call("login", { credential: joinCredential(text, mac) }), "auth_invalid");
    }
    for (const garbage of ["sugar1..", "sugar2" + credential.slice(6), credential + ".x", "x".repeat(5000), `sugar1.${"%%%"}.${mac}`]) {
      await expectError(s.auth.call("login", { credential: garbage }), "auth_invalid");
    }
    await expectError(s.auth.call("login", { credential: "" }), "auth_required");
  });

  test("auth: a credential with duplicate keys, unicode escapes, a float, negative or huge iat, or base64url that is not canonical is auth_invalid", async (c) => {
    const s = await start(c);
    const { credential } = await credentialFor(c, s);
    const [, body, mac] = credential.split(".") as [string, string, string];
    const text = Buffer.from(body, "base64url").toString("utf8");
    const { payload } = splitCredential(credential);
    const payloads = [
      text.replace('"v":1,', '"v":1,"uid":"' + "e".repeat(40) + '",'), // duplicate key: JSON.parse keeps the last one
      text.replace(`"uid":"${payload.uid}"`, `"uid":"\\u00${(payload.uid as string).charCodeAt(0).toString(16)}${(payload.uid as string).slice(1)}"`),
      text.replace(`"iat":${payload.iat}`, `"iat":${payload.iat}.0`),
      text.replace(`"iat":${payload.iat}`, `"iat":-${payload.iat}`),
      text.replace(`"iat":${payload.iat}`, `"iat":1e400`),
      text.replace(`"iat":${payload.iat}`, `"iat":9007199254740993`),
      text.replace(`"iat":${payload.iat}`, `"iat":${payload.iat}\n`),
    ];
    for (const p of payloads) {
      assert.is.not(p, text);
      await expectError(s.auth.call("login", { credential: joinCredential(p, mac) }), "auth_invalid");
    }
    const std = (b64url: string) => Buffer.from(b64url, "base64url").toString("base64"); // with + / and = padding
    const strayBits = (b64url: string) => b64url.slice(0, -1) + String.fromCharCode(b64url.charCodeAt(b64url.length - 1) ^ 1);
    for (const bad of [`sugar1.${body}=.${mac}`, `sugar1.${body}.${mac}=`, `sugar1.${std(body)}.${std(mac)}`, `sugar1.${body}.${strayBits(mac)}`, `sugar1.${body} .${mac}`, ` ${credential}`]) {
      if (bad === credential) continue;
      await expectError(s.auth.call("login", { credential: bad }), "auth_invalid");
    }
    assert.is((await s.auth.call("login", { credential })).uid, payload.uid, "the real one still works");
  });

  test("auth: a credential with a wrong MAC is auth_invalid", async (c) => {
    const s = await start(c);
    const { credential } = await credentialFor(c, s);
    const other = await credentialFor(c, s, "SHF706002A8");
    const { payload, mac } = splitCredential(credential);
    const flipped = (mac[0] === "A" ? "B" : "A") + mac.slice(1);
    await expectError(s.auth.call("login", { credential: joinCredential(payload, flipped) }), "auth_invalid");
    await expectError(s.auth.call("login", { credential: joinCredential(payload, splitCredential(other.credential).mac) }), "auth_invalid");
    await expectError(s.auth.call("login", { credential: joinCredential(payload, Buffer.alloc(32).toString("base64url")) }), "auth_invalid");
  });

  test("auth: a credential with a truncated MAC is auth_invalid", async (c) => {
    const s = await start(c);
    const { credential } = await credentialFor(c, s);
    for (const cut of [1, 2, 10, 42, 43]) await expectError(s.auth.call("login", { credential: credential.slice(0, credential.length - cut) }), "auth_invalid");
  });

  test("auth: a removed user's secret is revoked and its credential is auth_invalid, also after the key registers again", async (c) => {
    const s = await start(c);
    const { key, credential } = await credentialFor(c, s);
    const generation = () => (JSON.parse(readFileSync(secretFile(c, key.uid), "utf8")) as { generation: number }).generation;
    assert.is(generation(), 1);
    await s.registry.call("remove", { uid: key.uid });
    await waitFor("the removed user's secret to be revoked", () => generation() === 2);
    await expectError(s.auth.call("login", { credential }), "auth_invalid");
    const again = await s.registry.call("register", { nickname: "Ana", pubkey: key.line });
    assert.ok(again.credential);
    await expectError(s.auth.call("login", { credential }), "auth_invalid");
    assert.is((await s.auth.call("login", { credential: again.credential })).uid, key.uid);
  });

  test("auth: a key's first registration gets a working credential and writes nothing under <root>/auth/clients", async (c) => {
    const s = await start(c);
    const key = makeKey(c.tmp.path);
    const r = await s.registry.call("register", { nickname: "Ana", pubkey: key.line });
    assert.match(r.credential ?? "", /^sugar1\./);
    assert.equal(readdirSync(join(authDir(c), "clients")), []);
    assert.is((await s.auth.call("login", { credential: r.credential })).uid, key.uid);
    // Restarted, the derived secret is the same.
    await s.stopAuth();
    const a = await startAuth({ bus: s.bus, config: s.config, log: c.log });
    c.stacks.push({ ...s, stop: () => a.stop(), stopAuth: () => a.stop() });
    assert.is((await s.auth.call("login", { credential: r.credential })).uid, key.uid);
  });

  test("auth: a uid replaced by a re-flashed machine (hardware model, reflash = allow) loses its secret", async (c) => {
    const s = await start(c, { "identity-model": "hardware", reflash: "allow" });
    await s.registry.call("machine", { machineSn: "SHF706002A7" });
    const { key, credential } = await credentialFor(c, s);
    const newKey = await register(c, s, "ed25519", "SHF706002A7");
    await waitFor("the replaced uid's secret to be revoked", async () => {
      try {
        await s.auth.call("login", { credential });
        return false;
      } catch (err) {
        return (err as { code?: string }).code === "auth_invalid";
      }
    });
    await expectError(s.auth.call("challenge", { uid: key.uid }), "not_registered");
    assert.is((await proveKey(c, s, newKey)).uid, newKey.uid);
  });

  test("auth: issuing again makes a new secret: the old credential is auth_invalid, the new one works", async (c) => {
    const s = await start(c);
    const { key, credential } = await credentialFor(c, s);
    const first = readFileSync(secretFile(c, key.uid), "utf8");
    const again = await s.auth.call("issue", { uid: key.uid, machineSn: "SHF706002A7" });
    assert.is.not(readFileSync(secretFile(c, key.uid), "utf8"), first);
    assert.is.not(splitCredential(again.credential!).payload.kid, splitCredential(credential).payload.kid);
    await expectError(s.auth.call("login", { credential }), "auth_invalid");
    assert.is((await s.auth.call("login", { credential: again.credential })).uid, key.uid);
  });

  test("auth: prove with credential: true replaces the secret: the old credential is auth_invalid", async (c) => {
    const s = await start(c);
    const { key, credential } = await credentialFor(c, s);
    const p = await proveKey(c, s, key, { credential: true });
    assert.match(p.credential!, /^sugar1\./);
    assert.is(splitCredential(p.credential!).payload.sn, "SHF706002A7", "the serial number comes from the registry");
    await expectError(s.auth.call("login", { credential }), "auth_invalid");
    assert.is((await s.auth.call("login", { credential: p.credential! })).uid, key.uid);
    assert.is((await proveKey(c, s, key)).credential, "", "no credential unless asked");
  });

  // --- token headers ---

  for (const field of ["uid", "time", "lifetime"] as const) {
    test(`auth: token headers with a changed ${field} are auth_invalid`, async (c) => {
      const s = await start(c);
      const { credential } = await credentialFor(c, s);
      const other = await register(c, s);
      const h = (await s.auth.call("login", { credential })).headers!;
      const changed = { uid: other.uid, time: String(Number(h[TOKEN_HEADERS.time]) - 1), lifetime: "3599" }[field];
      await expectError(s.auth.call("verify", presented(h, { [field]: changed })), "auth_invalid");
      assert.ok(await s.auth.call("verify", presented(h)), "the real headers still verify");
    });
  }

  test("auth: malformed token headers are auth_invalid; missing ones are auth_required", async (c) => {
    const s = await start(c);
    const { credential } = await credentialFor(c, s);
    const h = (await s.auth.call("login", { credential })).headers!;
    const [kid, mac] = h[TOKEN_HEADERS.auth]!.split(":") as [string, string];
    const bad: Array<Partial<Record<"uid" | "time" | "lifetime" | "auth", string>>> = [
      { auth: `${kid}:${(mac[0] === "A" ? "B" : "A") + mac.slice(1)}` },
      { auth: `${kid}:${mac.slice(0, 42)}` },
      { auth: `${kid}${mac}` },
      { auth: `${kid}:${mac}:` },
      { auth: `${kid.toUpperCase()}:${mac}` },
      { uid: h[TOKEN_HEADERS.uid]!.toUpperCase() },
      { time: `${h[TOKEN_HEADERS.time]}.0` },
      { time: `0${h[TOKEN_HEADERS.time]}` },
      { lifetime: "3601" },
      { lifetime: "99999999999999999999" },
      { lifetime: "-1" },
    ];
    for (const over of bad) await expectError(s.auth.call("verify", presented(h, over)), "auth_invalid");
    for (const field of ["uid", "time", "lifetime", "auth"] as const) await expectError(s.auth.call("verify", presented(h, { [field]: "" })), "auth_required");
    await expectError(s.auth.call("verify", {}), "auth_required");
  });

  test("auth: token headers under an unknown key id are auth_invalid", async (c) => {
    const s = await start(c);
    const { credential } = await credentialFor(c, s);
    const h = (await s.auth.call("login", { credential })).headers!;
    const mac = h[TOKEN_HEADERS.auth]!.split(":")[1];
    await expectError(s.auth.call("verify", presented(h, { auth: `0123456789abcdef:${mac}` })), "auth_invalid", /unknown or retired/);
  });

  test("auth: after a rotation old tokens still verify, new ones use the new key, and the key id is on disk", async (c) => {
    const s = await start(c);
    const { credential } = await credentialFor(c, s);
    const old = (await s.auth.call("login", { credential })).headers!;
    const oldKid = old[TOKEN_HEADERS.auth]!.split(":")[0]!;
    const { keyId } = await s.auth.call("rotate", {});
    assert.match(keyId!, /^[0-9a-f]{16}$/);
    assert.is.not(keyId, oldKid);
    const fresh = (await s.auth.call("login", { credential })).headers!;
    assert.is(fresh[TOKEN_HEADERS.auth]!.split(":")[0], keyId);
    assert.ok(await s.auth.call("verify", presented(old)));
    assert.ok(await s.auth.call("verify", presented(fresh)));
    await s.auth.call("rotate", {});
    assert.ok(await s.auth.call("verify", presented(old)), "a key superseded twice is still kept for token-seconds");
    const keys = JSON.parse(readFileSync(join(authDir(c), "token-keys"), "utf8")).keys as Array<{ id: string; superseded: string }>;
    assert.is(keys.length, 3);
    assert.is(keys.filter((k) => k.superseded === "").length, 1);
  });

  test("auth: a rotated-out key is deleted once its tokens have expired, and its tokens are auth_invalid", async (c) => {
    const s = await start(c, { "token-seconds": 1 });
    const { credential } = await credentialFor(c, s);
    const old = (await s.auth.call("login", { credential })).headers!;
    const oldKid = old[TOKEN_HEADERS.auth]!.split(":")[0]!;
    await s.auth.call("rotate", {});
    const { keyId } = await s.auth.call("rotate", {});
    const onDisk = () => (JSON.parse(readFileSync(join(authDir(c), "token-keys"), "utf8")).keys as Array<{ id: string }>).map((k) => k.id);
    await waitFor("the retired token keys to be deleted from disk", () => onDisk().length === 1 && onDisk()[0] === keyId);
    assert.not.ok(onDisk().includes(oldKid));
    await expectError(s.auth.call("verify", presented(old)), "auth_invalid", /unknown or retired/);
  });

  test("auth: token headers past their lifetime are auth_expired", async (c) => {
    const s = await start(c, { "token-seconds": 1 });
    const { credential } = await credentialFor(c, s);
    const r = await s.auth.call("login", { credential });
    assert.is(r.headers![TOKEN_HEADERS.lifetime], "1");
    await waitFor("the token to expire", async () => {
      try {
        await s.auth.call("verify", presented(r.headers!));
        return false;
      } catch (err) {
        return (err as SugarError).code === "auth_expired";
      }
    });
    assert.ok(Date.now() >= Date.parse(r.expires!), "not before the expiry the login named");
  });

  test("auth: token headers whose time is in the future (beyond 60 s of skew) are auth_invalid", async (c) => {
    const s = await start(c, {}, clocked(c));
    const { credential } = await credentialFor(c, s);
    c.offset = 30_000;
    const near = (await s.auth.call("login", { credential })).headers!;
    c.offset = 120_000;
    const far = (await s.auth.call("login", { credential })).headers!;
    c.offset = 0;
    assert.ok(await s.auth.call("verify", presented(near)), "30 s ahead is within the skew");
    await expectError(s.auth.call("verify", presented(far)), "auth_invalid", /future/);
  });

  test("auth: token keys and credentials survive a restart; nonces do not", async (c) => {
    const s = await start(c);
    const { key, credential } = await credentialFor(c, s);
    const h = (await s.auth.call("login", { credential })).headers!;
    const ch = await s.auth.call("challenge", { uid: key.uid });
    await s.stopAuth();
    await startAuth({ bus: s.bus, config: s.config, log: c.log }).then((a) => c.stacks.push({ ...s, stop: () => a.stop(), stopAuth: () => a.stop() }));
    assert.is((await s.auth.call("verify", presented(h))).uid, key.uid);
    assert.is((await s.auth.call("login", { credential })).uid, key.uid);
    await expectError(s.auth.call("prove", { uid: key.uid, nonce: ch.nonce, signature: sshSign(c.tmp.path, key, ch.nonce!) }), "auth_invalid", /nonce/);
  });

  // --- challenges and proofs ---

  for (const type of ["ed25519", "rsa", "dsa", "ecdsa"] as const) {
    test(`auth: a real ssh-keygen -Y sign signature by a registered ${type} key proves it`, async (c) => {
      const s = await start(c);
      const key = await register(c, s, type);
      const ch = await s.auth.call("challenge", { uid: key.uid });
      assert.is(ch.namespace, "sugar-server");
      assert.match(ch.nonce!, /^[A-Za-z0-9_-]{43}$/);
      const ttl = Date.parse(ch.expires!) - Date.now();
      assert.ok(ttl > 50_000 && ttl <= 60_000, ch.expires!);
      const p = await s.auth.call("prove", { uid: key.uid, nonce: ch.nonce, signature: sshSign(c.tmp.path, key, ch.nonce!), source: "10.0.0.1" });
      assert.is(p.uid, key.uid);
      assert.is(p.credential, "");
      assert.is((await s.auth.call("verify", presented(p.headers!, { wantUid: key.uid }))).uid, key.uid);
    });
  }

  test("auth: a signature with the sha256 message hash proves too (ssh-keygen -O hashalg=sha256)", async (c) => {
    const s = await start(c);
    const key = await register(c, s);
    const ch = await s.auth.call("challenge", { uid: key.uid });
    const sig = sshSign(c.tmp.path, key, ch.nonce!, "sugar-server", ["-O", "hashalg=sha256"]);
    assert.is((await s.auth.call("prove", { uid: key.uid, nonce: ch.nonce, signature: sig })).uid, key.uid);
  });

  test("auth: challenge needs a registered uid", async (c) => {
    const s = await start(c);
    await expectError(s.auth.call("challenge", { uid: "e".repeat(40) }), "not_registered");
    await expectError(s.auth.call("challenge", { uid: "E".repeat(40) }), "invalid_input");
  });

  test("auth: a nonce used twice is auth_invalid", async (c) => {
    const s = await start(c);
    const key = await register(c, s);
    const ch = await s.auth.call("challenge", { uid: key.uid });
    const signature = sshSign(c.tmp.path, key, ch.nonce!);
    await s.auth.call("prove", { uid: key.uid, nonce: ch.nonce, signature });
    await expectError(s.auth.call("prove", { uid: key.uid, nonce: ch.nonce, signature }), "auth_invalid", /nonce.*(unknown|used)/);
  });

  test("auth: a nonce is used up by a failed proof too", async (c) => {
    const s = await start(c);
    const key = await register(c, s);
    const ch = await s.auth.call("challenge", { uid: key.uid });
    await expectError(s.auth.call("prove", { uid: key.uid, nonce: ch.nonce, signature: sshSign(c.tmp.path, key, "other") }), "auth_invalid");
    await expectError(s.auth.call("prove", { uid: key.uid, nonce: ch.nonce, signature: sshSign(c.tmp.path, key, ch.nonce!) }), "auth_invalid", /nonce/);
  });

  test("auth: an expired nonce is auth_invalid", async (c) => {
    const s = await start(c, {}, { ...clocked(c), nonceSeconds: 1 });
    const key = await register(c, s);
    const ch = await s.auth.call("challenge", { uid: key.uid });
    assert.ok(Date.parse(ch.expires!) - Date.now() <= 1000);
    const signature = sshSign(c.tmp.path, key, ch.nonce!);
    c.offset = 1000;
    await expectError(s.auth.call("prove", { uid: key.uid, nonce: ch.nonce, signature }), "auth_invalid", /expired/);
  });

  test("auth: a nonce issued for another uid is auth_invalid", async (c) => {
    const s = await start(c);
    const a = await register(c, s);
    const b = await register(c, s);
    const ch = await s.auth.call("challenge", { uid: a.uid });
    await expectError(s.auth.call("prove", { uid: b.uid, nonce: ch.nonce, signature: sshSign(c.tmp.path, b, ch.nonce!) }), "auth_invalid", /another uid/);
  });

  test("auth: a signature by another key than the registered one is auth_invalid", async (c) => {
    const s = await start(c);
    const key = await register(c, s);
    const stranger = makeKey(c.tmp.path);
    const ch = await s.auth.call("challenge", { uid: key.uid });
    await expectError(s.auth.call("prove", { uid: key.uid, nonce: ch.nonce, signature: sshSign(c.tmp.path, stranger, ch.nonce!) }), "auth_invalid", /another key/);
  });

  test("auth: a signature in another namespace is auth_invalid", async (c) => {
    const s = await start(c);
    const key = await register(c, s);
    const ch = await s.auth.call("challenge", { uid: key.uid });
    await expectError(s.auth.call("prove", { uid: key.uid, nonce: ch.nonce, signature: sshSign(c.tmp.path, key, ch.nonce!, "file") }), "auth_invalid", /namespace/);
  });

  test("auth: a signature over other bytes is auth_invalid", async (c) => {
    const s = await start(c);
    const key = await register(c, s);
    for (const other of [(n: string) => `${n}\n`, (n: string) => n.slice(1), () => "hello"]) {
      const ch = await s.auth.call("challenge", { uid: key.uid });
      await expectError(s.auth.call("prove", { uid: key.uid, nonce: ch.nonce, signature: sshSign(c.tmp.path, key, other(ch.nonce!)) }), "auth_invalid", /does not verify/);
    }
    // The right bytes with one bit of the signature flipped.
    const ch = await s.auth.call("challenge", { uid: key.uid });
    const altered = reArmor(sshSign(c.tmp.path, key, ch.nonce!), (raw) => {
      const b = Buffer.from(raw);
      b[b.length - 1]! ^= 1;
      return b;
    });
    await expectError(s.auth.call("prove", { uid: key.uid, nonce: ch.nonce, signature: altered }), "auth_invalid", /does not verify/);
  });

  test("auth: garbage armor, bad magic, another version or a bad hash name is auth_invalid", async (c) => {
    const s = await start(c);
    const key = await register(c, s);
    const good = sshSign(c.tmp.path, key, "x");
    const pub = Buffer.from(key.body, "base64");
    const garbage = [
      "",
      "hello",
      good.replace("BEGIN SSH SIGNATURE", "BEGIN PGP SIGNATURE"),
      "-----BEGIN SSH SIGNATURE-----\n!!!!\n-----END SSH SIGNATURE-----\n",
      "-----BEGIN SSH SIGNATURE-----\n-----END SSH SIGNATURE-----\n",
      reArmor(good, (raw) => Buffer.concat([Buffer.from("SSHSIH"), raw.subarray(6)])),
      reArmor(good, (raw) => raw.subarray(0, raw.length - 10)),
      reArmor(good, (raw) => Buffer.concat([raw, Buffer.from([0])])),
      armor({ publicKey: pub, algorithm: "ssh-ed25519", blob: Buffer.alloc(64), version: 2 }),
      armor({ publicKey: pub, algorithm: "ssh-ed25519", blob: Buffer.alloc(64), hash: "sha1" }),
      armor({ publicKey: pub, algorithm: "ssh-rsa", blob: Buffer.alloc(64) }),
      armor({ publicKey: pub, algorithm: "ssh-ed25519", blob: Buffer.alloc(10) }),
      "x".repeat(20000),
    ];
    for (const signature of garbage) {
      const ch = await s.auth.call("challenge", { uid: key.uid });
      await expectError(s.auth.call("prove", { uid: key.uid, nonce: ch.nonce, signature }), "auth_invalid");
    }
  });

  test("auth: a NUL in the namespace, a signature algorithm of another key type, an empty or malformed blob, or a registered sk- key is auth_invalid", async (c) => {
    const s = await start(c);
    const ed = await register(c, s, "ed25519");
    const rsa = await register(c, s, "rsa");
    const ecdsa = await register(c, s, "ecdsa");
    const dsa = await register(c, s, "dsa");
    const pub = (k: TestKey) => Buffer.from(k.body, "base64");
    const cases: Array<[TestKey, string]> = [
      [ed, armor({ publicKey: pub(ed), namespace: "sugar-server\0x", algorithm: "ssh-ed25519", blob: Buffer.alloc(64) })],
      [ed, armor({ publicKey: pub(ed), algorithm: "rsa-sha2-512", blob: Buffer.alloc(64) })],
      [rsa, armor({ publicKey: pub(rsa), algorithm: "ssh-ed25519", blob: Buffer.alloc(64) })],
      [rsa, armor({ publicKey: pub(rsa), algorithm: "rsa-sha2-256", blob: Buffer.alloc(0) })],
      [ecdsa, armor({ publicKey: pub(ecdsa), algorithm: ecdsa.type, blob: Buffer.concat([sshString(Buffer.alloc(0)), sshString(Buffer.alloc(0))]) })],
      [ecdsa, armor({ publicKey: pub(ecdsa), algorithm: "ecdsa-sha2-nistp521", blob: Buffer.alloc(64) })],
      [dsa, armor({ publicKey: pub(dsa), algorithm: "ssh-dss", blob: Buffer.alloc(39) })],
      [dsa, armor({ publicKey: pub(dsa), algorithm: "ssh-dss", blob: Buffer.alloc(40) })],
    ];
    for (const [key, signature] of cases) {
      const ch = await s.auth.call("challenge", { uid: key.uid });
      await expectError(s.auth.call("prove", { uid: key.uid, nonce: ch.nonce, signature }), "auth_invalid");
    }
    // A security key registers (authorized_keys takes it) but cannot prove itself here: refused, not a server error.
    const skBlob = Buffer.concat([str("sk-ssh-ed25519@openssh.com"), sshString(Buffer.alloc(32, 7)), str("ssh:")]);
    const sk = await s.registry.call("register", { nickname: "Llave", pubkey: `sk-ssh-ed25519@openssh.com ${skBlob.toString("base64")}` });
    const ch = await s.auth.call("challenge", { uid: sk.user!.uid! });
    const skSig = armor({ publicKey: skBlob, algorithm: "sk-ssh-ed25519@openssh.com", blob: Buffer.alloc(69) });
    await expectError(s.auth.call("prove", { uid: sk.user!.uid!, nonce: ch.nonce, signature: skSig }), "auth_invalid", /cannot prove itself/);
  });

  test("auth: an RSA signature with ssh-rsa (SHA-1) is refused even when it verifies", async (c) => {
    const s = await start(c);
    const key = await register(c, s, "rsa");
    // The private key as PEM (ssh-keygen rewrites it in place), to sign with node:crypto.
    execFileSync("ssh-keygen", ["-p", "-m", "PEM", "-P", "", "-N", "", "-f", key.privatePath], { stdio: "ignore" });
    const pem = readFileSync(key.privatePath, "utf8");
    assert.match(pem, /BEGIN RSA PRIVATE KEY/);
    const ch = await s.auth.call("challenge", { uid: key.uid });
    const data = sshsigData(ch.nonce!);
    const pub = Buffer.from(key.body, "base64");
    const sha1 = armor({ publicKey: pub, algorithm: "ssh-rsa", blob: cryptoSign("sha1", data, pem) });
    await expectError(s.auth.call("prove", { uid: key.uid, nonce: ch.nonce, signature: sha1 }), "auth_invalid", /SHA-1/);
    // The same envelope built by hand with rsa-sha2-512 proves: the refusal is of SHA-1, not of the builder.
    const ch2 = await s.auth.call("challenge", { uid: key.uid });
    const sha512 = armor({ publicKey: pub, algorithm: "rsa-sha2-512", blob: cryptoSign("sha512", sshsigData(ch2.nonce!), pem) });
    assert.is((await s.auth.call("prove", { uid: key.uid, nonce: ch2.nonce, signature: sha512 })).uid, key.uid);
  });

  // --- the failure limit ---

  test("auth: 25 failed logins from one address in a minute: rate_limited from the 21st; another address still works", async (c) => {
    const s = await start(c);
    const { key, credential } = await credentialFor(c, s);
    const { payload, mac } = splitCredential(credential);
    const forged = joinCredential({ ...payload, iat: 1 }, mac);
    const codes: string[] = [];
    for (let i = 0; i < 25; i++) {
      try {
        await s.auth.call("login", { credential: forged, source: "192.0.2.7" });
        codes.push("ok");
      } catch (err) {
        codes.push((err as SugarError).code);
      }
    }
    assert.equal(codes, [...Array(20).fill("auth_invalid"), ...Array(5).fill("rate_limited")]);
    await expectError(s.auth.call("login", { credential, source: "192.0.2.7" }), "rate_limited");
    await expectError(proveKey(c, s, key, { source: "192.0.2.7" }), "rate_limited");
    assert.is((await s.auth.call("login", { credential, source: "192.0.2.8" })).uid, key.uid);
    assert.is((await proveKey(c, s, key, { source: "192.0.2.8" })).uid, key.uid);
  });

  test("auth: failed proofs count against the source too, and the limit follows login-failures", async (c) => {
    const s = await start(c, { "login-failures": 3 }, clocked(c));
    const key = await register(c, s);
    for (let i = 0; i < 3; i++) {
      const ch = await s.auth.call("challenge", { uid: key.uid });
      await expectError(s.auth.call("prove", { uid: key.uid, nonce: ch.nonce, signature: "garbage", source: "198.51.100.1" }), "auth_invalid");
    }
    await expectError(proveKey(c, s, key, { source: "198.51.100.1" }), "rate_limited");
    c.offset = 61_000; // a minute later the window has slid past the failures
    assert.is((await proveKey(c, s, key, { source: "198.51.100.1" })).uid, key.uid);
  });

  test("auth: failures count per IPv6 /64 (a host picks any address in its own), and an IPv6-mapped IPv4 address is that address", async (c) => {
    const s = await start(c, { "login-failures": 3 });
    const { credential } = await credentialFor(c, s);
    const { payload, mac } = splitCredential(credential);
    const forged = joinCredential({ ...payload, iat: 1 }, mac);
    for (const source of ["2001:db8:0:1::a", "2001:DB8:0:1:ffff:ffff:ffff:ffff", "2001:db8:0:1:0:0:0.0.0.7"]) {
      await expectError(s.auth.call("login", { credential: forged, source }), "auth_invalid");
    }
    await expectError(s.auth.call("login", { credential, source: "2001:db8::1:1234:5678:9abc:def0" }), "rate_limited");
    await expectError(s.auth.call("login", { credential, source: "2001:db8:0:1::c%eth0" }), "rate_limited");
    assert.ok(await s.auth.call("login", { credential, source: "2001:db8:0:2::a" }), "another /64 is another source");
    for (const source of ["::ffff:192.0.2.9", "192.0.2.9", "::FFFF:192.0.2.9"]) {
      await expectError(s.auth.call("login", { credential: forged, source }), "auth_invalid");
    }
    await expectError(s.auth.call("login", { credential, source: "192.0.2.9" }), "rate_limited");
    await expectError(s.auth.call("login", { credential, source: "::ffff:192.0.2.9" }), "rate_limited");
    assert.ok(await s.auth.call("login", { credential, source: "192.0.2.10" }));
  });

  // --- disk and logs ---

  test("auth: <root>/auth is 0700 and its files 0600; bad input writes nothing", async (c) => {
    const s = await start(c);
    const { key, credential } = await credentialFor(c, s);
    await s.auth.call("rotate", {});
    const walk = (dir: string): void => {
      assert.is(modeOf(dir), 0o700, dir);
      for (const n of readdirSync(dir)) {
        const p = join(dir, n);
        if (statSync(p).isDirectory()) walk(p);
        else assert.is(modeOf(p), 0o600, p);
      }
    };
    walk(authDir(c));
    assert.equal(readdirSync(join(authDir(c), "clients")), [key.uid]);

    const before = snapshot(c.root);
    const h = (await s.auth.call("login", { credential })).headers!;
    const ch = await s.auth.call("challenge", { uid: key.uid });
    await expectError(s.auth.call("issue", { uid: "../../etc" }), "invalid_input");
    await expectError(s.auth.call("issue", { uid: "e".repeat(40) }), "not_registered");
    await expectError(s.auth.call("issue", { uid: key.uid, machineSn: "bad" }), "invalid_input");
    await expectError(s.auth.call("login", { credential: credential.slice(0, -2) }), "auth_invalid");
    await expectError(s.auth.call("verify", presented(h, { lifetime: "7" })), "auth_invalid");
    await expectError(s.auth.call("prove", { uid: key.uid, nonce: ch.nonce, signature: "garbage", credential: true }), "auth_invalid");
    await expectError(s.auth.call("prove", { uid: "../x", nonce: "n", signature: "s" }), "invalid_input");
    await s.auth.call("verify", presented(h));
    const after = snapshot(c.root);
    assert.ok(sameSnapshot(before, after), describeDiff(before, after));
  });

  test("auth: an auth directory left with loose modes is made private at start", async (c) => {
    const s = await start(c);
    await s.stopAuth();
    execFileSync("chmod", ["0755", authDir(c), join(authDir(c), "clients")]);
    const a = await startAuth({ bus: s.bus, config: s.config, log: c.log });
    c.stacks.push({ ...s, stop: () => a.stop(), stopAuth: () => a.stop() });
    assert.equal([modeOf(authDir(c)), modeOf(join(authDir(c), "clients"))], [0o700, 0o700]);
  });

  test("auth: verify says how a login was proven: key for an SSHSIG, credential for a credential; neither token passes for the other", async (c) => {
    const s = await start(c);
    const { key, credential } = await credentialFor(c, s);
    const byCredential = (await s.auth.call("login", { credential })).headers!;
    const byKey = (await proveKey(c, s, key)).headers!;
    assert.is((await s.auth.call("verify", presented(byCredential))).proof, "credential");
    assert.is((await s.auth.call("verify", presented(byKey))).proof, "key");
    assert.is.not(byKey[TOKEN_HEADERS.auth], byCredential[TOKEN_HEADERS.auth]);
  });

  test("auth: no secret reaches a log line or an error message", async (c) => {
    const s = await start(c);
    const { key, credential } = await credentialFor(c, s);
    const messages: string[] = [];
    const fail = async (p: Promise<unknown>) => {
      try {
        await p;
      } catch (err) {
        messages.push((err as Error).message);
      }
    };
    const h = (await s.auth.call("login", { credential, source: "10.0.0.1" })).headers!;
    const { payload, mac } = splitCredential(credential);
    await fail(s.auth.call("login", { credential: joinCredential({ ...payload, iat: 5 }, mac) }));
    await fail(s.auth.call("login", { credential: credential.slice(0, -1) }));
    await fail(s.auth.call("verify", presented(h, { time: "1" })));
    await fail(s.auth.call("verify", presented(h, { wantUid: "e".repeat(40) })));
    const p = await proveKey(c, s, key, { credential: true });
    await fail(s.auth.call("login", { credential }));
    await s.auth.call("rotate", {});
    const clientSecret = JSON.parse(readFileSync(join(authDir(c), "client-key"), "utf8")).secret as string;
    const revoked = readFileSync(secretFile(c, key.uid), "utf8");
    await s.registry.call("remove", { uid: key.uid });
    await waitFor("the secret to be revoked", () => readFileSync(secretFile(c, key.uid), "utf8") !== revoked);
    const keys = JSON.parse(readFileSync(join(authDir(c), "token-keys"), "utf8")).keys as Array<{ secret: string }>;
    const secrets = [
      clientSecret,
      ...keys.map((k) => k.secret),
      mac,
      splitCredential(p.credential!).mac,
      h[TOKEN_HEADERS.auth]!.split(":")[1]!,
      p.headers![TOKEN_HEADERS.auth]!.split(":")[1]!,
    ];
    const text = c.logText() + messages.join("\n");
    assert.ok(messages.length >= 5);
    assert.match(c.logText(), /issued a credential/);
    for (const secret of secrets) assert.not.ok(text.includes(secret), "a secret is in the log or an error message");
    assert.not.ok(text.includes(credential.split(".")[1]!), "no credential payload in the log");
  });

  t.run();
}
