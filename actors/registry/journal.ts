/**
 * Group commit for directories of small record files (the registry's users
 * and machines). A write is acknowledged once a line describing it is in an
 * append-only journal and that journal is fdatasync'ed: concurrent writers
 * share one sync instead of paying one file fsync and one directory fsync
 * each. The record file is written to a temporary name meanwhile, and
 * renamed into place only once its line is durable (no sync of its own), so
 * a crash can never leave a half-written file that no durable line repairs.
 * A checkpoint, off the request path, later makes every file written since
 * the last one durable (one syncfs) and only then deletes the journals it
 * covers. After a crash, `open()` replays what any journal holds, durably,
 * before anything reads the files.
 *
 * A torn last line (a crash during an append) was never acknowledged and is
 * skipped. After a failed append the journal moves on to a new file, so no
 * acknowledged line is ever glued to a torn one.
 */
import { constants, promises as fsp } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { syncDir, syncFileSystems, writeFileAtomic } from "../../src/fs.js";
import type { Logger } from "../../src/log.js";

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
  /** Puts and removes not finished yet (their files may still be unwritten). */
  private readonly inFlight = new Set<Promise<void>>();
  /** Journal files appends have moved away from (after a failed append) that no checkpoint has covered yet. */
  private retired: number[] = [];
  /** The last append to the current file failed: it may end in a torn fragment. */
  private failedFile = false;
  private fileLock: Promise<void> = Promise.resolve();
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
   * Writes a record file; resolves once the write is durable (journaled) and
   * the file holds it. Callers serialize writes to one name (the registry's
   * per-identity locks): two concurrent puts of one name could journal in
   * the other order.
   */
  put(table: string, name: string, data: string): Promise<void> {
    return this.tracked(async () => {
      const dir = this.dirOf(table);
      this.markDirty(table, name);
      // The temporary file is written while the line is synced; only the
      // rename waits for the line, so no file is replaced by data a crash
      // could lose before its line is durable.
      const tmp = join(dir, `.${name}.${randomBytes(6).toString("hex")}.tmp`);
      const written = fsp.writeFile(tmp, data, { mode: 0o644 });
      try {
        await Promise.all([written, this.append({ t: table, n: name, d: data })]);
        await fsp.rename(tmp, join(dir, name));
      } catch (err) {
        await written.catch(() => undefined);
        await fsp.rm(tmp, { force: true });
        throw err;
      }
    });
  }

  /** Removes a record file; resolves once the removal is durable. False when there was none. */
  remove(table: string, name: string): Promise<boolean> {
    return this.tracked(async () => {
      const dir = this.dirOf(table);
      try {
        await fsp.lstat(join(dir, name));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
        throw err;
      }
      this.markDirty(table, name);
      await this.append({ t: table, n: name, d: null });
      await fsp.rm(join(dir, name), { force: true });
      return true;
    });
  }

  /** Runs a put or remove, known to a checkpoint until its file is written. */
  private tracked<T>(fn: () => Promise<T>): Promise<T> {
    const p = fn();
    const settled = p.then(
      () => undefined,
      () => undefined,
    );
    this.inFlight.add(settled);
    void settled.then(() => this.inFlight.delete(settled));
    return p;
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
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight]);
    while (this.flushing) await this.flushing;
    // A checkpoint already running covers only the journals before it: one more for the rest.
    while (this.checkpointing) await this.checkpointing;
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
        const write = (async () => {
          if (this.failedFile) await this.switching(() => this.startNewFile()); // never append after a torn fragment
          const fh = this.fh!;
          await writeAll(fh, Buffer.from(batch.map((p) => p.text).join("")));
          await fh.datasync();
        })();
        this.batchInFlight = write;
        try {
          await write;
        } catch (err) {
          this.failedFile = true;
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

  /** Runs one change of journal file at a time (a failed append's and a checkpoint's could race for the same name). */
  private switching<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.fileLock.then(fn);
    this.fileLock = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  /** Opens the journal file after the current one, its name synced: appends to it are acknowledged, so it must survive a crash. */
  private async openNextFile(): Promise<FileHandle> {
    const next = await fsp.open(this.journalPath(this.seq + 1), constants.O_CREAT | constants.O_WRONLY | constants.O_APPEND, 0o644);
    try {
      await syncDir(this.dir);
    } catch (err) {
      await next.close();
      throw err;
    }
    return next;
  }

  /** After a failed append: appends go to the next file; the old one waits for a checkpoint. */
  private async startNewFile(): Promise<void> {
    if (!this.failedFile) return; // a checkpoint switched files meanwhile
    const next = await this.openNextFile();
    const old = this.fh;
    this.retired.push(this.seq);
    this.seq++;
    this.fh = next;
    this.failedFile = false;
    await old?.close().catch((err: unknown) => this.log.warn(`closing journal ${this.seq - 1}: ${(err as Error).message}`));
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
    if (!this.fh || (this.sinceCheckpoint === 0 && this.retired.length === 0 && this.inFlight.size === 0)) return;
    // The switch is synchronous once the new file is open: every batch that
    // starts after it goes to the new journal. Puts that started before it
    // may have lines in the old journals and files still to write: the
    // checkpoint waits for them (and only them; waiting for the journal to go
    // idle could wait forever under steady load), then makes every dirty file
    // durable.
    const switched = await this.switching(async () => {
      const newFh = await this.openNextFile();
      const state = { oldFh: this.fh!, covered: [...this.retired, this.seq], dirty: this.dirty, puts: [...this.inFlight] };
      this.retired = [];
      this.dirty = new Map();
      this.sinceCheckpoint = 0;
      this.seq++;
      this.fh = newFh;
      this.failedFile = false;
      return state;
    }).catch((err: unknown) => {
      // Appends go on to the current journal; the next checkpoint tries again.
      this.log.error(`journal checkpoint: cannot start a new journal: ${(err as Error).message}`);
      return undefined;
    });
    if (!switched) return;
    const { oldFh, covered, dirty, puts } = switched;
    try {
      await this.batchInFlight?.catch(() => undefined); // its failure reached its callers
      await Promise.all(puts);
      await this.makeDurable(dirty);
      for (const seq of covered) await fsp.rm(this.journalPath(seq), { force: true });
      await syncDir(this.dir);
    } catch (err) {
      // The old journals stay (a restart replays them) and the next checkpoint covers them again.
      this.log.error(`journal checkpoint failed: ${(err as Error).message}`);
      this.retired.unshift(...covered);
      for (const [table, names] of dirty) for (const n of names) this.markDirty(table, n);
    } finally {
      await oldFh.close().catch(() => undefined); // the journal's lines are synced; a close error loses nothing
    }
  }
}

/** Writes every byte: a short write (a disk nearly full) must not be acknowledged as a whole line. */
async function writeAll(fh: FileHandle, buf: Buffer): Promise<void> {
  for (let off = 0; off < buf.length; ) {
    const { bytesWritten } = await fh.write(buf, off, buf.length - off);
    if (bytesWritten <= 0) throw new Error("journal write made no progress");
    off += bytesWritten;
  }
}
