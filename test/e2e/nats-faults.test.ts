/**
 * sugar-server processes on a real nats-server, and what they do when NATS
 * or an actor is missing: clear errors in the client's protocol, nothing
 * hangs, and recovery without a restart.
 */
import { execFileSync } from "node:child_process";
import { createServer } from "node:net";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { makeKey } from "../support/keys.js";
import { startNatsServer, type NatsServer } from "../support/nats-server.js";
import { requires, testsNeeding, toolBin, TOOLS } from "../support/requires.js";
import { runCli, startServer, type ServerProcess } from "../support/server.js";
import { tempDir } from "../support/tmp.js";
import { waitFor } from "../support/wait.js";

const t = suite("nats-faults");
const dir = tempDir("sugar-natsf-");
const cleanup: Array<() => Promise<unknown>> = [];

/** Registers `nats: <name>` for tests that need the tools listed (each counted as skipped without them). */
const needing = (...tools: Parameters<typeof requires>) => {
  const register = testsNeeding(t, requires(...tools));
  return (name: string, fn: () => Promise<void>) => register(`nats: ${name}`, fn);
};
/** No nats-server at all: the point of the test. */
const withoutNats = needing();
const onNats = needing(TOOLS.natsServer);
const onNatsWithKeys = needing(TOOLS.natsServer, TOOLS.sshKeygen);
const onNatsWithKeysAndPython = needing(TOOLS.natsServer, TOOLS.sshKeygen, TOOLS.python3);

t.after(async () => {
  for (const c of cleanup.reverse()) await c().catch(() => undefined);
  dir.remove();
});

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

let n = 0;
const serverArgs = (nats: string) => ["--nats", nats, "--root", join(dir.path, `root${++n}`), "--site", `s${n}`, "--host", "127.0.0.1", "--httpd-port", "0", "--xmlrpc-port", "0", "--activation-port", "0"];

async function register(base: string, key: { line: string }): Promise<{ status: number; body: Record<string, unknown>; ms: number }> {
  const started = Date.now();
  const res = await fetch(`${base}/client/register`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ nickname: "Ana", pubkey: key.line }) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown>, ms: Date.now() - started };
}

function pythonRegister(url: string, body: string): Record<string, string> {
  const script = "import json,sys,xmlrpc.client\nprint(json.dumps(xmlrpc.client.ServerProxy(sys.argv[1]).register('SHF706002A7','Ana','',sys.argv[2])))";
  return JSON.parse(execFileSync(toolBin(TOOLS.python3), ["-c", script, url, body], { encoding: "utf8", timeout: 15000 }));
}

withoutNats("nats-server not running at start: a clear one-line error", async () => {
  const port = await freePort();
  const started = Date.now();
  const r = await runCli(["start", ...serverArgs(`nats://127.0.0.1:${port}`)]);
  assert.is(r.code, 1);
  const lines = r.stderr.trim().split("\n").filter((l) => !/ (INFO|WARN) /.test(l));
  assert.is(lines.length, 1, r.stderr);
  assert.match(lines[0]!, new RegExp(`cannot connect to NATS at nats://127.0.0.1:${port}`));
  assert.ok(Date.now() - started < 10000);
});

onNatsWithKeys("with --nats-wait the server waits for nats-server and becomes ready when it comes up", async () => {
  const port = await freePort();
  const pending = startServer(["start", ...serverArgs(`nats://127.0.0.1:${port}`), "--nats-wait"], { timeoutMs: 30000 });
  const nats = await startNatsServer({ port });
  cleanup.push(() => nats.stop());
  const server = await pending;
  cleanup.push(() => server.stop());
  const r = await register(`http://127.0.0.1:${server.ports.http}`, makeKey(dir.path));
  assert.is(r.body.success, "OK");
});

onNatsWithKeysAndPython("nats-server stopped while serving: REST and XML-RPC answer ERR within the bus timeout; recovery without a restart", async () => {
  let nats: NatsServer = await startNatsServer();
  const port = nats.port;
  const server: ServerProcess = await startServer(["start", ...serverArgs(nats.url), "--bus-timeout", "1500"]);
  cleanup.push(() => server.stop());
  const base = `http://127.0.0.1:${server.ports.http}`;
  assert.is((await register(base, makeKey(dir.path))).body.success, "OK");

  await nats.stop();
  const down = await register(base, makeKey(dir.path));
  assert.is(down.body.success, "ERR");
  assert.ok(down.status >= 500, String(down.status));
  assert.ok(down.ms < 1500 + 1000, `REST took ${down.ms} ms`);
  const xml = pythonRegister(`http://127.0.0.1:${server.ports.xmlrpc}/`, makeKey(dir.path).body);
  assert.is(xml.success, "ERR");
  assert.match(xml.error!, /busy|down|try again/);
  const health = await fetch(`${base}/healthz`);
  assert.is(health.status >= 500, true);

  nats = await startNatsServer({ port });
  cleanup.push(() => nats.stop());
  const key = makeKey(dir.path);
  await waitFor("registration after NATS is back", async () => (await register(base, key)).body.success === "OK", 20000, 200);
  assert.match(server.output(), /nats/i);
});

onNatsWithKeys("an actor not running: callers get unavailable at once, not a timeout", async () => {
  const nats = await startNatsServer();
  cleanup.push(() => nats.stop());
  const server = await startServer(["run", "http", "xmlrpc", ...serverArgs(nats.url), "--bus-timeout", "5000"]);
  cleanup.push(() => server.stop());
  const r = await register(`http://127.0.0.1:${server.ports.http}`, makeKey(dir.path));
  assert.is(r.status, 503);
  assert.is(r.body.success, "ERR");
  assert.is(r.body.code, "unavailable");
  assert.ok(r.ms < 1000, `took ${r.ms} ms (the bus timeout is 5000)`);
});

onNats("sugar-server run keyring on NATS serves keyring admin commands from another process", async () => {
  const nats = await startNatsServer();
  cleanup.push(() => nats.stop());
  const root = join(dir.path, "kr");
  const keyring = await startServer(["run", "keyring", "--nats", nats.url, "--root", root], { expect: [] });
  cleanup.push(() => keyring.stop());
  const init = await runCli(["keyring", "init", "--nats", nats.url, "--root", join(dir.path, "elsewhere")]);
  assert.is(init.code, 0, init.stderr);
  assert.match(init.stdout, /directory: .*\/kr\/keyring/, "the keyring process, not a local one, made the key");
});

t.run();
