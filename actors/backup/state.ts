/**
 * What the server remembers about each client's transfers, outside the
 * client's directory (the client can rewrite or delete anything inside it):
 * `<root>/home/backups/.state/<uid>`, one small JSON file, written atomically.
 */
import { promises as fsp } from "node:fs";
import { join } from "node:path";
import { ensureDir, readFileIfExists, syncDir, writeFileAtomic } from "../../src/fs.js";
import type { Uid } from "../../src/validate.js";

export interface ClientState {
  /** ISO time of the last completed backup (rsync exit 0), or "". */
  last_backup: string;
  /** ISO time of the last completed restore, or "". */
  last_restore: string;
}

const EMPTY: ClientState = { last_backup: "", last_restore: "" };

export class StateStore {
  constructor(readonly dir: string) {}

  async init(): Promise<void> {
    await ensureDir(this.dir, 0o700);
  }

  async get(uid: Uid): Promise<ClientState> {
    const text = await readFileIfExists(join(this.dir, uid));
    if (text === undefined) return { ...EMPTY };
    const v = JSON.parse(text) as Partial<Record<keyof ClientState, unknown>>;
    return {
      last_backup: typeof v.last_backup === "string" ? v.last_backup : "",
      last_restore: typeof v.last_restore === "string" ? v.last_restore : "",
    };
  }

  async update(uid: Uid, change: Partial<ClientState>): Promise<ClientState> {
    const next = { ...(await this.get(uid)), ...change };
    await writeFileAtomic(join(this.dir, uid), JSON.stringify(next) + "\n", 0o600);
    return next;
  }

  /** Moves one client's state to another uid (a re-flashed XO, hardware model). */
  async move(from: Uid, to: Uid): Promise<void> {
    const src = join(this.dir, from);
    try {
      await fsp.rename(src, join(this.dir, to));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
      throw err;
    }
    await syncDir(this.dir);
  }
}
