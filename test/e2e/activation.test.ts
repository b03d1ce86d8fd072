/**
 * XO activation end to end, in process: the lease, keyring and registry
 * actors and the activation and REST adapters on one bus, an XO-faithful TCP
 * client (connect, 11 bytes, half-close, read to EOF), and every lease
 * checked by a verifier written apart from the server's code and by openssl.
 */
import { createPrivateKey } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { runComponents, type ComponentName, type RunningServer } from "../../src/cli/components.js";
import { leaseClient, registryClient } from "../../src/codec.js";
import { configWith, type Config } from "../../src/config.js";
import { silentLogger } from "../../src/log.js";
import * as olpc from "../../lib/olpc/index.js";
import { vectors } from "../support/olpc-fixtures.js";
import { opensslVerifyPss } from "../support/openssl.js";
import { requires, testsNeeding, TOOLS } from "../support/requires.js";
import { runCli } from "../support/server.js";
import { tempDir } from "../support/tmp.js";
import { waitFor } from "../support/wait.js";
import { xoActivate } from "../support/xo-client.js";
import { leaseSignedBytes, leaseV1SignedBytes, parseAct01, rtcSignedBytes, xoVerifyLease, xoVerifyRtc } from "../support/xo-verify.js";

const t = suite("activation");
/** A test whose leases openssl checks too. */
const withOpenssl = testsNeeding(t, requires(TOOLS.openssl));
const dirs: Array<{ remove(): void }> = [];
const servers: RunningServer[] = [];

interface School {
  root: string;
  config: Config;
  server: RunningServer;
  port: number;
  rest: string;
  xo(payload: string | Buffer | undefined, opts?: { host?: string; halfClose?: boolean; timeoutMs?: number; localAddress?: string }): ReturnType<typeof xoActivate>;
}

/** A school with the vector server key, master trusted, the vector delegation and leases imported. */
async function school(options: Record<string, string | number | boolean> = {}, components: ComponentName[] = ["registry", "lease", "keyring", "http", "activation"], prepare = true): Promise<School> {
  const d = tempDir();
  dirs.push(d);
  const root = join(d.path, "root");
  const config = configWith({ root, host: "::", "httpd-port": 0, "xmlrpc-port": 0, "activation-port": 0, "activation-timeout": 1, ...options });
  if (prepare) {
    mkdirSync(config["keyring-dir"], { recursive: true, mode: 0o700 });
    writeFileSync(join(config["keyring-dir"], "server.pem"), vectors.serverPem, { mode: 0o600 });
    writeFileSync(join(d.path, "master.key01"), `key01: ${vectors.masterKey01}\n`);
    writeFileSync(join(d.path, "delegation.txt"), vectors.delegation);
    writeFileSync(join(d.path, "leases.cjson"), vectors.leasesCjson);
    const cli = (...a: string[]) => runCli([...a, "--root", root]);
    for (const args of [["keyring", "trust", join(d.path, "master.key01")], ["keyring", "import-delegations", join(d.path, "delegation.txt")], ["leases", "import", join(d.path, "leases.cjson")]]) {
      const r = await cli(...args);
      assert.is(r.code, 0, `${args.join(" ")}: ${r.stderr}${r.stdout}`);
    }
  }
  const server = await runComponents(components, config, silentLogger);
  servers.push(server);
  const addr = (name: string) => (server.components.find((c) => c.name === name) as unknown as { address: { port: number } } | undefined)?.address.port ?? 0;
  const port = addr("activation");
  return {
    root,
    config,
    server,
    port,
    rest: `http://127.0.0.1:${addr("http")}`,
    xo: (payload, o = {}) => xoActivate({ host: o.host ?? "127.0.0.1", port, payload, halfClose: o.halfClose, timeoutMs: o.timeoutMs ?? 8000, localAddress: o.localAddress }),
  };
}

t.after(async () => {
  for (const s of servers) await s.stop();
  for (const d of dirs) d.remove();
});

const masterOnly = [vectors.masterKey01];
const lastSig = (line: string) => line.trimEnd().split(" ").at(-1)!;

withOpenssl("activation: a stored v1 lease goes to the XO byte for byte; the XO's check and openssl accept it", async () => {
  const s = await school();
  const r = await s.xo(vectors.v1.sn);
  assert.is(r.closedBy, "server");
  assert.is(r.bytes.toString(), vectors.leaseV1);
  const text = r.bytes.toString();
  assert.equal(xoVerifyLease({ line: text, ...vectors.v1, trustedKey01Hex: masterOnly, now: new Date() }), { ok: true });
  const parsed = parseAct01(text);
  assert.ok("exp" in parsed);
  assert.ok(await opensslVerifyPss({ key01Hex: vectors.masterKey01, signedBytes: leaseV1SignedBytes(vectors.v1.sn, vectors.v1.uuid, "K", (parsed as { exp: string }).exp), signatureHex: lastSig(text) }));
});

t("activation: over IPv6 too (the XO also tries fe80::abcd:ef02)", async () => {
  const s = await school();
  const r = await s.xo(vectors.v1.sn, { host: "::1" });
  assert.is(r.bytes.toString(), vectors.leaseV1);
});

withOpenssl("activation: with delegation the keyring signs a chained lease the XO accepts with master as the only root; openssl checks the server's signature", async () => {
  const s = await school({ delegation: true });
  const r = await s.xo(vectors.delegated.sn);
  const text = r.bytes.toString();
  assert.match(text, /^act01: SHC005007B7 K \d{8}T\d{6}Z sig02: sha256 2f85ec86/);
  assert.ok(text.endsWith("\n") && text.indexOf("\n") === text.length - 1, "one LF-terminated line");
  assert.equal(xoVerifyLease({ line: text, ...vectors.delegated, trustedKey01Hex: masterOnly, now: new Date() }), { ok: true });
  assert.equal(xoVerifyLease({ line: text, ...vectors.delegated, trustedKey01Hex: [vectors.serverKey01], now: new Date() }).ok, false, "the server key alone is no root");
  const exp = (parseAct01(text) as { exp: string }).exp;
  assert.ok(await opensslVerifyPss({ key01Hex: vectors.serverKey01, signedBytes: leaseSignedBytes(vectors.delegated.sn, exp, vectors.delegated.uuid, "K", exp), signatureHex: lastSig(text) }));
  // lease-days (90) from now
  const days = (Date.parse(`${exp.slice(0, 4)}-${exp.slice(4, 6)}-${exp.slice(6, 8)}T${exp.slice(9, 11)}:${exp.slice(11, 13)}:${exp.slice(13, 15)}Z`) - Date.now()) / 86400000;
  assert.ok(days > 89.9 && days < 90.1, `expiry ${exp}`);
  const stored = readFileSync(join(s.root, "share", "leases", "B7", "SHC005007B7"), "utf8");
  assert.is(stored, text, "the signed lease is stored");
  const again = await s.xo(vectors.delegated.sn);
  assert.is(again.bytes.toString(), text, "the next boot gets the stored lease");
});

t("activation: the keyring signs a chained lease from delegation.txt with server.pem that the XO's check accepts (keyring alone)", () => {
  const lease = olpc.signDelegatedLease({ delegationLine: vectors.delegation, serverKey: createPrivateKey(vectors.serverPem), expiry: "20991231T000000Z" });
  assert.equal(xoVerifyLease({ line: lease, ...vectors.delegated, trustedKey01Hex: masterOnly, now: new Date() }), { ok: true });
  assert.is(lease.length, vectors.leaseChained.length);
});

t("activation: a stolen serial number hears exactly STOLEN; the list changes at once for the running adapter", async () => {
  const s = await school({ delegation: true });
  const lease = leaseClient(s.server.bus, s.config.site);
  await lease.call("stolen", { machineSn: vectors.v1.sn, stolen: true });
  await waitFor("STOLEN", async () => (await s.xo(vectors.v1.sn)).bytes.toString() === "STOLEN");
  const r = await s.xo(vectors.v1.sn);
  assert.is(r.bytes.length, 6);
  assert.is(r.bytes.toString(), "STOLEN");
  assert.is(r.closedBy, "server");
  const rest = await fetch(`${s.rest}/client/lease?machine_sn=${vectors.v1.sn.toLowerCase()}`);
  assert.is(rest.status, 403);
  assert.match(((await rest.json()) as { error: string }).error, /stolen/);
  assert.match(readFileSync(join(s.root, "share", "stolen"), "utf8"), /^SHF706002A7$/m);
  await lease.call("stolen", { machineSn: vectors.v1.sn, stolen: false });
  await waitFor("lease again", async () => (await s.xo(vectors.v1.sn)).bytes.toString() === vectors.leaseV1);
});

t("activation: an unknown serial number gets an empty reply and a closed connection (or UNKNOWN when configured)", async () => {
  const s = await school();
  const r = await s.xo("SHF00000009");
  assert.is(r.closedBy, "server");
  assert.is(r.bytes.length, 0);
  const u = await school({ "unknown-reply": "UNKNOWN" });
  assert.is((await u.xo("SHF00000009")).bytes.toString(), "UNKNOWN");
  const rest = await fetch(`${s.rest}/client/lease?machine_sn=SHF00000009`);
  assert.is(rest.status, 404);
  assert.is(((await rest.json()) as { success: string }).success, "ERR");
});

t("activation: a trailing CR/LF is tolerated", async () => {
  const s = await school();
  assert.is((await s.xo(`${vectors.v1.sn}\n`)).bytes.toString(), vectors.leaseV1);
  assert.is((await s.xo(`${vectors.v1.sn}\r\n`)).bytes.toString(), vectors.leaseV1);
});

withOpenssl("activation: rtcreset SN TIMESTAMP COUNT gets an rtc01 line signed by the lease key over the request's values", async () => {
  const s = await school();
  await runCli(["keyring", "init", "--lease-key", "--root", s.root]).then(() => undefined); // the server is running: this goes through the admin socket
  const shown = await runCli(["keyring", "show", "--root", s.root]);
  const leaseKey01 = /lease key: key01: ([0-9a-f]{540})/.exec(shown.stdout)?.[1];
  assert.ok(leaseKey01, shown.stdout + shown.stderr);
  await registryClient(s.server.bus, s.config.site).call("machine", { machineSn: "SHF00000042", machineUuid: "11111111-2222-3333-4444-555555555555", source: "admin" });
  const r = await s.xo("rtcreset SHF00000042 20240101T000000Z 7");
  const line = r.bytes.toString();
  assert.match(line, /^rtc01: SHF00000042 20240101T000000Z 0000000007 \d{8}T\d{6}Z sig01: sha256 [0-9a-f]{64} [0-9a-f]{512}\n$/);
  assert.equal(xoVerifyRtc({ line, sn: "SHF00000042", uuid: "11111111-2222-3333-4444-555555555555", trustedKey01Hex: [leaseKey01!], expect: { currentrtc: "20240101T000000Z", nonce: "0000000007" } }), { ok: true });
  const [, , cur, nonce, newrtc] = line.split(" ");
  assert.ok(await opensslVerifyPss({ key01Hex: leaseKey01!, signedBytes: rtcSignedBytes("SHF00000042", "11111111-2222-3333-4444-555555555555", cur!, nonce!, newrtc!), signatureHex: lastSig(line) }));
});

withOpenssl("activation: with its own lease key the keyring signs v1 leases for machines whose UUID the registry knows", async () => {
  const s = await school({ delegation: true });
  const init = await runCli(["keyring", "init", "--lease-key", "--root", s.root]);
  assert.is(init.code, 0, init.stderr);
  const leaseKey01 = /lease key: key01: ([0-9a-f]{540})/.exec(init.stdout)?.[1]!;
  assert.is(statSync(join(s.config["keyring-dir"], "lease.pem")).mode & 0o777, 0o600);
  const m = await runCli(["machines", "add", "shf00000077", "AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE", "--root", s.root]);
  assert.is(m.code, 0, m.stderr);
  const text = (await s.xo("SHF00000077")).bytes.toString();
  assert.match(text, /^act01: SHF00000077 K \d{8}T\d{6}Z sig01: sha256 /);
  assert.equal(xoVerifyLease({ line: text, sn: "SHF00000077", uuid: "AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE", trustedKey01Hex: [leaseKey01], now: new Date() }), { ok: true });
  const exp = (parseAct01(text) as { exp: string }).exp;
  assert.ok(await opensslVerifyPss({ key01Hex: leaseKey01, signedBytes: leaseV1SignedBytes("SHF00000077", "AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE", "K", exp), signatureHex: lastSig(text) }));
});

t("activation: a stored lease expiring within lease-renew-days is renewed through the keyring", async () => {
  const s = await school({ delegation: true, "lease-renew-days": 7 });
  const soon = olpc.formatOlpcTime(new Date(Date.now() + 2 * 86400000));
  const short = olpc.signDelegatedLease({ delegationLine: vectors.delegation, serverKey: createPrivateKey(vectors.serverPem), expiry: soon });
  const imp = await leaseClient(s.server.bus, s.config.site).call("import", { text: short });
  assert.is(imp.imported, 1);
  const text = (await s.xo(vectors.delegated.sn)).bytes.toString();
  assert.is.not(text, short);
  assert.ok((parseAct01(text) as { exp: string }).exp > soon);
  assert.equal(xoVerifyLease({ line: text, ...vectors.delegated, trustedKey01Hex: masterOnly, now: new Date() }), { ok: true });
});

t("activation: keyring unreachable → the stored lease, else an empty reply, within 2 s", async () => {
  const s = await school({ delegation: true }, ["registry", "lease", "activation"]);
  const started = Date.now();
  const r = await s.xo(vectors.delegated.sn);
  assert.is(r.bytes.length, 0);
  assert.is(r.closedBy, "server");
  assert.ok(Date.now() - started < 2000, `took ${Date.now() - started} ms`);
  assert.is((await s.xo(vectors.v1.sn)).bytes.toString(), vectors.leaseV1, "stored lease still served");
});

const badSerials: Array<[string, string | Buffer]> = [
  ["10 bytes", "SHF706002A"],
  ["12 bytes", "SHF706002A77"],
  ["lower case", "shf706002a7"],
  ["a /", "SHF/06002A7"],
  ["..", "SHF..6002A7"],
  ["binary garbage", Buffer.from([0, 1, 2, 0xff, 0xfe, 0x80, 10, 13, 0, 0, 0x41])],
  ["too much data", "SHF706002A7".repeat(20)],
];
for (const [what, payload] of badSerials) {
  t(`activation: a serial number of ${what} gets an empty reply and nothing is written`, async () => {
    const s = await school();
    const r = await s.xo(payload);
    assert.is(r.bytes.length, 0);
    assert.ok(r.closedBy === "server" || r.closedBy === "error", r.closedBy);
    assert.not.ok(existsSync(join(s.root, "home", "registry", "machines", "SHF706002A")));
  });
}

t("activation: a client that connects and sends nothing is released at the read timeout", async () => {
  const s = await school({ "activation-timeout": 1 });
  const r = await s.xo(undefined, { timeoutMs: 5000 });
  assert.is(r.closedBy, "server", `closed by ${r.closedBy} after ${r.elapsedMs} ms`);
  assert.ok(r.elapsedMs >= 900 && r.elapsedMs < 4000, `${r.elapsedMs} ms`);
});

t("activation: 1000 connections from one address: a few are served, the rest closed at once, other addresses unaffected", async () => {
  const s = await school({ "activation-per-source": 5, "activation-timeout": 2 });
  // Hold connections open without sending anything, all from 127.0.0.1.
  const held = await Promise.all(Array.from({ length: 1000 }, () => s.xo(undefined, { timeoutMs: 6000 })));
  const early = held.filter((r) => r.elapsedMs < 1500).length;
  assert.ok(early >= 990, `only ${early} of 1000 were turned away at once`);
  const other = await s.xo(vectors.v1.sn, { localAddress: "127.0.0.2" });
  assert.is(other.bytes.toString(), vectors.leaseV1);
});

t("activation: import refuses a malformed line and a lease filed under another serial number, with reasons", async () => {
  const s = await school();
  const lease = leaseClient(s.server.bus, s.config.site);
  const badLine = vectors.leaseV1.replace(" K ", "  K ");
  const r1 = await lease.call("import", { text: `${badLine}` });
  assert.is(r1.imported, 0);
  assert.is(r1.refused?.length, 1);
  assert.match(r1.refused![0]!.reason!, /space|field/i);
  const misfiled = `[1,{"SHF00000001":${JSON.stringify(vectors.leaseV1)}}]`;
  const r2 = await lease.call("import", { text: misfiled });
  assert.is(r2.refused?.length, 1);
  assert.match(r2.refused![0]!.reason!, /for SHF706002A7, filed under SHF00000001/);
  assert.not.ok(existsSync(join(s.root, "share", "leases", "01", "SHF00000001")));
  const cli = await runCli(["leases", "import", "/nonexistent/file", "--root", s.root]);
  assert.is(cli.code, 1);
});

t("activation: delegations signed by an unknown key, or expired, are refused at import", async () => {
  const s = await school();
  const other = olpc.signDelegation({
    sn: "SHF00000005",
    uuid: "11111111-2222-3333-4444-555555555555",
    delegationExpiry: "20991231T000000Z",
    rootKey: createPrivateKey(vectors.serverPem), // not a trusted root
    serverPublicKey: createPrivateKey(vectors.serverPem),
  });
  const expired = olpc.signDelegation({
    sn: "SHF00000006",
    uuid: "11111111-2222-3333-4444-555555555555",
    delegationExpiry: "20200101T000000Z",
    rootKey: createPrivateKey(vectors.masterPem),
    serverPublicKey: createPrivateKey(vectors.serverPem),
  });
  const file = join(s.root, "..", "bad-delegations.txt");
  writeFileSync(file, other + expired);
  const r = await runCli(["keyring", "import-delegations", file, "--root", s.root]);
  assert.is(r.code, 1);
  assert.match(r.stdout, /0 imported, 0 replaced, 2 refused/);
  assert.match(r.stdout, /line 1: signed by an unknown key/);
  assert.match(r.stdout, /line 2: .*expired/);
});

t("activation: a keyring dir with a world-readable private key refuses to start, saying why", async () => {
  const d = tempDir();
  dirs.push(d);
  const kdir = join(d.path, "root", "keyring");
  mkdirSync(kdir, { recursive: true });
  writeFileSync(join(kdir, "server.pem"), vectors.serverPem);
  chmodSync(join(kdir, "server.pem"), 0o644);
  const r = await runCli(["run", "keyring", "--root", join(d.path, "root")]);
  assert.is(r.code, 1);
  assert.match(r.stderr, /server\.pem is readable by others \(mode 644\)/);
  assert.match(r.stderr, /chmod 600/);
});

t("activation: keyring init makes an RSA-2048 key, private part 0600; show prints its key01 line and key id", async () => {
  const d = tempDir();
  dirs.push(d);
  const root = join(d.path, "root");
  const r = await runCli(["keyring", "init", "--root", root]);
  assert.is(r.code, 0, r.stderr);
  const pemPath = join(root, "keyring", "server.pem");
  assert.is(statSync(pemPath).mode & 0o777, 0o600);
  const show = await runCli(["keyring", "show", "--root", root]);
  const key = /^key01: ([0-9a-f]{540})$/m.exec(show.stdout)?.[1];
  assert.ok(key, show.stdout);
  assert.ok(key!.startsWith("3082010a0282010100") && key!.endsWith("0203010001"));
  assert.match(show.stdout, new RegExp(`key id: ${key!.slice(-64)}`));
  const again = await runCli(["keyring", "init", "--root", root]);
  assert.match(again.stdout, /already exist/);
  assert.is(readFileSync(pemPath, "utf8"), readFileSync(pemPath, "utf8"));
});

t.run();
