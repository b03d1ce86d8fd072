/**
 * May a client start a backup now? Three limits, checked in the order the
 * OLPC XS checked them (ds-backup `server/`): the 1-minute load average, the
 * free space (blocks and inodes) of the backups file system, and the number
 * of backups in flight. A refusal is an answer (accepted: false, a reason, a
 * retry-after), not an error: ds-backup maps it to 503 and retries.
 *
 * A slot is taken by an accepted admission and given back when that
 * client's upload ends (the forced command's spool event, events.ts), or
 * after `backup-slot-seconds` if it never reports back. A client that
 * already holds a slot and asks again keeps it (its time restarts).
 */
import { promises as fsp } from "node:fs";
import { loadavg } from "node:os";

export interface DiskFree {
  /** Percent of blocks available to unprivileged users. */
  blocks: number;
  /** Percent of inodes free; undefined when the file system has no inode count (btrfs). */
  inodes: number | undefined;
}

/** What admission measures; tests replace them. */
export interface Probes {
  load(): number;
  disk(path: string): Promise<DiskFree>;
  now(): number;
}

export const systemProbes: Probes = {
  load: () => loadavg()[0] ?? 0,
  async disk(path) {
    const s = await fsp.statfs(path);
    return {
      blocks: s.blocks > 0 ? (s.bavail / s.blocks) * 100 : 100,
      inodes: s.files > 0 ? (s.ffree / s.files) * 100 : undefined,
    };
  },
  now: () => Date.now(),
};

export interface Limits {
  slots: number;
  slotSeconds: number;
  /** Percent of blocks and of inodes that must stay free. */
  minFree: number;
  maxLoad: number;
}

export type Decision = { accepted: true } | { accepted: false; reason: string; retryAfter: number };

const LOAD_RETRY = 60;
const DISK_RETRY = 3600;
const SLOT_RETRY_MAX = 300;

export class Admission {
  /** uid → when its slot expires (ms). */
  private readonly slots = new Map<string, number>();

  constructor(
    private readonly limits: Limits,
    private readonly dir: string,
    private readonly probes: Probes = systemProbes,
  ) {}

  async decide(uid: string): Promise<Decision> {
    const load = this.probes.load();
    if (load > this.limits.maxLoad) {
      return { accepted: false, reason: `server busy: load average ${load.toFixed(2)} is above ${this.limits.maxLoad}`, retryAfter: LOAD_RETRY };
    }
    const free = await this.probes.disk(this.dir);
    if (free.blocks < this.limits.minFree) {
      return { accepted: false, reason: `disk full: ${free.blocks.toFixed(1)}% of blocks free, ${this.limits.minFree}% required`, retryAfter: DISK_RETRY };
    }
    if (free.inodes !== undefined && free.inodes < this.limits.minFree) {
      return { accepted: false, reason: `disk full: ${free.inodes.toFixed(1)}% of inodes free, ${this.limits.minFree}% required`, retryAfter: DISK_RETRY };
    }
    const now = this.probes.now();
    this.expire(now);
    if (!this.slots.has(uid) && this.slots.size >= this.limits.slots) {
      const soonest = Math.min(...this.slots.values());
      const wait = Math.ceil((soonest - now) / 1000);
      return {
        accepted: false,
        reason: `all ${this.limits.slots} backup slots are busy`,
        retryAfter: Math.max(1, Math.min(wait, SLOT_RETRY_MAX)),
      };
    }
    this.slots.set(uid, now + this.limits.slotSeconds * 1000);
    return { accepted: true };
  }

  /** The client's upload ended (or it is gone): its slot is free again. */
  release(uid: string): boolean {
    return this.slots.delete(uid);
  }

  /** Who holds a slot now. */
  holders(): string[] {
    this.expire(this.probes.now());
    return [...this.slots.keys()];
  }

  /** Slots held now. */
  inUse(): number {
    this.expire(this.probes.now());
    return this.slots.size;
  }

  private expire(now: number): void {
    for (const [uid, until] of this.slots) if (until <= now) this.slots.delete(uid);
  }
}
