/**
 * The server's work inside a client's directory: hard-link snapshots of
 * `datastore-current` (what `cp -al` does), the `datastore-latest` symlink,
 * pruning, sizes.
 *
 * Everything below the client's directory is the client's to shape: it can
 * upload symlinks, and while the server walks a tree another rsync session
 * of the same client can swap a directory for a symlink to /etc. The server
 * runs as the backup user (root in tests), so following such a link could
 * hard-link /etc/shadow into the client's reach or delete files outside it.
 * Hence every operation here works on a pinned directory: a directory is
 * opened with O_NOFOLLOW|O_DIRECTORY, and its entries are reached through
 * `/proc/self/fd/<fd>/<name>`, which resolves to the inode held open, never
 * to whatever the path names now. Only calls that do not follow a symlink in
 * the last component are used on entries (lstat, link, unlink, rmdir, mkdir,
 * readlink, symlink, rename, open with O_NOFOLLOW); mode and times are set
 * through the open descriptor. rrsync (Debian's, hardened) pins the same way.
 */
import { constants, promises as fsp, type Stats } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import { dirname } from "node:path";
import { ensureDir, syncDir } from "../../src/fs.js";
import type { Logger } from "../../src/log.js";

const DIR_FLAGS = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;
const at = (fd: number, name: string) => `/proc/self/fd/${fd}/${name}`;
const self = (fd: number) => `/proc/self/fd/${fd}`;
const code = (err: unknown) => (err as NodeJS.ErrnoException).code;

export const CURRENT = "datastore-current";
export const LATEST = "datastore-latest";
export const SNAPSHOT = /^datastore-(\d{4}-\d{2}-\d{2})_(\d{2}:\d{2}:\d{2})$/;

export interface SnapshotInfo {
  name: string;
  /** ISO-8601 UTC, from the name. */
  created: string;
}

/** `datastore-<UTC YYYY-MM-DD_HH:MM:SS>` */
export function snapshotName(when: Date): string {
  const iso = when.toISOString();
  return `datastore-${iso.slice(0, 10)}_${iso.slice(11, 19)}`;
}

/** Fails unless /proc/self/fd/N names the open inode (Linux with /proc): the pinning above relies on it. */
export async function checkProcFd(): Promise<void> {
  const fh = await fsp.open("/", DIR_FLAGS);
  try {
    const target = await fsp.readlink(self(fh.fd));
    if (target !== "/") throw new Error(`/proc/self/fd does not name open directories (got ${target})`);
  } catch (err) {
    throw new Error(`the backup actor needs Linux /proc/self/fd: ${(err as Error).message}`, { cause: err });
  } finally {
    await fh.close();
  }
}

/** Opens a directory entry without following a symlink; undefined when it is missing, a symlink or not a directory. */
async function openDirAt(parentFd: number, name: string): Promise<FileHandle | undefined> {
  try {
    return await fsp.open(at(parentFd, name), DIR_FLAGS);
  } catch (err) {
    const c = code(err);
    if (c === "ENOENT" || c === "ELOOP" || c === "ENOTDIR") return undefined;
    throw err;
  }
}

async function withDir<T>(path: string, fn: (fd: number) => Promise<T>): Promise<T> {
  const fh = await fsp.open(path, DIR_FLAGS);
  try {
    return await fn(fh.fd);
  } finally {
    await fh.close();
  }
}

async function lstatAt(fd: number, name: string): Promise<Stats | undefined> {
  try {
    return await fsp.lstat(at(fd, name));
  } catch (err) {
    if (code(err) === "ENOENT") return undefined;
    throw err;
  }
}

export async function exists(path: string): Promise<boolean> {
  try {
    await fsp.lstat(path);
    return true;
  } catch (err) {
    if (code(err) === "ENOENT") return false;
    throw err;
  }
}

/** Creates the client's directory (and its fan-out parent), mode 0700; rrsync needs it to exist. True if it was made now (so it holds nothing). */
export async function ensureClientDir(dir: string): Promise<boolean> {
  return (await fsp.mkdir(dir, { recursive: true, mode: 0o700 })) !== undefined;
}

/** Does the directory hold a backup (`datastore-latest` or `datastore-current`, whatever they are)? */
export async function hasBackup(dir: string): Promise<boolean> {
  return (await exists(`${dir}/${LATEST}`)) || (await exists(`${dir}/${CURRENT}`));
}

export async function listSnapshots(dir: string): Promise<SnapshotInfo[]> {
  let entries;
  try {
    entries = await fsp.readdir(dir, { withFileTypes: true });
  } catch (err) {
    if (code(err) === "ENOENT") return [];
    throw err;
  }
  return entries
    .filter((e) => e.isDirectory() && SNAPSHOT.test(e.name))
    .map((e) => {
      const m = SNAPSHOT.exec(e.name)!;
      return { name: e.name, created: `${m[1]}T${m[2]}Z` };
    })
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * Removes `name` under the pinned directory `parentFd`, recursively, never
 * leaving the tree: a symlink is unlinked, not followed. A missing entry is
 * fine.
 */
export async function removeTreeAt(parentFd: number, name: string): Promise<void> {
  const fh = await openDirAt(parentFd, name);
  if (!fh) {
    try {
      await fsp.unlink(at(parentFd, name));
    } catch (err) {
      if (code(err) === "ENOENT") return;
      if (code(err) !== "EISDIR") throw err;
      // It became a directory between the open and the unlink: start again.
      return removeTreeAt(parentFd, name);
    }
    return;
  }
  try {
    for (const e of await fsp.readdir(self(fh.fd), { withFileTypes: true })) {
      if (e.isDirectory()) {
        await removeTreeAt(fh.fd, e.name);
        continue;
      }
      try {
        await fsp.unlink(at(fh.fd, e.name));
      } catch (err) {
        if (code(err) === "ENOENT") continue;
        if (code(err) !== "EISDIR") throw err;
        await removeTreeAt(fh.fd, e.name);
      }
    }
  } finally {
    await fh.close();
  }
  try {
    await fsp.rmdir(at(parentFd, name));
  } catch (err) {
    if (code(err) !== "ENOENT") throw err;
  }
}

/** Hard-links the tree under `srcFd` into `dstFd`: directories made, files linked, symlinks copied as symlinks. */
async function linkTree(srcFd: number, dstFd: number, where: string, log: Logger): Promise<number> {
  let files = 0;
  for (const e of await fsp.readdir(self(srcFd), { withFileTypes: true })) {
    const rel = `${where}/${e.name}`;
    try {
      if (e.isFile()) {
        await fsp.link(at(srcFd, e.name), at(dstFd, e.name));
        files++;
      } else if (e.isDirectory()) {
        const st = await lstatAt(srcFd, e.name);
        if (!st?.isDirectory()) continue; // changed under us
        await fsp.mkdir(at(dstFd, e.name), 0o700);
        const src = await openDirAt(srcFd, e.name);
        if (!src) continue;
        try {
          const dst = await openDirAt(dstFd, e.name);
          if (!dst) throw new Error("the new directory is not a directory any more");
          try {
            files += await linkTree(src.fd, dst.fd, rel, log);
            await dst.chmod((st.mode & 0o7777) | 0o700);
            await dst.utimes(st.atime, st.mtime);
          } finally {
            await dst.close();
          }
        } finally {
          await src.close();
        }
      } else if (e.isSymbolicLink()) {
        const target = await fsp.readlink(at(srcFd, e.name));
        await fsp.symlink(target, at(dstFd, e.name));
        const st = await lstatAt(srcFd, e.name);
        if (st) await fsp.lutimes(at(dstFd, e.name), st.atime, st.mtime);
      } else {
        log.debug(`snapshot: skipping ${rel}: not a file, directory or symlink`);
      }
    } catch (err) {
      // An entry that vanished or changed type while we walked: the client is
      // writing at the same time. Its next backup makes a consistent snapshot.
      const c = code(err);
      if (c === "ENOENT" || c === "EEXIST" || c === "ELOOP" || c === "ENOTDIR" || c === "EISDIR" || c === "EPERM") {
        log.warn(`snapshot: skipping ${rel}: ${(err as Error).message}`);
        continue;
      }
      throw err;
    }
  }
  return files;
}

export interface SnapshotResult {
  name: string;
  files: number;
  removed: string[];
}

/**
 * Snapshots `<dir>/datastore-current` as `<dir>/datastore-<when>` (hard
 * links), points `datastore-latest` at it (a new symlink renamed over the old
 * one) and keeps the newest `keep` snapshots. A snapshot is built under a
 * hidden temporary name and renamed into place, so a crash never leaves a
 * half-made snapshot with a real name. If the name is taken (two backups in
 * one second) the next free second is used. Returns undefined when there is
 * no `datastore-current` directory (a symlink there is refused).
 */
export async function makeSnapshot(dir: string, when: Date, keep: number, log: Logger): Promise<SnapshotResult | undefined> {
  return withDir(dir, async (clientFd) => {
    for (const e of await fsp.readdir(self(clientFd))) if (e.startsWith(".snapshot-")) await removeTreeAt(clientFd, e);
    const src = await openDirAt(clientFd, CURRENT);
    if (!src) {
      const st = await lstatAt(clientFd, CURRENT);
      if (st) log.warn(`snapshot: ${dir}/${CURRENT} is not a directory; no snapshot`);
      return undefined;
    }
    let placed: { name: string; files: number };
    try {
      placed = await snapshotOf(src, clientFd, when, CURRENT, log);
    } finally {
      await src.close();
    }
    const removed: string[] = [];
    const all = await listSnapshots(dir);
    for (const old of all.slice(0, Math.max(0, all.length - keep))) {
      if (old.name === placed.name) continue;
      await removeTreeAt(clientFd, old.name);
      removed.push(old.name);
    }
    await syncDir(dir);
    return { ...placed, removed };
  });
}

/**
 * Hard-links the pinned tree `src` into a new snapshot of the client
 * directory `clientFd`, named for `when` (or the next free second), and
 * points `datastore-latest` at it. Built under a hidden temporary name and
 * renamed into place, so a crash never leaves a half-made snapshot with a
 * real name.
 */
async function snapshotOf(src: FileHandle, clientFd: number, when: Date, what: string, log: Logger): Promise<{ name: string; files: number }> {
  const tmp = `.snapshot-${randomBytes(6).toString("hex")}`;
  const st = await src.stat();
  await fsp.mkdir(at(clientFd, tmp), 0o700);
  const dst = await openDirAt(clientFd, tmp);
  if (!dst) throw new Error(`${tmp} is not a directory`);
  let files: number;
  try {
    files = await linkTree(src.fd, dst.fd, what, log);
    await dst.chmod((st.mode & 0o7777) | 0o700);
    await dst.utimes(st.atime, st.mtime);
  } finally {
    await dst.close();
  }
  let name = "";
  for (let i = 0; !name; i++) {
    const candidate = snapshotName(new Date(when.getTime() + i * 1000));
    if (await lstatAt(clientFd, candidate)) continue;
    try {
      await fsp.rename(at(clientFd, tmp), at(clientFd, candidate));
      name = candidate;
    } catch (err) {
      const c = code(err);
      if (i < 60 && (c === "EEXIST" || c === "ENOTEMPTY" || c === "ENOTDIR" || c === "EISDIR")) continue;
      throw err;
    }
  }
  await pointLatest(clientFd, name);
  return { name, files };
}

/**
 * A re-flash approved: `to` (the new uid's directory) gets a hard-link copy
 * of the snapshot `from`'s `datastore-latest` names, under the same time,
 * and its own `datastore-latest` points at it, so the new key restores the
 * old key's last backup. `from` is left as it is. Undefined when `from` has
 * no snapshot to give.
 */
export async function adoptLatest(from: string, to: string, log: Logger): Promise<SnapshotResult | undefined> {
  if (!(await exists(from))) return undefined;
  return withDir(from, async (fromFd) => {
    let name: string;
    try {
      name = await fsp.readlink(at(fromFd, LATEST));
    } catch (err) {
      if (code(err) === "ENOENT" || code(err) === "EINVAL") return undefined; // none, or not a symlink
      throw err;
    }
    const m = SNAPSHOT.exec(name);
    if (!m) {
      log.warn(`${from}/${LATEST} does not name a snapshot; nothing to adopt`);
      return undefined;
    }
    const src = await openDirAt(fromFd, name);
    if (!src) return undefined;
    try {
      await ensureClientDir(to);
      return await withDir(to, async (toFd) => {
        const placed = await snapshotOf(src, toFd, new Date(`${m[1]}T${m[2]}Z`), name, log);
        await syncDir(to);
        return { ...placed, removed: [] };
      });
    } finally {
      await src.close();
    }
  });
}

/** `datastore-latest` → `name`, replaced atomically (symlink under a temporary name, then rename). */
async function pointLatest(clientFd: number, name: string): Promise<void> {
  const tmp = `.${LATEST}.${randomBytes(6).toString("hex")}`;
  await fsp.symlink(name, at(clientFd, tmp));
  for (let attempt = 0; ; attempt++) {
    try {
      await fsp.rename(at(clientFd, tmp), at(clientFd, LATEST));
      return;
    } catch (err) {
      const c = code(err);
      // The client uploaded a real directory named datastore-latest: the name is the server's.
      if (attempt < 3 && (c === "EISDIR" || c === "ENOTEMPTY" || c === "EEXIST")) {
        await removeTreeAt(clientFd, LATEST);
        continue;
      }
      await fsp.unlink(at(clientFd, tmp));
      throw err;
    }
  }
}

export interface Usage {
  /** Sum of the sizes of the distinct regular files (a hard-linked file counts once). */
  bytes: number;
  /** Distinct regular files. */
  files: number;
}

/** Disk use of a client's directory, snapshots included, each inode once; never follows a symlink. */
export async function usage(dir: string): Promise<Usage> {
  const seen = new Set<string>();
  let bytes = 0;
  const walk = async (fd: number): Promise<void> => {
    for (const e of await fsp.readdir(self(fd), { withFileTypes: true })) {
      if (e.isDirectory()) {
        const sub = await openDirAt(fd, e.name).catch((err: unknown) => {
          if (code(err) === "EACCES") return undefined; // an unreadable directory the client made
          throw err;
        });
        if (!sub) continue;
        try {
          await walk(sub.fd);
        } finally {
          await sub.close();
        }
      } else if (e.isFile()) {
        const st = await lstatAt(fd, e.name);
        if (!st?.isFile()) continue;
        const key = `${st.dev}:${st.ino}`;
        if (seen.has(key)) continue;
        seen.add(key);
        bytes += st.size;
      }
    }
  };
  try {
    await withDir(dir, walk);
  } catch (err) {
    if (code(err) === "ENOENT") return { bytes: 0, files: 0 };
    throw err;
  }
  return { bytes, files: seen.size };
}

/**
 * Moves a client's whole directory to another uid's place (hardware model: a
 * re-flashed XO registers a new key for a known serial number, and its old
 * backups follow it). Both paths are the server's own (the client cannot
 * rename its root). An existing empty target is replaced; a non-empty one is
 * left alone and false returned.
 */
export async function moveClientDir(from: string, to: string, log: Logger): Promise<boolean> {
  if (!(await exists(from))) return false;
  await ensureDir(dirname(to), 0o700);
  try {
    await fsp.rmdir(to);
  } catch (err) {
    const c = code(err);
    if (c === "ENOTEMPTY" || c === "EEXIST") {
      log.warn(`not moving ${from} to ${to}: the target already holds files`);
      return false;
    }
    if (c !== "ENOENT") throw err;
  }
  await fsp.rename(from, to);
  await syncDir(dirname(from));
  await syncDir(dirname(to));
  return true;
}
