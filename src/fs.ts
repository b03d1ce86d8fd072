/**
 * Durable file writes: a temporary file in the same directory, fsync, rename,
 * fsync of the directory. A reader sees the old file or the new one, never a
 * torn one, and an acknowledged write survives a crash.
 */
import { execFile } from "node:child_process";
import { constants, promises as fsp } from "node:fs";
import { randomBytes } from "node:crypto";
import { basename, dirname, join } from "node:path";
import { SugarError } from "./errors.js";

export async function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o644): Promise<void> {
  await writeFileAtomicWith(path, mode, (fh) => fh.writeFile(data));
}

/** The same protocol for a file written piece by piece (`write` gets the open temporary file). */
export async function writeFileAtomicWith(path: string, mode: number, write: (fh: fsp.FileHandle) => Promise<void>): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${randomBytes(6).toString("hex")}.tmp`);
  const fh = await fsp.open(tmp, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, mode);
  try {
    await write(fh);
    await fh.sync();
  } catch (err) {
    await fh.close();
    await fsp.rm(tmp, { force: true });
    throw err;
  }
  await fh.close();
  try {
    await fsp.rename(tmp, path);
  } catch (err) {
    await fsp.rm(tmp, { force: true });
    throw err;
  }
  await syncDir(dir);
}

export async function syncDir(dir: string): Promise<void> {
  const dh = await fsp.open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}

/** Removes a file durably (the directory entry is synced); a missing file is fine. */
export async function removeFileDurable(path: string): Promise<boolean> {
  try {
    await fsp.unlink(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw err;
  }
  await syncDir(dirname(path));
  return true;
}

export async function readFileIfExists(path: string): Promise<string | undefined> {
  return (await readBytesIfExists(path))?.toString("utf8");
}

/** The file's bytes, or undefined if there is none (large files stay outside the JS heap). */
export async function readBytesIfExists(path: string): Promise<Buffer | undefined> {
  try {
    return await fsp.readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

export async function ensureDir(path: string, mode = 0o755): Promise<void> {
  await fsp.mkdir(path, { recursive: true, mode });
}

/**
 * A directory of small records written durably, with group commit: the
 * directory fsync after each rename is shared by every write that renamed
 * while the previous sync ran, so concurrent writers pay for one sync instead
 * of one each. No write resolves before its own file and the directory entry
 * are on disk.
 */
export class DurableDir {
  private syncing: Promise<void> | undefined;
  private next: Promise<void> | undefined;

  constructor(readonly path: string, private readonly mode = 0o644) {}

  /**
   * Makes the directory (mode `dirMode`, also when it already existed) and
   * reads every file in it but the temporaries of interrupted writes: what a
   * store loads at start.
   */
  async open(dirMode: number): Promise<Array<{ name: string; path: string; text: string }>> {
    await ensureDir(this.path, dirMode);
    await fsp.chmod(this.path, dirMode);
    const files = [];
    for (const name of await fsp.readdir(this.path)) {
      if (name.startsWith(".")) continue; // a temporary file of an interrupted write
      const path = join(this.path, name);
      files.push({ name, path, text: (await readFileIfExists(path)) ?? "" });
    }
    return files;
  }

  async write(name: string, data: string | Uint8Array): Promise<void> {
    const target = join(this.path, name);
    const tmp = join(this.path, `.${name}.${randomBytes(6).toString("hex")}.tmp`);
    const fh = await fsp.open(tmp, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, this.mode);
    try {
      await fh.writeFile(data);
      await fh.sync();
      await fh.close();
      await fsp.rename(tmp, target);
    } catch (err) {
      await fh.close().catch(() => undefined); // already closed on the rename path
      await fsp.rm(tmp, { force: true });
      throw err;
    }
    await this.sync();
  }

  async remove(name: string): Promise<boolean> {
    try {
      await fsp.unlink(join(this.path, name));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
      throw err;
    }
    await this.sync();
    return true;
  }

  /** Joins the next directory sync; one runs at a time and covers every rename before it started. */
  sync(): Promise<void> {
    if (this.next) return this.next;
    const run = async (): Promise<void> => {
      if (this.syncing) await this.syncing.catch(() => undefined);
      this.next = undefined;
      const p = syncDir(this.path);
      this.syncing = p;
      try {
        await p;
      } finally {
        if (this.syncing === p) this.syncing = undefined;
      }
    };
    this.next = run();
    return this.next;
  }
}

/**
 * syncfs(2) on the file system of each path, through coreutils' `sync
 * --file-system` (Node has no binding): everything written there so far,
 * data and directory entries, is on disk when it resolves. Rejects if `sync`
 * is missing or fails.
 */
export function syncFileSystems(paths: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile("sync", ["--file-system", "--", ...new Set(paths)], { timeout: 10 * 60 * 1000 }, (err, _out, stderr) => {
      if (err) reject(new Error(stderr.trim() || err.message, { cause: err }));
      else resolve();
    });
  });
}

/** True for the errors a full disk (or a full quota) gives. */
export function isDiskFull(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === "ENOSPC" || code === "EDQUOT";
}

/**
 * Runs a write; a full disk becomes SugarError `disk_full` with a plain
 * message (`what` says what was not saved), never the raw errno and its path.
 */
export async function writingTo<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (isDiskFull(err)) throw new SugarError("disk_full", `the school server's disk is full: ${what} was not saved; ask its admin to free space`, { cause: err });
    throw err;
  }
}
