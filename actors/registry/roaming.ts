/**
 * Roaming (option `district`): where a uid not registered here is at home.
 * Status asks the roaming cache (roaming-cache.ts) first, then
 * `sugar.district.lookup` with a short timeout; registration asks the
 * district afresh (the cache only when the district does not answer) and
 * trusts a home only for the very key being registered. Every entry the
 * district sends is checked (src/district.ts directoryEntry) before it is
 * believed; one that is not is logged and treated as no answer.
 * `sugar.district.events.directory` keeps the cached roamers current (a
 * removal drops one) and tells the feed that a refused uid may be free now.
 * Events missed while the link was down are caught up on use: a cached
 * roamer the district has not confirmed for `district-sync-seconds` is
 * answered from the cache and asked again behind the answer (dropped when the
 * district no longer knows it, kept when the district does not answer).
 */
import { sugar } from "../../schemas/gen/messages.js";
import { subjects } from "../../src/bus/subjects.js";
import type { Bus, Subscription } from "../../src/bus/types.js";
import { districtClient, subscribeMessages } from "../../src/codec.js";
import type { Config } from "../../src/config.js";
import { directoryEntry, type DirectoryEntry } from "../../src/district.js";
import { SugarError, describe } from "../../src/errors.js";
import type { Logger } from "../../src/log.js";
import type { PublicKey, Uid } from "../../src/validate.js";
import { RoamingCache } from "./roaming-cache.js";

import dpb = sugar.district;

/** The longest a registry answer waits for the district's lookup (ms). */
export const LOOKUP_TIMEOUT_MS = 500;
/** How long "the district knows no such uid" is believed without asking again (ms). */
const UNKNOWN_FOR_MS = 5000;
const UNKNOWN_MAX = 10000;

export interface RoamingDeps {
  bus: Bus;
  config: Config;
  log: Logger;
  /** The registry's directory (`<root>/home/registry`): the cache file lives there. */
  dir: string;
  isLocal: (uid: string) => boolean;
  /** The district says a uid's home elsewhere removed it: the feed may offer ours again. */
  freed: (uid: string) => void;
}

export interface Roaming {
  /** Status: the home of a uid not registered here, if another school's; cached, else asked. */
  homeOf(uid: Uid): Promise<DirectoryEntry | undefined>;
  /** Registration: the home of this very key at another school, if the district (or, unreachable, the cache) says so. */
  homeOfKey(key: PublicKey): Promise<DirectoryEntry | undefined>;
  stop(): Promise<void>;
}

export async function startRoaming(deps: RoamingDeps): Promise<Roaming> {
  const { bus, config, log } = deps;
  const site = config.site;
  const timeoutMs = Math.min(LOOKUP_TIMEOUT_MS, config["bus-timeout"]);
  const district = districtClient(bus, { timeoutMs });
  const cache = new RoamingCache(deps.dir, log);
  await cache.load();
  /** Uids the district said it does not know, until when. */
  const unknown = new Map<string, number>();
  const asking = new Map<string, Promise<DirectoryEntry | null | undefined>>();
  /** When the district last confirmed a cached roamer (none yet after a start: the first use asks again). */
  const confirmed = new Map<string, number>();
  const recheckMs = config["district-sync-seconds"] * 1000;

  /** The district's entry for a uid; null: it knows none; undefined: no (trustworthy) answer. */
  function ask(uid: Uid): Promise<DirectoryEntry | null | undefined> {
    let p = asking.get(uid);
    if (!p) {
      p = lookup(uid).finally(() => asking.delete(uid));
      asking.set(uid, p);
    }
    return p;
  }

  async function lookup(uid: Uid): Promise<DirectoryEntry | null | undefined> {
    let r: dpb.LookupReply.$Properties;
    try {
      r = await district.call("lookup", { uid });
    } catch (err) {
      if (err instanceof SugarError && err.code === "not_registered") return null;
      log.debug(`district lookup of ${uid}: ${describe(err)}`);
      return undefined;
    }
    if (!r.entry) return null;
    try {
      const e = directoryEntry(r.entry);
      if (e.uid !== uid) throw new SugarError("invalid_input", `the entry is ${e.uid}'s`);
      return e.removed ? null : e;
    } catch (err) {
      log.warn(`district lookup of ${uid}: answer not trusted: ${describe(err)}`);
      return undefined;
    }
  }

  function knownUnknown(uid: string): boolean {
    const until = unknown.get(uid);
    if (until === undefined) return false;
    if (until > Date.now()) return true;
    unknown.delete(uid);
    return false;
  }
  function noteUnknown(uid: string): void {
    if (unknown.size >= UNKNOWN_MAX) unknown.clear();
    unknown.set(uid, Date.now() + UNKNOWN_FOR_MS);
  }

  /** A home at another school is remembered; one that names this school is no roamer. */
  function elsewhere(e: DirectoryEntry): DirectoryEntry | undefined {
    if (e.site === site) {
      forget(e.uid);
      return undefined;
    }
    cache.put(e);
    confirmed.set(e.uid, Date.now());
    return e;
  }
  function forget(uid: string): void {
    cache.drop(uid);
    confirmed.delete(uid);
  }

  /** Asks the district about a cached roamer again: what it says now replaces what was cached; no answer keeps it. */
  function recheck(uid: Uid): void {
    void ask(uid).then((e) => {
      if (e === null) forget(uid);
      else if (e) elsewhere(e);
    });
  }

  async function homeOf(uid: Uid): Promise<DirectoryEntry | undefined> {
    const cached = cache.get(uid);
    if (cached) {
      if (Date.now() - (confirmed.get(uid) ?? 0) >= recheckMs) recheck(uid);
      return cached;
    }
    if (knownUnknown(uid)) return undefined;
    const e = await ask(uid);
    if (e === null) noteUnknown(uid);
    return e ? elsewhere(e) : undefined;
  }

  async function homeOfKey(key: PublicKey): Promise<DirectoryEntry | undefined> {
    const e = await ask(key.uid);
    if (e === null) {
      forget(key.uid);
      return undefined;
    }
    if (e === undefined) {
      const cached = cache.get(key.uid);
      return cached?.pubkey === key.line ? cached : undefined;
    }
    if (e.pubkey !== key.line) {
      log.warn(`district lookup of ${key.uid}: its entry names another key; registering it here`);
      return undefined;
    }
    return elsewhere(e);
  }

  function onEvent(ev: dpb.DirectoryEvent): void {
    for (const raw of ev.entries ?? []) {
      let e: DirectoryEntry;
      try {
        e = directoryEntry(raw);
      } catch (err) {
        log.warn(`district directory event ignored: ${describe(err)}`);
        continue;
      }
      if (e.site === site) continue; // our own feed, echoed
      unknown.delete(e.uid);
      if (e.removed) {
        if (cache.get(e.uid)?.site === e.site) forget(e.uid);
        if (deps.isLocal(e.uid)) deps.freed(e.uid);
      } else if (cache.get(e.uid) && !deps.isLocal(e.uid)) {
        elsewhere(e);
      }
    }
  }

  const sub: Subscription = subscribeMessages(bus, subjects.districtEvent("directory"), dpb.DirectoryEvent, onEvent, log);
  log.debug(`roaming: ${cache.size} roamers known`);

  return {
    homeOf,
    homeOfKey,
    async stop() {
      await sub.drain();
      await Promise.allSettled([...asking.values()]);
      await cache.flush();
    },
  };
}
