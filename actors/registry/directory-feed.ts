/**
 * Feeding the district directory (option `district`): this school's users,
 * sent to `sugar.district.from.<site>.directory` (schemas/district.proto).
 *
 * - Every change (a user registered or changed, a user removed) is queued and
 *   sent in the background: the registration's reply never waits for the
 *   district, nor fails because of it. Queued changes are kept by uid (the
 *   latest wins) and sent in batches, one request at a time, so a storm of
 *   registrations is a few messages and a uid's changes arrive in order.
 *   A change that cannot be sent is logged and dropped: the next sync finds
 *   the difference.
 * - At start and every `district-sync-seconds`, a digest-only request
 *   (src/district.ts directoryDigest); a reply not `in_step` brings a full
 *   feed, in parts under FEED_PART_BYTES (each a full feed of a uid range).
 * - A uid the district refuses (at home at another school) is left out of
 *   the digest, or the two would never be in step; it is fed again when the
 *   district says its other home removed it (retry).
 */
import { sugar } from "../../schemas/gen/messages.js";
import type { Bus } from "../../src/bus/types.js";
import { districtFromClient } from "../../src/codec.js";
import { backupUrl, type Config } from "../../src/config.js";
import { directoryDigest } from "../../src/district.js";
import { describe } from "../../src/errors.js";
import type { Logger } from "../../src/log.js";
import type { UserRecord } from "./store.js";

import dpb = sugar.district;

/** A feed request stays under this many bytes (NATS's max_payload is 1 MB by default). */
export const FEED_PART_BYTES = 512 * 1024;
/** Room left in a request for everything besides its entries. */
const FEED_OVERHEAD = 1024;

/** Entries in batches whose encoded size keeps a request under maxBytes. */
export function* batches(entries: readonly dpb.Entry.$Properties[], maxBytes = FEED_PART_BYTES): Generator<dpb.Entry.$Properties[]> {
  let batch: dpb.Entry.$Properties[] = [];
  let size = 0;
  for (const e of entries) {
    const n = dpb.Entry.encode(e).finish().length + 6; // field tag and length prefix
    if (batch.length > 0 && size + n > maxBytes - FEED_OVERHEAD) {
      yield batch;
      batch = [];
      size = 0;
    }
    batch.push(e);
    size += n;
  }
  if (batch.length > 0) yield batch;
}

/**
 * A full feed of entries sorted by uid, as requests under maxBytes: one with
 * no range when it fits, else parts whose ranges run from a part's first uid
 * to the next part's first uid ("" at either end), so together they cover
 * every uid and each stands alone.
 */
export function fullFeedParts(entries: readonly dpb.Entry.$Properties[], maxBytes = FEED_PART_BYTES): dpb.FeedRequest.$Properties[] {
  const parts = [...batches(entries, maxBytes)];
  if (parts.length <= 1) return [{ entries: parts[0] ?? [], full: true }];
  return parts.map((p, i) => ({ entries: p, full: true, rangeFrom: i === 0 ? "" : p[0]!.uid!, rangeTo: i === parts.length - 1 ? "" : parts[i + 1]![0]!.uid! }));
}

export interface FeedDeps {
  bus: Bus;
  config: Config;
  log: Logger;
  /** Every user of this school, sorted by uid. */
  users: () => readonly UserRecord[];
  user: (uid: string) => UserRecord | undefined;
}

export interface DirectoryFeed {
  /** A user registered, or its record changed. */
  changed(u: UserRecord): void;
  /** A user removed (or replaced). */
  removed(uid: string): void;
  /** Feeds a uid again if it is still a user here: the district may take it now. */
  retry(uid: string): void;
  stop(): Promise<void>;
}

export function directoryFeed(deps: FeedDeps): DirectoryFeed {
  const { bus, config, log } = deps;
  const site = config.site;
  const url = backupUrl(config);
  const every = config["district-sync-seconds"];
  const district = districtFromClient(bus, site, { timeoutMs: config["bus-timeout"] });
  const pending = new Map<string, dpb.Entry.$Properties>();
  /** Uids the district refused at the last full feed or change since: left out of the digest. */
  let refused = new Set<string>();
  let syncDue = true;
  let running: Promise<void> | undefined;
  let stopped = false;
  let down = false;

  const entryOf = (u: UserRecord): dpb.Entry.$Properties => ({
    uid: u.uid,
    site,
    nickname: u.nickname,
    pubkey: u.pubkey,
    backupUrl: url,
    machineSn: u.machine_sn,
    updated: u.updated,
  });

  /** One log line when the district stops answering, and one when it answers again. */
  function failed(what: string, err: unknown): void {
    if (!down) log.warn(`district directory: ${what}: ${describe(err)} (the next sync, within ${every} s, catches up)`);
    else log.debug(`district directory: ${what}: ${describe(err)}`);
    down = true;
  }
  function answered(): void {
    if (down) log.info("district directory: the district answers again");
    down = false;
  }

  function noteRefusals(r: dpb.FeedReply.$Properties, into: Set<string>): void {
    for (const x of r.refused ?? []) {
      into.add(x.uid ?? "");
      log.warn(`district directory refused ${x.uid}: ${x.reason}`);
    }
  }

  async function sendChanges(): Promise<void> {
    const all = [...pending.values()];
    pending.clear();
    for (const entries of batches(all)) {
      try {
        const r = await district.call("directory", { entries });
        answered();
        for (const e of entries) refused.delete(e.uid ?? "");
        noteRefusals(r, refused);
      } catch (err) {
        failed(`cannot feed ${entries.length} change${entries.length === 1 ? "" : "s"}`, err);
      }
    }
  }

  async function sync(): Promise<void> {
    const entries = deps.users().map((u) => entryOf(u));
    const digest = directoryDigest(entries.filter((e) => !refused.has(e.uid ?? "")));
    let r: dpb.FeedReply.$Properties;
    try {
      r = await district.call("directory", { digest });
    } catch (err) {
      return failed("cannot check the directory digest", err);
    }
    answered();
    if (r.inStep) return;
    log.info(`district directory is not in step with this school's ${entries.length} users: feeding them all`);
    await fullFeed(entries);
  }

  /** Every user, in parts (fullFeedParts); the refusals of all of them are the new refused set. */
  async function fullFeed(entries: readonly dpb.Entry.$Properties[]): Promise<void> {
    const parts = fullFeedParts(entries);
    const now = new Set<string>();
    for (const [i, part] of parts.entries()) {
      try {
        noteRefusals(await district.call("directory", part), now);
      } catch (err) {
        return failed(`cannot feed part ${i + 1} of ${parts.length} of the full directory`, err);
      }
    }
    refused = now;
    log.info(`district directory fed in full: ${entries.length} users in ${parts.length} part${parts.length === 1 ? "" : "s"}, ${now.size} refused`);
  }

  /** One request at a time: queued changes first, then a due sync. */
  function kick(): void {
    if (running || stopped) return;
    running = (async () => {
      while (!stopped) {
        if (pending.size > 0) await sendChanges();
        else if (syncDue) {
          syncDue = false;
          await sync();
        } else return;
      }
    })()
      .catch((err: unknown) => log.error(`district directory: ${describe(err)}`))
      .finally(() => {
        running = undefined;
        if (pending.size > 0 || syncDue) kick();
      });
  }

  const timer = setInterval(() => {
    syncDue = true;
    kick();
  }, every * 1000);
  timer.unref();
  kick();

  return {
    changed(u) {
      pending.set(u.uid, entryOf(u));
      kick();
    },
    removed(uid) {
      refused.delete(uid);
      pending.set(uid, { uid, site, updated: new Date().toISOString(), removed: true });
      kick();
    },
    retry(uid) {
      const u = deps.user(uid);
      if (!u || !refused.has(uid)) return;
      refused.delete(uid);
      pending.set(uid, entryOf(u));
      kick();
    },
    async stop() {
      stopped = true;
      clearInterval(timer);
      await running;
    },
  };
}
