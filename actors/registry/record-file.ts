/**
 * A record's file, the one way the registry writes it (the checkpoint's
 * writer thread and, where no thread can start, the checkpoint itself).
 * Imports node:fs only: it is loaded by a worker thread too.
 */
import { randomBytes } from "node:crypto";
import { renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** One file to write (`text`) or remove (`null`) in `dir`. */
export type FileJob = [dir: string, name: string, text: string | null];

/**
 * A record's file, no fsync (the checkpoint syncs them all at once). A new
 * record's file is created under its own name (one directory operation, not
 * two: creating files is most of a checkpoint's cost); a reader may find it
 * empty for a moment, and a crash before the checkpoint ends leaves its
 * journal line, which the next start writes again. A record that has a file
 * gets a temporary one renamed over it: a reader sees the old or the new
 * record, never a torn one.
 */
export function writeRecordFile(dir: string, name: string, data: string): void {
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

/** Does one job. */
export function runFileJob([dir, name, text]: FileJob): void {
  if (text === null) rmSync(join(dir, name), { force: true });
  else writeRecordFile(dir, name, text);
}
