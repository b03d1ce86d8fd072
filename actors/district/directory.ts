/**
 * The district directory: every school's users, by uid, each at its home
 * school. A uid at home at one site is refused to any other ("uid is at
 * home at <site>") until its home removes it, or its home's full feed no
 * longer has it. Persisted one file per site,
 * `<root>/district/directory/<site>.json`, rewritten atomically when that
 * site's entries change, so a restart keeps what the schools fed.
 *
 * Each entry carries `claimed`: when a district actor first accepted the uid
 * for that site (kept while that site updates it). Two district actors that
 * hold a uid at different sites (one started empty, or missed an event, and
 * took a later claim) keep the OLDER claim (tie: the smaller site name): the
 * one holding the winner tells the other (`tell`), which replaces its loser.
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import { sugar } from "../../schemas/gen/messages.js";
import { directoryDigest, directoryEntry, isSiteName, type DirectoryEntry } from "../../src/district.js";
import { DurableDir, writingTo } from "../../src/fs.js";
import { SugarError } from "../../src/errors.js";
import type { Logger } from "../../src/log.js";

/** An entry as held (src/district.ts directoryEntry checked it), with when the district accepted its claim. */
export type Entry = Omit<DirectoryEntry, "removed"> & { claimed: string };
/** An entry from the wire, as the generated code gives it. */
export type WireEntry = sugar.district.Entry.$Properties;
export type Change = Entry & { removed: boolean };

/** `claimed` of an entry held before the district stamped claims: it was there first. */
export const CLAIMED_BEFORE = "1970-01-01T00:00:00.000Z";
const CLAIMED = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
/** A claimed time as a district actor stamps it (toISOString), or throws invalid_input. */
export function checkClaimed(v: string, uid: string): string {
  if (!CLAIMED.test(v) || Number.isNaN(Date.parse(v))) throw new SugarError("invalid_input", `directory entry ${uid}: claimed ${JSON.stringify(v.slice(0, 40))} is not an ISO-8601 UTC time with milliseconds`);
  return v;
}
/** A peer district actor's entry: checked as a feed of its site would be, and with a good `claimed` unless a removal. */
export function checkPeerEntry(e: WireEntry): Change {
  const c = checkEntry(e, checkSite(e.site ?? ""));
  return { ...c, claimed: c.removed ? "" : checkClaimed(e.claimed ?? "", c.uid) };
}

/** What merging a peer's entries did: the changes here, what to tell the peer (this actor's winners), the claims held here that lost. */
export interface MergeResult {
  changes: Change[];
  tell: Entry[];
  replaced: Array<{ loser: Entry; winner: Entry }>;
}
/** Does claim a beat claim b (a uid held at two sites)? The older claim; tie: the smaller site. */
const claimWins = (a: Entry, b: Entry) => a.claimed < b.claimed || (a.claimed === b.claimed && a.site < b.site);
const line = (e: Entry) => [e.uid, e.site, e.claimed, e.nickname, e.pubkey, e.backupUrl, e.machineSn, e.updated].join(" ");
/** A page of directory_list: at most this many entries, and this many bytes of them. */
export const PAGE_ENTRIES = 2000;
const PAGE_BYTES = 512 * 1024;

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
export function checkEntry(e: WireEntry, site: string): Omit<Change, "claimed"> {
  if (e.site && e.site !== site) throw new SugarError("invalid_input", `directory entry ${String(e.uid ?? "").slice(0, 40)} names site ${JSON.stringify(e.site.slice(0, 40))}, fed by ${site}`);
  const { removed, ...entry } = directoryEntry({ ...e, site });
  return { ...entry, removed };
}

const sameEntry = (a: Entry, b: Entry) => line(a) === line(b);

export class Directory {
  private readonly byUid = new Map<string, Entry>();
  private readonly bySite = new Map<string, Map<string, Entry>>();
  private readonly dir: DurableDir;
  /** The sorted uids and the whole directory's digest, worked out again after a change. */
  private sorted: { uids: string[]; digest: string } | undefined;

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
          const w = raw as WireEntry;
          const e = { ...checkEntry(w, site), claimed: w.claimed ? checkClaimed(w.claimed, String(w.uid)) : CLAIMED_BEFORE };
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
    const now = new Date().toISOString();
    // A school's `claimed` is not taken: a new uid is claimed now, a held one keeps its time.
    const entries = wire.map((w): Change => {
      const e = checkEntry(w, site);
      const held = this.byUid.get(e.uid);
      return { ...e, claimed: held?.site === site ? held.claimed : now };
    });
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
   * A peer district actor's changes (its event), checked first (a bad entry
   * refuses the whole event). A removal only by the entry's own site. An
   * entry of the uid's held site is taken (the peer had it from the school),
   * keeping the older `claimed`; one of another site is merged by the claim
   * rule (mergeClaim).
   */
  async follow(wire: readonly WireEntry[]): Promise<MergeResult> {
    return this.merge(wire.map(checkPeerEntry), false);
  }

  /**
   * A page of a peer's directory_list: its entries (checked by the caller),
   * all the peer holds in the uids (after, through] ("" through = to the
   * last). Merged by the claim rule; of one site, the later `updated` wins
   * (tie: the greater line), so two actors end up alike. What this actor
   * holds in that range and the peer lacks, or holds better, is in `tell`.
   */
  async mergePage(entries: readonly Change[], after: string, through: string): Promise<MergeResult> {
    const r = await this.merge(entries, true);
    const theirs = new Set<string>(entries.map((e) => e.uid));
    for (const uid of this.uidsSorted()) {
      if (uid <= after || (through !== "" && uid > through)) continue;
      if (!theirs.has(uid)) r.tell.push(this.byUid.get(uid)!);
    }
    return r;
  }

  private async merge(entries: readonly Change[], listed: boolean): Promise<MergeResult> {
    const r: MergeResult = { changes: [], tell: [], replaced: [] };
    const next = new Map<string, Entry>();
    for (const e of entries) {
      const held = next.get(e.uid) ?? this.byUid.get(e.uid);
      if (e.removed) {
        if (held?.site === e.site) {
          r.changes.push({ ...held, removed: true });
          next.delete(e.uid);
        }
        continue;
      }
      const { removed: _, ...theirs } = e;
      let keep: Entry;
      if (!held) keep = theirs;
      else if (held.site !== theirs.site) {
        keep = claimWins(held, theirs) ? held : theirs;
        if (keep === theirs) r.replaced.push({ loser: held, winner: theirs });
        else this.log.debug(`uid ${e.uid}: a peer's claim by ${theirs.site} refused, at home at ${held.site} since ${held.claimed}`);
      } else {
        const content = !listed || theirs.updated > held.updated || (theirs.updated === held.updated && line(theirs) > line(held)) ? theirs : held;
        keep = { ...content, claimed: held.claimed < theirs.claimed ? held.claimed : theirs.claimed };
      }
      if (!held || !sameEntry(held, keep)) {
        if (held && held.site !== keep.site) r.changes.push({ ...held, removed: true });
        r.changes.push({ ...keep, removed: false });
        next.set(e.uid, keep);
      }
      if (!sameEntry(keep, theirs)) r.tell.push(keep);
    }
    await this.commit(r.changes);
    return r;
  }

  /** The whole directory's digest (DirectoryListReply.digest). */
  fullDigest(): string {
    return this.index().digest;
  }

  /** A page of directory_list: the entries after `after`, at most `limit` and PAGE_BYTES; `more` if some remain. */
  page(after: string, limit: number, size: (e: Entry) => number): { entries: Entry[]; more: boolean } {
    const uids = this.uidsSorted();
    const max = limit > 0 && limit < PAGE_ENTRIES ? limit : PAGE_ENTRIES;
    let lo = 0;
    let hi = uids.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (uids[mid]! <= after) lo = mid + 1;
      else hi = mid;
    }
    const entries: Entry[] = [];
    let bytes = 0;
    for (let i = lo; i < uids.length && entries.length < max; i++) {
      const e = this.byUid.get(uids[i]!)!;
      bytes += size(e);
      if (bytes > PAGE_BYTES && entries.length > 0) break;
      entries.push(e);
    }
    return { entries, more: lo + entries.length < uids.length };
  }

  private uidsSorted(): string[] {
    return this.index().uids;
  }
  private index(): { uids: string[]; digest: string } {
    if (!this.sorted) {
      const uids = [...this.byUid.keys()].sort();
      const digest = createHash("sha256").update(uids.map((u) => line(this.byUid.get(u)!)).join("\n"), "utf8").digest("hex");
      this.sorted = { uids, digest };
    }
    return this.sorted;
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
    if (changes.length === 0) return;
    this.sorted = undefined;
    const before = new Map([...sites].map((s) => [s, new Map(this.bySite.get(s) ?? [])]));
    for (const c of changes) (c.removed ? this.unset(c) : this.set(c));
    try {
      for (const site of sites) {
        const entries = [...(this.bySite.get(site)?.values() ?? [])].sort((a, b) => (a.uid < b.uid ? -1 : 1));
        await writingTo("the district directory", () => this.dir.write(`${site}.json`, JSON.stringify({ entries }, null, 1) + "\n"));
      }
    } catch (err) {
      for (const site of before.keys()) for (const e of this.bySite.get(site)?.values() ?? []) this.byUid.delete(e.uid);
      for (const [site, held] of before) {
        this.bySite.set(site, held);
        for (const e of held.values()) this.byUid.set(e.uid, e);
      }
      throw err;
    }
  }
}
