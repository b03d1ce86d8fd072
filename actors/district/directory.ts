/**
 * The district directory: every school's users, by uid, each at its home
 * school. A uid at home at one site is refused to any other ("uid is at
 * home at <site>") until its home removes it, or its home's full feed no
 * longer has it. Persisted one file per site,
 * `<root>/district/directory/<site>.json`, rewritten atomically when that
 * site's entries change, so a restart keeps what the schools fed.
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import { DurableDir, writingTo } from "../../src/fs.js";
import { SugarError } from "../../src/errors.js";
import { RESERVED_SITES } from "../../src/bus/subjects.js";
import type { Logger } from "../../src/log.js";
import * as validate from "../../src/validate.js";

/** An entry as held: every field checked; `pubkey` canonical or "" (a browser user). */
export interface Entry {
  uid: validate.Uid;
  site: string;
  nickname: string;
  pubkey: string;
  backupUrl: string;
  machineSn: string;
  updated: string;
}

/** An entry from the wire, as the generated code gives it. */
export interface WireEntry {
  uid?: string | null;
  site?: string | null;
  nickname?: string | null;
  pubkey?: string | null;
  backupUrl?: string | null;
  machineSn?: string | null;
  updated?: string | null;
  removed?: boolean | null;
}

export interface Refusal {
  uid: string;
  reason: string;
}

/** What a feed did: the refusals, how many entries it took, and the changes (removals with `removed`). */
export interface FeedResult {
  accepted: number;
  refused: Refusal[];
  changes: Array<Entry & { removed: boolean }>;
}

const SITE = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const MAX_TEXT = 1024;

/** A site name as a subject token spells it, not one of the reserved names. */
export function checkSite(site: string): string {
  if (!SITE.test(site)) throw new SugarError("invalid_input", `site ${JSON.stringify(site.slice(0, 40))} must match ${SITE.source}`);
  if (RESERVED_SITES.has(site)) throw new SugarError("invalid_input", `site "${site}" is reserved`);
  return site;
}

function text(what: string, uid: string, value: string): string {
  if (value.length > MAX_TEXT) throw new SugarError("invalid_input", `entry ${uid}: ${what} is longer than ${MAX_TEXT} characters`);
  if (/[\p{Cc}\u2028\u2029]/u.test(value)) throw new SugarError("invalid_input", `entry ${uid}: ${what} contains control characters`);
  return value;
}

/** Checks an entry for `site` (its own `site`, when given, must be that one). */
export function checkEntry(e: WireEntry, site: string): Entry & { removed: boolean } {
  const uid = validate.uid(e.uid ?? "");
  if (e.site && e.site !== site) throw new SugarError("invalid_input", `entry ${uid} names site ${JSON.stringify(e.site.slice(0, 40))}, fed by ${site}`);
  const removed = !!e.removed;
  const pubkey = e.pubkey ? validate.publicKey(e.pubkey).line : "";
  const nickname = e.nickname ? validate.nickname(e.nickname) : "";
  const machineSn = e.machineSn ? validate.machineSn(e.machineSn) : "";
  return { uid, site, nickname, pubkey, backupUrl: text("backup_url", uid, e.backupUrl ?? ""), machineSn, updated: text("updated", uid, e.updated ?? ""), removed };
}

/** The line of an entry in its site's digest. */
const digestLine = (e: Entry) => `${e.uid} ${e.pubkey} ${e.backupUrl}`;

/** SHA-256 hex over a site's sorted "uid pubkey backup_url" lines joined by "\n" (no users: the hash of ""). */
export function directoryDigest(entries: Iterable<Entry>): string {
  return createHash("sha256").update([...entries].map(digestLine).sort().join("\n")).digest("hex");
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
  async feed(site: string, wire: readonly WireEntry[], full: boolean): Promise<FeedResult> {
    const entries = wire.map((e) => checkEntry(e, site));
    const refused: Refusal[] = [];
    const changes: FeedResult["changes"] = [];
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
      for (const held of this.bySite.get(site)?.values() ?? []) if (!fed.has(held.uid)) changes.push({ ...held, removed: true });
    }
    await this.commit(changes);
    return { accepted, refused, changes };
  }

  /**
   * A peer district actor's changes (its event): the same claim rule; a
   * removal only by the entry's own site. Returns what changed here.
   */
  async follow(wire: readonly WireEntry[]): Promise<FeedResult["changes"]> {
    const entries = wire.map((e) => checkEntry(e, checkSite(e.site ?? "")));
    const changes: FeedResult["changes"] = [];
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
  private async commit(changes: FeedResult["changes"]): Promise<void> {
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
