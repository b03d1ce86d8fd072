/**
 * The forced command of every client key in the backup user's
 * authorized_keys (actors/backup/authorized-keys.ts builds the line):
 *
 *   sugar-backup-command --root ROOT --rrsync RRSYNC UID
 *
 * sshd runs it with what the client asked for in SSH_ORIGINAL_COMMAND. It
 * accepts only an rsync server invocation (`rsync --server ...`); a shell,
 * any other command or none at all gets a message on stderr and exit 1.
 * Nothing goes through a shell: rrsync is started directly with the
 * client's own directory, SSH_ORIGINAL_COMMAND passed through, stdio
 * inherited (stdout is the rsync protocol: this program never writes to
 * it). The client's directory is made (0700) if this is its first transfer.
 * When rsync has finished, one event file is written atomically into
 * `<root>/home/backups/.events/` (actors/backup/events.ts): uid, direction
 * ("backup" = upload, "restore" = `--sender`), exit status, times. The
 * backup actor picks it up, now or at its next start. The exit status is
 * rsync's.
 */
import { spawn } from "node:child_process";
import { mkdirSync, statSync } from "node:fs";
import { constants } from "node:os";
import { isAbsolute } from "node:path";
import { writeSpoolEvent, type Direction } from "./events.js";
import { backupsDir, clientDir, spoolDir } from "./paths.js";
import * as validate from "../../src/validate.js";
import type { Uid } from "../../src/validate.js";

export interface CommandArgs {
  root: string;
  rrsync: string;
  uid: Uid;
}

const USAGE = "usage: sugar-backup-command --root ROOT --rrsync RRSYNC UID (the forced command of a backup key)";

export function parseCommandArgs(argv: readonly string[]): CommandArgs {
  const [o1, root, o2, rrsync, uid, ...rest] = argv;
  if (o1 !== "--root" || o2 !== "--rrsync" || !root || !rrsync || !uid || rest.length > 0) throw new Error(USAGE);
  if (!isAbsolute(root) || !isAbsolute(rrsync)) throw new Error("--root and --rrsync must be absolute paths");
  return { root, rrsync, uid: validate.uid(uid) };
}

export type Verdict = { ok: true; direction: Direction } | { ok: false; why: string };

/**
 * Is SSH_ORIGINAL_COMMAND an rsync server? The same test rrsync makes
 * (split on single spaces: `rsync`, `--server`, then the rest, which rrsync
 * checks option by option); `--sender` right after `--server` is a download.
 */
export function classifyOriginalCommand(command: string | undefined): Verdict {
  if (command === undefined || command === "") return { ok: false, why: "this key only runs rsync backups; no shell or other command is available" };
  if (/[\0\n\r]/.test(command)) return { ok: false, why: "refusing a command with control characters" };
  const words = command.split(" ");
  if (words[0] !== "rsync" || words[1] !== "--server") return { ok: false, why: "this key only runs rsync backups; no shell or other command is available" };
  return { ok: true, direction: words[2] === "--sender" ? "restore" : "backup" };
}

export interface CommandIo {
  err(text: string): void;
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw err;
  }
}

/**
 * The client's directory, made now if this is its first transfer (the
 * server makes it at admission, not at registration; a client may connect
 * without asking for admission). Only under a root whose backups directory
 * the server has made: a wrong --root is refused, not populated.
 */
function clientDirReady(root: string, uid: Uid): string | undefined {
  const dir = clientDir(root, uid);
  if (isDirectory(dir)) return dir;
  if (!isDirectory(backupsDir(root))) return undefined;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return isDirectory(dir) ? dir : undefined;
}

/** Runs rrsync; resolves with its exit status (128 + signal when killed, 127 when it cannot start). */
function runRrsync(rrsync: string, dir: string, env: NodeJS.ProcessEnv, io: CommandIo): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(rrsync, [dir], { stdio: "inherit", env });
    // A closing SSH session signals this process: pass it on and still record the outcome.
    const forward = (sig: NodeJS.Signals) => child.kill(sig);
    const signals: NodeJS.Signals[] = ["SIGHUP", "SIGTERM", "SIGINT"];
    for (const s of signals) process.on(s, forward);
    const done = (code: number) => {
      for (const s of signals) process.off(s, forward);
      resolve(code);
    };
    child.on("error", (err) => {
      io.err(`sugar-backup-command: cannot run ${rrsync}: ${err.message}\n`);
      done(127);
    });
    child.on("exit", (code, signal) => done(code ?? 128 + (signal ? constants.signals[signal] : 0)));
  });
}

export async function main(argv: readonly string[], env: NodeJS.ProcessEnv = process.env, io: CommandIo = { err: (t) => process.stderr.write(t) }): Promise<number> {
  let args: CommandArgs;
  try {
    args = parseCommandArgs(argv);
  } catch (err) {
    io.err(`sugar-backup-command: ${(err as Error).message}\n`);
    return 1;
  }
  const verdict = classifyOriginalCommand(env.SSH_ORIGINAL_COMMAND);
  if (!verdict.ok) {
    io.err(`sugar-backup-command: ${verdict.why}\n`);
    return 1;
  }
  let dir: string | undefined;
  try {
    dir = clientDirReady(args.root, args.uid);
  } catch (err) {
    io.err(`sugar-backup-command: cannot make this key's backup directory: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}\n`);
    return 1;
  }
  if (!dir) {
    io.err("sugar-backup-command: this server keeps no backups under --root (no home/backups directory)\n");
    return 1;
  }
  const started = new Date().toISOString();
  const exit = await runRrsync(args.rrsync, dir, env, io);
  try {
    await writeSpoolEvent(spoolDir(args.root), { uid: args.uid, direction: verdict.direction, exit, started, finished: new Date().toISOString() });
  } catch (err) {
    io.err(`sugar-backup-command: the ${verdict.direction} finished (exit ${exit}) but the server could not be told: ${(err as Error).message}\n`);
  }
  return exit;
}
