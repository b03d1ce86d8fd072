/**
 * `<registry>/.index`: every record the checkpoints have written, in one
 * file, so a start reads one file instead of one per user (100,000 opens
 * and reads cost seconds; one sequential read of the same bytes a fraction
 * of one).
 *
 * It is a log: each checkpoint appends the journal lines it made durable
 * (`{"t":table,"n":name,"v":record}`, `"d":null` for a removal; later lines
 * win), then a mark
 * line `{"mark":{table: mtime of its directory}}` stamped after its files
 * were written. The index is current only if its last mark matches every
 * directory's mtime now: a file added, removed or renamed behind the
 * server's back (a restore, a hand copy, the bench's fixtures) changes a
 * directory's mtime, and the registry then reads the files and writes a
 * new index. Lines after the last mark are a checkpoint that never
 * finished; the journals it covered are still there and a restart replays
 * them. Each append starts with a newline, so a torn line of an interrupted
 * append is never glued to the next one.
 */
import { closeSync, constants, openSync, promises as fsp, readSync, statSync } from "node:fs";
import { join } from "node:path";
import { writeFileAtomicWith } from "../../src/fs.js";

/**
 * A record: a JSON value (its file is that value pretty-printed; its lines
 * carry it compact, as `v`), or the file's text itself (`d`); null = removed.
 */
export type Contents = string | object | null;

/** The text of a record's file. */
export const fileText = (c: string | object): string => (typeof c === "string" ? c : JSON.stringify(c, null, 2) + "\n");

/** A record's journal (and index) line, newline included. */
export const lineOf = (t: string, n: string, c: Contents): string => JSON.stringify(typeof c === "string" || c === null ? { t, n, d: c } : { t, n, v: c }) + "\n";

interface Mark {
  /** Each table's directory mtime (ns) after the checkpoint's files were written. */
  mark: Record<string, string>;
  /** How many lines the append held before its mark, and their bytes with their newlines: an append cut short never matches. */
  n: number;
  b: number;
}

/** What an index held at its last mark: per table, name → record, in the order they were last written. */
export type IndexRecords<T> = Map<string, Map<string, T>>;

export type IndexRead<T> = { current: true; records: IndexRecords<T>; lines: number } | { current: false; why: string };

/** Turns a line's record (parsed JSON) into the one kept in memory; undefined when it is not one. */
export type ParseRecord<T> = (table: string, name: string, value: unknown) => T | undefined;

const CHUNK = 4 * 1024 * 1024;

export class IndexLog {
  readonly path: string;
  /**
   * Checkpoints append only to an index known to be current (its last mark
   * matched before the registry started writing, or the registry wrote it
   * from the files): appending to a stale or missing one would stamp a
   * current mark on an index that lacks records.
   */
  usable = false;

  constructor(
    dir: string,
    private readonly tables: Readonly<Record<string, string>>,
  ) {
    this.path = join(dir, ".index");
  }

  /** The directories' mtimes now (ns), the mark a checkpoint stamps. */
  private marks(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [table, dir] of Object.entries(this.tables)) out[table] = String(statSync(dir, { bigint: true }).mtimeNs);
    return out;
  }

  /** Is the last mark in the file's tail the directories' state now? (A cheap check before a replay; `read` checks the rest.) */
  async tailIsCurrent(): Promise<boolean | "missing"> {
    let fh;
    try {
      fh = await fsp.open(this.path, "r");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return "missing";
      throw err;
    }
    try {
      const { size } = await fh.stat();
      const len = Math.min(size, 64 * 1024);
      const buf = Buffer.alloc(len);
      await fh.read(buf, 0, len, size - len);
      const last = buf.toString("utf8").split("\n").filter(Boolean).at(-1);
      if (!last) return false;
      let mark: unknown;
      try {
        mark = (JSON.parse(last) as Partial<Mark>).mark;
      } catch {
        return false; // torn: a checkpoint was cut short
      }
      if (typeof mark !== "object" || mark === null) return false;
      const now = this.marks();
      return Object.keys(this.tables).every((t) => (mark as Record<string, unknown>)[t] === now[t]);
    } finally {
      await fh.close();
    }
  }

  /** Removes a stale index (the registry reads the files instead, and writes a new one). */
  async discard(): Promise<void> {
    this.usable = false;
    await fsp.rm(this.path, { force: true });
  }

  /** Appends a checkpoint's lines (journal lines, "\n"-terminated) and its mark; synced only by the caller's syncfs or `sync`. */
  async append(lines: readonly string[], sync: boolean): Promise<void> {
    const fh = await fsp.open(this.path, constants.O_CREAT | constants.O_WRONLY | constants.O_APPEND, 0o644);
    try {
      const body = lines.join("");
      await fh.writeFile("\n" + body + JSON.stringify({ mark: this.marks(), n: lines.length, b: Buffer.byteLength(body) } satisfies Mark) + "\n");
      if (sync) await fh.sync();
    } finally {
      await fh.close();
    }
  }

  /** Replaces the index with these records and a mark (after the registry read the files): temporary file, fsync, rename, fsync of the directory. */
  async rewrite(records: Iterable<[table: string, name: string, record: string | object]>): Promise<void> {
    await writeFileAtomicWith(this.path, 0o644, async (fh) => {
      let chunk: string[] = [];
      let size = 0;
      let lines = 0;
      let bytes = 0;
      for (const [t, n, d] of records) {
        const line = lineOf(t, n, d);
        chunk.push(line);
        size += line.length;
        lines++;
        bytes += Buffer.byteLength(line);
        if (size >= CHUNK) {
          await fh.write(chunk.join(""));
          chunk = [];
          size = 0;
        }
      }
      chunk.push(JSON.stringify({ mark: this.marks(), n: lines, b: bytes } satisfies Mark) + "\n");
      await fh.write(chunk.join(""));
    });
    this.usable = true;
  }

  /**
   * Reads the index up to its last mark, line by line (a million users'
   * index is never one string), each record parsed as it is read. Not
   * current when missing, unreadable, cut short, or when a directory
   * changed since the last mark.
   */
  read<T>(parse: ParseRecord<T>): IndexRead<T> {
    let fd: number;
    try {
      fd = openSync(this.path, "r");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return { current: false, why: "there is no index yet" };
      throw err;
    }
    const committed: IndexRecords<T> = new Map();
    // The lines of the append being read; its mark commits them. An append
    // cut short (a crash, a full disk) is followed by one that repeats its
    // records (the replay of the journals it covered, or the next checkpoint):
    // a mark commits only its own n lines, and the lines before them since
    // the previous mark are dropped.
    let pending: Array<{ t: string; n: string; v: T | null; bytes: number }> = [];
    let lastMark: Record<string, string> | undefined;
    let lines = 0;
    let bad = 0;
    const apply = (raw: string) => {
      if (raw === "") return;
      let o: Record<string, unknown>;
      try {
        const v: unknown = JSON.parse(raw);
        if (typeof v !== "object" || v === null) throw new Error("not an object");
        o = v as Record<string, unknown>;
      } catch {
        pending.push({ t: "", n: "", v: null, bytes: -1 });
        return;
      }
      if (typeof o.mark === "object" && o.mark !== null) {
        const n = typeof o.n === "number" ? o.n : -1;
        const own = n >= 0 && n <= pending.length ? pending.slice(pending.length - n) : undefined;
        const bytes = own?.reduce((sum, e) => (e.bytes < 0 ? NaN : sum + e.bytes), 0);
        if (!own || bytes !== o.b) {
          bad++;
          pending = [];
          return;
        }
        for (const e of own) {
          let names = committed.get(e.t);
          if (!names) committed.set(e.t, (names = new Map()));
          names.delete(e.n); // the order of the last write
          if (e.v !== null) names.set(e.n, e.v);
        }
        lines += own.length;
        pending = [];
        lastMark = o.mark as Record<string, string>;
        return;
      }
      const removed = o.d === null && !("v" in o);
      if (typeof o.t !== "string" || typeof o.n !== "string" || !(o.t in this.tables) || (!removed && typeof o.d !== "string" && (typeof o.v !== "object" || o.v === null))) {
        pending.push({ t: "", n: "", v: null, bytes: -1 });
        return;
      }
      let v: T | null | undefined;
      try {
        v = removed ? null : parse(o.t, o.n, typeof o.d === "string" ? JSON.parse(o.d) : o.v);
      } catch {
        v = undefined;
      }
      // A record that does not parse spoils its checkpoint (the files are read instead, and say which).
      pending.push(v === undefined ? { t: "", n: "", v: null, bytes: -1 } : { t: o.t, n: o.n, v, bytes: Buffer.byteLength(raw) + 1 });
    };
    try {
      const buf = Buffer.alloc(CHUNK);
      let rest = "";
      for (;;) {
        const n = readSync(fd, buf, 0, buf.length, null);
        if (n === 0) break;
        const parts = (rest + buf.toString("utf8", 0, n)).split("\n");
        rest = parts.pop()!;
        for (const p of parts) apply(p);
      }
      apply(rest);
    } finally {
      closeSync(fd);
    }
    if (bad > 0) return { current: false, why: `${bad} checkpoint(s) in the index do not add up` };
    if (!lastMark) return { current: false, why: "the index holds no complete checkpoint" };
    const now = this.marks();
    for (const table of Object.keys(this.tables)) {
      if (lastMark[table] !== now[table]) return { current: false, why: `${table}/ changed since the index was written` };
    }
    return { current: true, records: committed, lines };
  }
}
