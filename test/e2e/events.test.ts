/**
 * `sugar-server events --follow` as a script uses it: a child process
 * beside a running `sugar-server start`, one JSON line on standard output
 * per event, through the server's admin socket or over NATS.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { makeKey } from "../support/keys.js";
import { startNatsServer } from "../support/nats-server.js";
import { binPath } from "../support/paths.js";
import { requires, testsNeeding, TOOLS } from "../support/requires.js";
import { runCli, startServer, testEnv } from "../support/server.js";
import { tempDir } from "../support/tmp.js";
import { waitFor } from "../support/wait.js";

const t = suite("events");
const dir = tempDir("sugar-events-e2e-");
const cleanup: Array<() => Promise<unknown>> = [];
t.after(async () => {
  for (const c of cleanup.reverse()) await c().catch(() => undefined);
  dir.remove();
});
const withKeys = testsNeeding(t, requires(TOOLS.sshKeygen));
const withKeysOnNats = testsNeeding(t, requires(TOOLS.sshKeygen, TOOLS.natsServer));

let n = 0;
const serverArgs = (root: string) => ["--root", root, "--host", "127.0.0.1", "--httpd-port", "0", "--xmlrpc-port", "0", "--activation-port", "0", "--backup-host", "xs.example"];

interface Follower {
  child: ChildProcess;
  lines(): Array<Record<string, unknown>>;
  stderr(): string;
  exited: Promise<number | null>;
}

/** `sugar-server events --follow ARGS`, once it says it is following. */
async function follow(args: string[]): Promise<Follower> {
  const child = spawn(process.execPath, [binPath, "events", "--follow", ...args], { env: testEnv(), stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (err += d));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  let code: number | null | undefined;
  void exited.then((c) => (code = c));
  cleanup.push(async () => {
    if (code === undefined) child.kill("SIGKILL");
  });
  await waitFor("events --follow to be following", () => {
    if (code !== undefined) throw new Error(`exited with ${code}: ${err}`);
    return /following sugar\.\S+\.events\.>/.test(err);
  });
  return {
    child,
    lines: () => out.split("\n").filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>),
    stderr: () => err,
    exited,
  };
}

async function register(base: string, key: { line: string }, nickname = "Ana"): Promise<string> {
  const res = await fetch(`${base}/client/register`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ nickname, pubkey: key.line }) });
  const body = (await res.json()) as { uid?: string };
  assert.is(res.status, 200, JSON.stringify(body));
  return body.uid ?? "";
}

withKeys("events: --follow beside a running server prints registered and removed as JSON lines, and ends when the server stops", async () => {
  const root = join(dir.path, `root${++n}`);
  const server = await startServer(["start", ...serverArgs(root)]);
  cleanup.push(() => server.stop());
  // While no user is an admin, start says so, with the claim URL (or, without the auth actor's claim codes, why not).
  await waitFor("start's line about the first admin", () => /no admin yet/.test(server.output()));
  const f = await follow(["--root", root]);
  const key = makeKey(dir.path);
  const base = `http://127.0.0.1:${server.ports.http}`;
  const before = Date.now();
  assert.is(await register(base, key), key.uid);
  const registered = await waitFor("the registered line", () => f.lines().find((l) => l.kind === "registered"));
  assert.equal(Object.keys(registered).slice(0, 2), ["time", "kind"]);
  assert.ok(Date.parse(String(registered.time)) >= before - 1000, String(registered.time));
  const user = registered.user as Record<string, unknown>;
  assert.equal([user.uid, user.nickname, user.kind, user.pubkey, registered.created], [key.uid, "Ana", "", `${key.type} ${key.body}`, true]);
  const rm = await runCli(["users", "remove", key.uid, "--root", root]);
  assert.is(rm.code, 0, rm.stderr);
  const removed = await waitFor("the removed line", () => f.lines().find((l) => l.kind === "removed"));
  assert.is((removed.user as Record<string, unknown>).uid, key.uid);
  assert.is(await server.stop(), 0);
  assert.is(await f.exited, 1);
  assert.match(f.stderr(), /the server stopped/);
});

withKeys("events: SIGTERM ends a follower with 0", async () => {
  const root = join(dir.path, `root${++n}`);
  const server = await startServer(["start", ...serverArgs(root)]);
  cleanup.push(() => server.stop());
  const f = await follow(["--root", root]);
  f.child.kill("SIGTERM");
  assert.is(await f.exited, 0);
  assert.equal(f.lines(), []);
});

t("events: without --follow it is a usage error; with no server on the root (and no --nats) it says there is nothing to follow", async () => {
  const usage = await runCli(["events", "--root", join(dir.path, "none")]);
  assert.is(usage.code, 2);
  assert.match(usage.stderr, /usage: sugar-server events --follow/);
  const extra = await runCli(["events", "registered", "--follow", "--root", join(dir.path, "none")]);
  assert.is(extra.code, 2);
  const none = await runCli(["events", "--follow", "--root", join(dir.path, "none")]);
  assert.is(none.code, 1);
  assert.match(none.stderr, /no server is running on .*none.* no --nats is given: there are no events to follow/);
});

withKeysOnNats("events: --follow --nats prints the events of its site only", async () => {
  const nats = await startNatsServer();
  cleanup.push(() => nats.stop());
  const root = join(dir.path, `root${++n}`);
  const server = await startServer(["start", ...serverArgs(root), "--nats", nats.url, "--site", "east"]);
  cleanup.push(() => server.stop());
  const f = await follow(["--nats", nats.url, "--site", "east", "--root", join(dir.path, "elsewhere")]);
  const other = await follow(["--nats", nats.url, "--site", "west", "--root", join(dir.path, "elsewhere2")]);
  const key = makeKey(dir.path);
  await register(`http://127.0.0.1:${server.ports.http}`, key);
  const registered = await waitFor("the registered line over NATS", () => f.lines().find((l) => l.kind === "registered"));
  assert.is((registered.user as Record<string, unknown>).uid, key.uid);
  f.child.kill("SIGTERM");
  other.child.kill("SIGTERM");
  assert.is(await f.exited, 0);
  assert.is(await other.exited, 0);
  assert.equal(other.lines(), [], "another site's follower saw nothing");
});

t.run();
