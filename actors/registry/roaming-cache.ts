/**
 * The roamers this school knows of (option `district`): users at home at
 * another school that asked here, kept in `<root>/home/registry/roaming.json`
 * so a school cut off from the district still answers what it knew. Written
 * atomically (src/fs.ts), one write at a time, coalesced; every entry read
 * back is checked as one from the bus is (src/district.ts directoryEntry).
 */
import { join } from "node:path";
import { directoryEntry, type DirectoryEntry } from "../../src/district.js";
import { describe } from "../../src/errors.js";
import { readFileIfExists, writeFileAtomic } from "../../src/fs.js";
import type { Logger } from "../../src/log.js";

export const ROAMING_FILE = "roaming.json";

/** A roamer as the file keeps it (the .proto's field names). */
interface StoredRoamer {
  uid: string;
  site: string;
  nickname: string;
  pubkey: string;
  backup_url: string;
  machine_sn: string;
  updated: string;
}

export class RoamingCache {
  private readonly roamers = new Map<string, DirectoryEntry>();
  private readonly file: string;
  private dirty = false;
  private saving: Promise<void> | undefined;

  constructor(dir: string, private readonly log: Logger) {
    this.file = join(dir, ROAMING_FILE);
  }

  /** Reads the file; a bad file or entry is reported and left out (the district answers again). */
  async load(): Promise<void> {
    const text = await readFileIfExists(this.file);
    if (text === undefined) return;
    let list: unknown;
    try {
      list = (JSON.parse(text) as { roamers?: unknown }).roamers;
    } catch (err) {
      this.log.warn(`${ROAMING_FILE} is not JSON, starting with no roamers known: ${describe(err)}`);
      return;
    }
    if (!Array.isArray(list)) {
      this.log.warn(`${ROAMING_FILE} has no list of roamers, starting with none known`);
      return;
    }
    let bad = 0;
    for (const r of list as Partial<StoredRoamer>[]) {
      try {
        const e = directoryEntry({ uid: r.uid, site: r.site, nickname: r.nickname, pubkey: r.pubkey, backupUrl: r.backup_url, machineSn: r.machine_sn, updated: r.updated });
        this.roamers.set(e.uid, e);
      } catch {
        bad++;
      }
    }
    if (bad > 0) this.log.warn(`${ROAMING_FILE}: left out ${bad} malformed roamer${bad === 1 ? "" : "s"}`);
  }

  get size(): number {
    return this.roamers.size;
  }

  get(uid: string): DirectoryEntry | undefined {
    return this.roamers.get(uid);
  }

  /** Remembers a roamer (written if anything changed). */
  put(e: DirectoryEntry): void {
    const old = this.roamers.get(e.uid);
    if (old && JSON.stringify(old) === JSON.stringify(e)) return;
    this.roamers.set(e.uid, e);
    this.save();
  }

  /** Forgets a roamer; true if it was known. */
  drop(uid: string): boolean {
    if (!this.roamers.delete(uid)) return false;
    this.save();
    return true;
  }

  /** Waits for the writes asked for so far. */
  async flush(): Promise<void> {
    while (this.saving) await this.saving;
  }

  private save(): void {
    this.dirty = true;
    if (this.saving) return;
    this.saving = (async () => {
      while (this.dirty) {
        this.dirty = false;
        const roamers: StoredRoamer[] = [...this.roamers.values()].map((e) => ({
          uid: e.uid,
          site: e.site,
          nickname: e.nickname,
          pubkey: e.pubkey,
          backup_url: e.backupUrl,
          machine_sn: e.machineSn,
          updated: e.updated,
        }));
        try {
          await writeFileAtomic(this.file, `${JSON.stringify({ roamers }, null, 1)}\n`);
        } catch (err) {
          // Memory still answers; the next change writes the file again.
          this.log.warn(`cannot write ${ROAMING_FILE}: ${describe(err)}`);
        }
      }
    })().finally(() => {
      this.saving = undefined;
    });
  }
}
