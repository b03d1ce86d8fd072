/**
 * The district directory: every school's users, by uid, each at its home
 * school. A uid at home at one site is refused to any other ("uid is at
 * home at <site>") until its home removes it, or its home's full feed no
 * longer has it. Persisted one file per site,
 * `<root>/district/directory/<site>.json`, rewritten atomically when that
 * site's entries change, so a restart keeps what the schools fed.
 */
import { join } from "node:path";
import { sugar } from "../../schemas/gen/messages.js";
import { directoryDigest, directoryEntry, isSiteName, type DirectoryEntry } from "../../src/district.js";
import { DurableDir, writingTo } from "../../src/fs.js";
import { SugarError } from "../../src/errors.js";
import type { Logger } from "../../src/log.js";

/** An entry as held (src/district.ts directoryEntry checked it). */
export type Entry = Omit<DirectoryEntry, "removed">;
/** An entry from the wire, as the generated code gives it. */
export type WireEntry = sugar.district.Entry.$Properties;
type Change = Entry & { removed: boolean };

export interface Refusal {
  uid: string;
  reason: string;
}

/** What a feed did: the refusals, how many entries it took, and the changes (removals with `removed`). */
export interface FeedResult {
  accepted: number;
  refused: Refusal[];
  changes: Change[];
}

/** A full feed's part: the uids in [from, to), "" = unbounded on that side. */
export interface UidRange {
  from: string;
  to: string;
}
const inRange = (uid: string, r: UidRange) => (r.from === "" || uid >= r.from) && (r.to === "" || uid < r.to);

/** A site name as a subject token spells it, not one of the reserved names. */
export function checkSite(site: string): string {
  if (!isSiteName(site)) throw new SugarError("invalid_input", `site ${JSON.stringify(site.slice(0, 40))} is not a site name (a subject token, not "district" or "keyring")`);
  return site;
}

/** Checks an entry fed by `site`: its own `site` may be left out, and if given must be that one. */
export function checkEntry(e: WireEntry, site: string): Change {
  if (e.site && e.site !== site) throw new SugarError("invalid_input", `directory entry ${String(e.uid ?? "").slice(0, 40)} names site ${JSON.stringify(e.site.slice(0, 40))}, fed by ${site}`);
  const { removed, ...entry } = directoryEntry({ ...e, site });
  return { ...entry, removed };
}

const sameEntry = (a: Entry, b: Entry) =>
  a.uid === b.uid && a.site === b.site && a.nickname === b.nickname && a.pubkey === b.pubkey && a.backupUrl === b.backupUrl && a.machineSn === b.machineSn && a.updated === b.updated;

export class Directory {
  private readonly byUid = new Map<string, Entry>();
  private readonly bySite = new Map<string, Map<string, Entry>>();
  private readonly dir: DurableDir;

  constructor(root: string, private readonly log: Logger) {
    this.dir = new DurableDir(join(root, "district", "directory"));
  }

  async load(): Promise<void> {
    for (const f of await this.dir.open(0o755)) {
      const m = /^(.+)\.json$/.exec(f.name);
      if (!m) continue;
      let site: string;
      let list: unknown;
      try {
        site = checkSite(m[1]!);
        list = (JSON.parse(f.text) as { entries?: unknown }).entries;
        if (!Array.isArray(list)) throw new Error(`no "entries" list`);
      } catch (cause) {
        throw new SugarError("internal", `${f.path}: ${(cause as Error).message}: fix it or remove it (the school feeds it again)`, { cause });
      }
      for (const [i, raw] of list.entries()) {
        try {
          const e = checkEntry(raw as WireEntry, site);
          const other = this.byUid.get(e.uid);
          if (other && other.site !== site) throw new Error(`uid ${e.uid} is at home at ${other.site} too`);
          this.set(e);
        } catch (err) {
          this.log.warn(`${f.path}: entry ${i + 1} ignored: ${(err as Error).message}`);
        }
      }
    }
  }

  lookup(uid: string): Entry | undefined {
    return this.byUid.get(uid);
  }

  digest(site: string): string {
    return directoryDigest(this.bySite.get(site)?.values() ?? []);
  }

  get size(): number {
    return this.byUid.size;
  }
  get sites(): number {
    return [...this.bySite.values()].filter((s) => s.size > 0).length;
  }

  /**
   * A site's feed: changes (an entry with `removed` removes it), or with
   * `full` every user of the site (what the district had for it and is not
   * among them is removed). Entries are checked before anything changes; a
   * bad one refuses the whole feed. A uid at home at another site is
   * refused, the rest taken. Persisted before this resolves.
   */
  async feed(site: string, wire: readonly WireEntry[], full: boolean, range: UidRange = { from: "", to: "" }): Promise<FeedResult> {
    const entries = wire.map((e) => checkEntry(e, site));
    if (full) {
      const outside = entries.find((e) => !inRange(e.uid, range));
      if (outside) throw new SugarError("invalid_input", `directory entry ${outside.uid} is outside the feed's range [${range.from || "first"}, ${range.to || "last"})`);
    }
    const refused: Refusal[] = [];
    const changes: Change[] = [];
    let accepted = 0;
    const fed = new Set<string>();
    for (const e of entries) {
      const held = this.byUid.get(e.uid);
      if (held && held.site !== site) {
        if (!e.removed) refused.push({ uid: e.uid, reason: `uid is at home at ${held.site}` });
        continue;
      }
      accepted++;
      if (e.removed) {
        if (held) changes.push({ ...held, removed: true });
        continue;
      }
      fed.add(e.uid);
      const { removed: _, ...entry } = e;
      if (!held || !sameEntry(held, entry)) changes.push(e);
    }
    if (full) {
      for (const held of this.bySite.get(site)?.values() ?? []) if (inRange(held.uid, range) && !fed.has(held.uid)) changes.push({ ...held, removed: true });
    }
    await this.commit(changes);
    return { accepted, refused, changes };
  }

  /**
   * A peer district actor's changes (its event): the same claim rule; a
   * removal only by the entry's own site. Returns what changed here.
   */
  async follow(wire: readonly WireEntry[]): Promise<Change[]> {
    const entries = wire.map((e) => checkEntry(e, checkSite(e.site ?? "")));
    const changes: Change[] = [];
    for (const e of entries) {
      const held = this.byUid.get(e.uid);
      if (held && held.site !== e.site) {
        if (!e.removed) this.log.debug(`peer entry ${e.uid} of ${e.site} not taken: at home at ${held.site}`);
        continue;
      }
      const { removed: _, ...entry } = e;
      if (e.removed ? held !== undefined : !held || !sameEntry(held, entry)) changes.push(e);
    }
    await this.commit(changes);
    return changes;
  }

  private set(e: Entry): void {
    const { removed: _, ...entry } = e as Entry & { removed?: boolean };
    this.byUid.set(e.uid, entry);
    let s = this.bySite.get(e.site);
    if (!s) this.bySite.set(e.site, (s = new Map()));
    s.set(e.uid, entry);
  }

  private unset(e: Entry): void {
    this.byUid.delete(e.uid);
    this.bySite.get(e.site)?.delete(e.uid);
  }

  /** Applies changes and rewrites each touched site's file; a failed write puts that site back as it was. */
  private async commit(changes: readonly Change[]): Promise<void> {
    const sites = new Set(changes.map((c) => c.site));
    const before = new Map([...sites].map((s) => [s, new Map(this.bySite.get(s) ?? [])]));
    for (const c of changes) (c.removed ? this.unset(c) : this.set(c));
    try {
      for (const site of sites) {
        const entries = [...(this.bySite.get(site)?.values() ?? [])].sort((a, b) => (a.uid < b.uid ? -1 : 1));
        await writingTo("the district directory", () => this.dir.write(`${site}.json`, JSON.stringify({ entries }, null, 1) + "\n"));
      }
    } catch (err) {
      for (const [site, held] of before) {
        for (const e of this.bySite.get(site)?.values() ?? []) this.byUid.delete(e.uid);
        this.bySite.set(site, held);
        for (const e of held.values()) this.byUid.set(e.uid, e);
      }
      throw err;
    }
  }
}
