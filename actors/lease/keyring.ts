/**
 * The lease actor's exchanges with the keyring: a lease signed for a serial
 * number, an rtc reset line. Each exchange keeps within a budget (a part of
 * the bus timeout, so the stored-lease fallback still reaches the XO in
 * time), asks the registry for the machine's UUID only when the keyring
 * needs it, and is timed for the console. A live exchange (port 191 waiting)
 * that times out or finds no responders within half its budget is tried
 * once more within the rest: with two keyrings in queue group `keyring`, the
 * one that died with the request in flight loses only that first try.
 */
import * as olpc from "../../lib/olpc/index.js";
import { sugar } from "../../schemas/gen/messages.js";
import { keyringClient, registryClient } from "../../src/codec.js";
import type { Context } from "../../src/component.js";
import { SugarError, describe } from "../../src/errors.js";
import { keyringBudgetMs } from "../../src/budget.js";
import { subjects } from "../../src/bus/subjects.js";
import type { RequestOptions } from "../../src/bus/types.js";
import type { Logger } from "../../src/log.js";
import type * as validate from "../../src/validate.js";

import pb = sugar.lease;

/** Keyring failures that mean "nothing to sign with for this machine", not "the keyring is in trouble". */
export const NOT_KEYRING_TROUBLE: ReadonlySet<string> = new Set(["not_found", "forbidden"]);
/** Failures a second try may get past: the request was lost (a keyring died with it) or nobody served it for a moment. */
const RETRIED: ReadonlySet<string> = new Set(["timeout", "unavailable"]);


/** What a keyring request says about the machine's UUID: the UUID, that none is known, or (first try) nothing. */
type UuidPart = { machineUuid?: string; uuidUnknown?: boolean };

/** How the keyring last answered, for the console's status. */
export interface KeyringState {
  ok: boolean;
  lastSignMs: number;
  lastSignAt: string;
  error: string;
  errorAt: string;
}

export interface ExchangeOptions {
  /** A live exchange (port 191 or the REST lease waits): one more try after a lost first one. */
  retry: boolean;
}

export interface KeyringExchanges {
  readonly state: KeyringState;
  sign(sn: validate.MachineSn, opts: ExchangeOptions): Promise<sugar.keyring.SignReply.$Properties>;
  rtc(sn: validate.MachineSn, currentRtc: string, nonce: string, opts: ExchangeOptions): Promise<sugar.keyring.RtcReply.$Properties>;
}

export function keyringExchanges(ctx: Context, log: Logger): KeyringExchanges {
  const { bus, config } = ctx;
  const site = config.site;
  const budget = keyringBudgetMs(config["bus-timeout"]);
  const keyring = keyringClient(bus);
  const registry = registryClient(bus, site, { timeoutMs: config["bus-timeout"] });
  const state: KeyringState = { ok: true, lastSignMs: 0, lastSignAt: "", error: "", errorAt: "" };

  /** Times one keyring exchange; a failure that is trouble (not "no delegation for it") is counted and published. */
  async function timed<R>(op: "sign" | "rtc", sn: string, fn: () => Promise<R>): Promise<R> {
    const started = performance.now();
    try {
      const r = await fn();
      const ms = performance.now() - started;
      Object.assign(state, { ok: true, lastSignMs: ms, lastSignAt: new Date().toISOString(), error: "", errorAt: "" });
      ctx.metrics?.keyringSign.observe({ op }, ms / 1000);
      return r;
    } catch (err) {
      const e = err instanceof SugarError ? err : new SugarError("internal", describe(err));
      if (!NOT_KEYRING_TROUBLE.has(e.code)) {
        const time = new Date().toISOString();
        Object.assign(state, { ok: false, error: e.code, errorAt: time });
        ctx.metrics?.keyringErrors.inc({ code: e.code });
        bus.publish(subjects.event(site, "keyring_error"), pb.KeyringError.encode({ machineSn: sn, op, code: e.code, message: e.message, time }).finish());
      }
      throw err;
    }
  }

  /** The UUID the registry knows for a serial number (needed for v1 leases and rtc resets); "" if none. */
  async function uuidOf(sn: validate.MachineSn, opts: RequestOptions): Promise<string> {
    try {
      const r = await registry.call("lookup", { machineSn: sn }, opts);
      return r.machine?.machineUuid || r.user?.machineUuid || "";
    } catch (err) {
      if (!(err instanceof SugarError) || err.code !== "not_registered") log.debug(`uuid of ${sn}: ${describe(err)}`);
      return "";
    }
  }

  /**
   * One keyring exchange, within the budget: asks without a UUID (a
   * delegation carries its own); only when the keyring answers needs_uuid
   * (it would sign with its lease key) asks the registry, then the keyring
   * again. With `retry`, each ask first gets half of what is left, and a
   * timeout or no responders there is asked once more within the rest.
   */
  async function withUuid<R extends { needsUuid?: boolean | null }>(
    sn: validate.MachineSn,
    op: string,
    opts: ExchangeOptions,
    ask: (uuid: UuidPart, opts: RequestOptions) => Promise<R>,
  ): Promise<R> {
    const deadline = Date.now() + budget;
    const leftMs = () => {
      const ms = deadline - Date.now();
      if (ms <= 0) throw new SugarError("timeout", `the keyring exchange for ${sn} took longer than ${budget} ms`);
      return ms;
    };
    const once = async (uuid: UuidPart): Promise<R> => {
      if (!opts.retry) return ask(uuid, { timeoutMs: leftMs() });
      try {
        return await ask(uuid, { timeoutMs: Math.max(1, Math.floor(leftMs() / 2)) });
      } catch (err) {
        const rest = deadline - Date.now();
        if (!(err instanceof SugarError) || !RETRIED.has(err.code) || rest <= 0) throw err;
        log.debug(`keyring ${op} for ${sn}: ${err.code} on the first try; once more within ${rest} ms`);
        return ask(uuid, { timeoutMs: rest });
      }
    };
    const first = await once({});
    if (!first.needsUuid) return first;
    const uuid = await uuidOf(sn, { timeoutMs: leftMs() });
    const second = await once(uuid ? { machineUuid: uuid } : { uuidUnknown: true });
    if (second.needsUuid) throw new SugarError("internal", `the keyring asked again for the UUID of ${sn}`);
    return second;
  }

  return {
    state,
    sign: (sn, opts) => timed("sign", sn, () => withUuid(sn, "sign", opts, (uuid, o) => keyring.call("sign", { machineSn: sn, ...uuid }, o))),
    rtc: (sn, currentRtc, nonce, opts) => timed("rtc", sn, () => withUuid(sn, "rtc", opts, (uuid, o) => keyring.call("rtc", { machineSn: sn, currentRtc, nonce, ...uuid }, o))),
  };
}

/**
 * What the keyring signed for sn, as a lease: it replaces a stored lease only
 * if it is one, for this very machine. Anything else (an empty reply, a line
 * that is no lease, another machine's lease) is the keyring's fault.
 */
export function signedLeaseFor(sn: validate.MachineSn, text: string): olpc.LeaseLine {
  let parsed: olpc.LeaseLine;
  try {
    parsed = olpc.parseLeaseLine(text.split("\n")[0]!);
  } catch (err) {
    throw new SugarError("internal", `the keyring's reply for ${sn} is not a lease (${describe(err)})`);
  }
  if (parsed.sn !== sn) throw new SugarError("internal", `the keyring's reply for ${sn} is a lease for ${parsed.sn}`);
  return parsed;
}
