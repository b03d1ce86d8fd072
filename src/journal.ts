/**
 * Group commit for directories of small record files (the registry's users
 * and machines). A write is acknowledged once a line describing it is in an
 * append-only journal and that journal is fdatasync'ed: concurrent writers
 * share one sync instead of paying one file fsync and one directory fsync
 * each. The record file itself is written (temp + rename) before its journal
 * line, without a sync of its own; a checkpoint, off the request path, later
 * fsyncs every file written since the last one and their directories, and
 * only then deletes the journal. After a crash, `open()` replays what any
 * journal holds, durably, before anything reads the files.
 *
 * A torn last line (a crash during an append) was never acknowledged and is
 * skipped.
 */
import { constants, promises as fsp } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { syncDir, syncFileSystems, writeFileAtomic } from "./fs.js";
import type { Logger } from "./log.js";

interface Line {
  /** table */
  t: string;
  /** record file name */
  n: string;
  /** contents; null = removed */
  d: string | null;
}

interface Pending {
  text: string;
  resolve(): void;
  reject(err: unknown): void;
}

export interface JournalOptions {
  /** Checkpoint after this many records... */
  checkpointRecords?: number;
  /** ...or this long after the first record since the last checkpoint. */
  checkpointMs?: number;
}

export class Journal {
  private fh: FileHandle | undefined;
  private seq = 0;
  private queue: Pending[] = [];
  private flushing: Promise<void> | undefined;
  /** The batch being written and synced now, on the journal file it started on. */
  private batchInFlight: Promise<void> | undefined;
  /** Files written since the last checkpoint, by table. */
  private dirty = new Map<string, Set<string>>();
  private sinceCheckpoint = 0;
  private timer: NodeJS.Timeout | undefined;
  private checkpointing: Promise<void> | undefined;
  private closed = false;
  private warnedNoSyncfs = false;
  private readonly checkpointRecords: number;
  private readonly checkpointMs: number;

  constructor(
    private readonly dir: string,
    private readonly tables: Readonly<Record<string, string>>,
    private readonly log: Logger,
    opts: JournalOptions = {},
  ) {
    this.checkpointRecords = opts.checkpointRecords ?? 2000;
    this.checkpointMs = opts.checkpointMs ?? 2000;
  }

  private journalPath(seq: number): string {
    return join(this.dir, `.journal-${seq}`);
  }

  /** Replays journals a crash left behind, then starts a new one. Returns how many records were replayed. */
  async open(): Promise<number> {
    const leftovers = (await fsp.readdir(this.dir))
      .map((n) => /^\.journal-(\d+)$/.exec(n))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => Number(m[1]))
      .sort((a, b) => a - b);
    let replayed = 0;
    for (const seq of leftovers) {
      const text = await fsp.readFile(this.journalPath(seq), "utf8");
      for (const raw of text.split("\n")) {
        if (raw === "") continue;
        let line: Line;
        try {
          line = JSON.parse(raw) as Line;
        } catch {
          this.log.warn(`journal ${seq}: skipping a torn line (a write that was never acknowledged)`);
          continue;
        }
        const dir = this.tables[line.t];
        if (!dir || !/^[A-Za-z0-9]+$/.test(line.n)) {
          this.log.warn(`journal ${seq}: skipping a line for ${JSON.stringify(line.t)}/${JSON.stringify(line.n)}`);
          continue;
        }
        if (line.d === null) await fsp.rm(join(dir, line.n), { force: true });
        else await writeFileAtomic(join(dir, line.n), line.d);
        replayed++;
      }
    }
    for (const dir of Object.values(this.tables)) await syncDir(dir);
    for (const seq of leftovers) await fsp.rm(this.journalPath(seq), { force: true });
    if (leftovers.length) await syncDir(this.dir);
    if (replayed) this.log.info(`replayed ${replayed} journaled writes`);
    this.seq = (leftovers.at(-1) ?? 0) + 1;
    this.fh = await fsp.open(this.journalPath(this.seq), constants.O_CREAT | constants.O_WRONLY | constants.O_APPEND, 0o644);
    await syncDir(this.dir);
    return replayed;
  }

  /**
   * Writes a record file; resolves once the write is durable (journaled).
   * Callers serialize writes to one name (the registry's per-identity locks):
   * two concurrent puts of one name could journal in the other order.
   */
  async put(table: string, name: string, data: string): Promise<void> {
    const dir = this.dirOf(table);
    const tmp = join(dir, `.${name}.${randomBytes(6).toString("hex")}.tmp`);
    await fsp.writeFile(tmp, data, { mode: 0o644 });
    await fsp.rename(tmp, join(dir, name)).catch(async (err) => {
      await fsp.rm(tmp, { force: true });
      throw err;
    });
    this.markDirty(table, name);
    await this.append({ t: table, n: name, d: data });
  }

  /** Removes a record file; resolves once the removal is durable. False when there was none. */
  async remove(table: string, name: string): Promise<boolean> {
    try {
      await fsp.unlink(join(this.dirOf(table), name));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
      throw err;
    }
    this.markDirty(table, name);
    await this.append({ t: table, n: name, d: null });
    return true;
  }

  /** Makes every file written so far durable on its own and starts an empty journal. */
  checkpoint(): Promise<void> {
    this.checkpointing ??= this.runCheckpoint().finally(() => {
      this.checkpointing = undefined;
    });
    return this.checkpointing;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    while (this.flushing) await this.flushing;
    await this.checkpoint();
    this.closed = true;
    clearTimeout(this.timer);
    await this.fh?.close();
    this.fh = undefined;
  }

  private dirOf(table: string): string {
    const dir = this.tables[table];
    if (!dir) throw new Error(`journal: unknown table ${table}`);
    if (this.closed || !this.fh) throw new Error("journal is closed");
    return dir;
  }

  private markDirty(table: string, name: string): void {
    let set = this.dirty.get(table);
    if (!set) this.dirty.set(table, (set = new Set()));
    set.add(name);
  }

  private append(line: Line): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ text: JSON.stringify(line) + "\n", resolve, reject });
      this.flushing ??= this.flush();
    });
  }

  /** One write and one fdatasync for everything queued; whatever queues meanwhile goes in the next round. */
  private async flush(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const batch = this.queue;
        this.queue = [];
        const fh = this.fh!;
        const write = (async () => {
          await fh.write(batch.map((p) => p.text).join(""));
          await fh.datasync();
        })();
        this.batchInFlight = write;
        try {
          await write;
        } catch (err) {
          for (const p of batch) p.reject(err);
          continue;
        }
        for (const p of batch) p.resolve();
        this.sinceCheckpoint += batch.length;
        if (this.sinceCheckpoint >= this.checkpointRecords) void this.checkpoint();
        else this.timer ??= setTimeout(() => void this.checkpoint(), this.checkpointMs);
      }
    } finally {
      this.batchInFlight = undefined;
      this.flushing = undefined;
    }
  }

  /**
   * Every file written since the last checkpoint, and the directory entries,
   * on disk. One syncfs(2) per file system (coreutils `sync --file-system`;
   * Node has no binding) costs one flush where fsync per file would cost
   * thousands after a burst of registrations, each competing with the
   * journal's own syncs. Where `sync -f` is missing or fails, file by file.
   */
  private async makeDurable(dirty: Map<string, Set<string>>): Promise<void> {
    const dirs = [...dirty.keys()].map((t) => this.tables[t]!);
    if (dirs.length === 0) return;
    try {
      await syncFileSystems(dirs);
      return;
    } catch (err) {
      if (!this.warnedNoSyncfs) this.log.warn(`sync --file-system failed (${(err as Error).message}); syncing files one by one`);
      this.warnedNoSyncfs = true;
    }
    for (const [table, names] of dirty) {
      const dir = this.tables[table]!;
      for (const name of names) {
        const fh = await fsp.open(join(dir, name), constants.O_RDONLY).catch((err: NodeJS.ErrnoException) => {
          if (err.code === "ENOENT") return undefined; // removed: the directory sync below covers it
          throw err;
        });
        if (fh) {
          await fh.sync();
          await fh.close();
        }
      }
      await syncDir(dir);
    }
  }

  private async runCheckpoint(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (!this.fh || this.sinceCheckpoint === 0) return;
    // New appends go to a new journal from here on; the files this checkpoint
    // covers are every one marked dirty before the switch (a file is written and
    // marked before its line is appended, so no acknowledged write slips past).
    let newFh: FileHandle;
    try {
      newFh = await fsp.open(this.journalPath(this.seq + 1), constants.O_CREAT | constants.O_WRONLY | constants.O_APPEND, 0o644);
    } catch (err) {
      // Appends go on to the current journal; the next checkpoint tries again.
      this.log.error(`journal checkpoint: cannot start a new journal: ${(err as Error).message}`);
      return;
    }
    // The switch is synchronous: every batch that starts after it goes to the
    // new journal, so only the one in flight now can still be on the old one
    // (waiting for `flushing` instead could wait forever under steady load).
    const oldFh = this.fh;
    const oldSeq = this.seq;
    const dirty = this.dirty;
    this.dirty = new Map();
    this.sinceCheckpoint = 0;
    this.seq++;
    this.fh = newFh;
    await this.batchInFlight?.catch(() => undefined); // its failure reached its callers
    try {
      await this.makeDurable(dirty);
      await oldFh.close();
      await fsp.rm(this.journalPath(oldSeq), { force: true });
      await syncDir(this.dir);
    } catch (err) {
      // The old journal stays: a restart replays it. Later checkpoints still run.
      this.log.error(`journal checkpoint failed: ${(err as Error).message}`);
      for (const [table, names] of dirty) for (const n of names) this.markDirty(table, n);
    }
  }
}
