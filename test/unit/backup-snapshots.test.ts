/**
 * Snapshots inside a client's directory: `cp -al` in Node, datastore-latest,
 * pruning, sizes, and never leaving the tree through a symlink the client
 * uploaded.
 */
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, statSync, symlinkSync, writeFileSync, utimesSync } from "node:fs";
import { promises as fsp, constants } from "node:fs";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { adoptLatest, hasBackup, listSnapshots, makeSnapshot, moveClientDir, removeTreeAt, snapshotName, usage } from "../../actors/backup/snapshots.js";
import { silentLogger } from "../../src/log.js";
import { tempDir } from "../support/tmp.js";

interface Ctx {
  tmp: ReturnType<typeof tempDir>;
  dir: string;
  outside: string;
}

const t = suite<Ctx>("backup snapshots");

t.before.each((ctx) => {
  ctx.tmp = tempDir("sugar-snap-");
  ctx.dir = join(ctx.tmp.path, "client");
  ctx.outside = join(ctx.tmp.path, "outside");
  mkdirSync(join(ctx.dir, "datastore-current", "store", "ab"), { recursive: true });
  writeFileSync(join(ctx.dir, "datastore-current", "store", "ab", "data"), "journal entry");
  writeFileSync(join(ctx.dir, "datastore-current", "niño ☀.txt"), "ñ");
  symlinkSync("niño ☀.txt", join(ctx.dir, "datastore-current", "a link"));
  mkdirSync(ctx.outside);
  writeFileSync(join(ctx.outside, "precious"), "not the client's");
});
t.after.each((ctx) => ctx.tmp.remove());

const at = (y: number, s = 0) => new Date(Date.UTC(y, 0, 2, 3, 4, 5 + s));

t("backup: a snapshot hard-links files, copies symlinks as symlinks and keeps directory times; datastore-latest points at it", async (c) => {
  const when = at(2024);
  utimesSync(join(c.dir, "datastore-current", "store"), new Date(1e12), new Date(1e12));
  const r = await makeSnapshot(c.dir, when, 7, silentLogger);
  assert.is(r?.name, "datastore-2024-01-02_03:04:05");
  assert.is(r?.files, 2);
  assert.is(snapshotName(when), r?.name);
  const snap = join(c.dir, r!.name);
  assert.is(statSync(join(snap, "store", "ab", "data")).ino, statSync(join(c.dir, "datastore-current", "store", "ab", "data")).ino);
  assert.ok(lstatSync(join(snap, "a link")).isSymbolicLink());
  assert.is(readlinkSync(join(snap, "a link")), "niño ☀.txt");
  assert.is(statSync(join(snap, "store")).mtimeMs, 1e12);
  assert.is(readlinkSync(join(c.dir, "datastore-latest")), r!.name);
  assert.is(readFileSync(join(c.dir, "datastore-latest", "niño ☀.txt"), "utf8"), "ñ");
  assert.equal(await listSnapshots(c.dir), [{ name: r!.name, created: "2024-01-02T03:04:05Z" }]);
  assert.not.ok(readdirSync(c.dir).some((n) => n.startsWith(".")), "no temporary names left");
});

t("backup: two snapshots in the same second get consecutive names", async (c) => {
  const a = await makeSnapshot(c.dir, at(2024), 7, silentLogger);
  const b = await makeSnapshot(c.dir, at(2024), 7, silentLogger);
  assert.is(a?.name, "datastore-2024-01-02_03:04:05");
  assert.is(b?.name, "datastore-2024-01-02_03:04:06");
  assert.is(readlinkSync(join(c.dir, "datastore-latest")), b!.name);
});

t("backup: only the newest backup-keep snapshots stay", async (c) => {
  for (let y = 2020; y < 2025; y++) await makeSnapshot(c.dir, at(y), 3, silentLogger);
  assert.equal((await listSnapshots(c.dir)).map((s) => s.name), ["datastore-2022-01-02_03:04:05", "datastore-2023-01-02_03:04:05", "datastore-2024-01-02_03:04:05"]);
  assert.is(readlinkSync(join(c.dir, "datastore-latest")), "datastore-2024-01-02_03:04:05");
});

t("backup: a datastore-current that is a symlink (to anywhere) is not snapshotted", async (c) => {
  await fsp.rm(join(c.dir, "datastore-current"), { recursive: true });
  symlinkSync(c.outside, join(c.dir, "datastore-current"));
  assert.is(await makeSnapshot(c.dir, at(2024), 7, silentLogger), undefined);
  assert.equal(await listSnapshots(c.dir), []);
  assert.not.ok(existsSync(join(c.dir, "datastore-latest")));
  assert.is(statSync(join(c.outside, "precious")).nlink, 1, "nothing outside was linked");
});

t("backup: a symlinked directory inside datastore-current is copied as a symlink, never followed", async (c) => {
  symlinkSync(c.outside, join(c.dir, "datastore-current", "escape"));
  symlinkSync("/etc", join(c.dir, "datastore-current", "etc"));
  const r = await makeSnapshot(c.dir, at(2024), 7, silentLogger);
  assert.ok(lstatSync(join(c.dir, r!.name, "escape")).isSymbolicLink());
  assert.ok(lstatSync(join(c.dir, r!.name, "etc")).isSymbolicLink());
  assert.is(statSync(join(c.outside, "precious")).nlink, 1, "no hard link to a file outside");
});

t("backup: pruning removes a snapshot's symlinks, not what they point at", async (c) => {
  const first = await makeSnapshot(c.dir, at(2020), 1, silentLogger);
  // The client rewrites its old snapshot: a symlink to a directory outside, and a directory holding one.
  symlinkSync(c.outside, join(c.dir, first!.name, "to-outside"));
  mkdirSync(join(c.dir, first!.name, "deep"));
  symlinkSync(c.outside, join(c.dir, first!.name, "deep", "again"));
  await makeSnapshot(c.dir, at(2021), 1, silentLogger);
  assert.not.ok(existsSync(join(c.dir, first!.name)));
  assert.is(readFileSync(join(c.outside, "precious"), "utf8"), "not the client's");
});

t("backup: removeTreeAt never follows a symlink, whatever its name", async (c) => {
  symlinkSync(c.outside, join(c.dir, "datastore-2000-01-01_00:00:00"));
  const fh = await fsp.open(c.dir, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
  try {
    await removeTreeAt(fh.fd, "datastore-2000-01-01_00:00:00");
    await removeTreeAt(fh.fd, "missing");
  } finally {
    await fh.close();
  }
  assert.not.ok(existsSync(join(c.dir, "datastore-2000-01-01_00:00:00")));
  assert.ok(existsSync(join(c.outside, "precious")));
});

t("backup: a real directory the client named datastore-latest is replaced by the symlink", async (c) => {
  mkdirSync(join(c.dir, "datastore-latest", "x"), { recursive: true });
  writeFileSync(join(c.dir, "datastore-latest", "x", "f"), "client's");
  const r = await makeSnapshot(c.dir, at(2024), 7, silentLogger);
  assert.is(readlinkSync(join(c.dir, "datastore-latest")), r!.name);
});

t("backup: a half-made snapshot left by a crash is cleaned up by the next one", async (c) => {
  mkdirSync(join(c.dir, ".snapshot-deadbeef0000", "d"), { recursive: true });
  await makeSnapshot(c.dir, at(2024), 7, silentLogger);
  assert.not.ok(existsSync(join(c.dir, ".snapshot-deadbeef0000")));
});

t("backup: usage counts each hard-linked file once and ignores symlinks", async (c) => {
  const before = await usage(c.dir);
  assert.equal(before, { bytes: "journal entry".length + Buffer.byteLength("ñ"), files: 2 });
  await makeSnapshot(c.dir, at(2024), 7, silentLogger);
  await makeSnapshot(c.dir, at(2025), 7, silentLogger);
  assert.equal(await usage(c.dir), before);
  symlinkSync(c.outside, join(c.dir, "datastore-current", "o"));
  assert.equal(await usage(c.dir), before);
  assert.equal(await usage(join(c.tmp.path, "none")), { bytes: 0, files: 0 });
});

t("backup: adoptLatest never leaves the old uid's tree: a datastore-latest naming a path outside, or a snapshot that is a symlink, adopts nothing", async (c) => {
  const to = join(c.tmp.path, "new-uid");
  const latest = join(c.dir, "datastore-latest");
  for (const target of ["../outside", c.outside, "datastore-2000-01-01_00:00:00/../../outside", "datastore-current"]) {
    symlinkSync(target, latest);
    assert.is(await adoptLatest(c.dir, to, silentLogger), undefined, target);
    await fsp.rm(latest);
  }
  // A name that looks like a snapshot, but is the client's symlink to a directory outside.
  symlinkSync(c.outside, join(c.dir, "datastore-2000-01-01_00:00:00"));
  symlinkSync("datastore-2000-01-01_00:00:00", latest);
  assert.is(await adoptLatest(c.dir, to, silentLogger), undefined);
  // A datastore-latest that is a real directory (not the server's symlink) adopts nothing either.
  await fsp.rm(latest);
  mkdirSync(latest);
  assert.is(await adoptLatest(c.dir, to, silentLogger), undefined);
  assert.is(statSync(join(c.outside, "precious")).nlink, 1, "nothing outside was linked");
  assert.equal(existsSync(to) ? readdirSync(to) : [], [], "the new uid got nothing");
});

t("backup: adoptLatest copies symlinks inside the snapshot as symlinks, and replaces whatever the new uid put at datastore-latest", async (c) => {
  symlinkSync(c.outside, join(c.dir, "datastore-current", "escape"));
  const snap = await makeSnapshot(c.dir, at(2024), 7, silentLogger);
  const to = join(c.tmp.path, "new-uid");
  mkdirSync(join(to, "datastore-latest"), { recursive: true });
  symlinkSync(c.outside, join(to, "datastore-latest", "escape"));
  symlinkSync(c.outside, join(to, snap!.name)); // the new client guessed the name: a symlink there is not written through
  const r = await adoptLatest(c.dir, to, silentLogger);
  assert.ok(r && r.name !== snap!.name && r.files === 2, JSON.stringify(r));
  assert.is(readlinkSync(join(to, "datastore-latest")), r!.name);
  assert.ok(lstatSync(join(to, r!.name, "escape")).isSymbolicLink());
  assert.is(readlinkSync(join(to, snap!.name)), c.outside, "the client's symlink is left as it was");
  assert.equal(readdirSync(c.outside), ["precious"], "nothing was written outside");
  assert.is(statSync(join(c.outside, "precious")).nlink, 1);
  assert.is(readFileSync(join(to, "datastore-latest", "niño ☀.txt"), "utf8"), "ñ");
});

t("backup: hasBackup sees datastore-current or datastore-latest; moveClientDir moves a directory to an empty or missing place only", async (c) => {
  assert.ok(await hasBackup(c.dir));
  const empty = join(c.tmp.path, "empty");
  mkdirSync(empty);
  assert.not.ok(await hasBackup(empty));
  const to = join(c.tmp.path, "ff", "new");
  mkdirSync(to, { recursive: true });
  assert.ok(await moveClientDir(c.dir, to, silentLogger));
  assert.ok(existsSync(join(to, "datastore-current", "niño ☀.txt")));
  assert.not.ok(await moveClientDir(c.dir, to, silentLogger), "nothing left to move");
  assert.not.ok(await moveClientDir(to, c.outside, silentLogger), "a non-empty target is left alone");
  assert.ok(existsSync(join(to, "datastore-current")));
});

t.run();
