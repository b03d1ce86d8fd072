/**
 * The backup actor's contract, run unchanged on every Bus implementation
 * (test/contract/buses.ts), without sshd: admission, authorized_keys,
 * registry events, pending restore, the spool. Uploads are simulated by the
 * real forced command (bin/sugar-backup-command.js) run the way sshd runs
 * it, with a stand-in for rrsync that writes into the client's directory.
 */
import { spawn } from "node:child_process";
import { chmodSync, existsSync, readFileSync, readdirSync, readlinkSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { sugar } from "../../schemas/gen/messages.js";
import { startRegistry } from "../../actors/registry/index.js";
import { startBackup, type BackupHandle, type BackupOptions } from "../../actors/backup/index.js";
import { commandScriptPath } from "../../actors/backup/authorized-keys.js";
import { writeSpoolEvent } from "../../actors/backup/events.js";
import { clientDir, spoolDir } from "../../actors/backup/paths.js";
import { subjects } from "../../src/bus/subjects.js";
import { backupClient, decodeReply, registryClient, type BackupClient, type RegistryClient } from "../../src/codec.js";
import { backupsCommand } from "../../src/cli/backups.js";
import { configWith, type Config, type OptionName } from "../../src/config.js";
import { SugarError } from "../../src/errors.js";
import * as validate from "../../src/validate.js";
import type { Logger } from "../../src/log.js";
import { makeKey, type TestKey } from "../support/keys.js";
import { tempDir } from "../support/tmp.js";
import { allOf, requires, testsNeeding, TOOLS } from "../support/requires.js";
import { waitFor } from "../support/wait.js";
import { forEachBus, type BusFactory, type BusKind } from "./buses.js";
import type { Bus } from "../../src/bus/types.js";
import type { Component } from "../../src/component.js";
import { expectError } from "../support/bus-errors.js";
import { captureLogger } from "../support/log.js";

let sites = 0;

interface Stack {
  config: Config;
  bus: Bus;
  registryActor: Component;
  backup: BackupHandle;
  registry: RegistryClient;
  backups: BackupClient;
  stop(): Promise<void>;
}

interface Ctx {
  tmp: ReturnType<typeof tempDir>;
  root: string;
  logText: () => string;
  log: Logger;
  stacks: Stack[];
  fakeRrsync: string;
  /** One site per test: on NATS the subjects of two tests never meet. */
  site: string;
  factory: BusFactory;
}

function backupContract(kind: BusKind): void {
const t = suite<Ctx>(`backup[${kind.name}]`);
// Most tests register real SSH keys (ssh-keygen); on NATS, nats-server too.
const test = testsNeeding(t, allOf(kind.requirement, requires(TOOLS.sshKeygen)));
let factory: BusFactory | undefined;
t.before(async () => {
  if (kind.requirement.ok) factory = await kind.start({ timeoutMs: 3000 });
});
t.after(async () => {
  await factory?.cleanup();
});


t.before.each((ctx) => {
  ctx.tmp = tempDir("sugar-backup-actor-");
  ctx.site = `b${process.pid}x${++sites}`;
  if (factory) ctx.factory = factory;
  ctx.root = join(ctx.tmp.path, "root");
  const { log, text } = captureLogger();
  ctx.log = log;
  ctx.logText = text;
  ctx.stacks = [];
  // Stands in for rrsync: an upload (no --sender) writes datastore-current/entry in the client's directory ($1).
  ctx.fakeRrsync = join(ctx.tmp.path, "fake-rrsync");
  writeFileSync(
    ctx.fakeRrsync,
    [
      "#!/bin/sh",
      'case "$SSH_ORIGINAL_COMMAND" in *" --sender "*) exit "${FAKE_EXIT:-0}";; esac',
      'mkdir -p "$1/datastore-current" && printf "%s" "${FAKE_DATA:-data}" > "$1/datastore-current/entry"',
      'exit "${FAKE_EXIT:-0}"',
      "",
    ].join("\n"),
  );
  chmodSync(ctx.fakeRrsync, 0o755);
});

t.after.each(async (ctx) => {
  for (const s of ctx.stacks.reverse()) await s.stop();
  ctx.tmp.remove();
});

type Overrides = Partial<Record<OptionName, string | number | boolean>>;

function configFor(c: Ctx, overrides: Overrides = {}): Config {
  return configWith({
    root: c.root,
    site: c.site,
    "backup-user": "sugar",
    "backup-host": "xs.example",
    "backup-max-load": 1000,
    "backup-min-free": 0,
    "bus-timeout": 3000,
    "rrsync-path": c.fakeRrsync,
    ...overrides,
  });
}

async function start(c: Ctx, overrides: Overrides = {}, opts: BackupOptions = {}): Promise<Stack> {
  const config = configFor(c, overrides);
  const bus = await c.factory.bus();
  const registryActor = await startRegistry({ bus, config, log: c.log });
  const backup = await startBackup({ bus, config, log: c.log }, opts);
  // Ready comes before the first reconcile with the registry; these tests look at the file after it.
  await backup.reconciled;
  let stopped = false;
  const s: Stack = {
    config,
    bus,
    registryActor,
    backup,
    registry: registryClient(bus, c.site, { timeoutMs: 3000 }),
    backups: backupClient(bus, c.site, { timeoutMs: 3000 }),
    async stop() {
      if (stopped) return;
      stopped = true;
      await backup.stop();
      await registryActor.stop();
      await bus.close();
    },
  };
  c.stacks.push(s);
  return s;
}

const keysPath = (c: Ctx) => join(c.root, ".ssh", "authorized_keys");
const keysText = (c: Ctx) => readFileSync(keysPath(c), "utf8");
const lineFor = (c: Ctx, s: Stack, k: TestKey) => {
  const fc = s.backup.forcedCommand;
  return `restrict,command="${fc.node} ${fc.script} --root ${c.root} --rrsync ${fc.rrsync} ${k.uid}" ${k.type} ${k.body}`;
};

async function register(c: Ctx, s: Stack, nickname = "Ana", extra: { machineSn?: string } = {}): Promise<TestKey> {
  const key = makeKey(c.tmp.path);
  await s.registry.call("register", { nickname, pubkey: key.line, ...extra });
  await waitFor(`the key line of ${key.uid}`, () => keysText(c).includes(` ${key.uid}" `));
  return key;
}


/** Runs the forced command as sshd would, with SSH_ORIGINAL_COMMAND = `original`. */
function forced(c: Ctx, uid: string, original: string | undefined, env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const e: NodeJS.ProcessEnv = { ...process.env, ...env };
    if (original === undefined) delete e.SSH_ORIGINAL_COMMAND;
    else e.SSH_ORIGINAL_COMMAND = original;
    const child = spawn(process.execPath, [commandScriptPath(), "--root", c.root, "--rrsync", c.fakeRrsync, uid], { env: e });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("close", (code) => resolve({ code, stdout, stderr }));
    child.stdin.end();
  });
}

const UPLOAD = "rsync --server -logDtprze.iLsfxCIvu --partial --delete --timeout=160 . datastore-current";
const DOWNLOAD = "rsync --server --sender -logDtprze.iLsfxCIvu . datastore-latest/";

const snapshotsOf = (dir: string) => (existsSync(dir) ? readdirSync(dir).filter((n) => /^datastore-\d{4}-\d{2}-\d{2}_\d{2}:\d{2}:\d{2}$/.test(n)).sort() : []);
const spoolEmpty = (c: Ctx) => readdirSync(spoolDir(c.root)).length === 0;

test("backup: admit accepts a registered uid and answers the same backup URL as registration and status", async (c) => {
  const s = await start(c);
  const key = makeKey(c.tmp.path);
  const reg = await s.registry.call("register", { nickname: "Ana", pubkey: key.line });
  await waitFor(`the key line of ${key.uid}`, () => keysText(c).includes(` ${key.uid}" `));
  const r = await s.backups.call("admit", { uid: key.uid });
  assert.equal({ accepted: r.accepted, backupUrl: r.backupUrl }, { accepted: true, backupUrl: "sugar@xs.example:datastore-current" });
  assert.is(r.backupUrl, reg.backupUrl);
  const status = await s.backups.call("status", { uid: key.uid });
  assert.equal({ backupUrl: status.backupUrl, pendingRestore: status.pendingRestore }, { backupUrl: r.backupUrl, pendingRestore: false });
  const k = key;
  assert.ok(statSync(clientDir(c.root, k.uid)).isDirectory());
});

test("backup: admit refuses a uid that is not registered (not_registered)", async (c) => {
  const s = await start(c);
  await expectError(s.backups.call("admit", { uid: "0".repeat(40) }), "not_registered");
  const removed = await register(c, s);
  await s.registry.call("remove", { uid: removed.uid });
  await expectError(s.backups.call("admit", { uid: removed.uid }), "not_registered");
});

test("backup: admit refuses a uid that is not 40 lower-case hex digits, and a request with neither uid nor machine_sn (invalid_input)", async (c) => {
  const s = await start(c);
  for (const uid of ["abc", "G".repeat(40), "A".repeat(40), "../../etc/passwd", "0".repeat(41)]) {
    await expectError(s.backups.call("admit", { uid }), "invalid_input", /uid/);
  }
  await expectError(s.backups.call("admit", {}), "invalid_input", /uid or a machine_sn/);
});

test("backup: admit by machine_sn: a registered machine is accepted, an unknown one forbidden, a malformed one invalid", async (c) => {
  const s = await start(c);
  await register(c, s, "XO", { machineSn: "SHF706002A7" });
  assert.is((await s.backups.call("admit", { machineSn: "SHF706002A7" })).accepted, true);
  await expectError(s.backups.call("admit", { machineSn: "SHF00000001" }), "forbidden");
  await expectError(s.backups.call("admit", { machineSn: "SHF/06002A7" }), "invalid_input");
});

test("backup: admit says accepted: false while every slot is busy; a finished upload frees its slot", async (c) => {
  const s = await start(c, { "backup-slots": 1 });
  const a = await register(c, s, "A");
  const b = await register(c, s, "B");
  assert.is((await s.backups.call("admit", { uid: a.uid })).accepted, true);
  const refused = await s.backups.call("admit", { uid: b.uid });
  assert.is(refused.accepted, false);
  assert.match(refused.reason ?? "", /all 1 backup slots are busy/);
  assert.ok((refused.retryAfter ?? 0) >= 1 && (refused.retryAfter ?? 0) <= 300, String(refused.retryAfter));
  assert.is((await s.backups.call("admit", { uid: a.uid })).accepted, true, "the holder may ask again");
  const run = await forced(c, a.uid, UPLOAD);
  assert.is(run.code, 0, run.stderr);
  assert.is(run.stdout, "", "the forced command never writes to stdout (the rsync protocol)");
  await waitFor("A's upload to be handled", () => snapshotsOf(clientDir(c.root, a.uid)).length === 1 && spoolEmpty(c));
  assert.is((await s.backups.call("admit", { uid: b.uid })).accepted, true);
});

test("backup: admit says accepted: false when the disk is full (backup-min-free 99)", async (c) => {
  const s = await start(c, { "backup-min-free": 99 });
  const k = await register(c, s);
  const r = await s.backups.call("admit", { uid: k.uid });
  assert.is(r.accepted, false);
  assert.match(r.reason ?? "", /disk full: .*% of (blocks|inodes) free, 99% required/);
  assert.is(r.retryAfter, 3600);
});

test("backup: admit says accepted: false above backup-max-load", async (c) => {
  const s = await start(c, { "backup-max-load": 5 }, { probes: { load: () => 7.5, disk: async () => ({ blocks: 50, inodes: 50 }), now: () => Date.now() } });
  const k = await register(c, s);
  const r = await s.backups.call("admit", { uid: k.uid });
  assert.is(r.accepted, false);
  assert.match(r.reason ?? "", /load average 7\.50 is above 5/);
});

test("backup: a request whose op differs from its subject is refused", async (c) => {
  const s = await start(c);
  const bytes = sugar.backup.Request.encode({ admit: { uid: "0".repeat(40) } }).finish();
  const reply = await s.bus.request(subjects.actor(c.site, "backup", "list"), bytes);
  try {
    decodeReply(reply);
    assert.unreachable("expected an error");
  } catch (err) {
    assert.is((err as SugarError).code, "invalid_input");
    assert.match((err as Error).message, /does not match/);
  }
});

test("backup: authorized_keys holds exactly one server-built line per registered user; removal drops it, the directory stays", async (c) => {
  const s = await start(c);
  assert.is(keysText(c), "");
  assert.is(statSync(join(c.root, ".ssh")).mode & 0o777, 0o700);
  assert.is(statSync(keysPath(c)).mode & 0o777, 0o600);
  const a = await register(c, s, "A");
  const b = await register(c, s, "B");
  const expected = [a, b].sort((x, y) => (x.uid < y.uid ? -1 : 1)).map((k) => lineFor(c, s, k) + "\n").join("");
  assert.is(keysText(c), expected);
  assert.is(s.backup.forcedCommand.script, join(commandScriptPath()));
  assert.not.ok(existsSync(clientDir(c.root, a.uid)) || existsSync(clientDir(c.root, b.uid)), "no directory made at registration");
  assert.is((await s.backups.call("admit", { uid: a.uid })).accepted, true);
  assert.ok(statSync(clientDir(c.root, a.uid)).isDirectory(), "admission makes the directory");
  assert.is(statSync(clientDir(c.root, a.uid)).mode & 0o777, 0o700);
  await s.registry.call("register", { nickname: "A again", pubkey: a.line });
  await s.registry.call("remove", { uid: a.uid });
  await waitFor("A's line to go", () => !keysText(c).includes(a.uid));
  assert.is(keysText(c), lineFor(c, s, b) + "\n");
  assert.ok(existsSync(clientDir(c.root, a.uid)), "A's directory stays");
  // A new start rebuilds the same file from the registry.
  await s.stop();
  const s2 = await start(c);
  assert.is(keysText(c), lineFor(c, s2, b) + "\n");
});

test("backup: a line added to authorized_keys by hand is moved to authorized_keys.foreign and the server's lines are rewritten", async (c) => {
  const s = await start(c);
  const a = await register(c, s, "A");
  const intruder = makeKey(c.tmp.path);
  const handLines = [`${intruder.type} ${intruder.body} admin@laptop`, `command="/bin/sh" ${intruder.type} ${intruder.body}`, `# a comment`];
  // A hand edit: drops the server's line and adds three of its own.
  writeFileSync(keysPath(c), handLines.join("\n") + "\n");
  await waitFor("the server to rewrite authorized_keys", () => keysText(c) === lineFor(c, s, a) + "\n");
  const foreign = readFileSync(join(c.root, ".ssh", "authorized_keys.foreign"), "utf8");
  for (const l of handLines) assert.ok(foreign.includes(l + "\n"), `${l} kept in .foreign`);
  assert.match(foreign, /^# moved out of .* by sugar-server at \d{4}-/m);
  assert.is(statSync(join(c.root, ".ssh", "authorized_keys.foreign")).mode & 0o777, 0o600);
  assert.match(c.logText(), /WARN .*moved 3 line\(s\) the server did not build/);
  // A later registration keeps it clean.
  const b = await register(c, s, "B");
  assert.not.match(keysText(c), /admin@laptop|\/bin\/sh/);
  assert.is(keysText(c).split("\n").filter(Boolean).length, 2);
  assert.ok(keysText(c).includes(lineFor(c, s, b)));
});

test("backup: foreign lines found at start are moved out; lines of an older forced command are rebuilt quietly", async (c) => {
  const s = await start(c);
  const a = await register(c, s, "A");
  await s.stop();
  const stale = lineFor(c, s, a).replace(s.backup.forcedCommand.node, "/opt/old-node/bin/node");
  const stranger = makeKey(c.tmp.path);
  writeFileSync(keysPath(c), `${stale}\nssh-ed25519 ${stranger.body}\n\n`);
  const s2 = await start(c);
  assert.is(keysText(c), lineFor(c, s2, a) + "\n");
  const foreign = readFileSync(join(c.root, ".ssh", "authorized_keys.foreign"), "utf8");
  assert.ok(foreign.includes(`ssh-ed25519 ${stranger.body}\n`));
  assert.not.ok(foreign.includes(stale), "the stale server line is not foreign");
  assert.match(c.logText(), /rebuilding 1 line\(s\) written with an older forced command/);
});

/** Pending restore the way a client gets it: a backup, then the key removed and registered again. */
async function pendingAfterReregistration(c: Ctx, s: Stack): Promise<TestKey> {
  const k = await register(c, s);
  assert.is((await forced(c, k.uid, UPLOAD)).code, 0);
  await waitFor("the first backup", () => snapshotsOf(clientDir(c.root, k.uid)).length === 1 && spoolEmpty(c));
  await s.registry.call("remove", { uid: k.uid });
  await waitFor("the line to go", () => !keysText(c).includes(k.uid));
  const again = await s.registry.call("register", { nickname: "Ana", pubkey: k.line });
  assert.is(again.created, true);
  await waitFor("pending restore", async () => (await s.backups.call("status", { uid: k.uid })).pendingRestore);
  return k;
}

test("backup: pending restore is set when a removed key registers again and a backup exists, and cleared by the next backup", async (c) => {
  const s = await start(c);
  const k = await pendingAfterReregistration(c, s);
  assert.is((await s.backups.call("show", { uid: k.uid })).backup?.pendingRestore, true);
  const run = await forced(c, k.uid, UPLOAD, { FAKE_DATA: "second" });
  assert.is(run.code, 0, run.stderr);
  await waitFor("the backup to clear pending restore", async () => !(await s.backups.call("status", { uid: k.uid })).pendingRestore);
  // A key registering for the first time, with no directory, is not pending.
  const fresh = await register(c, s, "Fresh");
  assert.is((await s.backups.call("status", { uid: fresh.uid })).pendingRestore, false);
});

test("backup: a completed restore clears pending restore; a failed one does not", async (c) => {
  const s = await start(c);
  const k = await pendingAfterReregistration(c, s);
  assert.is((await forced(c, k.uid, DOWNLOAD, { FAKE_EXIT: "23" })).code, 23, "rsync's exit status is passed on");
  await waitFor("the failed restore to be handled", () => spoolEmpty(c));
  assert.is((await s.backups.call("status", { uid: k.uid })).pendingRestore, true);
  assert.is((await forced(c, k.uid, DOWNLOAD)).code, 0);
  await waitFor("the restore to clear pending restore", async () => !(await s.backups.call("status", { uid: k.uid })).pendingRestore);
  assert.ok((await s.backups.call("show", { uid: k.uid })).backup?.lastRestore);
  assert.is(snapshotsOf(clientDir(c.root, k.uid)).length, 1, "a download makes no snapshot (the one there is the first backup's)");
});

test("backup: hardware model, reflash = allow: a re-flashed XO's new key takes over the old uid's backups and gets pending restore", async (c) => {
  const s = await start(c, { "identity-model": "hardware", reflash: "allow" });
  await s.registry.call("machine", { machineSn: "SHF706002A7", source: "admin" });
  const old = await register(c, s, "XO", { machineSn: "SHF706002A7" });
  assert.is((await forced(c, old.uid, UPLOAD, { FAKE_DATA: "journal of the old key" })).code, 0);
  await waitFor("the old key's backup", () => snapshotsOf(clientDir(c.root, old.uid)).length === 1 && spoolEmpty(c));
  const fresh = makeKey(c.tmp.path);
  const r = await s.registry.call("register", { nickname: "XO", pubkey: fresh.line, machineSn: "SHF706002A7" });
  assert.is(r.replacedUid, old.uid);
  await waitFor("the new key's line, without the old one", () => keysText(c).includes(fresh.uid) && !keysText(c).includes(old.uid));
  await waitFor("pending restore", async () => (await s.backups.call("status", { uid: fresh.uid })).pendingRestore);
  const dir = clientDir(c.root, fresh.uid);
  assert.is(readFileSync(join(dir, "datastore-current", "entry"), "utf8"), "journal of the old key");
  assert.is(snapshotsOf(dir).length, 1);
  assert.ok(readlinkSync(join(dir, "datastore-latest")).startsWith("datastore-"));
  assert.not.ok(existsSync(clientDir(c.root, old.uid)), "moved, not copied");
  assert.ok((await s.backups.call("show", { uid: fresh.uid })).backup?.lastBackup, "the state moved too");
});

test("backup: ready before the registry answers; authorized_keys is left as it was until the registry is there to reconcile it with", async (c) => {
  const s = await start(c);
  const a = await register(c, s, "A");
  await s.stop();
  const before = keysText(c);
  assert.ok(before.includes(a.uid));
  const config = configFor(c);
  const bus = await c.factory.bus();
  const backup = await startBackup({ bus, config, log: c.log });
  try {
    // Ready, and answering, with no registry on the bus at all.
    assert.is((await backupClient(bus, c.site, { timeoutMs: 3000 }).call("status", { uid: a.uid })).pendingRestore, false);
    await waitFor("the actor to ask the registry", () => /waiting for the registry/.test(c.logText()));
    let settled = false;
    void backup.reconciled.then(() => (settled = true));
    assert.is(keysText(c), before, "the file is not rewritten from an empty map");
    assert.not.ok(settled);
    const registryActor = await startRegistry({ bus, config, log: c.log });
    await backup.reconciled;
    assert.is(keysText(c), before);
    await registryActor.stop();
  } finally {
    await backup.stop();
    await bus.close();
  }
});

test("backup: an event written while the server was down is handled at the next start", async (c) => {
  const s = await start(c);
  const k = await register(c, s);
  await s.stop();
  assert.is((await forced(c, k.uid, UPLOAD)).code, 0, "the forced command works without the server");
  assert.is(readdirSync(spoolDir(c.root)).length, 1);
  await start(c);
  await waitFor("the stored event to be handled", () => snapshotsOf(clientDir(c.root, k.uid)).length === 1 && spoolEmpty(c));
});

test("backup: junk in the spool is removed with a warning and does not block the events after it", async (c) => {
  const s = await start(c);
  const k = await register(c, s);
  const dir = spoolDir(c.root);
  writeFileSync(join(dir, "000000000000001-" + k.uid + "-1-00000000.json"), "{not json");
  writeFileSync(join(dir, "000000000000002-" + k.uid + "-1-00000000.json"), JSON.stringify({ uid: "../../etc", direction: "backup", exit: 0, started: "x", finished: "y" }));
  writeFileSync(join(dir, "random-name"), "x");
  const now = new Date().toISOString();
  await writeSpoolEvent(dir, { uid: k.uid, direction: "restore", exit: 0, started: now, finished: now });
  await waitFor("the spool to empty", () => spoolEmpty(c));
  assert.match(c.logText(), /spool: removing .*not JSON/);
  assert.match(c.logText(), /spool: removing .*uid/);
  assert.match(c.logText(), /spool: removing random-name/);
  assert.ok((await s.backups.call("show", { uid: k.uid })).backup?.lastRestore);
});

test("backup: the forced command refuses a shell, another command or none; it makes a missing client directory, only under a root with home/backups", async (c) => {
  const s = await start(c);
  const k = await register(c, s);
  for (const cmd of [undefined, "", "sh", "bash -i", "cat /etc/passwd", "rsync", "rsync --daemon .", "rsync --server; sh", "scp -t .", "rsync  --server . x", "rsync --server\nsh"]) {
    const r = await forced(c, k.uid, cmd);
    assert.is(r.code, 1, `${JSON.stringify(cmd)}: ${r.stderr}`);
    assert.match(r.stderr, /sugar-backup-command: /);
    assert.is(r.stdout, "");
  }
  assert.is(readdirSync(spoolDir(c.root)).length, 0, "refusals are not transfers");
  assert.not.ok(existsSync(clientDir(c.root, k.uid)), "no directory before the first transfer");
  const first = await forced(c, k.uid, UPLOAD);
  assert.is(first.code, 0, first.stderr);
  assert.is(statSync(clientDir(c.root, k.uid)).mode & 0o777, 0o700, "the first transfer made the directory, 0700");
  const elsewhere = { ...c, root: join(c.tmp.path, "not-a-root") };
  const noRoot = await forced(elsewhere, k.uid, UPLOAD);
  assert.is(noRoot.code, 1);
  assert.match(noRoot.stderr, /no home\/backups directory/);
  assert.not.ok(existsSync(elsewhere.root), "nothing made under a wrong --root");
  const bad = await forced(c, "../../etc", UPLOAD);
  assert.is(bad.code, 1);
  assert.match(bad.stderr, /uid/);
});

test("backup: a root whose path cannot be put in command=\"...\" is refused at start; one with a space is quoted for the shell", async (c) => {
  for (const bad of ['/tmp/a"b', "/tmp/a\\b", "/tmp/a\nb"]) {
    const config = configWith({ root: bad, site: c.site, "rrsync-path": c.fakeRrsync, "bus-timeout": 500 });
    const bus = await c.factory.bus();
    try {
      await startBackup({ bus, config, log: c.log });
      assert.unreachable(`root ${JSON.stringify(bad)} accepted`);
    } catch (err) {
      assert.instance(err, SugarError, String(err));
      assert.is((err as SugarError).code, "invalid_config");
      assert.match((err as Error).message, /^root .*(quote|backslash|control)/);
    } finally {
      await bus.close();
    }
  }
  // A root with a space and a quote: the line's command runs through sh -c as sshd runs it.
  c.root = join(c.tmp.path, "school's root");
  const s = await start(c);
  const k = await register(c, s);
  const line = keysText(c).trim();
  const m = /^restrict,command="([^"]*)" /.exec(line);
  assert.ok(m, line);
  assert.match(m![1]!, /--root '.*school'\\''s root'/);
  const r = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
    const child = spawn("/bin/sh", ["-c", m![1]!], { env: { ...process.env, SSH_ORIGINAL_COMMAND: UPLOAD } });
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += d));
    child.on("close", (code) => resolve({ code, stderr }));
  });
  assert.is(r.code, 0, r.stderr);
  await waitFor("the upload under the quoted root", () => snapshotsOf(clientDir(c.root, k.uid)).length === 1);
});

test("backup: a browser user (no key) gets no key line and no directory, quietly, at its event and at start; admission is forbidden", async (c) => {
  const s = await start(c);
  const phone = (await s.registry.call("registerDevice", { nickname: "Phone", deviceId: "3c:5a:b4:01:02:03" })).user!;
  const other = (await s.registry.call("registerDevice", { nickname: "Laptop browser" })).user!;
  // Events are handled in order: once the key registered after them has its line, theirs were handled.
  const k = await register(c, s, "Ana");
  const browsers = [phone.uid!, other.uid!].map((u) => validate.uid(u));
  const check = (stack: Stack, when: string) => {
    for (const uid of browsers) assert.not.ok(existsSync(clientDir(c.root, uid)), `${when}: no directory for ${uid}`);
    assert.is(keysText(c), lineFor(c, stack, k) + "\n", `${when}: the key's line only`);
    // (The registry warns that it registered them without a credential: this stack runs no auth actor.)
    const loud = c.logText().split("\n").filter((l) => / (WARN|ERROR) sugar-server\/backup: /.test(l));
    assert.equal(loud.filter((l) => / ERROR /.test(l) || browsers.some((uid) => l.includes(uid))), [], `${when}: the backup actor logs nothing about them above info`);
  };
  check(s, "after the events");
  for (const uid of browsers) await expectError(s.backups.call("admit", { uid }), "forbidden", /a browser has no Journal backup/);
  assert.is((await s.backups.call("list", {})).backups?.length, 1, "list shows the key's directory only");
  await s.stop();
  const s2 = await start(c);
  check(s2, "after a start (the full list from the registry)");
  await expectError(s2.backups.call("admit", { uid: phone.uid! }), "forbidden", /a browser has no Journal backup/);
});

test("backup: show and list; an unknown uid is not_registered; the CLI prints a table, details and usage", async (c) => {
  const s = await start(c);
  const k = await register(c, s, "Zoë");
  await expectError(s.backups.call("show", { uid: "e".repeat(40) }), "not_registered");
  await expectError(s.backups.call("show", { uid: "nope" }), "invalid_input");
  const shown = (await s.backups.call("show", { uid: k.uid })).backup!;
  assert.equal([shown.files, shown.sizeBytes, shown.snapshots?.length ?? 0, shown.lastBackup, shown.pendingRestore], [0, 0, 0, "", false]);
  let out = "";
  let err = "";
  const io = { out: (x: string) => void (out += x), err: (x: string) => void (err += x) };
  assert.is(await backupsCommand(["list"], s.backups, io), 0);
  assert.match(out, new RegExp(`${k.uid}\\s+Zoë\\s+0 B\\s+0\\s+0\\s+never`));
  assert.match(out, /1 backup directory\n$/);
  // A removed user's directory (made at its admission) can still be shown.
  assert.is((await s.backups.call("admit", { uid: k.uid })).accepted, true);
  await s.registry.call("remove", { uid: k.uid });
  assert.is((await s.backups.call("show", { uid: k.uid })).backup?.uid, k.uid);
  assert.is((await s.backups.call("list", {})).backups?.length ?? 0, 0, "list shows registered users only");
  for (const bad of [[], ["show"], ["frobnicate"], ["list", "x"]]) {
    err = "";
    assert.is(await backupsCommand(bad, s.backups, io), 2);
    assert.match(err, /usage: sugar-server backups list \| show UID/);
  }
});

t.run();
}

forEachBus(backupContract);
