/**
 * `<root>/run/lock`: keeps two writers off the same registry. Holds the
 * owner's pid; a lock left by a dead process is taken over.
 */
import { promises as fsp } from "node:fs";
import { dirname } from "node:path";
import { SugarError } from "./errors.js";

export interface Lock {
  readonly path: string;
  release(): Promise<void>;
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** The pid holding the lock, if a live process does. */
export async function lockHolder(path: string): Promise<number | undefined> {
  const text = await fsp.readFile(path, "utf8").catch(() => "");
  const pid = Number(text.trim());
  return Number.isInteger(pid) && pid > 0 && pidAlive(pid) ? pid : undefined;
}

export async function acquireLock(path: string): Promise<Lock> {
  await fsp.mkdir(dirname(path), { recursive: true, mode: 0o700 });
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fh = await fsp.open(path, "wx", 0o644);
      await fh.writeFile(`${process.pid}\n`);
      await fh.close();
      let released = false;
      return {
        path,
        async release() {
          if (released) return;
          released = true;
          const text = await fsp.readFile(path, "utf8").catch(() => "");
          if (text.trim() === String(process.pid)) await fsp.rm(path, { force: true });
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      const holder = await lockHolder(path);
      if (holder !== undefined && holder !== process.pid) {
        throw new SugarError("conflict", `another sugar-server (pid ${holder}) holds ${path}`);
      }
      if (holder === process.pid) throw new SugarError("conflict", `this process already holds ${path}`);
      await fsp.rm(path, { force: true }); // stale: its owner is gone
    }
  }
  throw new SugarError("conflict", `could not take ${path}`);
}
