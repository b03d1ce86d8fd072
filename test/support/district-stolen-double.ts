/**
 * A stand-in for the district actor (actors/district) in tests of the
 * school's side: it serves `sugar.district.stolen_list` (queue `district`)
 * from the marks it holds, takes marks on `sugar.district.from.<site>.stolen`
 * only for the sites it is told are allowed (a site that is not gets no
 * responders, as from a hub that does not route its marks), and publishes
 * marks on `sugar.district.events.stolen`. `hold` changes what it holds
 * without publishing: a school that missed the event must catch up by asking.
 * It pages the list as the district actor does (`pageSize` marks a page).
 */
import { createHash } from "node:crypto";
import { sugar } from "../../schemas/gen/messages.js";
import { subjects } from "../../src/bus/subjects.js";
import type { Bus, Subscription } from "../../src/bus/types.js";
import { encodeReply } from "../../src/codec.js";

type Mark = sugar.district.Mark.$Properties;

export interface DistrictDouble {
  /** Every stolen_list first-page request's digest, in order. */
  readonly listDigests: string[];
  /** How many of those were answered `unchanged`. */
  readonly unchanged: number;
  /** How many pages of marks it answered. */
  readonly pages: number;
  /** Called after each page of marks is made (before it is sent): a test changes the list between pages. */
  onPage(fn: (() => void) | undefined): void;
  /** Sets (stolen) or clears a mark without publishing it; returns the mark. */
  hold(sn: string, stolen: boolean, by?: string, at?: string): Mark;
  /** Sets or clears a mark and publishes it, as the district actor does. */
  mark(sn: string, stolen: boolean, by?: string, at?: string): Mark;
  /** Publishes raw bytes as a mark event (a malformed one). */
  publishRaw(data: Uint8Array): void;
  stolen(): string[];
  stop(): Promise<void>;
}

const digestOf = (sns: string[]) => createHash("sha256").update([...sns].sort().join("\n")).digest("hex");

export async function startDistrictDouble(bus: Bus, opts: { allowMarksFrom?: string[]; pageSize?: number } = {}): Promise<DistrictDouble> {
  const marks = new Map<string, Mark>();
  const pageSize = opts.pageSize ?? 5000;
  let pages = 0;
  let afterPage: (() => void) | undefined;
  const listDigests: string[] = [];
  let unchanged = 0;
  let clock = Date.now();
  const now = () => new Date(++clock).toISOString(); // strictly increasing: each mark is newer than the last
  const stolen = () => [...marks.values()].filter((m) => m.stolen).map((m) => m.machineSn ?? "").sort();
  const hold = (sn: string, isStolen: boolean, by = "school1", at = now()): Mark => {
    const m = { machineSn: sn, stolen: isStolen, by, at };
    marks.set(sn, m);
    return m;
  };
  const publish = (m: Mark) => bus.publish(subjects.districtEvent("stolen"), sugar.district.Mark.encode(m).finish());
  const subs: Subscription[] = [];
  subs.push(
    bus.serve(
      subjects.district("stolen_list"),
      async (data) => {
        const req = sugar.district.Request.decode(data).stolenList ?? {};
        if (!req.afterSn) listDigests.push(req.digest ?? "");
        const digest = digestOf(stolen());
        if (!req.afterSn && req.digest === digest) {
          unchanged++;
          return encodeReply(sugar.district.Reply.encode({ stolenList: { unchanged: true, digest } }).finish());
        }
        const after = req.afterSn ?? "";
        const list = [...marks.values()]
          .filter((m) => (m.stolen || req.withCleared) && (m.machineSn ?? "") > after)
          .sort((a, b) => ((a.machineSn ?? "") < (b.machineSn ?? "") ? -1 : 1));
        const size = Math.min(req.limit || pageSize, pageSize);
        pages++;
        const reply = sugar.district.Reply.encode({ stolenList: { digest, marks: list.slice(0, size), more: list.length > size } }).finish();
        afterPage?.();
        return encodeReply(reply);
      },
      { queue: "district" },
    ),
  );
  for (const site of opts.allowMarksFrom ?? []) {
    subs.push(
      bus.serve(subjects.districtFrom(site, "stolen"), async (data, subject) => {
        const req = sugar.district.Request.decode(data).stolen ?? {};
        const sn = req.machineSn ?? "";
        const held = marks.get(sn);
        const changed = !!held?.stolen !== !!req.stolen;
        const m = changed ? hold(sn, !!req.stolen, subjects.districtSiteOf(subject)) : (held ?? { machineSn: sn, stolen: false });
        if (changed) publish(m);
        return encodeReply(sugar.district.Reply.encode({ stolen: { changed, mark: m } }).finish());
      }),
    );
  }
  await bus.flush();
  return {
    listDigests,
    get unchanged() {
      return unchanged;
    },
    get pages() {
      return pages;
    },
    onPage(fn) {
      afterPage = fn;
    },
    hold,
    mark(sn, isStolen, by, at) {
      const m = hold(sn, isStolen, by, at);
      publish(m);
      return m;
    },
    publishRaw: (data) => bus.publish(subjects.districtEvent("stolen"), data),
    stolen,
    async stop() {
      for (const s of subs) await s.drain();
    },
  };
}
