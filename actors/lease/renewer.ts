/**
 * The background renewer (option delegation, lease-ahead-days > 0): keeps
 * every stored lease valid at least lease-ahead-days ahead, so a school cut
 * off from the keyring keeps activating its XOs that long. Soon after start
 * and every lease-renew-seconds it takes the stored leases expiring within
 * the window (the LeaseStore's expiry index), soonest first, and has the
 * keyring sign each anew, one at a time, and only while no live activation
 * is in flight (a Monday-morning storm signs nothing in the background).
 * A keyring failure keeps the old lease and ends the pass; the next one
 * comes after a back-off (5 s, doubling up to lease-renew-seconds). Every
 * pass that renewed or failed something is logged in one line and published
 * on `sugar.<site>.events.renewal`.
 */
import { sugar } from "../../schemas/gen/messages.js";
import type { Context } from "../../src/component.js";
import { SugarError, describe } from "../../src/errors.js";
import { subjects } from "../../src/bus/subjects.js";
import type { Logger } from "../../src/log.js";
import type { KeyedMutex } from "../../src/mutex.js";
import type { MachineSn } from "../../src/validate.js";
import { NOT_KEYRING_TROUBLE, signedLeaseFor, type KeyringExchanges } from "./keyring.js";
import type { LeaseStore } from "./store.js";

import pb = sugar.lease;

const DAY_MS = 24 * 3600 * 1000;
/** The first pass waits this long after start (or lease-renew-seconds, if shorter): the server comes up first. */
const START_DELAY_MS = 2_000;
/** The first back-off after a keyring failure; it doubles up to lease-renew-seconds. */
const FIRST_BACKOFF_MS = 5_000;

/**
 * Live requests in flight (port-191 gets, rtc resets): the renewer signs
 * only when there are none.
 */
export class LiveGate {
  private inFlight = 0;
  private waiters: Array<() => void> = [];

  async run<T>(fn: () => Promise<T>): Promise<T> {
    this.inFlight++;
    try {
      return await fn();
    } finally {
      if (--this.inFlight === 0) for (const w of this.waiters.splice(0)) w();
    }
  }

  /** Resolves when no live request is in flight. */
  idle(): Promise<void> {
    return this.inFlight === 0 ? Promise.resolve() : new Promise((resolve) => this.waiters.push(resolve));
  }
}

export interface Renewer {
  /** The renewer's state for StatusReply.renewal. */
  status(): pb.Renewal.$Properties;
  stop(): Promise<void>;
}

const iso = (ms: number) => (ms > 0 ? new Date(ms).toISOString() : "");

export function startRenewer(ctx: Context, log: Logger, store: LeaseStore, locks: KeyedMutex, keyring: KeyringExchanges, gate: LiveGate): Renewer {
  const { bus, config } = ctx;
  const aheadDays = config["lease-ahead-days"];
  const enabled = config.delegation && aheadDays > 0;
  const intervalMs = config["lease-renew-seconds"] * 1000;
  const st = { renewed: 0, failed: 0, passRenewed: 0, passFailed: 0, remaining: 0, lastPassAt: 0, nextPassAt: 0, error: "" };
  /** When each serial number was last renewed (or found unsignable): not again within a day. */
  const recent = new Map<MachineSn, number>();
  let backoffMs = FIRST_BACKOFF_MS;
  let warnedShort = false;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let passing: Promise<void> | undefined;
  let wake: () => void = () => undefined;
  const stopping = new Promise<void>((resolve) => (wake = resolve));

  const status = (): pb.Renewal.$Properties => ({
    enabled,
    aheadDays,
    renewed: st.renewed,
    failed: st.failed,
    passRenewed: st.passRenewed,
    passFailed: st.passFailed,
    remaining: st.remaining,
    lastPassAt: iso(st.lastPassAt),
    nextPassAt: iso(st.nextPassAt),
    error: st.error,
    time: new Date().toISOString(),
  });

  function schedule(ms: number): void {
    if (stopped) return;
    st.nextPassAt = Date.now() + ms;
    timer = setTimeout(() => {
      passing = pass()
        .catch((err: unknown) => {
          log.error(`renewer: ${describe(err)}`);
          return intervalMs;
        })
        .then(schedule)
        .finally(() => (passing = undefined));
    }, ms);
    timer.unref();
  }

  /** Renews what one SN needs under its lock: "fresh" when a live get (or an admin) already did, or it is no lease to renew. */
  async function renewOne(sn: MachineSn, windowEnd: number): Promise<{ expiry: string } | "fresh"> {
    return locks.run([sn], async () => {
      const stored = await store.read(sn);
      if (!stored || stored.parsed.expiresAt === "never" || stored.parsed.expiresAt.getTime() > windowEnd) return "fresh";
      // A stolen machine's lease is left to run out: port 191 refuses it anyway.
      if (store.isStolen(sn)) return "fresh";
      const signed = await keyring.sign(sn, { retry: false });
      const lease = signed.lease ?? "";
      // What is stored is still good: a reply that is no lease for this machine must not replace it.
      const parsed = signedLeaseFor(sn, lease);
      if (parsed.expiresAt !== "never" && parsed.expiresAt.getTime() <= stored.parsed.expiresAt.getTime()) {
        log.warn(`renewer: the keyring's new lease for ${sn} runs to ${parsed.expiry}, no later than the stored one: the stored one stays`);
        return "fresh";
      }
      await store.write(sn, lease);
      log.debug(`renewer: renewed ${signed.kind} lease for ${sn} until ${signed.expiry}`);
      return { expiry: signed.expiry ?? "" };
    });
  }

  /** One pass; resolves with the delay until the next. */
  async function pass(): Promise<number> {
    const started = Date.now();
    const windowEnd = started + aheadDays * DAY_MS;
    let renewed = 0;
    let failed = 0;
    let unsignable = 0;
    let error = "";
    for (const [sn, at] of recent) if (at <= started - DAY_MS) recent.delete(sn);
    for (const sn of await store.expiringBefore(new Date(windowEnd))) {
      if (stopped) break;
      if ((recent.get(sn) ?? 0) > Date.now() - DAY_MS) continue;
      await Promise.race([gate.idle(), stopping]);
      if (stopped) break;
      try {
        const r = await renewOne(sn, windowEnd);
        recent.set(sn, Date.now());
        if (r === "fresh") continue;
        renewed++;
        const exp = r.expiry.match(/^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/);
        if (!warnedShort && exp && Date.UTC(+exp[1]!, +exp[2]! - 1, +exp[3]!, +exp[4]!, +exp[5]!, +exp[6]!) <= Date.now() + aheadDays * DAY_MS) {
          warnedShort = true;
          log.warn(`renewer: the keyring signs leases shorter than lease-ahead-days (${aheadDays}): ${sn} now runs to ${r.expiry}; each lease is renewed at most once a day (raise the keyring's lease-days)`);
        }
      } catch (err) {
        const e = err instanceof SugarError ? err : new SugarError("internal", describe(err));
        if (NOT_KEYRING_TROUBLE.has(e.code)) {
          // No delegation (or lease key) for it: not the keyring's trouble; asked again tomorrow.
          unsignable++;
          recent.set(sn, Date.now());
          log.debug(`renewer: nothing to sign ${sn} with: ${e.message}`);
          continue;
        }
        failed++;
        error = `${e.code}: ${e.message}`;
        break;
      }
    }
    const { expiring } = await store.census(new Date(Date.now() + aheadDays * DAY_MS));
    Object.assign(st, { renewed: st.renewed + renewed, failed: st.failed + failed, passRenewed: renewed, passFailed: failed, remaining: expiring, lastPassAt: Date.now(), error });
    const next = failed > 0 ? backoffMs : intervalMs;
    backoffMs = failed > 0 ? Math.min(backoffMs * 2, intervalMs) : FIRST_BACKOFF_MS;
    st.nextPassAt = Date.now() + next;
    if (renewed > 0 || failed > 0 || unsignable > 0) {
      const line = `renewer: renewed ${renewed}, failed ${failed}, remaining ${expiring}${unsignable ? ` (${unsignable} with nothing to sign them with)` : ""}`;
      if (failed > 0) log.warn(`${line}; keyring: ${error}; the old leases stay; next try in ${Math.round(next / 1000)} s`);
      else log.info(line);
    }
    if (renewed > 0 || failed > 0) bus.publish(subjects.event(config.site, "renewal"), pb.Renewal.encode(status()).finish());
    return next;
  }

  if (enabled) schedule(Math.min(START_DELAY_MS, intervalMs));

  return {
    status,
    async stop() {
      stopped = true;
      wake();
      if (timer) clearTimeout(timer);
      await passing;
    },
  };
}
