/**
 * Journal backup end to end with a real OpenSSH sshd and the real rsync
 * client: the registry and the backup actor run in this process on a
 * MemoryBus; clients register keys, then rsync through the forced command
 * and rrsync exactly as a Sugar desktop would. Without sshd, ssh, rsync,
 * rrsync or ssh-keygen every test is counted as skipped (a failure under
 * CI=true). The throughput comparison with plain rsync is in the bench
 * (test/bench/scenarios/backup.ts).
 */
import { randomBytes } from "node:crypto";
import { connect as tcpConnect, createServer } from "node:net";
import { lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, statSync, symlinkSync, writeFileSync, existsSync, appendFileSync } from "node:fs";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { startRegistry } from "../../actors/registry/index.js";
import type { Component } from "../../src/component.js";
import { startBackup, type BackupHandle } from "../../actors/backup/index.js";
import { clientDir } from "../../actors/backup/paths.js";
import { MemoryBus } from "../../src/bus/memory.js";
import { backupClient, registryClient, type BackupClient, type RegistryClient } from "../../src/codec.js";
import { backupsCommand } from "../../src/cli/backups.js";
import { configWith, type Config } from "../../src/config.js";
import { makeKey, type TestKey } from "../support/keys.js";
import { allOf, feature, requires, testsNeeding, toolBin, TOOLS } from "../support/requires.js";
import { rsyncAs, spawnSsh, SSHD_TOOLS, sshAs, sshdAcceptsDsa, startSshd, type RunResult, type Sshd } from "../support/sshd.js";
import { tempDir } from "../support/tmp.js";
import { sameTree, treeHashes } from "../support/tree.js";
import { waitFor } from "../support/wait.js";
import { captureLogger } from "../support/log.js";

interface Client {
  key: TestKey;
  uid: string;
  dir: string;
}

interface Ctx {
  tmp: ReturnType<typeof tempDir>;
  root: string;
  config: Config;
  bus: MemoryBus;
  registryActor: Component;
  backup: BackupHandle;
  registry: RegistryClient;
  backups: BackupClient;
  sshd: Sshd;
  logText: () => string;
  n: number;
}

const site = "school";
const requirement = requires(...SSHD_TOOLS, TOOLS.rrsync);

const t = suite<Ctx>("backup e2e");
const test = testsNeeding(t, requirement);


// uvu runs hooks even when every test is skipped: start nothing whose tool is missing.
t.before(async (ctx) => {
  if (!requirement.ok) return;
  ctx.tmp = tempDir("sugar-backup-e2e-");
  ctx.root = join(ctx.tmp.path, "root");
  const { log, text } = captureLogger();
  ctx.logText = text;
  ctx.config = configWith({
    root: ctx.root,
    site,
    "backup-user": "sugar",
    "backup-host": "xs.example",
    "backup-max-load": 1000,
    "backup-min-free": 1,
    "backup-keep": 3,
    "bus-timeout": 5000,
    "rrsync-path": toolBin(TOOLS.rrsync),
  });
  ctx.bus = new MemoryBus({ timeoutMs: 5000 });
  ctx.registryActor = await startRegistry({ bus: ctx.bus, config: ctx.config, log });
  ctx.backup = await startBackup({ bus: ctx.bus, config: ctx.config, log });
  ctx.registry = registryClient(ctx.bus, site, { timeoutMs: 5000 });
  ctx.backups = backupClient(ctx.bus, site, { timeoutMs: 30000 });
  ctx.sshd = await startSshd({ authorizedKeysFiles: [join(ctx.root, ".ssh", "authorized_keys")] });
  ctx.n = 0;
});

t.after(async (ctx) => {
  if (!requirement.ok) return;
  await ctx.sshd?.stop();
  await ctx.backup?.stop();
  await ctx.registryActor?.stop();
  await ctx.bus?.close();
  ctx.tmp?.remove();
});

/** Registers a fresh key and waits until its authorized_keys line is there. */
async function register(c: Ctx, nickname = "Ana"): Promise<Client> {
  const key = makeKey(c.tmp.path);
  const r = await c.registry.call("register", { nickname, pubkey: key.line });
  assert.is(r.user?.uid, key.uid);
  await waitForKeyLine(c, key.uid, true);
  return { key, uid: key.uid, dir: clientDir(c.root, key.uid) };
}

function keysFile(c: Ctx): string {
  return readFileSync(join(c.root, ".ssh", "authorized_keys"), "utf8");
}

function waitForKeyLine(c: Ctx, uid: string, present: boolean): Promise<boolean> {
  return waitFor(`authorized_keys ${present ? "to have" : "to lose"} ${uid}`, () => keysFile(c).includes(` ${uid}" `) === present);
}

function snapshotsOf(dir: string): string[] {
  return readdirSync(dir).filter((n) => /^datastore-\d{4}-\d{2}-\d{2}_\d{2}:\d{2}:\d{2}$/.test(n)).sort();
}

/** A Sugar Journal-like tree: uid-named entries with data and metadata, odd names, one 5 MB file, a symlink. */
function makeJournal(dir: string, seed: string): void {
  const entry = (id: string, title: string, data: Buffer) => {
    const d = join(dir, "store", id.slice(0, 2), id);
    mkdirSync(join(d, "metadata"), { recursive: true });
    writeFileSync(join(d, "data"), data);
    writeFileSync(join(d, "metadata", "title"), title);
    writeFileSync(join(d, "metadata", "mime_type"), "application/octet-stream");
  };
  entry(`1f0e9a7c-${seed}`, "Mi dibujo ☀", randomBytes(5 * 1024 * 1024));
  entry(`2a4b6c8d-${seed}`, "Nota", Buffer.from("hola\n"));
  mkdirSync(join(dir, "niño", "carpeta con espacios"), { recursive: true });
  writeFileSync(join(dir, "niño", "carpeta con espacios", "ñandú — copia (2).txt"), "¡ñandú!\n");
  writeFileSync(join(dir, "niño", "日本語 ファイル.txt"), randomBytes(3000));
  writeFileSync(join(dir, "empty file"), "");
  writeFileSync(join(dir, "index_updated"), "");
  symlinkSync("niño/日本語 ファイル.txt", join(dir, "a link"));
}

/** ds-backup's own flags (OLPC ds-backup's client/ds-backup.sh). */
const DS_BACKUP = ["-z", "-rlt", "--partial", "--delete", "--timeout=160"];

function ok(r: RunResult, what: string): void {
  assert.is(r.code, 0, `${what} failed (${r.code}): ${r.stderr}`);
}

function refused(r: RunResult, what: string): void {
  assert.is.not(r.code, 0, `${what} should have failed: ${r.stdout}`);
}

/** The server's record of the last completed backup (written after the snapshot). */
function lastBackup(c: Ctx, uid: string): string {
  const file = join(c.root, "home", "backups", ".state", uid);
  return existsSync(file) ? (JSON.parse(readFileSync(file, "utf8")) as { last_backup: string }).last_backup : "";
}

/** One backup as ds-backup runs it; resolves once the server has handled its spool event. */
async function backupOnce(c: Ctx, cl: Client, src: string, extra: string[] = []): Promise<RunResult> {
  const before = lastBackup(c, cl.uid);
  const r = await rsyncAs(c.sshd, cl.key.privatePath, [...DS_BACKUP, ...extra, `${src}/`, c.sshd.remote("datastore-current")]);
  ok(r, "backup");
  await waitFor(`the server to handle the backup of ${cl.uid}`, () => lastBackup(c, cl.uid) !== before, 20000);
  return r;
}

test("backup: a Journal tree backs up to datastore-current and restores byte-identical from datastore-latest and datastore-current", async (c) => {
  const a = await register(c, "Ana");
  const src = join(c.tmp.path, "journal-a");
  makeJournal(src, "a");
  await backupOnce(c, a, src);
  const original = treeHashes(src);
  assert.ok(statSync(join(a.dir, "datastore-current", "store", "1f", "1f0e9a7c-a", "data")).size === 5 * 1024 * 1024);
  assert.is(sameTree(original, treeHashes(join(a.dir, "datastore-current"))), undefined, "server copy");
  const latest = readlinkSync(join(a.dir, "datastore-latest"));
  assert.match(latest, /^datastore-\d{4}-\d{2}-\d{2}_\d{2}:\d{2}:\d{2}$/);
  assert.is(sameTree(original, treeHashes(join(a.dir, latest))), undefined, "snapshot");
  const inCurrent = statSync(join(a.dir, "datastore-current", "store", "1f", "1f0e9a7c-a", "data"));
  const inSnapshot = statSync(join(a.dir, latest, "store", "1f", "1f0e9a7c-a", "data"));
  assert.is(inSnapshot.ino, inCurrent.ino, "the snapshot hard-links the files");

  for (const from of ["datastore-latest/", "datastore-current/"]) {
    const out = join(c.tmp.path, `restore-a-${from.replace(/\W/g, "")}`);
    mkdirSync(out);
    const r = await rsyncAs(c.sshd, a.key.privatePath, ["-rlt", c.sshd.remote(from), `${out}/`]);
    ok(r, `restore from ${from}`);
    assert.is(sameTree(original, treeHashes(out)), undefined, `restored from ${from}`);
  }
  await waitFor("the restore to be recorded", async () => (await c.backups.call("show", { uid: a.uid })).backup?.lastRestore);
});

test("backup: a client cannot read, list or write another client's directory (.., absolute paths, uploaded symlinks)", async (c) => {
  const a = await register(c, "A");
  const b = await register(c, "B");
  const bSrc = join(c.tmp.path, "journal-b");
  mkdirSync(bSrc);
  writeFileSync(join(bSrc, "secret.txt"), "B's secret\n");
  await backupOnce(c, b, bSrc);
  const bBefore = treeHashes(b.dir);
  const out = join(c.tmp.path, "stolen");
  mkdirSync(out);
  const relB = `../../${b.uid.slice(-2)}/${b.uid}`;
  const reads = [
    `../${b.uid}/`,
    `${relB}/`,
    `${relB}/datastore-current/secret.txt`,
    `../`,
    `../../`,
    b.dir + "/",
    `${b.dir}/datastore-current/secret.txt`,
    "/etc/passwd",
    "/etc/",
  ];
  for (const path of reads) {
    const r = await rsyncAs(c.sshd, a.key.privatePath, ["-rlt", c.sshd.remote(path), `${out}/`]);
    refused(r, `reading ${path}`);
    assert.not.match(r.stdout + r.stderr, /B's secret|root:x:0:0/, path);
  }
  assert.not.ok(existsSync(join(out, "secret.txt")) || existsSync(join(out, "passwd")), `nothing of B or /etc arrived: ${readdirSync(out).join(", ")}`);
  // Listing "/" shows A's own directory, not the server's root.
  const list = await rsyncAs(c.sshd, a.key.privatePath, ["--list-only", c.sshd.remote("/")]);
  assert.not.match(list.stdout, /\b(etc|usr|home|bin)\b/, list.stdout);
  // Uploaded symlinks pointing at B's directory or /etc: stored, never followed.
  const evil = join(c.tmp.path, "evil");
  mkdirSync(evil);
  symlinkSync(b.dir, join(evil, "to-b"));
  symlinkSync(`../${relB}`, join(evil, "to-b-rel")); // from <A>/trap/: up to <A>, to the fan-out dir, to backups/
  symlinkSync("/etc", join(evil, "to-etc"));
  writeFileSync(join(evil, "payload"), "written by A\n");
  ok(await rsyncAs(c.sshd, a.key.privatePath, ["-rlt", `${evil}/`, c.sshd.remote("trap")]), "uploading symlinks");
  assert.ok(lstatSync(join(a.dir, "trap", "to-etc")).isSymbolicLink(), "stored as a symlink");
  for (const path of ["trap/to-b/datastore-current/secret.txt", "trap/to-b/", "trap/to-b-rel/datastore-current/", "trap/to-etc/passwd", "trap/to-etc/"]) {
    const r = await rsyncAs(c.sshd, a.key.privatePath, ["-rlt", c.sshd.remote(path), `${out}/`]);
    refused(r, `reading through ${path}`);
    assert.match(r.stderr, /unsafe arg/, path);
    assert.not.match(r.stdout + r.stderr, /B's secret|root:x:0:0/, path);
  }
  // Pulling the symlinks themselves brings symlinks, not what they point at.
  const links = join(c.tmp.path, "links");
  mkdirSync(links);
  ok(await rsyncAs(c.sshd, a.key.privatePath, ["-rlt", c.sshd.remote("trap/"), `${links}/`]), "pulling the symlinks");
  assert.ok(lstatSync(join(links, "to-etc")).isSymbolicLink());
  assert.not.ok(existsSync(join(out, "secret.txt")) || existsSync(join(out, "passwd")), `nothing of B or /etc arrived: ${readdirSync(out).join(", ")}`);
  // Options that would make the server follow links are refused (the sender's when pulling, -K when pushing).
  for (const flag of ["-L", "-k", "--copy-unsafe-links"]) {
    const r = await rsyncAs(c.sshd, a.key.privatePath, ["-rlt", flag, c.sshd.remote("trap/"), `${out}/`]);
    refused(r, `rsync ${flag} (pull)`);
    assert.match(r.stderr, /disabled|refused|not allowed/i, flag);
  }
  const keepDirlinks = await rsyncAs(c.sshd, a.key.privatePath, ["-rlt", "-K", `${evil}/`, c.sshd.remote("trap")]);
  refused(keepDirlinks, "rsync -K (push)");
  // Writing through .., absolute paths and the symlinks.
  for (const path of [`${relB}/datastore-current/`, `../${b.uid}/`, `${b.dir}/datastore-current/`, "trap/to-b/datastore-current/", "trap/to-b-rel/", "trap/to-etc/"]) {
    refused(await rsyncAs(c.sshd, a.key.privatePath, ["-rlt", join(evil, "payload"), c.sshd.remote(path)]), `writing to ${path}`);
  }
  // An absolute path is A's own directory: "/etc/" lands in <A>/etc/.
  ok(await rsyncAs(c.sshd, a.key.privatePath, ["-rlt", join(evil, "payload"), c.sshd.remote("/etc/")]), "writing to /etc/ (inside A's directory)");
  assert.ok(existsSync(join(a.dir, "etc", "payload")));
  assert.not.ok(existsSync("/etc/payload"), "nothing written to /etc");
  assert.is(sameTree(bBefore, treeHashes(b.dir)), undefined, "B's directory is unchanged");
});

test("backup: a client key gets no shell, no other command and no port forwarding", async (c) => {
  const a = await register(c, "Shell");
  const sh = await sshAs(c.sshd, a.key.privatePath, "sh -c 'echo pwned'");
  refused(sh, "ssh sh");
  assert.not.match(sh.stdout, /pwned/);
  assert.match(sh.stderr, /only runs rsync/);
  const cat = await sshAs(c.sshd, a.key.privatePath, "cat /etc/passwd");
  refused(cat, "ssh cat /etc/passwd");
  assert.not.match(cat.stdout, /root:/);
  const chained = await sshAs(c.sshd, a.key.privatePath, "rsync --server; cat /etc/passwd");
  refused(chained, "rsync --server; cat");
  assert.not.match(chained.stdout, /root:/);
  const login = await sshAs(c.sshd, a.key.privatePath, undefined, ["-T"], 15000);
  refused(login, "a login shell");
  const tty = await sshAs(c.sshd, a.key.privatePath, "sh", ["-tt"], 15000);
  refused(tty, "ssh -tt sh");
  const stdio = await sshAs(c.sshd, a.key.privatePath, undefined, ["-W", `127.0.0.1:${c.sshd.port}`]);
  refused(stdio, "ssh -W");
  assert.not.match(stdio.stdout, /SSH-2\.0/);
  const remote = await sshAs(c.sshd, a.key.privatePath, undefined, ["-N", "-o", "ExitOnForwardFailure=yes", "-R", "0:127.0.0.1:22"]);
  refused(remote, "ssh -R");

  // -L: ssh listens locally, but the server refuses to open the channel: no byte of the target comes back.
  const local = await new Promise<number>((resolve) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
  const fwd = spawnSsh(c.sshd, a.key.privatePath, ["-N", "-L", `127.0.0.1:${local}:127.0.0.1:${c.sshd.port}`]);
  let fwdErr = "";
  fwd.stderr!.on("data", (d) => (fwdErr += d));
  try {
    const got = await waitFor(
      "the local end of ssh -L",
      () =>
        new Promise<string | false>((resolve) => {
          const sock = tcpConnect({ host: "127.0.0.1", port: local });
          let data = "";
          sock.on("data", (d) => (data += d.toString("latin1")));
          sock.on("error", () => resolve(false));
          sock.on("close", (hadError) => resolve(hadError ? false : `closed:${data}`));
          sock.setTimeout(3000, () => {
            sock.destroy();
            resolve(`timeout:${data}`);
          });
        }),
      15000,
      100,
    );
    assert.not.match(got, /SSH-2\.0/, "the forward must not reach the target");
  } finally {
    // SIGKILL and wait: ssh -N sometimes sat on a SIGTERM for minutes, and its open pipes kept this test file from exiting.
    const gone = fwd.exitCode !== null || fwd.signalCode !== null ? Promise.resolve() : new Promise<void>((resolve) => fwd.once("exit", () => resolve()));
    fwd.kill("SIGKILL");
    await gone;
  }
  assert.match(c.sshd.log() + fwdErr, /prohibited|refused|denied|not permitted/i);
});

// OpenSSH 10 removed DSA: a feature of the installed sshd, not a tool to install, so a skip even under CI.
const withDsa = testsNeeding(t, allOf(requirement, feature(!requirement.ok || sshdAcceptsDsa(), "this sshd does not accept ssh-dss keys (OpenSSH 10 removed DSA)")));

withDsa("backup: a DSA key registered as old Sugar sends it (bare body) backs up, where this OpenSSH still accepts ssh-dss", async (c) => {
  const key = makeKey(c.tmp.path, "dsa");
  await c.registry.call("register", { nickname: "XO", pubkey: key.body });
  await waitForKeyLine(c, key.uid, true);
  assert.ok(keysFile(c).includes(`" ssh-dss ${key.body}\n`));
  const src = join(c.tmp.path, "journal-dsa");
  mkdirSync(src);
  writeFileSync(join(src, "entry"), "from an XO\n");
  await backupOnce(c, { key, uid: key.uid, dir: clientDir(c.root, key.uid) }, src);
  assert.is(readFileSync(join(clientDir(c.root, key.uid), "datastore-latest", "entry"), "utf8"), "from an XO\n");
});

test("backup: a key that never registered is refused", async (c) => {
  const stranger = makeKey(c.tmp.path);
  const r = await rsyncAs(c.sshd, stranger.privatePath, ["-rlt", c.sshd.remote("datastore-current/"), join(c.tmp.path, "x") + "/"]);
  refused(r, "rsync with an unregistered key");
  assert.match(r.stderr, /Permission denied/);
});

test("backup: a removed user is refused on the next connection; its directory stays", async (c) => {
  const u = await register(c, "Leaving");
  const src = join(c.tmp.path, "journal-leaving");
  mkdirSync(src);
  writeFileSync(join(src, "f"), "x");
  await backupOnce(c, u, src);
  await c.registry.call("remove", { uid: u.uid });
  await waitForKeyLine(c, u.uid, false);
  const r = await rsyncAs(c.sshd, u.key.privatePath, ["-rlt", `${src}/`, c.sshd.remote("datastore-current")]);
  refused(r, "backup after removal");
  assert.match(r.stderr, /Permission denied/);
  assert.ok(existsSync(join(u.dir, "datastore-current", "f")), "the directory stays");
});

function stat(stats: string, label: RegExp): number {
  const m = label.exec(stats);
  assert.ok(m, `${label} in ${stats}`);
  return Number(m![1]!.replace(/,/g, ""));
}

test("backup: a second backup sends only what changed, and every completed backup makes a snapshot", async (c) => {
  const u = await register(c, "Twice");
  const src = join(c.tmp.path, "journal-twice");
  makeJournal(src, "t");
  const first = await backupOnce(c, u, src, ["--stats"]);
  const sent1 = stat(first.stdout, /Total transferred file size: ([\d,]+)/);
  const literal1 = stat(first.stdout, /Literal data: ([\d,]+)/);
  writeFileSync(join(src, "niño", "nuevo.txt"), "a new entry\n");
  appendFileSync(join(src, "store", "2a", "2a4b6c8d-t", "data"), "more\n");
  const second = await backupOnce(c, u, src, ["--stats"]);
  const sent2 = stat(second.stdout, /Total transferred file size: ([\d,]+)/);
  const literal2 = stat(second.stdout, /Literal data: ([\d,]+)/);
  console.log(`    first backup: ${sent1} bytes of files transferred (${literal1} literal); second: ${sent2} (${literal2} literal)`);
  assert.ok(sent1 > 5 * 1024 * 1024, `first backup sends everything (${sent1})`);
  assert.ok(sent2 < 1000, `second backup sends only the two changed files (${sent2})`);
  assert.ok(literal2 < 1000, `literal data of the second backup (${literal2})`);
  const snaps = snapshotsOf(u.dir);
  assert.is(snaps.length, 2, snaps.join(", "));
  assert.is(readlinkSync(join(u.dir, "datastore-latest")), snaps[1]);
  assert.not.ok(existsSync(join(u.dir, snaps[0]!, "niño", "nuevo.txt")), "the first snapshot is as it was");
  assert.ok(existsSync(join(u.dir, snaps[1]!, "niño", "nuevo.txt")));
  // backup-keep = 3: a fourth and fifth backup leave the newest three.
  for (let i = 0; i < 3; i++) {
    writeFileSync(join(src, `round-${i}`), String(i));
    await backupOnce(c, u, src);
  }
  const kept = snapshotsOf(u.dir);
  assert.is(kept.length, 3, kept.join(", "));
  assert.is(readlinkSync(join(u.dir, "datastore-latest")), kept[2]);
  assert.ok(existsSync(join(u.dir, kept[2]!, "round-2")));
});

test("backup: pending restore is set when a removed key registers again with a backup, and cleared by its next backup", async (c) => {
  const u = await register(c, "Again");
  const src = join(c.tmp.path, "journal-again");
  mkdirSync(src);
  writeFileSync(join(src, "entry"), "journal\n");
  await backupOnce(c, u, src);
  assert.is((await c.backups.call("status", { uid: u.uid })).pendingRestore, false);
  await c.registry.call("remove", { uid: u.uid });
  await waitForKeyLine(c, u.uid, false);
  const again = await c.registry.call("register", { nickname: "Again", pubkey: u.key.line });
  assert.is(again.created, true);
  await waitFor("pending restore to be set", async () => (await c.backups.call("status", { uid: u.uid })).pendingRestore);
  await waitForKeyLine(c, u.uid, true);
  const out = join(c.tmp.path, "restore-again");
  mkdirSync(out);
  ok(await rsyncAs(c.sshd, u.key.privatePath, ["-rlt", c.sshd.remote("datastore-latest/"), `${out}/`]), "restore after re-registration");
  assert.is(readFileSync(join(out, "entry"), "utf8"), "journal\n");
  await waitFor("the restore to clear pending restore", async () => (await c.backups.call("status", { uid: u.uid })).pendingRestore === false);
  // Set again (remove, register), then cleared by a backup this time.
  await c.registry.call("remove", { uid: u.uid });
  await waitForKeyLine(c, u.uid, false);
  await c.registry.call("register", { nickname: "Again", pubkey: u.key.line });
  await waitFor("pending restore to be set again", async () => (await c.backups.call("status", { uid: u.uid })).pendingRestore);
  await waitForKeyLine(c, u.uid, true);
  await backupOnce(c, u, src);
  await waitFor("the backup to clear pending restore", async () => (await c.backups.call("status", { uid: u.uid })).pendingRestore === false);
});

test("backup: list and show report each directory's size, files and snapshots (and the CLI prints them)", async (c) => {
  const u = await register(c, "Listed ☀");
  const src = join(c.tmp.path, "journal-listed");
  mkdirSync(src);
  writeFileSync(join(src, "one"), randomBytes(10000));
  writeFileSync(join(src, "two"), randomBytes(20000));
  await backupOnce(c, u, src);
  const shown = (await c.backups.call("show", { uid: u.uid })).backup!;
  assert.is(shown.uid, u.uid);
  assert.is(shown.nickname, "Listed ☀");
  assert.is(shown.files, 2, "hard-linked snapshot files count once");
  assert.is(shown.sizeBytes, 30000);
  assert.is(shown.snapshots?.length, 1);
  assert.ok(shown.lastBackup);
  assert.is(shown.directory, u.dir);
  const listed = (await c.backups.call("list", {})).backups ?? [];
  assert.ok(listed.some((b) => b.uid === u.uid && b.files === 2));
  let out = "";
  const io = { out: (s: string) => void (out += s), err: (s: string) => void (out += s) };
  assert.is(await backupsCommand(["list"], c.backups, io), 0);
  assert.match(out, /^UID\s+NICKNAME\s+SIZE\s+FILES\s+SNAPSHOTS\s+LAST BACKUP/);
  assert.match(out, new RegExp(`${u.uid}\\s+Listed ☀\\s+29 KiB\\s+2\\s+1\\s+\\d{4}-`));
  out = "";
  assert.is(await backupsCommand(["show", u.uid], c.backups, io), 0);
  const j = JSON.parse(out) as { uid: string; files: number; snapshots: Array<{ name: string }> };
  assert.is(j.uid, u.uid);
  assert.is(j.snapshots.length, 1);
});

t.run();
