/**
 * Stored leases, `<root>/share/leases/<SN[-2:]>/<SN>` (the line(s) served
 * for that serial number), the stolen list, `<root>/share/stolen` (one
 * serial number per line, `#` comments; an administrator may edit it), and
 * the district's stolen list as the district last sent it,
 * `<root>/share/stolen-district` (managed: `SN by at` lines, rewritten at
 * every change, never edited by hand).
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { promisify } from "node:util";
import { promises as fsp, readFileSync, statSync, type Stats } from "node:fs";
import type { OlpcTime } from "../../lib/olpc/index.js";
import { DurableDir, ensureDir, readFileIfExists, writeFileAtomic } from "../../src/fs.js";
import type { Logger } from "../../src/log.js";
import { parseLeaseLine, type LeaseLine } from "../../lib/olpc/index.js";
import { checkMark, markWins, stolenDigest } from "../../src/district.js";
import { isMachineSn, typedMachineSn, type MachineSn } from "../../src/validate.js";

/** Why a district mark in the file is not taken (the district's own check, src/district.ts), or undefined. */
function markProblem(m: Parameters<typeof checkMark>[0]): string | undefined {
  try {
    checkMark(m);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/** A lease file as served, and its first line parsed. */
export interface StoredLease {
  text: string;
  parsed: LeaseLine;
}

/** A district stolen mark as the school keeps it: who marked it, and when (ISO-8601). */
export interface DistrictMark {
  by: string;
  at: string;
}

const DISTRICT_HEADER =
  "# managed by sugar-server: the district's stolen list as the district last sent it (sugar.district.stolen_list).\n" +
  "# Do not edit: it is replaced at every district sync. Mark or clear with: sugar-server stolen add|remove SN --district\n" +
  "# serial-number marked-by-site marked-at\n";
export class LeaseStore {
  private readonly stolenSet = new Set<MachineSn>();
  private readonly districtMarks = new Map<MachineSn, DistrictMark>();
  readonly leasesDir: string;
  readonly stolenFile: string;
  readonly districtFile: string;
  private readonly buckets = new Map<string, DurableDir>();
  /**
   * Every stored lease's expiry (ms since the epoch; Infinity = never), for
   * the overview's counts: built by the first census() (a scan of every
   * bucket), then kept by write(). A file an administrator drops in by hand
   * is counted at the next start.
   */
  private expiries: Map<string, number> | undefined;
  private scanning: Promise<Map<string, number>> | undefined;
  /** The last lease read per serial number, with the file version (inode, size, times) it was read from. */
  private readonly parsed = new Map<string, { version: string; lease: StoredLease }>();

  constructor(root: string, private readonly log: Logger) {
    this.leasesDir = join(root, "share", "leases");
    this.stolenFile = join(root, "share", "stolen");
    this.districtFile = join(root, "share", "stolen-district");
  }

  async load(): Promise<void> {
    await ensureDir(this.leasesDir);
    const text = (await readFileIfExists(this.stolenFile)) ?? "";
    for (const [i, raw] of text.split(/\r?\n/).entries()) {
      const line = raw.trim();
      if (line === "" || line.startsWith("#")) continue;
      try {
        // An administrator edits this file: a lower-case serial number there is a typing slip.
        this.stolenSet.add(typedMachineSn(line));
      } catch {
        this.log.warn(`${this.stolenFile}:${i + 1}: not a serial number, ignored: ${JSON.stringify(line.slice(0, 40))}`);
      }
    }
    const district = (await readFileIfExists(this.districtFile)) ?? "";
    for (const [i, raw] of district.split("\n").entries()) {
      const line = raw.trim();
      if (line === "" || line.startsWith("#")) continue;
      const [sn = "", by = "", at = "", ...rest] = line.split(/\s+/);
      const bad = rest.length > 0 ? "more than three fields" : markProblem({ machineSn: sn, stolen: true, by, at });
      if (bad) this.log.warn(`${this.districtFile}:${i + 1}: ${bad}, ignored (the next district sync rewrites the file)`);
      else this.districtMarks.set(sn as MachineSn, { by, at });
    }
  }

  /** On either list: this school's or the district's. */
  isStolen(sn: MachineSn): boolean {
    return this.stolenSet.has(sn) || this.districtMarks.has(sn);
  }
  isLocallyStolen(sn: MachineSn): boolean {
    return this.stolenSet.has(sn);
  }
  districtMark(sn: MachineSn): DistrictMark | undefined {
    return this.districtMarks.get(sn);
  }
  /** Every stolen serial number, sorted, once each. */
  stolen(): MachineSn[] {
    return [...new Set([...this.stolenSet, ...this.districtMarks.keys()])].sort();
  }
  /** This school's own list (the `stolen` file). */
  localStolen(): MachineSn[] {
    return [...this.stolenSet].sort();
  }
  get districtCount(): number {
    return this.districtMarks.size;
  }
  /** What the school holds of the district's list, as the district digests it. */
  districtDigest(): string {
    return stolenDigest(this.districtMarks.keys());
  }

  /**
   * One mark from the district (an event): stolen sets it, cleared drops it,
   * unless what is held is newer (marks merge last-writer-wins by `at`).
   * Persists when the district set changed.
   */
  async applyDistrictMark(sn: MachineSn, stolen: boolean, mark: DistrictMark): Promise<boolean> {
    const held = this.districtMarks.get(sn);
    if (held && markWins({ ...held, stolen: true }, { ...mark, stolen })) return false;
    if (stolen ? held?.by === mark.by && held.at === mark.at : !held) return false;
    const next = new Map(this.districtMarks);
    if (stolen) next.set(sn, mark);
    else next.delete(sn);
    await this.writeDistrict(next);
    return true;
  }

  /** The district's whole list (a sync's answer) in place of what was held; persists when it differs. */
  async replaceDistrict(marks: ReadonlyMap<MachineSn, DistrictMark>): Promise<boolean> {
    const same = marks.size === this.districtMarks.size && [...marks].every(([sn, m]) => {
      const held = this.districtMarks.get(sn);
      return held?.by === m.by && held.at === m.at;
    });
    if (same) return false;
    await this.writeDistrict(new Map(marks));
    return true;
  }

  /** Writes the district set, then holds it: what is refused is always what the file says. */
  private async writeDistrict(next: Map<MachineSn, DistrictMark>): Promise<void> {
    const lines = [...next].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([sn, m]) => `${sn} ${m.by} ${m.at}\n`);
    await writeFileAtomic(this.districtFile, DISTRICT_HEADER + lines.join(""));
    this.districtMarks.clear();
    for (const [sn, m] of next) this.districtMarks.set(sn, m);
  }

  /** Adds or removes a serial number; persists when the list changed. */
  async setStolen(sn: MachineSn, stolen: boolean): Promise<boolean> {
    if (this.stolenSet.has(sn) === stolen) return false;
    if (stolen) this.stolenSet.add(sn);
    else this.stolenSet.delete(sn);
    await writeFileAtomic(this.stolenFile, `# stolen XO serial numbers, one per line (sugar-server stolen add|remove SN)\n${this.localStolen().join("\n")}\n`);
    return true;
  }

  private bucket(sn: MachineSn): DurableDir {
    const name = sn.slice(-2);
    let dir = this.buckets.get(name);
    if (!dir) {
      dir = new DurableDir(join(this.leasesDir, name));
      this.buckets.set(name, dir);
    }
    return dir;
  }

  /**
   * The stored lease for sn, if there is one whose first line is really for sn.
   * An administrator may replace a file by hand, so the file decides; but a
   * Monday-morning storm of 1000 XOs asks for the same leases again and
   * again, so a lease is read and parsed again only when a (synchronous,
   * page-cached) stat says the file changed.
   */
  async read(sn: MachineSn): Promise<StoredLease | undefined> {
    const path = join(this.bucket(sn).path, sn);
    const st = statSync(path, { throwIfNoEntry: false });
    if (!st || !st.isFile()) {
      this.parsed.delete(sn);
      return undefined;
    }
    const version = fileVersion(st);
    const cached = this.parsed.get(sn);
    if (cached?.version === version) return cached.lease;
    const text = readFileSync(path, "utf8");
    if (text.trim() === "") return undefined;
    try {
      const parsed = parseLeaseLine(text.split("\n")[0]!);
      if (parsed.sn !== sn) throw new Error(`the lease inside is for ${parsed.sn}`);
      const lease = { text, parsed };
      this.parsed.set(sn, { version, lease });
      return lease;
    } catch (err) {
      this.log.warn(`not serving ${path}: ${(err as Error).message}`);
      return undefined;
    }
  }

  async has(sn: MachineSn): Promise<boolean> {
    return (await fsp.stat(join(this.bucket(sn).path, sn)).catch(() => undefined)) !== undefined;
  }

  async write(sn: MachineSn, text: string): Promise<void> {
    const dir = this.bucket(sn);
    await ensureDir(dir.path);
    await dir.write(sn, text);
    this.written(sn, join(dir.path, sn), text);
  }

  /**
   * A lease just written, parsed once: its expiry goes into the index, and
   * it is held as read() would have parsed it, under the file's version now,
   * so a lease stored ahead (signed on demand, renewed, or imported) is
   * served in a storm without being read and parsed again. A file replaced
   * by hand afterwards has another version and is read anew.
   */
  private written(sn: MachineSn, path: string, text: string): void {
    const parsed = firstLease(text);
    if (this.expiries) this.expiries.set(sn, parsed ? toMs(parsed.expiresAt) : 0);
    const st = statSync(path, { throwIfNoEntry: false });
    // Unparseable, or another machine's: read() finds it unservable, and says so, when it is asked for.
    if (st?.isFile() && parsed?.sn === sn) this.parsed.set(sn, { version: fileVersion(st), lease: { text, parsed } });
    else this.parsed.delete(sn);
  }

  /**
   * Many leases at once (an import): each file is written and renamed into
   * place without an fsync of its own, then one syncfs (coreutils `sync -f`)
   * makes them all durable before this resolves. One fsync per file would
   * make a deployment's 100,000 leases take minutes; a crash before the
   * syncfs can leave a file empty, which read() treats as no lease, and the
   * import, which never reported success, is run again.
   */
  async writeMany(leases: ReadonlyArray<readonly [MachineSn, string]>, parallel: number): Promise<void> {
    const queue = [...leases];
    const one = async () => {
      for (let next = queue.shift(); next; next = queue.shift()) {
        const [sn, text] = next;
        const dir = this.bucket(sn).path;
        await ensureDir(dir);
        const tmp = join(dir, `.${sn}.${randomBytes(6).toString("hex")}.tmp`);
        await fsp.writeFile(tmp, text, { mode: 0o644, flag: "wx" });
        await fsp.rename(tmp, join(dir, sn));
        this.written(sn, join(dir, sn), text);
      }
    };
    await Promise.all(Array.from({ length: Math.min(parallel, queue.length) }, one));
    if (leases.length > 0) await promisify(execFile)("sync", ["-f", this.leasesDir]);
  }

  /** How many leases are stored, and how many of them expire before `before`. */
  async census(before: Date): Promise<{ leases: number; expiring: number }> {
    const all = this.expiries ?? (await (this.scanning ??= this.scan()));
    let expiring = 0;
    const t = before.getTime();
    for (const at of all.values()) if (at <= t) expiring++;
    return { leases: all.size, expiring };
  }

  /**
   * The serial numbers of stored leases expiring before `before` (soonest
   * first): what the renewer has to do. The same index as census().
   */
  async expiringBefore(before: Date): Promise<MachineSn[]> {
    const all = this.expiries ?? (await (this.scanning ??= this.scan()));
    const t = before.getTime();
    return [...all]
      .filter(([sn, at]) => at <= t && isMachineSn(sn))
      .sort((a, b) => a[1] - b[1])
      .map(([sn]) => sn as MachineSn);
  }

  private async scan(): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    for (const bucket of await fsp.readdir(this.leasesDir).catch(() => [] as string[])) {
      const dir = join(this.leasesDir, bucket);
      const names = await fsp.readdir(dir).catch(() => [] as string[]);
      for (const name of names) {
        if (name.startsWith(".")) continue; // a write's temporary file
        const text = await fsp.readFile(join(dir, name), "utf8").catch(() => "");
        if (text.trim() !== "") out.set(name, expiryOf(text));
      }
    }
    this.expiries = out;
    return out;
  }
}

/** What tells one version of a lease file from another (inode, size, times): read() parses a file again only when it changed. */
const fileVersion = (st: Stats): string => `${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;

const toMs = (t: OlpcTime): number => (t === "never" ? Infinity : t.getTime());

/** A lease file's first line parsed, or undefined for an empty file or one that does not parse (it is not served). */
function firstLease(text: string): LeaseLine | undefined {
  if (text.trim() === "") return undefined;
  try {
    return parseLeaseLine(text.split("\n")[0]!);
  } catch {
    return undefined;
  }
}

/** The expiry of a stored lease's first line; one that does not parse counts as expired (it is not served). */
function expiryOf(text: string): number {
  const parsed = firstLease(text);
  return parsed ? toMs(parsed.expiresAt) : 0;
}
