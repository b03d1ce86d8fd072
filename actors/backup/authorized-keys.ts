/**
 * `<root>/.ssh/authorized_keys` of the one backup user: exactly one line per
 * registered user, built by the server alone from the canonical key the
 * registry holds (parsed again here, never copied as text):
 *
 *   restrict,command="<node> <bin/sugar-backup-command.js> --root <root> --rrsync <rrsync> <uid>" <type> <base64>
 *
 * `restrict` turns off port, agent and X11 forwarding, PTYs and ~/.ssh/rc;
 * the forced command (actors/backup/command.ts) accepts only `rsync
 * --server ...` and runs rrsync confined to the client's own directory.
 *
 * Decision on lines the server did not build (a hand edit, another tool):
 * they are NOT kept in the file. Every rewrite moves them to
 * `authorized_keys.foreign` (appended, with the time) and logs a warning, so
 * the file never authorises a key the registry does not know or lets a key
 * out of its directory. The directory is watched, so a hand edit is undone
 * within moments, not at the next registration. Keys for other purposes
 * (an administrator's) belong to another user, or to a second file named in
 * sshd's AuthorizedKeysFile. Lines the server wrote with an older command
 * (node or package moved) are recognised and rebuilt quietly.
 *
 * The forced command goes through the backup user's login shell (sshd runs
 * `$SHELL -c`), so each word is shell-safe: plain words stay as they are,
 * others are single-quoted. A `"` or `\` (which sshd's option syntax would
 * need escaped) or a control character in a path is refused at start.
 */
import { createHash } from "node:crypto";
import { existsSync, watch, promises as fsp, type FSWatcher } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { SugarError, describe } from "../../src/errors.js";
import { ensureDir, isDiskFull, readBytesIfExists, writeFileAtomic } from "../../src/fs.js";
import type { Logger } from "../../src/log.js";
import * as validate from "../../src/validate.js";
import { authorizedKeysPath, foreignKeysPath, sshDir } from "./paths.js";

const digest = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

const MIN_WRITE_GAP_MS = 25;
const MAX_WRITE_GAP_MS = 5000;
/** A full disk: the first retry after 1 s, doubling up to one a minute. */
const DISK_FULL_FIRST_RETRY_MS = 1000;
const DISK_FULL_MAX_RETRY_MS = 60_000;
/** During a burst, authorized_keys is rewritten at most this many bytes a second (with 100,000 users, one rewrite every ~3 s). */
const REWRITE_BYTES_PER_S = 8 * 1024 * 1024;

export const COMMAND_SCRIPT = "sugar-backup-command.js";

/** `bin/sugar-backup-command.js` of this installation (found from this module, in dist/ or in the sources). */
export function commandScriptPath(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, "bin", COMMAND_SCRIPT);
    if (existsSync(join(dir, "package.json")) && existsSync(candidate)) return candidate;
    const up = dirname(dir);
    if (up === dir) throw new Error(`bin/${COMMAND_SCRIPT} not found above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}

const SAFE_WORD = /^[A-Za-z0-9_@%+=:,./-]+$/;

/** One word for `sh -c`, inside sshd's `command="..."`. */
export function shellWord(value: string, what: string): string {
  if (value === "") throw new SugarError("invalid_config", `${what} is empty`);
  if (/["\\]/.test(value) || /\p{Cc}/u.test(value)) {
    throw new SugarError("invalid_config", `${what} ${JSON.stringify(value)} contains a quote, a backslash or a control character; it cannot go into authorized_keys' command="..." (choose a plainer path)`);
  }
  return SAFE_WORD.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`;
}

export interface ForcedCommand {
  /** The node binary (process.execPath). */
  node: string;
  /** Absolute path of bin/sugar-backup-command.js. */
  script: string;
  root: string;
  rrsync: string;
}

/** The text between the quotes of `command="..."` for one uid. Throws SugarError `invalid_config` for unusable paths. */
export function forcedCommandText(fc: ForcedCommand, uid: string): string {
  return [
    shellWord(fc.node, "the node binary path"),
    shellWord(fc.script, "the forced command path"),
    "--root",
    shellWord(fc.root, "root"),
    "--rrsync",
    shellWord(fc.rrsync, "rrsync-path"),
    validate.uid(uid),
  ].join(" ");
}

/** One authorized_keys line; `key` is a canonical `<type> <base64>`. */
export function keyLine(fc: ForcedCommand, uid: string, key: string): string {
  return `restrict,command="${forcedCommandText(fc, uid)}" ${key}`;
}

const SERVER_LINE = /^restrict,command="([^"]*)" (\S+) (\S+)$/;

export type LineKind = "server" | "stale" | "foreign" | "blank";

/**
 * What a line found in the file is: "server" = exactly what the server
 * builds now; "stale" = the server's format with an older command (the uid
 * still the key's own); "foreign" = anything else; "blank" = empty.
 */
export function classifyLine(fc: ForcedCommand, line: string): LineKind {
  if (line.trim() === "") return "blank";
  const m = SERVER_LINE.exec(line);
  if (!m) return "foreign";
  let key: validate.PublicKey;
  try {
    key = validate.publicKey(`${m[2]} ${m[3]}`);
  } catch {
    return "foreign"; // not a key the server would ever have written
  }
  if (key.line !== `${m[2]} ${m[3]}`) return "foreign";
  if (line === keyLine(fc, key.uid, key.line)) return "server";
  const words = m[1]!.split(" ");
  if (words.length >= 6 && words.some((w) => w.includes(COMMAND_SCRIPT)) && words[words.length - 1] === key.uid) return "stale";
  return "foreign";
}

/**
 * The file and the keys it is built from. Changes apply to the map at once;
 * the file is rewritten by one writer at a time, and every change made while
 * a rewrite runs is covered by the next one (a burst of 40 registrations
 * costs a couple of rewrites, not 40). Each rewrite is atomic (temp file,
 * fsync, rename, directory fsync); a caller's promise resolves once a
 * rewrite that includes its change is on disk.
 */
export class AuthorizedKeys {
  /** uid → canonical key. */
  private keys = new Map<string, string>();
  /** Every line is `${linePrefix}${uid}${lineMiddle}${key}`: the shell-quoted paths are built once, not per line per rewrite. */
  private readonly linePrefix: string;
  private readonly lineMiddle = `" `;
  /** SHA-256 of what the server last wrote (the file of 100,000 users is tens of MB: not kept twice). */
  private lastWritten: string | undefined;
  private lastSize = 0;
  private dirty = false;
  private waiting: Array<{ resolve(): void; reject(err: unknown): void }> = [];
  private writing: Promise<void> | undefined;
  private watcher: FSWatcher | undefined;
  private wake: (() => void) | undefined;
  private recheckWanted = false;
  private checking = false;
  private closed = false;
  /** Since when rewrites fail for want of space, and how many retries since. */
  private fullSince: number | undefined;
  private fullRetries = 0;
  readonly path: string;
  readonly foreignPath: string;

  constructor(
    private readonly root: string,
    private readonly fc: ForcedCommand,
    private readonly log: Logger,
  ) {
    this.path = authorizedKeysPath(root);
    this.foreignPath = foreignKeysPath(root);
    // Fails at start, with the offending path named, rather than at the first registration.
    const sample = "0".repeat(40);
    this.linePrefix = keyLine(fc, sample, "").slice(0, -(sample.length + this.lineMiddle.length));
  }

  async init(): Promise<void> {
    const dir = sshDir(this.root);
    await ensureDir(dir, 0o700);
    await fsp.chmod(dir, 0o700);
  }

  /** Watches `<root>/.ssh` and undoes edits made behind the server's back. */
  watch(): void {
    this.watcher = watch(sshDir(this.root), () => this.recheck());
    this.watcher.on("error", (err) => this.log.error(`watching ${sshDir(this.root)}: ${describe(err)}`));
  }

  get size(): number {
    return this.keys.size;
  }

  /** Applies a change to the uid → key map; resolves once the file holds it. */
  update(change: (keys: Map<string, string>) => void): Promise<void> {
    change(this.keys);
    return this.scheduleWrite();
  }

  /** Replaces every key (the registry's full list); resolves once the file holds them. */
  replaceAll(keys: Map<string, string>): Promise<void> {
    this.keys = new Map(keys);
    return this.scheduleWrite();
  }

  /** Rewrites the file if it is not what the server last wrote (a hand edit, or our own rename seen by the watcher). */
  recheck(): void {
    if (this.closed || this.lastWritten === undefined || this.dirty) return;
    // Our own rename fires the watcher while a rewrite runs, and one hand edit
    // fires it several times: one look at a time, and one more after.
    if (this.writing || this.checking) {
      this.recheckWanted = true;
      return;
    }
    this.checking = true;
    const expected = this.lastWritten;
    void readBytesIfExists(this.path)
      .then((now) => {
        if (this.closed || (now !== undefined && digest(now) === expected)) return;
        // A rewrite started while we read: it looks at the file itself before replacing it.
        if (this.lastWritten !== expected || this.writing || this.dirty) return;
        this.log.warn(`${this.path} was changed outside the server; rewriting it`);
        return this.scheduleWrite();
      })
      .catch((err: unknown) => this.log.error(`rewriting ${this.path}: ${describe(err)}`))
      .finally(() => {
        this.checking = false;
        this.recheckAfter();
      });
  }

  private recheckAfter(): void {
    if (!this.recheckWanted) return;
    this.recheckWanted = false;
    this.recheck();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.watcher?.close();
    this.wake?.();
    while (this.writing) await this.writing;
    // Left waiting only by a full disk: their changes are in the map, and the next start writes them.
    for (const w of this.waiting.splice(0)) w.reject(new SugarError("disk_full", `${this.path} was not rewritten before stopping: the disk is full`));
  }

  private scheduleWrite(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.dirty = true;
      this.writing ??= this.writeLoop();
    });
  }

  /**
   * Rewrites until no change is left. Between two rewrites it waits three
   * times as long as the last one took, and long enough to keep rewrites
   * under REWRITE_BYTES_PER_S (25 ms to 5 s): the file holds every user, so
   * rewriting it back to back for each event of a burst would cost O(N) per
   * registration (a 6 MB file written and fsynced several times a second);
   * waiting lets one rewrite take in everything that arrived. A new key is
   * usable within seconds, long before its laptop's first backup.
   */
  private async writeLoop(): Promise<void> {
    try {
      while (this.dirty) {
        this.dirty = false;
        const batch = this.waiting;
        this.waiting = [];
        const started = Date.now();
        try {
          await this.write();
          if (this.fullSince !== undefined) this.log.info("authorized_keys: the disk has room again; rewritten");
          this.fullSince = undefined;
          for (const w of batch) w.resolve();
        } catch (err) {
          if (isDiskFull(err) && !this.closed) {
            // One warning, then quiet retries with backoff until there is room: the changes wait, none is lost.
            if (this.fullSince === undefined) this.log.warn(`${this.path}: the disk is full, so new keys are not usable yet; retrying until there is room`);
            this.fullSince ??= Date.now();
            this.waiting.unshift(...batch);
            this.dirty = true;
            const wait = Math.min(DISK_FULL_MAX_RETRY_MS, DISK_FULL_FIRST_RETRY_MS * 2 ** Math.min(16, this.fullRetries++));
            this.log.debug(`${this.path}: disk still full; retry ${this.fullRetries} in ${wait} ms`);
            await this.pause(wait);
            continue;
          }
          for (const w of batch) w.reject(err);
        }
        this.fullRetries = 0;
        if (this.dirty && !this.closed) {
          const took = Date.now() - started;
          const byBytes = (this.lastSize / REWRITE_BYTES_PER_S) * 1000;
          await this.pause(Math.min(MAX_WRITE_GAP_MS, Math.max(MIN_WRITE_GAP_MS, 3 * took, byBytes)));
        }
      }
    } finally {
      this.writing = undefined;
      this.recheckAfter();
    }
  }

  /** A wait that close() cuts short. */
  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }

  /** The file's lines, sorted by uid: keyLine(), with the paths quoted once (uids are validated on the way in). */
  private render(): string[] {
    return [...this.keys.keys()].sort().map((uid) => this.linePrefix + uid + this.lineMiddle + this.keys.get(uid)!);
  }

  /**
   * Compared and hashed as bytes, outside the JS heap: with 100,000 users the
   * file is tens of MB, and strings that size would grow the heap for good.
   */
  private async write(): Promise<void> {
    let lines: string[] | undefined = this.render();
    const content = Buffer.from(lines.map((l) => l + "\n").join(""));
    const current = await readBytesIfExists(this.path);
    // What the server wrote last is known to be all its own; anything else is
    // looked at line by line, and only lines it would not write now are parsed.
    if (current !== undefined && !current.equals(content) && digest(current) !== this.lastWritten) {
      const ours = new Set(lines);
      const kinds = current
        .toString("utf8")
        .split("\n")
        .map((l) => l.replace(/\r$/, ""))
        .filter((l) => !ours.has(l))
        .map((l) => ({ l, kind: classifyLine(this.fc, l) }));
      const foreign = kinds.filter((k) => k.kind === "foreign").map((k) => k.l);
      const stale = kinds.filter((k) => k.kind === "stale").length;
      if (foreign.length > 0) await this.moveForeign(foreign);
      if (stale > 0) this.log.info(`authorized_keys: rebuilding ${stale} line(s) written with an older forced command`);
    }
    lines = undefined; // 100,000 strings the heap need not hold through the write
    // Known before the rename, so the watcher's look at the new file finds it ours.
    const before = { written: this.lastWritten, size: this.lastSize };
    this.lastWritten = digest(content);
    this.lastSize = content.length;
    try {
      if (current === undefined || !current.equals(content)) await writeFileAtomic(this.path, content, 0o600);
    } catch (err) {
      // Nothing new is on disk: a look at the file must not take the old one for a hand edit.
      this.lastWritten = before.written;
      this.lastSize = before.size;
      throw err;
    }
  }

  private async moveForeign(lines: string[]): Promise<void> {
    const stamp = `# moved out of ${this.path} by sugar-server at ${new Date().toISOString()}\n`;
    const fh = await fsp.open(this.foreignPath, "a", 0o600);
    try {
      await fh.writeFile(stamp + lines.map((l) => l + "\n").join(""));
      await fh.sync();
    } finally {
      await fh.close();
    }
    this.log.warn(`${this.path}: moved ${lines.length} line(s) the server did not build to ${this.foreignPath} (only registered users' keys, with the forced command, may be there)`);
  }
}
