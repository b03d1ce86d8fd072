/**
 * The school's side of the district's stolen list (option `district`): the
 * lease actor follows the district's marks on `sugar.district.events.stolen`
 * and, at start and every district-sync-seconds, asks
 * `sugar.district.stolen_list` with the digest of what it holds, so a school
 * whose link was down catches up. What it holds is kept in
 * `<root>/share/stolen-district` (LeaseStore), apart from the school's own
 * list. A district that does not answer is normal (the link is down): what
 * the school has stays in force. The list comes in pages
 * (src/district-pages.ts): the set is replaced only once every page of one
 * answer is in.
 */
import { sugar } from "../../schemas/gen/messages.js";
import { districtClient } from "../../src/codec.js";
import { fetchStolenList, type StolenList } from "../../src/district-pages.js";
import type { Context } from "../../src/component.js";
import { SugarError, describe } from "../../src/errors.js";
import { subjects } from "../../src/bus/subjects.js";
import type { Logger } from "../../src/log.js";
import type { KeyedMutex } from "../../src/mutex.js";
import * as validate from "../../src/validate.js";
import { checkMark } from "../../src/district.js";
import type { DistrictMark, LeaseStore } from "./store.js";

/** The lock key of the district set (serial numbers are upper case: no collision). */
const DISTRICT_LOCK = "stolen-district";
/** Answers that mean "the district is not reachable now", not "something is wrong". */
const UNREACHABLE = new Set(["unavailable", "timeout"]);

export interface DistrictSync {
  /** ISO-8601 of the district's last answer to stolen_list; "" = none since start. */
  readonly syncedAt: string;
  /** One sync now (what the timer does); resolves when it is done, whatever the district answered. */
  sync(): Promise<void>;
  stop(): Promise<void>;
}

/** A district mark checked at the edge (the district's own check): the serial number and the mark, or why it is refused. */
function checkedMark(m: sugar.district.Mark.$Properties): { sn: validate.MachineSn; mark: DistrictMark; stolen: boolean } | string {
  try {
    const c = checkMark(m);
    return { sn: c.machineSn, mark: { by: c.by, at: c.at }, stolen: c.stolen };
  } catch (err) {
    return (err as Error).message;
  }
}

export function startDistrictSync(ctx: Context, log: Logger, store: LeaseStore, locks: KeyedMutex): DistrictSync {
  const { bus, config } = ctx;
  const district = districtClient(bus, { timeoutMs: config["bus-timeout"] });
  let syncedAt = "";
  let running: Promise<void> | undefined;
  let stopped = false;

  async function onMark(data: Uint8Array): Promise<void> {
    let m: sugar.district.Mark;
    try {
      m = sugar.district.Mark.decode(data);
    } catch (err) {
      log.warn(`district stolen mark: not a valid Mark message (${describe(err)}), ignored`);
      return;
    }
    const checked = checkedMark(m);
    if (typeof checked === "string") {
      log.warn(`district stolen mark ignored: ${checked}`);
      return;
    }
    const { sn, mark, stolen } = checked;
    const changed = await locks.run([DISTRICT_LOCK], () => store.applyDistrictMark(sn, stolen, mark));
    if (changed) log.info(`${sn} ${stolen ? "added to" : "removed from"} the district's stolen list (by ${mark.by} at ${mark.at})`);
  }

  async function syncOnce(): Promise<void> {
    // Every page of one answer before anything is replaced: a set from half the pages would clear marks.
    let r: StolenList;
    try {
      r = await fetchStolenList((req) => district.call("stolenList", req), { digest: store.districtDigest() });
    } catch (err) {
      const e = err instanceof SugarError ? err : new SugarError("internal", describe(err));
      const how = `district stolen list: ${e.code}: ${e.message}; keeping the ${store.districtCount} marks held`;
      if (UNREACHABLE.has(e.code)) log.debug(how);
      else log.warn(how);
      return;
    }
    syncedAt = new Date().toISOString();
    if (r.unchanged) return;
    const marks = new Map<validate.MachineSn, DistrictMark>();
    for (const m of r.marks) {
      const checked = checkedMark(m);
      if (typeof checked === "string") log.warn(`district stolen list: a mark ignored: ${checked}`);
      else if (checked.stolen) marks.set(checked.sn, checked.mark);
    }
    const before = store.districtCount;
    const changed = await locks.run([DISTRICT_LOCK], () => store.replaceDistrict(marks));
    if (changed) log.info(`district stolen list synced: ${marks.size} marks (held ${before})`);
  }

  const sync = (): Promise<void> => {
    // One sync at a time: a timer firing while one is slow waits for it instead of piling up.
    running ??= syncOnce()
      .catch((err: unknown) => log.error(`district stolen list: ${describe(err)}`))
      .finally(() => (running = undefined));
    return running;
  };

  const following = bus.subscribe(subjects.districtEvent("stolen"), (data) =>
    onMark(data).catch((err: unknown) => log.error(`district stolen mark: ${describe(err)}`)),
  );
  // Subscribed first, then asked: a mark published while the answer travels is not lost.
  const first = bus.flush().then(sync, (err: unknown) => log.warn(`district: ${describe(err)}`));
  const timer = setInterval(() => {
    if (!stopped) void sync();
  }, config["district-sync-seconds"] * 1000);
  timer.unref();

  return {
    get syncedAt() {
      return syncedAt;
    },
    sync,
    async stop() {
      stopped = true;
      clearInterval(timer);
      await following.drain();
      await first;
      await running;
    },
  };
}
