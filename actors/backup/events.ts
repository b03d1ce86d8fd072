/**
 * How the server learns that a backup or a restore happened: the forced
 * command (actors/backup/command.ts) runs rrsync and, when rsync has
 * finished, writes one small JSON file into `<root>/home/backups/.events/`
 * (temp file, fsync, rename). The backup actor watches that directory
 * (fs.watch, plus a full scan at start and on every watch event), handles
 * each file in name order (names start with the time) and deletes it.
 *
 * Why a spool directory and not a bus message from the forced command: the
 * forced command runs under sshd, not inside the server, and needs no bus
 * credentials; it works the same with the embedded bus and with NATS; and an
 * event written while the server is down (or restarting) waits on disk and is
 * handled at the next start. The client cannot reach the directory: rrsync
 * confines it to its own directory.
 *
 * This module is the format (shared with the forced command, which must
 * start fast: no protobuf here); spool.ts is the watcher.
 */
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { SugarError } from "../../src/errors.js";
import { ensureDir, writeFileAtomic } from "../../src/fs.js";
import * as validate from "../../src/validate.js";
import type { Uid } from "../../src/validate.js";

/** An upload into the client's directory (no `--sender`) or a download from it (`--sender`). */
export type Direction = "backup" | "restore";

export interface SpoolEvent {
  uid: Uid;
  direction: Direction;
  /** rsync's exit status (128 + signal number when it was killed). */
  exit: number;
  /** ISO-8601 UTC. */
  started: string;
  finished: string;
}

export const SPOOL_NAME = /^\d{15}-[0-9a-f]{40}-\d+-[0-9a-f]{8}\.json$/;
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z$/;

export function spoolFileName(ev: SpoolEvent, pid: number): string {
  return `${String(Date.parse(ev.finished)).padStart(15, "0")}-${ev.uid}-${pid}-${randomBytes(4).toString("hex")}.json`;
}

/** Written by the forced command; durable once this resolves. */
export async function writeSpoolEvent(dir: string, ev: SpoolEvent, pid = process.pid): Promise<string> {
  await ensureDir(dir, 0o700);
  const file = join(dir, spoolFileName(ev, pid));
  await writeFileAtomic(file, JSON.stringify(ev) + "\n", 0o600);
  return file;
}

/** Checks every field: the spool is on disk, so its contents are input like any other. */
export function parseSpoolEvent(text: string): SpoolEvent {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (cause) {
    throw new SugarError("invalid_input", "spool event is not JSON", { cause });
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new SugarError("invalid_input", "spool event is not an object");
  const o = v as Record<string, unknown>;
  const str = (k: string) => {
    if (typeof o[k] !== "string") throw new SugarError("invalid_input", `spool event: ${k} must be a string`);
    return o[k] as string;
  };
  const uid = validate.uid(str("uid"));
  const direction = str("direction");
  if (direction !== "backup" && direction !== "restore") throw new SugarError("invalid_input", `spool event: direction ${JSON.stringify(direction)}`);
  const exit = o.exit;
  if (typeof exit !== "number" || !Number.isInteger(exit) || exit < 0 || exit > 255) throw new SugarError("invalid_input", "spool event: exit must be 0..255");
  const started = str("started");
  const finished = str("finished");
  if (!ISO.test(started) || !ISO.test(finished)) throw new SugarError("invalid_input", "spool event: times must be ISO-8601 UTC");
  return { uid, direction, exit, started, finished };
}
