/**
 * Lease actor: answers "the lease for this serial number" from stored
 * leases, or (option `delegation`) has the keyring sign one, or refuses with
 * `stolen`. Owns `<root>/share/leases/` and the stolen list; publishes every
 * stolen-list change on `sugar.<site>.events.stolen` so every lease actor and
 * activation adapter sees it at once. For the admin console it keeps the
 * last port-191 request per serial number (from the activation adapter's
 * `activation` events) and how the keyring last answered, publishes
 * `keyring_error` when a keyring exchange fails, and answers `status`.
 */
import { match } from "ts-pattern";
import { sugar } from "../../schemas/gen/messages.js";
import * as olpc from "../../lib/olpc/index.js";
import { keyringClient, registryClient, serveOps, subscribeMessages } from "../../src/codec.js";
import { once, type Component, type Context } from "../../src/component.js";
import { SugarError, describe } from "../../src/errors.js";
import { subjects } from "../../src/bus/subjects.js";
import type { RequestOptions } from "../../src/bus/types.js";
import { KeyedMutex } from "../../src/mutex.js";
import * as validate from "../../src/validate.js";
import { LeaseStore, type StoredLease } from "./store.js";

import pb = sugar.lease;

const DAY_MS = 24 * 3600 * 1000;
/** Last activations remembered (a district's worth of XOs); beyond it the oldest are forgotten. */
const MAX_ACTIVATIONS = 200_000;
/** Lease files written at once during an import: enough to overlap the fsyncs, few enough to keep descriptors. */
const IMPORT_PARALLEL = 32;
/** Registry requests in flight while an import's serial numbers are recorded (the registry's journal commits them in groups). */
const RECORD_PARALLEL = 128;
/** Keyring failures that mean "nothing to sign with for this machine", not "the keyring is in trouble". */
const NOT_KEYRING_TROUBLE = new Set(["not_found", "forbidden"]);
/** The count of an rtcreset request: at most 10 decimal digits (it becomes the rtc01's zero-padded nonce). */
const RTC_COUNT = /^\d{1,10}$/;

/**
 * How much of the bus timeout one keyring exchange may use. The activation
 * adapter waits bus-timeout for our answer; when the keyring is slow or far,
 * the exchange must give up early enough that the stored-lease fallback (a
 * stat, a page-cached read, the reply) still reaches the XO in time. The
 * margin is 15% of the budget, at least 25 ms: 300 ms of the default 2000,
 * leaving the keyring 1700 ms.
 */
function keyringBudgetMs(busTimeoutMs: number): number {
  return Math.max(1, busTimeoutMs - Math.max(25, Math.round(busTimeoutMs * 0.15)));
}

/** What a keyring request says about the machine's UUID: the UUID, that none is known, or (first try) nothing. */
type UuidPart = { machineUuid?: string; uuidUnknown?: boolean };

export async function startLease(ctx: Context): Promise<Component> {
  const { bus, config } = ctx;
  const log = ctx.log.child("lease");
  const site = config.site;
  const store = new LeaseStore(config.root, log);
  await store.load();
  const locks = new KeyedMutex();
  const keyringBudget = keyringBudgetMs(config["bus-timeout"]);
  const keyring = keyringClient(bus);
  const registry = registryClient(bus, site, { timeoutMs: config["bus-timeout"] });

  const publishStolen = (sn: string, stolen: boolean) => bus.publish(subjects.event(site, "stolen"), pb.StolenEvent.encode({ machineSn: sn, stolen }).finish());
  const lastActivation = new Map<string, pb.Activation>();
  const keyringState = { ok: true, lastSignMs: 0, lastSignAt: "", error: "", errorAt: "" };

  /** Times one keyring exchange; a failure that is trouble (not "no delegation for it") is counted and published. */
  async function timedKeyring<R>(op: "sign" | "rtc", sn: string, fn: () => Promise<R>): Promise<R> {
    const started = performance.now();
    try {
      const r = await fn();
      const ms = performance.now() - started;
      Object.assign(keyringState, { ok: true, lastSignMs: ms, lastSignAt: new Date().toISOString(), error: "", errorAt: "" });
      ctx.metrics?.keyringSign.observe({ op }, ms / 1000);
      return r;
    } catch (err) {
      const e = err instanceof SugarError ? err : new SugarError("internal", describe(err));
      if (!NOT_KEYRING_TROUBLE.has(e.code)) {
        const time = new Date().toISOString();
        Object.assign(keyringState, { ok: false, error: e.code, errorAt: time });
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
   * One keyring exchange, within keyringBudget: asks without a UUID (a
   * delegation carries its own); only when the keyring answers needs_uuid
   * (it would sign with its lease key) asks the registry, then the keyring again.
   */
  async function withUuid<R extends { needsUuid?: boolean | null }>(sn: validate.MachineSn, ask: (uuid: UuidPart, opts: RequestOptions) => Promise<R>): Promise<R> {
    const deadline = Date.now() + keyringBudget;
    const left = (): RequestOptions => {
      const timeoutMs = deadline - Date.now();
      if (timeoutMs <= 0) throw new SugarError("timeout", `the keyring exchange for ${sn} took longer than ${keyringBudget} ms`);
      return { timeoutMs };
    };
    const first = await ask({}, left());
    if (!first.needsUuid) return first;
    const uuid = await uuidOf(sn, left());
    const second = await ask(uuid ? { machineUuid: uuid } : { uuidUnknown: true }, left());
    if (second.needsUuid) throw new SugarError("internal", `the keyring asked again for the UUID of ${sn}`);
    return second;
  }

  /** Makes the serial number known to the registry (the hardware identity model accepts machines holding a lease). */
  async function recordMachine(sn: validate.MachineSn, uuid: string): Promise<void> {
    try {
      await registry.call("machine", { machineSn: sn, machineUuid: uuid, source: "lease" });
    } catch (err) {
      log.warn(`could not record ${sn} in the registry: ${describe(err)}`);
    }
  }

  const renewBefore = () => new Date(Date.now() + config["lease-renew-days"] * DAY_MS);
  const expiresBefore = (l: StoredLease, t: Date) => l.parsed.expiresAt !== "never" && l.parsed.expiresAt.getTime() <= t.getTime();

  async function get(req: pb.GetRequest.$Properties): Promise<pb.Reply.$Properties> {
    const sn = validate.machineSn(req.machineSn ?? "");
    if (store.isStolen(sn)) throw new SugarError("stolen", `${sn} is on the stolen list`);
    return locks.run([sn], async () => {
      const stored = await store.read(sn);
      if (stored && (!config.delegation || !expiresBefore(stored, renewBefore()))) return { get: { lease: stored.text, origin: "stored" } };
      if (!config.delegation) throw new SugarError("unknown_machine", `no lease for ${sn}`);
      try {
        const signed = await timedKeyring("sign", sn, () => withUuid(sn, (uuid, opts) => keyring.call("sign", { machineSn: sn, ...uuid }, opts)));
        await store.write(sn, signed.lease ?? "");
        log.info(`${stored ? "renewed" : "signed"} ${signed.kind} lease for ${sn} until ${signed.expiry}`);
        void recordMachine(sn, "");
        return { get: { lease: signed.lease, origin: stored ? "renewed" : "signed" } };
      } catch (err) {
        // Keyring unreachable, or no delegation: the stored lease is still better than nothing.
        if (stored && !expiresBefore(stored, new Date())) return { get: { lease: stored.text, origin: "stale" } };
        const e = err instanceof SugarError ? err : new SugarError("internal", describe(err));
        if (e.code === "not_found" || e.code === "forbidden") throw new SugarError("unknown_machine", `no lease for ${sn}: ${e.message}`);
        log.warn(`no lease for ${sn}: keyring: ${e.code}: ${e.message}`);
        throw new SugarError("unknown_machine", `no lease for ${sn} (keyring: ${e.code})`);
      }
    });
  }

  async function rtc(req: pb.RtcRequest.$Properties): Promise<pb.Reply.$Properties> {
    const sn = validate.machineSn(req.machineSn ?? "");
    if (store.isStolen(sn)) throw new SugarError("stolen", `${sn} is on the stolen list`);
    const currentRtc = req.currentRtc ?? "";
    const nonce = req.nonce ?? "";
    if (!validate.OLPC_TIME.test(currentRtc) || !RTC_COUNT.test(nonce)) {
      throw new SugarError("invalid_input", "rtcreset needs a YYYYMMDDTHHMMSSZ timestamp and a count of at most 10 digits");
    }
    const r = await timedKeyring("rtc", sn, () => withUuid(sn, (uuid, opts) => keyring.call("rtc", { machineSn: sn, currentRtc, nonce, ...uuid }, opts)));
    return { rtc: { line: r.line } };
  }

  async function importLeases(text: string): Promise<pb.Reply.$Properties> {
    const file = olpc.splitMultiLeaseFile(text);
    const refused: pb.Refused.$Properties[] = [];
    const accepted = new Map<validate.MachineSn, string>();
    for (const entry of file.entries) {
      try {
        const lease = olpc.parseLeaseLine(entry.line);
        if (lease.sn !== entry.sn) throw new SugarError("invalid_input", `the lease is for ${lease.sn}, filed under ${entry.sn}`);
        accepted.set(lease.sn, lease.line);
      } catch (err) {
        refused.push({ where: entry.where, reason: err instanceof Error ? err.message : String(err) });
      }
    }
    let imported = 0;
    let replaced = 0;
    const sns = [...accepted.keys()];
    // One lock over the batch (a get of one of them waits for it), one durable sync for all its files.
    await locks.run(sns, async () => {
      const had = await Promise.all(sns.map((sn) => store.has(sn)));
      for (const h of had) {
        if (h) replaced++;
        else imported++;
      }
      await store.writeMany([...accepted], IMPORT_PARALLEL);
    });
    // The registry learns the serial numbers many at a time (its journal commits them in groups):
    // one request after another, a deployment's worth would take minutes.
    const queue = [...sns];
    const record = async () => {
      for (let sn = queue.shift(); sn; sn = queue.shift()) await recordMachine(sn, "");
    };
    await Promise.all(Array.from({ length: Math.min(RECORD_PARALLEL, queue.length) }, record));
    // The same serial number twice in one file: the later line wins, the earlier counts as replaced.
    replaced += file.entries.length - refused.length - accepted.size;
    log.info(`import: ${imported} imported, ${replaced} replaced, ${refused.length} refused`);
    return { import: { imported, replaced, refused } };
  }

  async function show(req: pb.ShowRequest.$Properties): Promise<pb.Reply.$Properties> {
    const sn = validate.machineSn(req.machineSn ?? "");
    const stored = await store.read(sn);
    const stolen = store.isStolen(sn);
    const last = lastActivation.get(sn);
    if (!stored && !stolen && !last) throw new SugarError("not_found", `no lease stored for ${sn}`);
    return { show: { lease: stored?.text ?? "", kind: stored?.parsed.version ?? "", expiry: stored?.parsed.expiry ?? "", stolen, lastActivation: last ?? null } };
  }

  async function status(): Promise<pb.Reply.$Properties> {
    const { leases, expiring } = await store.census(renewBefore());
    const k = keyringState;
    return {
      status: {
        leases,
        expiring,
        stolen: store.stolen().length,
        keyringOk: k.ok,
        lastSignMs: k.lastSignMs,
        lastSignAt: k.lastSignAt,
        keyringError: k.error,
        keyringErrorAt: k.errorAt,
        delegation: config.delegation,
      },
    };
  }

  async function setStolen(req: pb.StolenRequest.$Properties): Promise<pb.Reply.$Properties> {
    const sn = validate.machineSn(req.machineSn ?? "");
    const changed = await locks.run(["stolen"], () => store.setStolen(sn, !!req.stolen));
    if (changed) {
      log.info(`${sn} ${req.stolen ? "added to" : "removed from"} the stolen list`);
      publishStolen(sn, !!req.stolen);
    }
    return { stolen: { changed } };
  }

  const serving = serveOps(
    bus,
    subjects.actorAll(site, "lease"),
    pb.Request,
    pb.Reply,
    (req) =>
      match(req.op)
        .with("get", () => get(req.get!))
        .with("rtc", () => rtc(req.rtc!))
        .with("import", () => importLeases(req["import"]?.text ?? ""))
        .with("show", () => show(req.show!))
        .with("stolen", () => setStolen(req.stolen!))
        .with("stolenlist", () => ({ stolenlist: { machineSns: store.stolen() } }))
        .with("status", () => status())
        .exhaustive(),
    log,
    { queue: "lease" },
  );
  // Another lease actor of this site changed the list: follow it.
  const following = subscribeMessages(
    bus,
    subjects.event(site, "stolen"),
    pb.StolenEvent,
    async (ev) => {
      const sn = validate.machineSn(ev.machineSn ?? "");
      await locks.run(["stolen"], () => store.setStolen(sn, !!ev.stolen));
    },
    log,
  );
  // What port 191 last answered each serial number (the adapter publishes every answer).
  const activations = subscribeMessages(
    bus,
    subjects.event(site, "activation"),
    pb.Activation,
    (ev) => {
      const sn = ev.machineSn ?? "";
      if (!validate.MACHINE_SN.test(sn)) return;
      lastActivation.delete(sn); // re-inserted last: the oldest are the first to go
      lastActivation.set(sn, ev);
      if (lastActivation.size > MAX_ACTIVATIONS) lastActivation.delete(lastActivation.keys().next().value!);
    },
    log,
  );
  log.info(`ready: ${store.stolen().length} stolen, delegation ${config.delegation ? "on" : "off"}`);

  return {
    name: "lease",
    stop: once(async () => {
      await serving.drain();
      await following.drain();
      await activations.drain();
      await locks.idle();
    }),
  };
}
