/**
 * Pending restore: which clients should restore before they back up (a key
 * that registered again and found a backup of its own). The backup actor
 * owns this flag; `/client/status` asks for it on every call, so it lives in
 * memory and on disk as one small file, `<root>/home/backups/.state/pending-restore`
 * (a uid per line, rewritten atomically on each change). Few clients are
 * ever pending at once, so the file stays small.
 */
import { join } from "node:path";
import { readFileIfExists, writeFileAtomic } from "../../src/fs.js";
import type { Logger } from "../../src/log.js";
import { KeyedMutex } from "../../src/mutex.js";
import * as validate from "../../src/validate.js";
import type { Uid } from "../../src/validate.js";

export class PendingRestores {
  private readonly uids = new Set<Uid>();
  private readonly writes = new KeyedMutex();
  readonly path: string;

  constructor(stateDir: string, private readonly log: Logger) {
    this.path = join(stateDir, "pending-restore");
  }

  async load(): Promise<void> {
    const text = (await readFileIfExists(this.path)) ?? "";
    for (const line of text.split("\n")) {
      if (line === "") continue;
      try {
        this.uids.add(validate.uid(line));
      } catch (err) {
        this.log.warn(`${this.path}: skipping a line that is not a uid: ${(err as Error).message}`);
      }
    }
  }

  has(uid: Uid): boolean {
    return this.uids.has(uid);
  }

  /** Sets or clears the flag; durable when it resolves. Returns whether it changed. */
  set(uid: Uid, pending: boolean): Promise<boolean> {
    return this.writes.run(["file"], async () => {
      if (this.uids.has(uid) === pending) return false;
      const next = new Set(this.uids);
      if (pending) next.add(uid);
      else next.delete(uid);
      await writeFileAtomic(this.path, [...next].map((u) => `${u}\n`).join(""), 0o600);
      if (pending) this.uids.add(uid);
      else this.uids.delete(uid);
      return true;
    });
  }
}
