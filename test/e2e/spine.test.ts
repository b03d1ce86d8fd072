/**
 * Registration end to end: `sugar-server start` as a child process on
 * ephemeral ports, REST with fetch, XML-RPC with Python's xmlrpc.client
 * exactly as Sugar calls it, and every bad input refused with nothing
 * written to disk.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";

import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { describeDiff, sameSnapshot, snapshot } from "../support/disk.js";
import { makeKey } from "../support/keys.js";
import { requires, testsNeeding, toolBin, TOOLS } from "../support/requires.js";
import { registryOnDisk } from "../support/registry-files.js";
import { runCli, startServer, type ServerProcess } from "../support/server.js";
import { tempDir } from "../support/tmp.js";

interface Ctx {
  dir: ReturnType<typeof tempDir>;
  root: string;
  server: ServerProcess;
  rest: string;
  xmlrpc: string;
}
const t = suite<Ctx>("spine");
const withKeys = testsNeeding(t, requires(TOOLS.sshKeygen));
const withPython = testsNeeding(t, requires(TOOLS.python3));
const withKeysAndPython = testsNeeding(t, requires(TOOLS.sshKeygen, TOOLS.python3));

const baseArgs = (root: string) => ["--root", root, "--host", "127.0.0.1", "--httpd-port", "0", "--xmlrpc-port", "0", "--activation-port", "0", "--jabber-url", "school.example", "--backup-user", "sugar", "--backup-host", "xs.example"];

t.before(async (ctx) => {
  ctx.dir = tempDir();
  ctx.root = join(ctx.dir.path, "root");
  ctx.server = await startServer(["start", ...baseArgs(ctx.root)]);
  ctx.rest = `http://127.0.0.1:${ctx.server.ports.http}`;
  ctx.xmlrpc = `http://127.0.0.1:${ctx.server.ports.xmlrpc}/`;
});
t.after(async (ctx) => {
  await ctx.server?.stop();
  ctx.dir?.remove();
});

/** Python's xmlrpc.client, the library Sugar's shell uses; prints the reply (or the fault) as JSON. */
function pythonRegister(url: string, params: string[], method = "register"): unknown {
  const script = [
    "import json, sys, xmlrpc.client",
    "url, method, params = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])",
    "proxy = xmlrpc.client.ServerProxy(url)",
    "try:",
    "    print(json.dumps(getattr(proxy, method)(*params)))",
    "except xmlrpc.client.Fault as f:",
    "    print(json.dumps({'fault': f.faultCode, 'faultString': f.faultString}))",
  ].join("\n");
  return JSON.parse(execFileSync(toolBin(TOOLS.python3), ["-c", script, url, method, JSON.stringify(params)], { encoding: "utf8" }));
}

async function postJson(url: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: typeof body === "string" ? body : JSON.stringify(body) });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

withKeys("spine: REST registration writes the registry file and status reports the seed's keys", async (c) => {
  const key = makeKey(c.dir.path);
  const r = await postJson(`${c.rest}/client/register`, { nickname: "Ana", pubkey: key.line, machine_sn: "shf706002a7", machine_uuid: "8BF9AC40-26F8-4BCC-A699-BE51FD366419" });
  assert.is(r.status, 200);
  assert.is(r.json.success, "OK");
  assert.is(r.json.uid, key.uid);
  assert.is(r.json.jabberserver, "school.example");
  assert.is(r.json.backupurl, "sugar@xs.example:datastore-current");
  await registryOnDisk(c.root); // the file comes with the checkpoint, a moment after the reply
  const file = JSON.parse(readFileSync(join(c.root, "home", "registry", "users", key.uid), "utf8"));
  assert.is(file.machine_sn, "SHF706002A7", "REST upper-cases what a person typed");
  assert.is(file.pubkey, `${key.type} ${key.body}`);
  const s = await (await fetch(`${c.rest}/client/status?uid=${key.uid}`)).json();
  assert.equal(s, { success: "OK", registered: true, "jabber-url": "school.example", "backup-url": "sugar@xs.example:datastore-current", "pending-restore": false });
  const unknown = await (await fetch(`${c.rest}/client/status?uid=${"0".repeat(40)}`)).json();
  assert.equal(unknown, { success: "OK", registered: false });
});

withKeysAndPython("spine: XML-RPC register as Sugar calls it (bare ssh-dss-less body) returns the struct Sugar reads", async (c) => {
  const key = makeKey(c.dir.path, "rsa");
  const reply = pythonRegister(c.xmlrpc, ["SHF00000000", "Niño ☀", "00000000-0000-0000-0000-000000000000", key.body]) as Record<string, string>;
  assert.is(reply.success, "OK");
  assert.is(reply.uid, key.uid);
  assert.is(reply.jabberserver, "school.example");
  assert.is(reply.backupurl, "sugar@xs.example:datastore-current");
  await registryOnDisk(c.root); // the file comes with the checkpoint, a moment after the reply
  const file = JSON.parse(readFileSync(join(c.root, "home", "registry", "users", key.uid), "utf8"));
  assert.is(file.nickname, "Niño ☀");
  assert.is(file.pubkey, `ssh-rsa ${key.body}`, "stored as the canonical line");
  const again = pythonRegister(`${c.xmlrpc.replace(/\/$/, "")}/RPC2`, ["SHF00000000", "Niño ☀", "00000000-0000-0000-0000-000000000000", key.body]) as Record<string, string>;
  assert.is(again.uid, key.uid, "re-registering is idempotent");
});

t("spine: healthz answers after a round trip to the registry", async (c) => {
  const res = await fetch(`${c.rest}/healthz`);
  assert.is(res.status, 200);
  assert.is(((await res.json()) as { success: string }).success, "OK");
});

/** Each bad input: the error in the client's protocol, and the disk unchanged. */
async function unchanged(c: Ctx, fn: () => Promise<void> | void): Promise<void> {
  const before = snapshot(c.root);
  await fn();
  const after = snapshot(c.root);
  assert.ok(sameSnapshot(before, after), describeDiff(before, after));
}

const restBad: Array<[string, () => Record<string, unknown>, RegExp]> = [
  ["a serial number with /", () => ({ machine_sn: "SHF/06002A7" }), /machine_sn/],
  ["a serial number with ..", () => ({ machine_sn: "SHF..6002A7" }), /machine_sn/],
  ["a serial number of the wrong length", () => ({ machine_sn: "SHF706002A" }), /machine_sn/],
  ["a public key with a newline", () => ({ pubkey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHCfCpPd3Ddw6CKU0Rd24+9kfN8bN2SyQkxvQWu2Cc0d\nssh-rsa AAAA" }), /one line/],
  ["a public key with options in front", () => ({ pubkey: 'no-pty,command="sh" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHCfCpPd3Ddw6CKU0Rd24+9kfN8bN2SyQkxvQWu2Cc0d' }), /options/],
  ["a public key of an unknown type", () => ({ pubkey: "ssh-foo AAAAB3NzaC1yc2EAAAADAQABAAABAQ==" }), /not supported/],
  ["a public key that is not base64", () => ({ pubkey: "ssh-ed25519 AA!!AA" }), /base64/],
  ["a nickname with control characters", () => ({ nickname: "Ana\u001b[31m" }), /control/],
  ["a nickname over 200 characters", () => ({ nickname: "n".repeat(201) }), /200/],
  ["a pubkey that is not a string", () => ({ pubkey: 42 }), /pubkey must be a string/],
  ["a missing pubkey", () => ({ pubkey: undefined }), /pubkey is required/],
];
for (const [what, fields, re] of restBad) {
  withKeys(`spine: REST refuses ${what} with 400 ERR and writes nothing`, async (c) => {
    const key = makeKey(c.dir.path);
    await unchanged(c, async () => {
      const r = await postJson(`${c.rest}/client/register`, { nickname: "Ana", pubkey: key.line, ...fields() });
      assert.is(r.status, 400);
      assert.is(r.json.success, "ERR");
      assert.match(String(r.json.error), re);
    });
  });
}

t("spine: REST status refuses a uid that is not 40 hex digits", async (c) => {
  for (const uid of ["abc", "G".repeat(40), "../../etc/passwd", "A".repeat(40)]) {
    const res = await fetch(`${c.rest}/client/status?uid=${encodeURIComponent(uid)}`);
    assert.is(res.status, 400, uid);
    const j = (await res.json()) as Record<string, string>;
    assert.is(j.success, "ERR");
    assert.match(j.error!, /uid/);
  }
});

t("spine: REST refuses a 10 MB body with 413, malformed JSON with 400, an unknown route with 404, GET on a POST route with 405", async (c) => {
  await unchanged(c, async () => {
    const big = await fetch(`${c.rest}/client/register`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ nickname: "x".repeat(10 * 1024 * 1024) }) });
    assert.is(big.status, 413);
    assert.is(((await big.json()) as Record<string, string>).success, "ERR");
    const bad = await postJson(`${c.rest}/client/register`, '{"nickname": "Ana", pubkey');
    assert.is(bad.status, 400);
    assert.match(String(bad.json.error), /malformed JSON/);
    const arr = await postJson(`${c.rest}/client/register`, "[1,2]");
    assert.is(arr.status, 400);
    const nf = await fetch(`${c.rest}/client/nothing`);
    assert.is(nf.status, 404);
    assert.is(((await nf.json()) as Record<string, string>).success, "ERR");
    const get = await fetch(`${c.rest}/client/register`);
    assert.is(get.status, 405);
    assert.is(get.headers.get("allow"), "POST");
    assert.is(((await get.json()) as Record<string, string>).success, "ERR");
  });
});

withPython("spine: XML-RPC business errors are an ERR struct with an error message, nothing written", async (c) => {
  await unchanged(c, () => {
    const cases: Array<[string[], RegExp]> = [
      [["SHF/06002A7", "Ana", "", "AAAAC3NzaC1lZDI1NTE5AAAAIHCfCpPd3Ddw6CKU0Rd24+9kfN8bN2SyQkxvQWu2Cc0d"], /machine_sn/],
      [["SHF706002A7", "Ana\u0001", "", "AAAAC3NzaC1lZDI1NTE5AAAAIHCfCpPd3Ddw6CKU0Rd24+9kfN8bN2SyQkxvQWu2Cc0d"], /control/],
      [["SHF706002A7", "Ana", "", "not base64 at all"], /public key/],
      [["SHF706002A7", "Ana", "", "AAAAC3NzaC1lZDI1NTE5AAAAIHCfCpPd3Ddw6CKU0Rd24+9kfN8bN2SyQkxvQWu2Cc0d\nAAAA"], /one line/],
    ];
    for (const [params, re] of cases) {
      const reply = pythonRegister(c.xmlrpc, params) as Record<string, string>;
      assert.is(reply.success, "ERR");
      assert.match(reply.error!, re);
    }
  });
});

withPython("spine: XML-RPC faults for an unknown method and for register with 3 arguments", async (c) => {
  await unchanged(c, () => {
    assert.equal((pythonRegister(c.xmlrpc, [], "unregister") as { fault: number }).fault, -32601);
    assert.equal((pythonRegister(c.xmlrpc, ["SHF706002A7", "Ana", "x"]) as { fault: number }).fault, -32602);
    assert.equal((pythonRegister(c.xmlrpc, ["SHF706002A7", "Ana", "x", "y", "z"]) as { fault: number }).fault, -32602);
  });
});

withKeysAndPython("spine: XML-RPC refuses malformed XML with a parse fault, 10 MB with 413, GET with 405, other paths with 404", async (c) => {
  await unchanged(c, async () => {
    const bad = await fetch(c.xmlrpc, { method: "POST", headers: { "content-type": "text/xml" }, body: "<methodCall><methodName>register</methodName><params><param><value><string>x</value></param>" });
    assert.is(bad.status, 200);
    const text = await bad.text();
    assert.match(text, /<fault>/);
    assert.match(text, /-32700/);
    const notXml = await fetch(c.xmlrpc, { method: "POST", body: "hello" });
    assert.match(await notXml.text(), /-32700/);
    const big = await fetch(c.xmlrpc, { method: "POST", headers: { "content-type": "text/xml" }, body: "<a>" + "x".repeat(10 * 1024 * 1024) + "</a>" });
    assert.is(big.status, 413);
    const get = await fetch(c.xmlrpc);
    assert.is(get.status, 405);
    const other = await fetch(c.xmlrpc + "anything", { method: "POST", body: "<methodCall/>" });
    assert.is(other.status, 404);
  });
  // the server is still up and answering after all of that
  const key = makeKey(c.dir.path);
  assert.is((pythonRegister(c.xmlrpc, ["SHF706002A7", "Ana", "", key.body]) as Record<string, string>).success, "OK");
});

withKeys("spine: users list, show and remove go through the running server's admin socket", async (c) => {
  const key = makeKey(c.dir.path);
  await postJson(`${c.rest}/client/register`, { nickname: "Listed", pubkey: key.line });
  assert.ok(existsSync(join(c.root, "run", "admin.sock")));
  const list = await runCli(["users", "list", "--root", c.root]);
  assert.is(list.code, 0, list.stderr);
  assert.match(list.stdout, new RegExp(`${key.uid}\\s+Listed`));
  const show = await runCli(["users", "show", key.uid, "--root", c.root]);
  assert.is(show.code, 0, show.stderr);
  assert.is(JSON.parse(show.stdout).nickname, "Listed");
  const bad = await runCli(["users", "show", "nothex", "--root", c.root]);
  assert.is(bad.code, 1);
  assert.match(bad.stderr, /uid/);
  const rm = await runCli(["users", "remove", key.uid, "--root", c.root]);
  assert.is(rm.code, 0, rm.stderr);
  await registryOnDisk(c.root);
  assert.not.ok(existsSync(join(c.root, "home", "registry", "users", key.uid)));
  const s = (await (await fetch(`${c.rest}/client/status?uid=${key.uid}`)).json()) as Record<string, unknown>;
  assert.is(s.registered, false, "the running server saw the removal at once");
});

t("spine: a port in use is a one-line error naming the option", async (c) => {
  const r = await runCli(["start", ...baseArgs(join(c.dir.path, "other")), "--httpd-port", String(c.server.ports.http)]);
  assert.is(r.code, 1);
  const lines = r.stderr.trim().split("\n").filter((l) => !/ (INFO|WARN) /.test(l));
  assert.is(lines.length, 1, r.stderr);
  assert.match(lines[0]!, /httpd-port/);
  assert.match(lines[0]!, /in use/);
});

t("spine: a second server on the same root is refused by the lock", async (c) => {
  const r = await runCli(["start", ...baseArgs(c.root)]);
  assert.is(r.code, 1);
  assert.match(r.stderr, /another sugar-server \(pid \d+\) holds/);
});

// It lists the user the XML-RPC test registered (Niño ☀), so it needs what that test needs.
withKeysAndPython("spine: users commands work with no server running, and SIGTERM stops the server cleanly", async (c) => {
  const code = await c.server.stop();
  assert.is(code, 0, c.server.output());
  assert.match(c.server.output(), /SIGTERM: stopping/);
  assert.not.ok(existsSync(join(c.root, "run", "admin.sock")));
  assert.not.ok(existsSync(join(c.root, "run", "lock")));
  const list = await runCli(["users", "list", "--root", c.root]);
  assert.is(list.code, 0, list.stderr);
  assert.match(list.stdout, /Niño ☀/);
  const py = spawnSync(toolBin(TOOLS.python3), ["--version"]);
  assert.is(py.status, 0);
});

t("spine: `config` prints key = value lines of the effective configuration", async (c) => {
  const r = await runCli(["config", "--root", c.root, "--httpd-port", "9000"]);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /^httpd-port = 9000$/m);
  assert.match(r.stdout, /^xmlrpc-port = 8080$/m);
  assert.match(r.stdout, /^identity-model = sshkey$/m);
  assert.match(r.stdout, /^# from command line$/m);
  const bad = await runCli(["config", "--httpd-port", "x"]);
  assert.is(bad.code, 2);
  assert.match(bad.stderr, /httpd-port/);
});

t("spine: no INFO line the server logged names a file path (the root, or anything under it)", async (c) => {
  const info = c.server.output().split("\n").filter((l) => / INFO /.test(l));
  assert.ok(info.length > 5, "the server logged its start");
  for (const line of info) assert.not.ok(line.includes(c.dir.path), line);
});

t.run();

