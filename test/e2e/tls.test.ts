/**
 * The one TLS port, with the real parts: certificates made by `openssl`,
 * and `openssl s_client`, `curl` and Python's `xmlrpc.client` as the
 * clients. One port serves REST, XML-RPC and the web; a client certificate
 * from the district CA is a login; plain HTTP, old TLS versions and
 * certificates that do not verify are refused, each in words.
 */
import { connect } from "node:net";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { allOf, requires, testsNeeding, toolBin, TOOLS } from "../support/requires.js";
import { startTlsSchool, runTool, type TlsSchool } from "../support/tls-school.js";
import { opensslFingerprint } from "../support/tls-fixture.js";
import { makeKey } from "../support/keys.js";
import { waitFor } from "../support/wait.js";

interface Ctx {
  s: TlsSchool;
}

const t = suite<Ctx>("tls");
const requirement = requires(TOOLS.openssl);
const test = testsNeeding(t, requirement);
const withCurl = testsNeeding(t, allOf(requirement, requires(TOOLS.curl)));
const withPython = testsNeeding(t, allOf(requirement, requires(TOOLS.python3, TOOLS.sshKeygen)));

t.before(async (c) => {
  if (!requirement.ok) return;
  c.s = await startTlsSchool({ "client-auth": "token", "tls-client-auth": "optional" });
});
t.after(async (c) => {
  await c.s?.stop();
});

let devices = 0;
/** A new device id: a locally administered MAC address. */
const newDevice = () => `02:00:00:00:${(++devices >> 8).toString(16).padStart(2, "0")}:${(devices & 255).toString(16).padStart(2, "0")}`;

/** A registered keyless device and a client certificate for its uid. */
async function member(c: Ctx, kind: "valid" | "other" | "expired" | "other-site" = "valid") {
  const d = await c.s.registerDevice(newDevice());
  return { ...d, files: c.s.tls.client(d.uid, kind) };
}

const openssl = (args: string[], input = "") => runTool(toolBin(TOOLS.openssl), args, input);
const curl = (args: string[]) => runTool(toolBin(TOOLS.curl), ["-sS", "--max-time", "15", ...args]);

async function usersNamed(c: Ctx, nickname: string): Promise<number> {
  return ((await c.s.registry.call("list", {})).users ?? []).filter((u) => u.nickname === nickname).length;
}

test("tls: one port serves REST (/healthz, /client/register), the web (/auth/verify) and XML-RPC (POST /RPC2); the ready line names it", async (c) => {
  const h = await c.s.https("/healthz");
  assert.equal([h.status, h.json?.status], [200, "ok"]);
  const v = await c.s.https("/auth/verify");
  assert.is(v.status, 401, "nobody: the web's forward auth answers");
  const rpc = await c.s.https("/RPC2", { body: "<?xml version=\"1.0\"?><methodCall><methodName>nope</methodName><params/></methodCall>", headers: { "content-type": "text/xml" } });
  assert.is(rpc.status, 200);
  assert.match(rpc.text, /<name>faultCode<\/name><value><int>-32601<\/int>/, "XML-RPC's own fault for an unknown method");
  const none = await c.s.https("/no/such/path");
  assert.equal([none.status, none.json?.code], [404, "not_found"], "REST answers what no handler has");
  assert.match(c.s.log(), new RegExp(`https: listening on 127\\.0\\.0\\.1:${c.s.ports.https} \\(TLS; client certificates optional\\)`));
});

test("tls: REST /client/register over TLS carries server_ca, the SHA-256 fingerprint openssl prints for ca.crt", async (c) => {
  const r = await c.s.https("/client/register", { body: { nickname: "Fingerprint", device_id: newDevice() } });
  assert.is(r.status, 200, r.text);
  assert.is(r.json?.server_ca, opensslFingerprint(c.s.tls.caCert));
  const plain = await c.s.plain(c.s.ports.http, "/client/register", { body: { nickname: "Fingerprint", device_id: newDevice() } });
  assert.is(plain.json?.server_ca, opensslFingerprint(c.s.tls.caCert), "the plain port says it too: that is where a client first learns what to pin");
});

withPython("tls: Python's xmlrpc.client, trusting only ca.crt, calls register() on the TLS port and gets server_ca", async (c) => {
  const key = makeKey(c.s.dir.path);
  const script = [
    "import json, ssl, sys, xmlrpc.client",
    "url, ca, pubkey = sys.argv[1:4]",
    "proxy = xmlrpc.client.ServerProxy(url, context=ssl.create_default_context(cafile=ca))",
    "print(json.dumps(proxy.register('SHF7060071A', 'Python', '', pubkey)))",
  ].join("\n");
  const r = await runTool(toolBin(TOOLS.python3), ["-c", script, `https://localhost:${c.s.ports.https}/`, c.s.tls.caCert, key.line]);
  assert.is(r.code, 0, r.stderr);
  const reply = JSON.parse(r.stdout) as Record<string, string>;
  assert.equal([reply.success, reply.uid, reply.server_ca], ["OK", key.uid, opensslFingerprint(c.s.tls.caCert)]);
});

withCurl("tls: curl with a client certificate of the district CA is logged in (client-auth = token): /client/status answers without token headers", async (c) => {
  const m = await member(c);
  const url = `https://localhost:${c.s.ports.https}/client/status?uid=${m.uid}`;
  const bare = await curl(["--cacert", c.s.tls.caCert, url]);
  assert.equal(JSON.parse(bare.stdout).code, "auth_required", "no certificate, no token: not logged in");
  const r = await curl(["--cacert", c.s.tls.caCert, "--cert", m.files.cert, "--key", m.files.key, "-w", "\n%{http_code}", url]);
  const cut = r.stdout.lastIndexOf("\n");
  assert.is(r.stdout.slice(cut + 1), "200", r.stdout + r.stderr);
  const body = JSON.parse(r.stdout.slice(0, cut));
  assert.equal([body.success, body.registered], ["OK", true]);
  const other = await member(c);
  const theirs = await curl(["--cacert", c.s.tls.caCert, "--cert", m.files.cert, "--key", m.files.key, `https://localhost:${c.s.ports.https}/client/status?uid=${other.uid}`]);
  assert.equal(JSON.parse(theirs.stdout).code, "forbidden", "a certificate is its own uid's login, nobody else's");
});

test("tls: openssl s_client with a client certificate verifies the server and /auth/verify names the certificate's uid at level token; without one it is nobody", async (c) => {
  const m = await member(c);
  const get = "GET /auth/verify HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
  const connectTo = ["s_client", "-connect", `127.0.0.1:${c.s.ports.https}`, "-servername", "localhost", "-CAfile", c.s.tls.caCert, "-verify_return_error", "-ign_eof"];
  const withCert = await openssl([...connectTo, "-cert", m.files.cert, "-key", m.files.key], get);
  assert.match(withCert.stdout, /Verify return code: 0 \(ok\)/);
  assert.match(withCert.stdout, /HTTP\/1\.1 200 OK/);
  assert.match(withCert.stdout, new RegExp(`X-Sugar-Uid: ${m.uid}`, "i"));
  assert.match(withCert.stdout, /X-Sugar-Auth-Level: token/i);
  const without = await openssl(connectTo, get);
  assert.match(without.stdout, /Verify return code: 0 \(ok\)/);
  assert.match(without.stdout, /HTTP\/1\.1 401 Unauthorized/);
});

test("tls: a client cannot renegotiate (TLS 1.2): a second certificate would go unchecked", async (c) => {
  const m = await member(c);
  const connect = ["s_client", "-tls1_2", "-connect", `127.0.0.1:${c.s.ports.https}`, "-servername", "localhost", "-CAfile", c.s.tls.caCert, "-cert", m.files.cert, "-key", m.files.key];
  // s_client renegotiates on an input line "R" (commands are off with -ign_eof, so it is not given).
  const r = await openssl(connect, "R\n");
  assert.match(r.stdout + r.stderr, /RENEGOTIATING/);
  assert.match(r.stdout + r.stderr, /no renegotiation|unexpected (message|record)|alert/i);
  assert.not.match(r.stdout, /HTTP\/1\.1 200/);
});

test("tls: a client certificate from another CA is refused with a reason in each protocol (REST 401 JSON, XML-RPC ERR struct, a 401 page), not anonymity, and registers nobody", async (c) => {
  const m = await member(c, "other");
  const r = await c.s.https("/client/register", { body: { nickname: "Other CA", device_id: newDevice() }, cert: m.files.cert, key: m.files.key });
  assert.equal([r.status, r.json?.success, r.json?.code], [401, "ERR", "auth_invalid"]);
  assert.match(String(r.json?.error), /not from this school district's CA/);
  assert.is(await usersNamed(c, "Other CA"), 0, "nothing registered");
  const call = "<?xml version=\"1.0\"?><methodCall><methodName>register</methodName><params>" + "<param><value><string>x</string></value></param>".repeat(4) + "</params></methodCall>";
  const rpc = await c.s.https("/RPC2", { body: call, headers: { "content-type": "text/xml" }, cert: m.files.cert, key: m.files.key });
  assert.is(rpc.status, 200, "XML-RPC says it in the struct Sugar shows");
  assert.match(rpc.text, /<name>code<\/name><value><string>auth_invalid<\/string>/);
  assert.match(rpc.text, /not from this school district&apos;s CA|not from this school district's CA/);
  const page = await c.s.https("/register", { cert: m.files.cert, key: m.files.key, headers: { "accept-language": "en" } });
  assert.is(page.status, 401);
  assert.match(page.text, /client certificate was not accepted/);
});

test("tls: a district certificate issued for another school (O = its site) is no login here, even for a uid registered here", async (c) => {
  const m = await member(c, "other-site");
  const r = await c.s.https(`/client/status?uid=${m.uid}`, { cert: m.files.cert, key: m.files.key });
  assert.equal([r.status, r.json?.code], [401, "auth_invalid"]);
  assert.match(String(r.json?.error), /issued for school "another-school", not this one \(school\)/);
});

test("tls: an expired client certificate is refused with 401 saying it expired, and registers nobody", async (c) => {
  const m = await member(c, "expired");
  const r = await c.s.https("/client/register", { body: { nickname: "Expired", device_id: newDevice() }, cert: m.files.cert, key: m.files.key });
  assert.equal([r.status, r.json?.code], [401, "auth_invalid"]);
  assert.match(String(r.json?.error), /expired/);
  assert.is(await usersNamed(c, "Expired"), 0, "nothing registered");
});

test("tls: a certificate of a removed uid is refused, and stays refused when the uid registers again (it was issued before the removal)", async (c) => {
  const deviceId = newDevice();
  const first = await c.s.registerDevice(deviceId, "Removed");
  const files = c.s.tls.client(first.uid);
  const asMember = () => c.s.https(`/client/status?uid=${first.uid}`, { cert: files.cert, key: files.key });
  assert.is((await asMember()).status, 200, "logged in while registered");
  // Certificate times are whole seconds: the removal comes in a later second than the issue, as it would in life.
  const issued = Math.floor(Date.now() / 1000);
  await waitFor("the next second", () => Math.floor(Date.now() / 1000) > issued, 3000);
  await c.s.registry.call("remove", { uid: first.uid });
  const gone = await asMember();
  assert.equal([gone.status, gone.json?.code], [401, "auth_invalid"]);
  assert.match(String(gone.json?.error), /not registered/);
  const again = await c.s.registerDevice(deviceId, "Removed");
  assert.is(again.uid, first.uid, "the same device is the same uid");
  const stale = await asMember();
  assert.equal([stale.status, stale.json?.code], [401, "auth_invalid"]);
  assert.match(String(stale.json?.error), /issued before .* was removed or replaced/);
  const fresh = c.s.tls.client(first.uid);
  assert.is((await c.s.https(`/client/status?uid=${first.uid}`, { cert: fresh.cert, key: fresh.key })).status, 200, "a certificate issued after it logs in");
});

test("tls: plain HTTP on the TLS port gets a short HTTP/1.1 400 at once and the connection closes; the port goes on serving TLS", async (c) => {
  const answer = await new Promise<string>((resolve, reject) => {
    const sock = connect({ host: "127.0.0.1", port: c.s.ports.https });
    let got = "";
    sock.setTimeout(10_000, () => sock.destroy(new Error("no answer in 10 s")));
    sock.on("data", (d) => (got += d));
    sock.on("end", () => resolve(got));
    sock.on("error", reject);
    sock.write("GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n");
  });
  assert.match(answer, /^HTTP\/1\.1 400 Bad Request\r\n/);
  assert.match(answer, /Connection: close\r\n/);
  assert.ok(answer.endsWith("\r\n\r\nthis port speaks TLS: use https://\n"), answer);
  assert.is((await c.s.https("/healthz")).status, 200);
});

test("tls: a refused plain-HTTP client that keeps sending is closed within a fixed grace, not kept while it dribbles", async (c) => {
  const started = Date.now();
  const closedAfter = await new Promise<number>((resolve, reject) => {
    const sock = connect({ host: "127.0.0.1", port: c.s.ports.https });
    const drip = setInterval(() => sock.write("x"), 300);
    sock.on("close", () => {
      clearInterval(drip);
      resolve(Date.now() - started);
    });
    sock.on("error", () => undefined); // the server's close may reach a write as EPIPE/ECONNRESET: closing is the point
    sock.setTimeout(15_000, () => {
      clearInterval(drip);
      sock.destroy();
      reject(new Error("still open after 15 s"));
    });
    sock.write("GET /healthz HTTP/1.1\r\n");
  });
  assert.ok(closedAfter < 8000, `closed after ${closedAfter} ms`);
});

for (const version of ["-tls1", "-tls1_1"]) {
  test(`tls: a ${version.slice(1).replace("_", ".")} ClientHello is refused by the server's handshake (protocol_version alert), and the port goes on serving`, async (c) => {
    // OpenSSL 3 offers TLS 1.0/1.1 only at security level 0; the refusal must then come from the server.
    const r = await openssl(["s_client", "-connect", `127.0.0.1:${c.s.ports.https}`, version, "-cipher", "DEFAULT@SECLEVEL=0", "-ign_eof"], "");
    const out = r.stdout + r.stderr;
    assert.is.not(r.code, 0, out);
    assert.not.match(out, /no protocols available|unsupported protocol.*ssl_choose_client_version/i, "the client did offer the old version");
    assert.match(out, /ssl3_read_bytes:tlsv1 alert protocol version/, "the client read a protocol_version alert from the server");
    assert.not.match(out, /Cipher is (?!\(NONE\))/, "no session was set up");
    assert.is((await c.s.https("/healthz")).status, 200);
  });
}

test("tls: TLS 1.2 is served (the floor), as 1.3 is", async (c) => {
  const r = await openssl(["s_client", "-connect", `127.0.0.1:${c.s.ports.https}`, "-tls1_2", "-CAfile", c.s.tls.caCert, "-ign_eof"], "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
  assert.match(r.stdout, /Protocol *: TLSv1\.2/);
  assert.match(r.stdout, /HTTP\/1\.1 200 OK/);
});

t.run();
