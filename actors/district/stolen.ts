/**
 * The district stolen list: one mark per serial number, stolen or cleared,
 * merged last-writer-wins (the later `at`, then the larger `by`, then stolen
 * over cleared), so two district actors that saw the same marks in any order
 * hold the same list. Cleared marks are kept: a peer that missed the
 * removal learns of it. Persisted as one JSON file, `<root>/district/stolen`,
 * rewritten atomically on every change (a district's list is small).
 */
import { join } from "node:path";
import { checkMark, markWins as wins, stolenDigest, type StolenMark as Mark } from "../../src/district.js";
import { ensureDir, readFileIfExists, writeFileAtomic, writingTo } from "../../src/fs.js";
import { SugarError } from "../../src/errors.js";
import { pageAfter } from "../../src/pages.js";
import type { Logger } from "../../src/log.js";
import * as validate from "../../src/validate.js";

export type { Mark };

const same = (a: Mark, b: Mark) => a.at === b.at && a.by === b.by && a.stolen === b.stolen;

export class StolenMarks {
  private readonly marks = new Map<string, Mark>();
  readonly file: string;
  private digestCache: string | undefined;

  constructor(root: string, private readonly log: Logger) {
    this.file = join(root, "district", "stolen");
  }

  async load(): Promise<void> {
    await ensureDir(join(this.file, ".."));
    const text = await readFileIfExists(this.file);
    if (text === undefined) return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (cause) {
      // Written atomically: a file that does not parse was edited by hand. Starting empty would lose the list.
      throw new SugarError("internal", `${this.file} is not valid JSON: fix it or remove it (a peer district actor gives the list back)`, { cause });
    }
    const list = (parsed as { marks?: unknown }).marks;
    if (!Array.isArray(list)) throw new SugarError("internal", `${this.file} has no "marks" list`);
    for (const [i, raw] of list.entries()) {
      try {
        const m = checkMark(raw as Parameters<typeof checkMark>[0]);
        const had = this.marks.get(m.machineSn);
        if (!had || wins(m, had)) this.marks.set(m.machineSn, m);
      } catch (err) {
        this.log.warn(`${this.file}: mark ${i + 1} ignored: ${(err as Error).message}`);
      }
    }
  }

  get(sn: string): Mark | undefined {
    return this.marks.get(sn);
  }

  /** The serial numbers stolen now, sorted. */
  stolen(): string[] {
    return [...this.marks.values()].filter((m) => m.stolen).map((m) => m.machineSn).sort();
  }

  digest(): string {
    return (this.digestCache ??= stolenDigest(this.stolen()));
  }

  /** Every mark (with the cleared ones) or the stolen ones, by serial number. */
  list(withCleared: boolean): Mark[] {
    return [...this.marks.values()].filter((m) => withCleared || m.stolen).sort((a, b) => (a.machineSn < b.machineSn ? -1 : a.machineSn > b.machineSn ? 1 : 0));
  }

  /** At most `limit` marks after `afterSn` ("" = from the first), by serial number, and whether more follow. */
  page(withCleared: boolean, afterSn: string, limit: number): { marks: Mark[]; more: boolean } {
    const { items, more } = pageAfter(this.list(withCleared), (m) => m.machineSn, afterSn, limit);
    return { marks: items, more };
  }

  /**
   * A site marks a serial number stolen or clears it. Nothing changes when it
   * already is so (the reply's mark is the one held). A new mark is later
   * than the one it replaces even when this host's clock is behind the
   * host that wrote that one, so it wins everywhere.
   */
  async mark(sn: validate.MachineSn, stolen: boolean, by: string, now = new Date()): Promise<{ changed: boolean; mark: Mark }> {
    const had = this.marks.get(sn);
    if ((had?.stolen ?? false) === stolen) return { changed: false, mark: had ?? { machineSn: sn, stolen: false, at: "", by: "" } };
    let t = now.getTime();
    if (had && t <= Date.parse(had.at)) t = Date.parse(had.at) + 1;
    const mark: Mark = { machineSn: sn, stolen, at: new Date(t).toISOString(), by };
    await this.apply([mark]);
    return { changed: true, mark };
  }

  /** Merges marks from a peer; returns the ones that changed what is held (persisted before this resolves). */
  async merge(marks: readonly Mark[]): Promise<Mark[]> {
    const winners = new Map<string, Mark>();
    for (const m of marks) {
      const held = winners.get(m.machineSn) ?? this.marks.get(m.machineSn);
      if (!held || (wins(m, held) && !same(m, held))) winners.set(m.machineSn, m);
    }
    if (winners.size > 0) await this.apply([...winners.values()]);
    return [...winners.values()];
  }

  /** Sets marks and persists; on a failed write what is held is what was held before. */
  private async apply(changes: readonly Mark[]): Promise<void> {
    const before = changes.map((m) => [m.machineSn, this.marks.get(m.machineSn)] as const);
    for (const m of changes) this.marks.set(m.machineSn, m);
    this.digestCache = undefined;
    try {
      await writingTo("the district stolen list", () => writeFileAtomic(this.file, JSON.stringify({ marks: this.list(true) }, null, 1) + "\n"));
    } catch (err) {
      for (const [sn, m] of before) {
        if (m) this.marks.set(sn, m);
        else this.marks.delete(sn);
      }
      this.digestCache = undefined;
      throw err;
    }
  }
}
