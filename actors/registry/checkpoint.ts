/**
 * What a checkpoint does with the records a journal made durable: writes
 * each one's file (record-file.ts), appends their lines to the index (index-log.ts), then makes it
 * all durable with one syncfs(2) per file system (coreutils `sync
 * --file-system`; Node has no binding), where an fsync per file would cost
 * thousands after a burst of registrations, each competing with the
 * journal's own syncs. Where `sync -f` is missing or fails, file by file.
 *
 * The files are written by a worker thread (file-writer.ts), so a burst's
 * checkpoint does not take the event loop's time from the requests.
 */
import { constants, promises as fsp } from "node:fs";
import { join } from "node:path";
import { syncDir, syncFileSystems } from "../../src/fs.js";
import type { Logger } from "../../src/log.js";
import { FileWriter } from "./file-writer.js";
import { fileText, type Contents, type IndexLog } from "./index-log.js";
import type { FileJob } from "./record-file.js";

/** The latest durable write of each record since the last checkpoint: table → name → its contents and its journal line. */
export type Dirty = Map<string, Map<string, { d: Contents; line: string }>>;

export class CheckpointWriter {
  private warnedNoSyncfs = false;
  private readonly files: FileWriter;

  constructor(
    private readonly tables: Readonly<Record<string, string>>,
    private readonly index: IndexLog,
    private readonly log: Logger,
  ) {
    this.files = new FileWriter(log);
  }

  /** Stops the writer thread; the journal calls it after its last checkpoint. */
  close(): Promise<void> {
    return this.files.close();
  }

  /** Every record's file and index line written and durable when it resolves. */
  async write(dirty: Dirty): Promise<void> {
    const jobs: FileJob[] = [];
    const lines: string[] = [];
    for (const [table, names] of dirty) {
      const dir = this.tables[table]!;
      for (const [name, { d, line }] of names) {
        jobs.push([dir, name, d === null ? null : fileText(d)]);
        lines.push(line);
      }
    }
    if (jobs.length === 0) return;
    await this.files.write(jobs);
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
