/**
 * POST /client/certificate: a logged-in client gets a TLS client
 * certificate for its own uid from the district CA, asked of the keyring
 * over the bus (a stub here that signs with a CA made by openssl; the real
 * keyring's CA ops land later). It always needs a login, even under
 * client-auth = open, and every refusal leaves the keyring unasked.
 */
import { execFileSync } from "node:child_process";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { requires, testsNeeding, toolBin, TOOLS } from "../support/requires.js";
import { startTlsSchool, type TlsSchool } from "../support/tls-school.js";
import { writeFileSync } from "node:fs";
import { join } from "node:path";

interface Ctx {
  s: TlsSchool;
}

const t = suite<Ctx>("client-certificate");
const requirement = requires(TOOLS.openssl);
const test = testsNeeding(t, requirement);

t.before(async (c) => {
  if (!requirement.ok) return;
  c.s = await startTlsSchool({ "client-auth": "open", "tls-client-auth": "optional" });
});
t.after(async (c) => {
  await c.s?.stop();
});

let devices = 0;
async function member(c: Ctx) {
  const d = await c.s.registerDevice(`02:00:00:01:00:${(++devices).toString(16).padStart(2, "0")}`);
  return { ...d, headers: await c.s.login(d.credential) };
}

const ask = (c: Ctx, body: Record<string, unknown> | string, headers: Record<string, string> = {}) => c.s.plain(c.s.ports.http, "/client/certificate", { body, headers });

test("client-certificate: with its token headers a client gets a certificate for its uid (CN = uid) and the CA, and it logs in on the TLS port", async (c) => {
  const m = await member(c);
  const { key, csr } = c.s.tls.csr("whatever the client wrote");
  const r = await ask(c, { csr }, m.headers);
  assert.is(r.status, 200, r.text);
  assert.is(r.json?.success, "OK");
  assert.match(String(r.json?.certificate), /^-----BEGIN CERTIFICATE-----/);
  assert.match(String(r.json?.ca), /^-----BEGIN CERTIFICATE-----/);
  assert.ok(Date.parse(String(r.json?.not_after)) > Date.now());
  assert.equal(c.s.keyringCalls.at(-1)?.uid, m.uid, "the keyring was asked for the token's own uid");
  const certFile = join(c.s.dir.path, `issued-${m.uid}.crt`);
  writeFileSync(certFile, String(r.json?.certificate));
  assert.match(execFileSync(toolBin(TOOLS.openssl), ["x509", "-in", certFile, "-noout", "-subject"], { encoding: "utf8" }), new RegExp(`CN ?= ?${m.uid}`));
  const v = await c.s.https("/auth/verify", { cert: certFile, key });
  assert.equal([v.status, v.headers["x-sugar-uid"], v.headers["x-sugar-auth-level"]], [200, m.uid, "token"]);
});

test("client-certificate: a form body works like JSON, and a client certificate stands in for the token headers (renewal over TLS)", async (c) => {
  const m = await member(c);
  const first = c.s.tls.client(m.uid);
  const { csr } = c.s.tls.csr("renewal");
  const r = await c.s.https("/client/certificate", { body: new URLSearchParams({ csr }).toString(), headers: { "content-type": "application/x-www-form-urlencoded" }, cert: first.cert, key: first.key });
  assert.is(r.status, 200, r.text);
  assert.is(c.s.keyringCalls.at(-1)?.uid, m.uid);
});

test("client-certificate: without token headers (client-auth = open notwithstanding) 401, and the keyring is not asked", async (c) => {
  const before = c.s.keyringCalls.length;
  const r = await ask(c, { csr: c.s.tls.csr("nobody").csr });
  assert.equal([r.status, r.json?.success, r.json?.code], [401, "ERR", "auth_required"]);
  assert.is(c.s.keyringCalls.length, before);
});

test("client-certificate: a body uid other than the token's is 403, and the keyring is not asked", async (c) => {
  const me = await member(c);
  const other = await member(c);
  const before = c.s.keyringCalls.length;
  const r = await ask(c, { csr: c.s.tls.csr(other.uid).csr, uid: other.uid }, me.headers);
  assert.equal([r.status, r.json?.code], [403, "forbidden"]);
  assert.is(c.s.keyringCalls.length, before);
});

test("client-certificate: another uid's token headers are still that uid's login: the certificate is for it, never for the uid named elsewhere", async (c) => {
  const me = await member(c);
  const other = await member(c);
  const r = await ask(c, { csr: c.s.tls.csr(me.uid).csr }, other.headers);
  assert.is(r.status, 200);
  assert.is(c.s.keyringCalls.at(-1)?.uid, other.uid);
});

test("client-certificate: a csr that is not a certificate request is the keyring's invalid_input: 400, nothing issued", async (c) => {
  const m = await member(c);
  const before = c.s.keyringCalls.length;
  const r = await ask(c, { csr: "hello, I am a certificate request" }, m.headers);
  assert.equal([r.status, r.json?.code], [400, "invalid_input"]);
  assert.match(String(r.json?.error), /not a PEM certificate request/);
  assert.is(c.s.keyringCalls.length, before + 1, "asked once, and it refused");
});

test("client-certificate: no csr is 400 before the keyring is asked", async (c) => {
  const m = await member(c);
  const before = c.s.keyringCalls.length;
  const r = await ask(c, {}, m.headers);
  assert.equal([r.status, r.json?.code, r.json?.error], [400, "invalid_input", "csr is required"]);
  assert.is(c.s.keyringCalls.length, before);
});

test("client-certificate: the token of a removed uid gets no certificate (403), and the keyring is not asked", async (c) => {
  const m = await member(c);
  await c.s.registry.call("remove", { uid: m.uid });
  const before = c.s.keyringCalls.length;
  const r = await ask(c, { csr: c.s.tls.csr(m.uid).csr }, m.headers);
  assert.equal([r.status, r.json?.code], [403, "forbidden"]);
  assert.is(c.s.keyringCalls.length, before);
});

t.run();
