/**
 * Group commit for the registry's records (users, machines, claims; one
 * file each). A write is acknowledged once a line describing it is in an
 * append-only journal and that journal is fdatasync'ed: concurrent writers
 * share one sync, and nothing else touches the disk on the request path.
 * The records' files are written later, by a checkpoint (checkpoint.ts, a
 * few seconds or a few thousand records later, off the request path): it
 * writes the files of every record whose line is durable, appends their
 * lines to the index (index-log.ts), makes all of it durable with one
 * syncfs and only then deletes the journals it covers. After a crash,
 * `open()` replays what any journal holds the same way, before anything
 * reads the files or the index.
 *
 * A torn last line (a crash during an append) was never acknowledged and is
 * skipped. After a failed append the journal moves on to a new file, so no
 * acknowledged line is ever glued to a torn one.
 */
import { constants, promises as fsp } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import { join } from "node:path";
import { syncDir } from "../../src/fs.js";
import type { Logger } from "../../src/log.js";
import { CheckpointWriter, type Dirty } from "./checkpoint.js";
import { IndexLog, lineOf, type Contents } from "./index-log.js";

interface Line {
  /** table */
  t: string;
  /** record file name */
  n: string;
  /** the record, written to its file pretty-printed */
  v?: object;
  /** or the file's text (older journals); null = removed */
  d?: string | null;
}

interface Pending {
  table: string;
  name: string;
  d: Contents;
  text: string;
  /** Runs once the line is durable, before the write resolves and before any checkpoint can cover it (the store's memory changes here). */
  onDurable: (() => void) | undefined;
  resolve(): void;
  reject(err: unknown): void;
}

export interface JournalOptions {
  /** Checkpoint after this many records... */
  checkpointRecords?: number;
  /** ...or this long after the first record since the last checkpoint... */
  checkpointMs?: number;
  /** ...or once no write came for this long (a burst's last records reach their files at once, and the server goes idle). */
  idleMs?: number;
}

const NAME = /^[A-Za-z0-9]+$/;

export class Journal {
  private fh: FileHandle | undefined;
  private seq = 0;
  private queue: Pending[] = [];
  private flushing: Promise<void> | undefined;
  /** The batch being written and synced now, on the journal file it started on. */
  private batchInFlight: Promise<unknown> | undefined;
  /** Records whose lines are durable since the last checkpoint. */
  private dirty: Dirty = new Map();
  /** The records a running checkpoint is writing (their files may not be there yet). */
  private writing: Dirty | undefined;
  private sinceCheckpoint = 0;
  private timer: NodeJS.Timeout | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private checkpointing: Promise<void> | undefined;
  private closed = false;
  private closing: Promise<void> | undefined;
  /** Journal files appends have moved away from (after a failed append) that no checkpoint has covered yet. */
  private retired: number[] = [];
  /** The last append to the current file failed: it may end in a torn fragment. */
  private failedFile = false;
  private fileLock: Promise<void> = Promise.resolve();
  private readonly checkpointRecords: number;
  private readonly checkpointMs: number;
  private readonly idleMs: number;
  readonly index: IndexLog;
  private readonly writer: CheckpointWriter;

  constructor(
    private readonly dir: string,
    private readonly tables: Readonly<Record<string, string>>,
    private readonly log: Logger,
    opts: JournalOptions = {},
  ) {
    this.checkpointRecords = opts.checkpointRecords ?? 2000;
    this.checkpointMs = opts.checkpointMs ?? 2000;
    this.idleMs = opts.idleMs ?? 100;
    this.index = new IndexLog(dir, tables);
    this.writer = new CheckpointWriter(tables, this.index, log);
  }

  private journalPath(seq: number): string {
    return join(this.dir, `.journal-${seq}`);
  }

  /** Replays journals a crash left behind (files and index), then starts a new one. Returns how many records were replayed. */
  async open(): Promise<number> {
    const leftovers = (await fsp.readdir(this.dir))
      .map((n) => /^\.journal-(\d+)$/.exec(n))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => Number(m[1]))
      .sort((a, b) => a - b);
    // Replayed records go into the index only if it was current before they were written.
    const tail = await this.index.tailIsCurrent();
    if (tail === true) this.index.usable = true;
    else {
      if (tail === false) this.log.warn("reading every registry file: the index ends before its last checkpoint did, or a directory changed since it was written");
      await this.index.discard();
    }
    let replayed = 0;
    const dirty: Dirty = new Map();
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
        const contents: Contents | undefined = typeof line.v === "object" && line.v !== null ? line.v : typeof line.d === "string" || line.d === null ? line.d : undefined;
        if (!this.tables[line.t] || typeof line.n !== "string" || !NAME.test(line.n) || contents === undefined) {
          this.log.warn(`journal ${seq}: skipping a line for ${JSON.stringify(line.t)}/${JSON.stringify(line.n)}`);
          continue;
        }
        setDirty(dirty, line.t, line.n, contents, raw + "\n");
        replayed++;
      }
    }
    await this.writer.write(dirty);
    for (const seq of leftovers) await fsp.rm(this.journalPath(seq), { force: true });
    if (leftovers.length) await syncDir(this.dir);
    if (replayed) this.log.info(`replayed ${replayed} journaled writes`);
    this.seq = (leftovers.at(-1) ?? 0) + 1;
    this.fh = await fsp.open(this.journalPath(this.seq), constants.O_CREAT | constants.O_WRONLY | constants.O_APPEND, 0o644);
    await syncDir(this.dir);
    return replayed;
  }

  /**
   * Writes a record; resolves once the write is durable (its journal line
   * synced). Its file is written by the next checkpoint. `onDurable` runs
   * first, as soon as the line is durable. Callers serialize writes to one
   * name (the registry's per-identity locks): two concurrent puts of one
   * name could journal in the other order.
   */
  put(table: string, name: string, data: string | object, onDurable?: () => void): Promise<void> {
    this.check(table, name);
    return this.append(table, name, data, onDurable);
  }

  /** Removes a record; resolves once the removal is durable. False when there was none. */
  async remove(table: string, name: string, onDurable?: () => void): Promise<boolean> {
    this.check(table, name);
    if (!(await this.exists(table, name))) return false;
    await this.append(table, name, null, onDurable);
    return true;
  }

  /** Whether a record is there: the latest durable write not yet in its file, else the file. */
  private async exists(table: string, name: string): Promise<boolean> {
    for (const map of [this.dirty, this.writing]) {
      const e = map?.get(table)?.get(name);
      if (e) return e.d !== null;
    }
    try {
      await fsp.lstat(join(this.tables[table]!, name));
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
      throw err;
    }
  }

  /** Makes every record written so far durable in its file and the index, and starts an empty journal. */
  checkpoint(): Promise<void> {
    this.checkpointing ??= this.runCheckpoint().finally(() => {
      this.checkpointing = undefined;
    });
    return this.checkpointing;
  }

  /** Refuses writes from its call on (writes that kept coming would keep it from ending), then checkpoints what was written. */
  close(): Promise<void> {
    this.closing ??= this.shut();
    return this.closing;
  }

  private async shut(): Promise<void> {
    this.closed = true;
    while (this.flushing) await this.flushing;
    // A checkpoint already running covers only the journals before it: one more for the rest.
    while (this.checkpointing) await this.checkpointing;
    await this.checkpoint();
    clearTimeout(this.timer);
    clearTimeout(this.idleTimer);
    await this.fh?.close();
    this.fh = undefined;
    await this.writer.close();
  }

  private check(table: string, name: string): void {
    if (!this.tables[table]) throw new Error(`journal: unknown table ${table}`);
    if (!NAME.test(name)) throw new Error(`journal: bad record name ${JSON.stringify(name.slice(0, 60))}`);
    if (this.closed || !this.fh) throw new Error("journal is closed");
  }

  private append(table: string, name: string, d: Contents, onDurable: (() => void) | undefined): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const text = lineOf(table, name, d);
      this.queue.push({ table, name, d, text, onDurable, resolve, reject });
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
          // The file and the records' map are taken together: a checkpoint switches both at once.
          const fh = this.fh!;
          const dirty = this.dirty;
          await writeAll(fh, Buffer.from(batch.map((p) => p.text).join("")));
          await fh.datasync();
          // Durable: into the map the checkpoint covering this file writes out, before it can look.
          for (const p of batch) {
            setDirty(dirty, p.table, p.name, p.d, p.text);
            p.onDurable?.();
          }
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
        else {
          this.timer ??= setTimeout(() => void this.checkpoint(), this.checkpointMs);
          if (this.idleTimer) this.idleTimer.refresh();
          else this.idleTimer = setTimeout(() => void this.checkpoint(), this.idleMs);
        }
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

  private async runCheckpoint(): Promise<void> {
    clearTimeout(this.timer);
    clearTimeout(this.idleTimer);
    this.timer = undefined;
    this.idleTimer = undefined;
    if (!this.fh || (this.sinceCheckpoint === 0 && this.retired.length === 0 && this.dirty.size === 0 && !this.batchInFlight)) return;
    // The switch is synchronous once the new file is open: every batch that
    // starts after it goes to the new journal and the new map. The batch in
    // flight at the switch may still be writing to the old file: the
    // checkpoint waits for it (its records land in the old map), then writes
    // out every record of the old map.
    const switched = await this.switching(async () => {
      const newFh = await this.openNextFile();
      const state = { oldFh: this.fh!, covered: [...this.retired, this.seq], dirty: this.dirty, batch: this.batchInFlight };
      this.retired = [];
      this.dirty = new Map();
      this.writing = state.dirty;
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
    const { oldFh, covered, dirty, batch } = switched;
    try {
      await batch?.catch(() => undefined); // its failure reached its callers
      await this.writer.write(dirty);
      for (const seq of covered) await fsp.rm(this.journalPath(seq), { force: true });
      await syncDir(this.dir);
    } catch (err) {
      // The old journals stay (a restart replays them) and the next checkpoint covers them again.
      this.log.error(`journal checkpoint failed: ${(err as Error).message}`);
      this.retired.unshift(...covered);
      // Back into the current map (batches in flight hold it), where a newer write of a name wins.
      for (const [table, names] of dirty) {
        for (const [name, e] of names) {
          let now = this.dirty.get(table);
          if (!now) this.dirty.set(table, (now = new Map()));
          if (!now.has(name)) now.set(name, e);
        }
      }
    } finally {
      this.writing = undefined;
      await oldFh.close().catch(() => undefined); // the journal's lines are synced; a close error loses nothing
    }
  }
}

/** Records the latest write of a name; a later write of it moves it to the end (the order the index replays). */
function setDirty(dirty: Dirty, table: string, name: string, d: Contents, line: string): void {
  let names = dirty.get(table);
  if (!names) dirty.set(table, (names = new Map()));
  names.delete(name);
  names.set(name, { d, line });
}

/** Writes every byte: a short write (a disk nearly full) must not be acknowledged as a whole line. */
async function writeAll(fh: FileHandle, buf: Buffer): Promise<void> {
  for (let off = 0; off < buf.length; ) {
    const { bytesWritten } = await fh.write(buf, off, buf.length - off);
    if (bytesWritten <= 0) throw new Error("journal write made no progress");
    off += bytesWritten;
  }
}
