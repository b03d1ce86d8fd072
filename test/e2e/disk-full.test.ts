/**
 * A full disk, for real: small tmpfs mounts (this needs root, as CI runs;
 * elsewhere the tests are counted as skipped) under a server's root, filled
 * up. A registration that cannot be written answers `disk_full` in the
 * client's protocol, with a plain message, and leaves nothing behind; the
 * backup actor warns once about authorized_keys and catches up when there is
 * room again, instead of rewriting in a loop.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, openSync, closeSync, readdirSync, readFileSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import serializer from "xmlrpc/lib/serializer.js";
import { makeKey } from "../support/keys.js";
import { allOf, feature, requires, testsNeeding, TOOLS } from "../support/requires.js";
import { startServer, type ServerProcess } from "../support/server.js";
import { tempDir } from "../support/tmp.js";
import { waitFor } from "../support/wait.js";

/** Can this process mount a tmpfs (root, with mount privileges)? */
function canMount(): boolean {
  if (process.getuid?.() !== 0) return false;
  const dir = tempDir("sugar-mount-probe-");
  try {
    return spawnSync("mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", dir.path]).status === 0 && spawnSync("umount", [dir.path]).status === 0;
  } finally {
    dir.remove();
  }
}

const requirement = allOf(requires(TOOLS.sshKeygen), feature(canMount(), "needs root to mount a small tmpfs"));
const t = suite("disk full");
const test = testsNeeding(t, requirement);

const mounts: string[] = [];
function mountTmpfs(dir: string, size: string): void {
  mkdirSync(dir, { recursive: true });
  execFileSync("mount", ["-t", "tmpfs", "-o", `size=${size},mode=0700`, "tmpfs", dir]);
  mounts.push(dir);
}
process.on("exit", () => {
  for (const m of mounts.reverse()) spawnSync("umount", ["-l", m]);
});

/** Fills the file system of `dir` with one file until it is full; returns its path. */
function fill(dir: string): string {
  const file = join(dir, ".filler");
  const fd = openSync(file, "w");
  const chunk = Buffer.alloc(4096, 1);
  try {
    for (;;) writeSync(fd, chunk);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOSPC") throw err;
  } finally {
    closeSync(fd);
  }
  return file;
}

const args = (root: string) => ["start", "--root", root, "--host", "127.0.0.1", "--httpd-port", "0", "--xmlrpc-port", "0", "--activation-port", "0", "--backup-user", "sugar", "--backup-host", "xs.example"];

async function register(server: ServerProcess, pubkey: string): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`http://127.0.0.1:${server.ports.http}/client/register`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ nickname: "Ana", pubkey }) });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

test("disk full: a registration that cannot be written answers 507 disk_full (REST) and an ERR struct with code disk_full (XML-RPC); nothing is left behind", async () => {
  const dir = tempDir("sugar-disk-full-");
  const root = join(dir.path, "root");
  mountTmpfs(root, "2m");
  const server = await startServer(args(root));
  try {
    const filler = fill(root);
    const users = join(root, "home", "registry", "users");
    const before = readdirSync(users);
    const key = makeKey(dir.path);
    const r = await register(server, key.line);
    assert.is(r.status, 507, JSON.stringify(r.json));
    assert.is(r.json.code, "disk_full");
    assert.match(String(r.json.error), /disk is full/);
    assert.not.match(String(r.json.error), /ENOSPC|\/|\.journal/, "no errno, no path");
    const xml = serializer.serializeMethodCall("register", ["SHF706002A7", "Ana", "", makeKey(dir.path).body]);
    const x = await (await fetch(`http://127.0.0.1:${server.ports.xmlrpc}/`, { method: "POST", headers: { "content-type": "text/xml" }, body: xml })).text();
    assert.match(x, /<name>success<\/name><value><string>ERR<\/string>/);
    assert.match(x, /<name>code<\/name><value><string>disk_full<\/string>/);
    assert.equal(readdirSync(users), before, "no user file");
    assert.is((await (await fetch(`http://127.0.0.1:${server.ports.http}/client/status?uid=${key.uid}`)).json()).registered, false);
    rmSync(filler);
    const again = await register(server, key.line);
    assert.is(again.status, 200, JSON.stringify(again.json));
  } finally {
    await server.stop();
    spawnSync("umount", [root]);
    dir.remove();
  }
});

test("disk full: authorized_keys that cannot be rewritten gives one warning, retries with backoff, and is rewritten once there is room", async () => {
  const dir = tempDir("sugar-disk-full-keys-");
  const root = join(dir.path, "root");
  const ssh = join(root, ".ssh");
  mountTmpfs(ssh, "64k");
  const server = await startServer([...args(root), "--log-level", "debug"]);
  try {
    const filler = fill(ssh);
    const keys = [makeKey(dir.path), makeKey(dir.path), makeKey(dir.path)];
    for (const k of keys) assert.is((await register(server, k.line)).status, 200);
    await waitFor("the disk-full warning", () => /the disk is full, so new keys are not usable yet/.test(server.output()));
    // Two retries later (1 s, then 2 s): the warning is not repeated, and nothing loops on "changed outside the server".
    await waitFor("two quiet retries", () => /disk still full; retry 2 in/.test(server.output()), 15000);
    const warnings = server.output().match(/the disk is full, so new keys are not usable yet/g) ?? [];
    assert.is(warnings.length, 1, server.output());
    assert.not.match(server.output(), /was changed outside the server/);
    rmSync(filler);
    await waitFor("the keys to land", () => keys.every((k) => readFileSync(join(ssh, "authorized_keys"), "utf8").includes(k.uid)), 20000);
    await waitFor("the all-clear in the log", () => /the disk has room again; rewritten/.test(server.output()));
  } finally {
    await server.stop();
    spawnSync("umount", [ssh]);
    dir.remove();
  }
});

t.run();
