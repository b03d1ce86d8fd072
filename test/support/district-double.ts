/**
 * A small district for tests on one bus (schemas/district.proto): serves
 * `sugar.district.lookup` and `sugar.district.from.<site>.directory` from a
 * map of entries by uid, keeps every feed it was sent, refuses a uid at home
 * at another site, and publishes directory events when asked. Not the real
 * district actor: just enough of its contract for a school's registry.
 */
import { sugar } from "../../schemas/gen/messages.js";
import { subjects } from "../../src/bus/subjects.js";
import type { Bus, Subscription } from "../../src/bus/types.js";
import { serveOps } from "../../src/codec.js";
import { directoryDigest } from "../../src/district.js";
import { SugarError } from "../../src/errors.js";
import { silentLogger } from "../../src/log.js";

import dpb = sugar.district;

export interface FeedSeen {
  site: string;
  req: dpb.FeedRequest;
}

export class DistrictDouble {
  /** What the district holds, by uid. */
  readonly entries = new Map<string, dpb.Entry.$Properties>();
  readonly feeds: FeedSeen[] = [];
  lookups: string[] = [];
  /** When set, lookup answers this entry for every uid asked (a malformed answer, say). */
  lookupAnswer: ((uid: string) => dpb.Entry.$Properties | undefined) | undefined;
  private subs: Subscription[] = [];

  constructor(private readonly bus: Bus) {
    this.start();
  }

  start(): void {
    const log = silentLogger;
    this.subs = [
      serveOps(this.bus, subjects.district("lookup"), dpb.Request, dpb.Reply, (req) => this.lookup(req.lookup!), log, { queue: "district" }),
      serveOps(this.bus, subjects.districtFromAll(), dpb.Request, dpb.Reply, (req, subject) => this.feed(subjects.districtSiteOf(subject), dpb.FeedRequest.fromObject(req.directory!)), log, { queue: "district" }),
    ];
  }

  /** The district gone (no responders). */
  async stop(): Promise<void> {
    await Promise.all(this.subs.map((s) => s.drain()));
    this.subs = [];
  }

  /** Entries of one site, as the district holds them. */
  ofSite(site: string): dpb.Entry.$Properties[] {
    return [...this.entries.values()].filter((e) => e.site === site);
  }

  digest(site: string): string {
    return directoryDigest(this.ofSite(site));
  }

  /** Publishes a directory event, as the district actor does on a change. */
  publish(entries: dpb.Entry.$Properties[]): void {
    this.bus.publish(subjects.districtEvent("directory"), dpb.DirectoryEvent.encode({ entries }).finish());
  }

  private lookup(req: dpb.LookupRequest.$Properties): dpb.Reply.$Properties {
    const uid = req.uid ?? "";
    this.lookups.push(uid);
    const e = this.lookupAnswer ? this.lookupAnswer(uid) : this.entries.get(uid);
    if (!e) throw new SugarError("not_registered", `the district knows no ${uid}`);
    return { lookup: { entry: e } };
  }

  private feed(site: string, req: dpb.FeedRequest): dpb.Reply.$Properties {
    if (!site) throw new SugarError("invalid_input", "no site in the subject");
    this.feeds.push({ site, req });
    const refused: dpb.Refused.$Properties[] = [];
    let accepted = 0;
    const elsewhere = (uid: string) => {
      const have = this.entries.get(uid);
      return have && have.site !== site ? have.site : undefined;
    };
    if (req.full) {
      const from = req.rangeFrom ?? "";
      const to = req.rangeTo ?? "";
      const inRange = (uid: string) => uid >= from && (to === "" || uid < to);
      const fed = new Set((req.entries ?? []).map((e) => e.uid ?? ""));
      for (const e of this.ofSite(site)) if (inRange(e.uid ?? "") && !fed.has(e.uid ?? "")) this.entries.delete(e.uid ?? "");
    }
    for (const e of req.entries ?? []) {
      const uid = e.uid ?? "";
      const home = elsewhere(uid);
      if (home) {
        refused.push({ uid, reason: `uid is at home at ${home}` });
        continue;
      }
      accepted++;
      if (e.removed) this.entries.delete(uid);
      else this.entries.set(uid, { ...e, site });
    }
    const digest = this.digest(site);
    return { directory: { inStep: !!req.digest && req.digest === digest, digest, accepted, refused } };
  }
}
