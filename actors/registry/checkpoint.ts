/**
 * What a checkpoint does with the records a journal made durable: writes
 * each one's file (writeRecordFile below), appends their lines to the index (index-log.ts), then makes it
 * all durable with one syncfs(2) per file system (coreutils `sync
 * --file-system`; Node has no binding), where an fsync per file would cost
 * thousands after a burst of registrations, each competing with the
 * journal's own syncs. Where `sync -f` is missing or fails, file by file.
 *
 * Files are written synchronously, a slice of the event loop's time at a
 * time: the journal's write and fdatasync go through the libuv thread pool,
 * and a checkpoint that filled it would hold every registration behind
 * thousands of file creations.
 */
import { constants, promises as fsp, renameSync, rmSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { syncDir, syncFileSystems } from "../../src/fs.js";
import type { Logger } from "../../src/log.js";
import { fileText, type Contents, type IndexLog } from "./index-log.js";

/** The latest durable write of each record since the last checkpoint: table → name → its contents and its journal line. */
export type Dirty = Map<string, Map<string, { d: Contents; line: string }>>;

/** How long the checkpoint writes files before it lets the event loop run (ms). */
const SLICE_MS = 2;

export class CheckpointWriter {
  private warnedNoSyncfs = false;

  constructor(
    private readonly tables: Readonly<Record<string, string>>,
    private readonly index: IndexLog,
    private readonly log: Logger,
  ) {}

  /** Every record's file and index line written and durable when it resolves. */
  async write(dirty: Dirty): Promise<void> {
    const jobs: Array<[string, string, Contents]> = [];
    const lines: string[] = [];
    for (const [table, names] of dirty) {
      const dir = this.tables[table]!;
      for (const [name, { d, line }] of names) {
        jobs.push([dir, name, d]);
        lines.push(line);
      }
    }
    if (jobs.length === 0) return;
    // Synchronous, a slice at a time: an async open, write, close and rename
    // cost the event loop more than the system calls themselves, and a slice
    // of a few milliseconds between turns of the loop keeps requests moving.
    for (let i = 0; i < jobs.length; ) {
      const until = performance.now() + SLICE_MS;
      do {
        const [dir, name, d] = jobs[i++]!;
        if (d === null) rmSync(join(dir, name), { force: true });
        else writeRecordFile(dir, name, fileText(d));
      } while (i < jobs.length && performance.now() < until);
      if (i < jobs.length) await new Promise((r) => setImmediate(r));
    }
    const dirs = [...dirty.keys()].map((t) => this.tables[t]!);
    const indexed = this.index.usable;
    try {
      if (indexed) await this.index.append(lines, false);
      await syncFileSystems([...dirs, this.index.path]);
      return;
    } catch (err) {
      if (!this.warnedNoSyncfs) this.log.warn(`sync --file-system failed (${(err as Error).message}); syncing files one by one`);
      this.warnedNoSyncfs = true;
    }
    for (const [dir, name] of jobs) {
      const fh = await fsp.open(join(dir, name), constants.O_RDONLY).catch((err: NodeJS.ErrnoException) => {
        if (err.code === "ENOENT") return undefined; // removed: the directory sync below covers it
        throw err;
      });
      if (fh) {
        await fh.sync();
        await fh.close();
      }
    }
    for (const dir of new Set(dirs)) await syncDir(dir);
    // The index may not hold this append (it failed before, or a failed sync
    // left its state unknown): appended again, synced, a later mark wins.
    if (indexed) await this.index.append(lines, true);
  }
}

/**
 * A record's file, no fsync (the checkpoint syncs them all at once). A new
 * record's file is created under its own name (one directory operation, not
 * two: creating files is most of a checkpoint's cost); a reader may find it
 * empty for a moment, and a crash before the checkpoint ends leaves its
 * journal line, which the next start writes again. A record that has a file
 * gets a temporary one renamed over it: a reader sees the old or the new
 * record, never a torn one.
 */
function writeRecordFile(dir: string, name: string, data: string): void {
  const path = join(dir, name);
  try {
    writeFileSync(path, data, { mode: 0o644, flag: "wx" });
    return;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
  }
  const tmp = join(dir, `.${name}.${randomBytes(6).toString("hex")}.tmp`);
  try {
    writeFileSync(tmp, data, { mode: 0o644, flag: "wx" });
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}
