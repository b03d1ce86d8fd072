/**
 * "Who is this client?" end to end: `sugar-server start --client-auth token`
 * as a child process, driven by clients that use only Python's standard
 * library (xmlrpc.client, urllib) and by the real `ssh-keygen -Y sign`.
 * Every refusal answers in the client's own protocol.
 */
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { makeKey } from "../support/keys.js";
import { requires, testsNeeding, toolBin, TOOLS } from "../support/requires.js";
import { runCli, startServer, type ServerProcess } from "../support/server.js";
import { tempDir } from "../support/tmp.js";

interface Ctx {
  dir: ReturnType<typeof tempDir>;
  root: string;
  server: ServerProcess;
  rest: string;
  xmlrpc: string;
}

const requirement = requires(TOOLS.sshKeygen, TOOLS.python3);
const t = suite<Ctx>("trust");
const test = testsNeeding(t, requirement);

t.before(async (ctx) => {
  if (!requirement.ok) return;
  ctx.dir = tempDir("sugar-trust-");
  ctx.root = join(ctx.dir.path, "root");
  ctx.server = await startServer([
    "start",
    ...["--root", ctx.root, "--host", "127.0.0.1", "--httpd-port", "0", "--xmlrpc-port", "0", "--activation-port", "0"],
    ...["--jabber-url", "school.example", "--backup-user", "sugar", "--backup-host", "xs.example", "--backup-max-load", "1000", "--backup-min-free", "0"],
    ...["--client-auth", "token", "--login-failures", "20"],
  ]);
  ctx.rest = `http://127.0.0.1:${ctx.server.ports.http}`;
  ctx.xmlrpc = `http://127.0.0.1:${ctx.server.ports.xmlrpc}/`;
});
t.after(async (ctx) => {
  await ctx.server?.stop();
  ctx.dir?.remove();
});

/** Runs a Python 3 script (standard library only) with JSON arguments; prints JSON back. */
function python(script: string, ...args: unknown[]): Record<string, unknown> {
  return JSON.parse(execFileSync(toolBin(TOOLS.python3), ["-c", script, ...args.map((a) => JSON.stringify(a))], { encoding: "utf8" }));
}

/** What a Sugar client written against the docs does, with nothing but the standard library. */
const STDLIB_CLIENT = `
import json, sys, urllib.request, urllib.error, xmlrpc.client
rpc, rest, sn, pubkey = [json.loads(a) for a in sys.argv[1:5]]
out = {}
reg = xmlrpc.client.ServerProxy(rpc).register(sn, "Ana", "8BF9AC40-26F8-4BCC-A699-BE51FD366419", pubkey)
out["register"] = reg
def call(method, path, body=None, headers=None):
    req = urllib.request.Request(rest + path, method=method, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())
out["login"] = call("POST", "/client/login", {"credential": reg["credential"]})
headers = out["login"][1]["headers"]
uid = reg["uid"]
out["status"] = call("GET", "/client/status?uid=" + uid, headers=headers)
out["backup"] = call("GET", "/client/backup?uid=" + uid, headers=headers)
out["status_bare"] = call("GET", "/client/status?uid=" + uid)
out["xmlrpc_login"] = xmlrpc.client.ServerProxy(rpc).login(reg["credential"])
print(json.dumps(out))
`;

async function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(url, { headers });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

async function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

test("trust: a stdlib Python client registers over XML-RPC, logs in with its credential, and calls status and backup with the headers", async (c) => {
  const key = makeKey(c.dir.path);
  const out = python(STDLIB_CLIENT, c.xmlrpc, c.rest, "SHF706002A7", key.body) as Record<string, [number, Record<string, unknown>]> & { register: Record<string, string>; xmlrpc_login: Record<string, unknown> };
  assert.is(out.register.success, "OK");
  assert.is(out.register.uid, key.uid);
  assert.match(out.register.credential ?? "", /^sugar1\./);
  const [loginStatus, login] = out.login;
  assert.is(loginStatus, 200);
  assert.is(login.uid, key.uid);
  const headers = login.headers as Record<string, string>;
  assert.equal(Object.keys(headers).sort(), ["X-Sugar-Auth", "X-Sugar-Auth-Expires", "X-Sugar-Auth-Time", "X-Sugar-Uid"]);
  assert.equal([out.status[0], out.status[1].registered], [200, true]);
  assert.equal([out.backup[0], out.backup[1].accepted], [200, true]);
  assert.equal([out.status_bare[0], out.status_bare[1].code], [401, "auth_required"], "no headers, no status");
  assert.is(out.xmlrpc_login.success, "OK");
  assert.is(out.xmlrpc_login.uid, key.uid);
});

test("trust: a client that lost its credential logs in with ssh-keygen -Y sign (the real tool) and gets a fresh one; the old one stops working", async (c) => {
  const key = makeKey(c.dir.path);
  const reg = await post(`${c.rest}/client/register`, { nickname: "Beto", pubkey: key.line });
  const oldCredential = reg.json.credential as string;
  assert.ok(oldCredential);
  const challenge = await get(`${c.rest}/client/challenge?uid=${key.uid}`);
  assert.is(challenge.json.namespace, "sugar-server");
  const nonceFile = join(c.dir.path, `nonce-${key.uid}`);
  writeFileSync(nonceFile, challenge.json.nonce as string); // exactly the nonce's characters, no newline
  execFileSync(toolBin(TOOLS.sshKeygen), ["-Y", "sign", "-n", "sugar-server", "-f", key.privatePath, nonceFile], { stdio: "ignore" });
  const signature = execFileSync("cat", [`${nonceFile}.sig`], { encoding: "utf8" });
  const login = await post(`${c.rest}/client/login`, { uid: key.uid, nonce: challenge.json.nonce, signature, credential: true });
  assert.is(login.status, 200, JSON.stringify(login.json));
  assert.is(login.json.uid, key.uid);
  const fresh = login.json.credential as string;
  assert.match(fresh, /^sugar1\./);
  assert.is.not(fresh, oldCredential);
  assert.equal((await post(`${c.rest}/client/login`, { credential: oldCredential })).json.code, "auth_invalid");
  assert.is((await post(`${c.rest}/client/login`, { credential: fresh })).status, 200);
  // The same nonce again is refused: single use.
  const again = await post(`${c.rest}/client/login`, { uid: key.uid, nonce: challenge.json.nonce, signature });
  assert.equal([again.status, again.json.code], [401, "auth_invalid"]);
});

test("trust: a token of another uid is 403 forbidden; a changed, expired-looking or garbage token is 401", async (c) => {
  const a = makeKey(c.dir.path);
  const b = makeKey(c.dir.path);
  const ra = await post(`${c.rest}/client/register`, { nickname: "A", pubkey: a.line, machine_sn: "SHF706002B1" });
  await post(`${c.rest}/client/register`, { nickname: "B", pubkey: b.line });
  const headers = (await post(`${c.rest}/client/login`, { credential: ra.json.credential })).json.headers as Record<string, string>;
  assert.equal((await get(`${c.rest}/client/status?uid=${b.uid}`, headers)).status, 403);
  assert.equal((await get(`${c.rest}/client/backup?uid=${b.uid}`, headers)).json.code, "forbidden");
  assert.equal((await get(`${c.rest}/client/lease?machine_sn=SHF706002B1`, headers)).status, 404, "its own machine: past the guard (no lease stored)");
  assert.equal((await get(`${c.rest}/client/lease?machine_sn=SHF706002B2`, headers)).status, 403, "another machine");
  for (const [name, value] of [
    ["X-Sugar-Uid", b.uid],
    ["X-Sugar-Auth-Time", String(Number(headers["X-Sugar-Auth-Time"]) + 1)],
    ["X-Sugar-Auth-Expires", "3599"],
    ["X-Sugar-Auth", "garbage"],
  ] as const) {
    const r = await get(`${c.rest}/client/status?uid=${a.uid}`, { ...headers, [name]: value });
    assert.is(r.status, 401, name);
    assert.is(r.json.code, "auth_invalid", name);
  }
});

test("trust: XML-RPC refuses a <!DOCTYPE> with fault -32700, and a nickname with a bidi override with an ERR struct", async (c) => {
  const key = makeKey(c.dir.path);
  const script = `
import json, sys, urllib.request, xmlrpc.client
url, body = json.loads(sys.argv[1]), json.loads(sys.argv[2])
req = urllib.request.Request(url, data=body.encode(), headers={"Content-Type": "text/xml"})
with urllib.request.urlopen(req) as r:
    text = r.read().decode()
try:
    print(json.dumps({"reply": xmlrpc.client.loads(text)[0][0]}))
except xmlrpc.client.Fault as f:
    print(json.dumps({"fault": f.faultCode}))
`;
  const doctype = `<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "SHF706002A7">]><methodCall><methodName>register</methodName><params>${["&e;", "Ana", "", key.body].map((p) => `<param><value><string>${p}</string></value></param>`).join("")}</params></methodCall>`;
  assert.equal(python(script, c.xmlrpc, doctype), { fault: -32700 });
  const bidi = `<?xml version="1.0"?><methodCall><methodName>register</methodName><params>${["SHF706002A7", "Ana\u202Egnp.exe", "", key.body].map((p) => `<param><value><string>${p}</string></value></param>`).join("")}</params></methodCall>`;
  const r = python(script, c.xmlrpc, bidi) as { reply: Record<string, string> };
  assert.is(r.reply.success, "ERR");
  assert.is(r.reply.code, "invalid_input");
  assert.match(r.reply.error!, /format characters/);
  assert.is((await get(`${c.rest}/client/status?uid=${key.uid}`)).status, 401, "status is guarded either way");
});

test("trust: XML-RPC refuses a lower-case <!doctype> and one after a byte-order mark, but a nickname with escaped <!DOCTYPE text is only text", async (c) => {
  const key = makeKey(c.dir.path);
  const call = (nickname: string, prolog = `<?xml version="1.0"?>`) =>
    `${prolog}<methodCall><methodName>register</methodName><params>${["SHF706002A7", nickname, "", key.body].map((p) => `<param><value><string>${p}</string></value></param>`).join("")}</params></methodCall>`;
  const rpc = async (body: string) => (await (await fetch(c.xmlrpc, { method: "POST", headers: { "content-type": "text/xml" }, body })).text());
  for (const body of [call("Ana", `<?xml version="1.0"?><!doctype methodCall>`), `\uFEFF${call("Ana", `<?xml version="1.0"?><!DocType methodCall>`)}`]) {
    assert.match(await rpc(body), /<name>faultCode<\/name><value><int>-32700<\/int>/);
  }
  const escaped = await rpc(call("&lt;!DOCTYPE html&gt; Ana"));
  assert.match(escaped, /<name>success<\/name><value><string>OK<\/string>/, escaped);
  const user = JSON.parse((await runCli(["users", "show", key.uid, "--root", c.root])).stdout) as { nickname: string };
  assert.is(user.nickname, "<!DOCTYPE html> Ana");
});

test("trust: users admin UID on|off sets the admin role, shown by users show and users list; auth rotate-key starts a new token key", async (c) => {
  const key = makeKey(c.dir.path);
  const reg = await post(`${c.rest}/client/register`, { nickname: "Profe", pubkey: key.line });
  const headers = (await post(`${c.rest}/client/login`, { credential: reg.json.credential })).json.headers as Record<string, string>;
  const root = ["--root", c.root];
  assert.match((await runCli(["users", "admin", key.uid, "on", ...root])).stdout, /is now an admin/);
  assert.is(JSON.parse((await runCli(["users", "show", key.uid, ...root])).stdout).admin, true);
  assert.match((await runCli(["users", "list", ...root])).stdout, new RegExp(`${key.uid}\\s+Profe\\s+-\\s+yes`));
  assert.match((await runCli(["users", "admin", key.uid, "off", ...root])).stdout, /is no longer an admin/);
  assert.is(JSON.parse((await runCli(["users", "show", key.uid, ...root])).stdout).admin, false);
  assert.is((await runCli(["users", "admin", key.uid, "maybe", ...root])).code, 2);
  const rotated = await runCli(["auth", "rotate-key", ...root]);
  assert.match(rotated.stdout, /new token key/);
  assert.is((await get(`${c.rest}/client/status?uid=${key.uid}`, headers)).status, 200, "a token under the previous key stays valid until it expires");
});

// Last: every login of this file comes from 127.0.0.1, and the earlier tests failed a couple on purpose.
test("trust: 25 failed logins from one address in a minute are answered 429", async (c) => {
  const codes: number[] = [];
  for (let i = 0; i < 25; i++) codes.push((await post(`${c.rest}/client/login`, { credential: `sugar1.bad${i}.bad` })).status);
  const first = codes.indexOf(429);
  assert.ok(first >= 15 && first <= 20, `401 until the limit of 20 failures a minute, then 429: ${codes.join(" ")}`);
  assert.equal(codes.slice(0, first), Array(first).fill(401));
  assert.equal(codes.slice(first), Array(25 - first).fill(429));
  const res = await fetch(`${c.rest}/client/login`, { method: "POST", headers: { "content-type": "application/json" }, body: '{"credential":"x"}' });
  assert.is(res.headers.get("retry-after"), "60");
});

t.run();
