/**
 * District actor: what a district's schools share, served by the keyring
 * host(s) in queue group `district` (schemas/district.proto). It keeps the
 * district stolen list (marks merged last-writer-wins, cleared ones kept)
 * and the directory of every school's users (by uid, each at its home
 * school), both persisted under `<root>/district/`, and publishes every
 * change on `sugar.district.events.<kind>`, which the schools follow, and
 * so do its peers: two district actors keep each other in step. At start it
 * asks a peer for the whole stolen list before it serves, so the peer (not
 * itself) answers, and tells the peer what it knew better.
 *
 * `sugar.district.<op>` (stolen_list, lookup, status) any school may ask;
 * `sugar.district.from.<site>.<op>` (stolen, directory) is a school acting
 * for itself: the site is taken from the subject, which the hub lets only
 * that school publish.
 */
import { match } from "ts-pattern";
import { sugar } from "../../schemas/gen/messages.js";
import { districtClient, serveOps, type MessageType } from "../../src/codec.js";
import { STOLEN_PAGE, fetchStolenList } from "../../src/district-pages.js";
import { once, type Component, type Context } from "../../src/component.js";
import { SugarError, describe } from "../../src/errors.js";
import { subjects } from "../../src/bus/subjects.js";
import type { Subscription } from "../../src/bus/types.js";
import { KeyedMutex } from "../../src/mutex.js";
import * as validate from "../../src/validate.js";
import { Directory, checkSite, type Entry } from "./directory.js";
import { catchUpDirectory, directoryList, followDirectory, type DirectorySyncDeps } from "./directory-sync.js";
import { checkMark } from "../../src/district.js";
import { StolenMarks, type Mark } from "./stolen.js";

import pb = sugar.district;

/** How long the start-up catch-up waits for a peer: a lone district actor should not wait long. */
const CATCH_UP_MS = 2000;
/** Entries per directory event: a school's full feed may change thousands. */
const EVENT_ENTRIES = 200;

const wireMark = (m: Mark): pb.Mark.$Properties => ({ machineSn: m.machineSn, stolen: m.stolen, at: m.at, by: m.by });
const wireEntry = (e: Entry & { removed?: boolean }): pb.Entry.$Properties => ({
  uid: e.uid,
  site: e.site,
  nickname: e.nickname,
  pubkey: e.pubkey,
  backupUrl: e.backupUrl,
  machineSn: e.machineSn,
  updated: e.updated,
  removed: !!e.removed,
  claimed: e.removed ? "" : e.claimed,
});

export async function startDistrict(ctx: Context): Promise<Component> {
  const { bus, config } = ctx;
  const log = ctx.log.child("district");
  const marks = new StolenMarks(config.root, log);
  await marks.load();
  const directory = new Directory(config.root, log);
  await directory.load();
  // One writer at a time for each of the two files' owners.
  const locks = new KeyedMutex();

  const publishMarks = (changed: readonly Mark[]) => {
    for (const m of changed) bus.publish(subjects.districtEvent("stolen"), pb.Mark.encode(wireMark(m)).finish());
  };
  const publishEntries = (changed: ReadonlyArray<Entry & { removed: boolean }>) => {
    for (let i = 0; i < changed.length; i += EVENT_ENTRIES) {
      bus.publish(subjects.districtEvent("directory"), pb.DirectoryEvent.encode({ entries: changed.slice(i, i + EVENT_ENTRIES).map(wireEntry) }).finish());
    }
  };

  /** Follows a peer's events: decoded and checked, merged; a malformed one is logged and changes nothing. */
  function follow<T>(kind: "stolen" | "directory", type: MessageType<T, unknown>, apply: (msg: T) => Promise<void>): Subscription {
    return bus.subscribe(subjects.districtEvent(kind), async (data, subject) => {
      let msg: T;
      try {
        msg = type.decode(data);
      } catch (err) {
        log.warn(`${subject}: not a valid event, ignored: ${describe(err)}`);
        return;
      }
      try {
        await apply(msg);
      } catch (err) {
        if (err instanceof SugarError && err.code === "invalid_input") log.warn(`${subject}: event ignored: ${err.message}`);
        else log.error(`${subject}: ${describe(err)}`);
      }
    });
  }

  const dirSync: DirectorySyncDeps = { bus, log, directory, locks, timeoutMs: Math.min(CATCH_UP_MS, config["bus-timeout"]), wireEntry, publish: (c) => publishEntries(c) };

  // Peers' events first, so nothing published between the catch-up and serving is missed.
  const following = [
    follow("stolen", pb.Mark, async (ev) => {
      const m = checkMark(ev);
      await locks.run(["stolen"], () => marks.merge([m]));
    }),
    follow("directory", pb.DirectoryEvent, (ev) => followDirectory(dirSync, ev)),
  ];
  await bus.flush();
  await catchUp(false);
  await catchUpDirectory(dirSync, false);

  /**
   * Asks a peer for every mark; merges; what this actor knew better it
   * publishes, so the peer and the schools learn it. At start, and again
   * every district-sync-seconds: an event missed while this actor's link to
   * the hub was down would otherwise leave the two actors apart for good, and
   * the schools, whose digest poll reaches either, flapping between them.
   */
  async function catchUp(periodic: boolean): Promise<void> {
    let reply: pb.StolenListReply.$Properties;
    try {
      const peer = districtClient(bus, { timeoutMs: Math.min(CATCH_UP_MS, config["bus-timeout"]) });
      reply = await fetchStolenList((req) => peer.call("stolenList", req), { withCleared: true });
    } catch (err) {
      if (err instanceof SugarError && (err.code === "unavailable" || err.code === "timeout")) {
        if (periodic) log.debug(`catching up with a peer district actor: ${err.code}`);
        else log.info(`no peer district actor answered (${err.code}): starting from the ${marks.list(true).length} marks on disk`);
        return;
      }
      log.warn(`catching up with a peer district actor failed: ${describe(err)}`);
      return;
    }
    const theirs: Mark[] = [];
    for (const raw of reply.marks ?? []) {
      try {
        theirs.push(checkMark(raw));
      } catch (err) {
        log.warn(`a peer's mark ignored: ${(err as Error).message}`);
      }
    }
    await locks.run(["stolen"], async () => {
      const learned = await marks.merge(theirs);
      const byPeer = new Map(theirs.map((m) => [m.machineSn, m]));
      const better = marks.list(true).filter((m) => {
        const p = byPeer.get(m.machineSn);
        return !p || p.at !== m.at || p.by !== m.by || p.stolen !== m.stolen;
      });
      publishMarks(better);
      const line = `caught up with a peer: ${learned.length} marks learned, ${better.length} told`;
      if (!periodic || learned.length > 0 || better.length > 0) log.info(line);
      else log.debug(line);
    });
  }

  /**
   * One page of the list: at most `limit` marks (capped at STOLEN_PAGE; 0 =
   * STOLEN_PAGE) after `after_sn`, by serial number, and whether more follow.
   * `unchanged` is about the whole list: answered on the first page only.
   */
  async function stolenList(req: pb.StolenListRequest.$Properties): Promise<pb.Reply.$Properties> {
    const afterSn = req.afterSn ? validate.machineSn(req.afterSn) : "";
    const limit = Math.min(req.limit || STOLEN_PAGE, STOLEN_PAGE);
    const digest = marks.digest();
    if (!afterSn && !req.withCleared && req.digest && req.digest === digest) return { stolenList: { unchanged: true, digest, marks: [], more: false } };
    const page = marks.page(!!req.withCleared, afterSn, limit);
    return { stolenList: { unchanged: false, digest, marks: page.marks.map(wireMark), more: page.more } };
  }

  async function mark(site: string, req: pb.MarkRequest.$Properties): Promise<pb.Reply.$Properties> {
    const sn = validate.machineSn(req.machineSn ?? "");
    const r = await locks.run(["stolen"], () => marks.mark(sn, !!req.stolen, site));
    if (r.changed) {
      log.info(`${sn} ${req.stolen ? "marked stolen" : "cleared"} by ${site}`);
      publishMarks([r.mark]);
    }
    return { stolen: { changed: r.changed, mark: wireMark(r.mark) } };
  }

  async function feed(site: string, req: pb.FeedRequest.$Properties): Promise<pb.Reply.$Properties> {
    const entries = req.entries ?? [];
    const r = entries.length > 0 || req.full ? await locks.run(["directory"], () => directory.feed(site, entries, !!req.full, { from: req.rangeFrom ?? "", to: req.rangeTo ?? "" })) : { accepted: 0, refused: [], changes: [] };
    publishEntries(r.changes);
    if (r.changes.length > 0) log.info(`directory: ${site} fed ${entries.length}${req.full ? (req.rangeFrom || req.rangeTo ? " (full, one part)" : " (full)") : ""}: ${r.changes.length} changed, ${r.refused.length} refused`);
    const digest = directory.digest(site);
    return { directory: { inStep: !!req.digest && req.digest === digest, digest, accepted: r.accepted, refused: r.refused } };
  }

  function lookup(req: pb.LookupRequest.$Properties): pb.Reply.$Properties {
    const uid = validate.uid(req.uid ?? "");
    const e = directory.lookup(uid);
    if (!e) throw new SugarError("not_registered", `the district knows no user ${uid}`);
    return { lookup: { entry: wireEntry(e) } };
  }

  type Req = pb.Request & { op: NonNullable<pb.Request["op"]> };

  /** sugar.district.<op>: what any school may ask. */
  const shared = (req: Req): pb.Reply.$Properties | Promise<pb.Reply.$Properties> =>
    match(req.op)
      .with("stolenList", () => stolenList(req.stolenList!))
      .with("lookup", () => lookup(req.lookup!))
      .with("status", () => ({ status: { stolen: marks.stolen().length, entries: directory.size, sites: directory.sites } }))
      .with("directoryList", () => directoryList(dirSync, req.directoryList!))
      .with("stolen", "directory", (op) => {
        throw new SugarError("invalid_input", `${subjects.district(op)} names no school: a school asks on sugar.district.from.<site>.${op}`);
      })
      .exhaustive();

  /** sugar.district.from.<site>.<op>: a school acting for itself. */
  const fromSite = (req: Req, subject: string): pb.Reply.$Properties | Promise<pb.Reply.$Properties> => {
    const site = checkSite(subjects.districtSiteOf(subject));
    return match(req.op)
      .with("stolen", () => mark(site, req.stolen!))
      .with("directory", () => feed(site, req.directory!))
      .with("stolenList", "lookup", "status", "directoryList", (op) => {
        throw new SugarError("invalid_input", `${subject}: ${op} is asked on ${subjects.district(op)}, with no site`);
      })
      .exhaustive();
  };

  const serving = [
    serveOps(bus, subjects.districtAll(), pb.Request, pb.Reply, shared, log, { queue: "district" }),
    serveOps(bus, subjects.districtFromAll(), pb.Request, pb.Reply, fromSite, log, { queue: "district" }),
  ];
  log.info(`ready: ${marks.stolen().length} stolen, ${directory.size} directory entries from ${directory.sites} sites`);
  // The queue group may hand this actor its own request: that merges nothing, and a later round reaches the peer.
  let catching: Promise<void> | undefined;
  const again = setInterval(() => {
    catching ??= catchUp(true)
      .catch((err: unknown) => log.error(`catching up with a peer: ${describe(err)}`))
      .finally(() => (catching = undefined));
  }, config["district-sync-seconds"] * 1000);
  again.unref();
  let dirCatching: Promise<void> | undefined;
  const dirAgain = setInterval(() => {
    dirCatching ??= catchUpDirectory(dirSync, true)
      .catch((err: unknown) => log.error(`catching up the directory with a peer: ${describe(err)}`))
      .finally(() => (dirCatching = undefined));
  }, config["district-sync-seconds"] * 1000);
  dirAgain.unref();

  return {
    name: "district",
    stop: once(async () => {
      clearInterval(again);
      clearInterval(dirAgain);
      await catching;
      await dirCatching;
      for (const sub of serving) await sub.drain();
      for (const sub of following) await sub.drain();
      await locks.idle();
    }),
  };
}
