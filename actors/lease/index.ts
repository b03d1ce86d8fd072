/**
 * Lease actor: answers "the lease for this serial number" from stored
 * leases, or (option `delegation`) has the keyring sign one, or refuses with
 * `stolen`. Owns `<root>/share/leases/` and the stolen lists; publishes every
 * change of this school's own list on `sugar.<site>.events.stolen` so every
 * lease actor and activation adapter sees it at once. With option `district`
 * it also follows the district's stolen list (district.ts); with delegation
 * and lease-ahead-days a background renewer keeps the stored leases ahead
 * (renewer.ts); the keyring exchanges are keyring.ts's. For the admin
 * console it keeps the last port-191 request per serial number (from the
 * activation adapter's `activation` events) and answers `status`.
 */
import { match } from "ts-pattern";
import { sugar } from "../../schemas/gen/messages.js";
import * as olpc from "../../lib/olpc/index.js";
import { registryClient, serveOps, subscribeMessages } from "../../src/codec.js";
import { once, type Component, type Context } from "../../src/component.js";
import { SugarError, describe } from "../../src/errors.js";
import { subjects } from "../../src/bus/subjects.js";
import { LEASE_STOLEN_PAGE } from "../../src/lease-pages.js";
import { KeyedMutex } from "../../src/mutex.js";
import { pageAfter } from "../../src/pages.js";
import * as validate from "../../src/validate.js";
import { startDistrictSync, type DistrictSync } from "./district.js";
import { keyringExchanges, signedLeaseFor } from "./keyring.js";
import { LiveGate, startRenewer } from "./renewer.js";
import { LeaseStore, type StoredLease } from "./store.js";

import pb = sugar.lease;

const DAY_MS = 24 * 3600 * 1000;
/** Last activations remembered (a district's worth of XOs); beyond it the oldest are forgotten. */
const MAX_ACTIVATIONS = 200_000;
/** Lease files written at once during an import: enough to overlap the fsyncs, few enough to keep descriptors. */
const IMPORT_PARALLEL = 32;
/** Registry requests in flight while an import's serial numbers are recorded (the registry's journal commits them in groups). */
const RECORD_PARALLEL = 128;
/** The count of an rtcreset request: at most 10 decimal digits (it becomes the rtc01's zero-padded nonce). */
const RTC_COUNT = /^\d{1,10}$/;
/** The most an unpaged stolenlist answer may be: NATS's default max_payload (1 MiB), less room for the envelope. */
const ONE_ANSWER_BYTES = 1024 * 1024 - 1024;

export async function startLease(ctx: Context): Promise<Component> {
  const { bus, config } = ctx;
  const log = ctx.log.child("lease");
  const site = config.site;
  const store = new LeaseStore(config.root, log);
  await store.load();
  const locks = new KeyedMutex();
  const keyring = keyringExchanges(ctx, log);
  const registry = registryClient(bus, site, { timeoutMs: config["bus-timeout"] });
  const live = new LiveGate();

  const publishStolen = (sn: string, stolen: boolean) => bus.publish(subjects.event(site, "stolen"), pb.StolenEvent.encode({ machineSn: sn, stolen }).finish());
  const lastActivation = new Map<string, pb.Activation>();
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

  const refuseStolen = (sn: validate.MachineSn) => {
    if (store.isStolen(sn)) throw new SugarError("stolen", `${sn} is on the ${store.isLocallyStolen(sn) ? "" : "district's "}stolen list`);
  };

  async function get(req: pb.GetRequest.$Properties): Promise<pb.Reply.$Properties> {
    const sn = validate.machineSn(req.machineSn ?? "");
    refuseStolen(sn);
    return live.run(() => locks.run([sn], async () => {
      const stored = await store.read(sn);
      if (stored && (!config.delegation || !expiresBefore(stored, renewBefore()))) return { get: { lease: stored.text, origin: "stored" } };
      if (!config.delegation) throw new SugarError("unknown_machine", `no lease for ${sn}`);
      try {
        const signed = await keyring.sign(sn, { retry: true });
        signedLeaseFor(sn, signed.lease ?? ""); // no lease for sn: the stored one (if any) stays, below
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
    }));
  }

  async function rtc(req: pb.RtcRequest.$Properties): Promise<pb.Reply.$Properties> {
    const sn = validate.machineSn(req.machineSn ?? "");
    refuseStolen(sn);
    const currentRtc = req.currentRtc ?? "";
    const nonce = req.nonce ?? "";
    if (!validate.OLPC_TIME.test(currentRtc) || !RTC_COUNT.test(nonce)) {
      throw new SugarError("invalid_input", "rtcreset needs a YYYYMMDDTHHMMSSZ timestamp and a count of at most 10 digits");
    }
    const r = await live.run(() => keyring.rtc(sn, currentRtc, nonce, { retry: true }));
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
    const d = store.districtMark(sn);
    const stolenSource = [store.isLocallyStolen(sn) ? "local" : "", d ? "district" : ""].filter(Boolean).join(",");
    const last = lastActivation.get(sn);
    if (!stored && !stolen && !last) throw new SugarError("not_found", `no lease stored for ${sn}`);
    const districtMark = d ? { machineSn: sn, source: "district", by: d.by, at: d.at } : null;
    return { show: { lease: stored?.text ?? "", kind: stored?.parsed.version ?? "", expiry: stored?.parsed.expiry ?? "", stolen, stolenSource, lastActivation: last ?? null, districtMark } };
  }

  async function status(): Promise<pb.Reply.$Properties> {
    const { leases, expiring } = await store.census(renewBefore());
    const renewal = renewer.status();
    const aheadMissing = renewal.enabled ? (await store.census(new Date(Date.now() + config["lease-ahead-days"] * DAY_MS))).expiring : 0;
    const k = keyring.state;
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
        districtStolen: store.districtCount,
        districtSyncedAt: district?.syncedAt ?? "",
        renewal,
        aheadMissing,
      },
    };
  }

  /**
   * One page of the stolen list: at most `limit` serial numbers (capped at
   * LEASE_STOLEN_PAGE) after `after_sn`, by serial number, each with its
   * marks (this school's first), and whether more follow. Limit 0 is the
   * request from before pages: the rest of the list in one answer, or
   * too_large rather than a first page its caller would take for the whole.
   */
  function stolenList(req: pb.StolenListRequest.$Properties): pb.Reply.$Properties {
    const afterSn = req.afterSn ? validate.machineSn(req.afterSn) : "";
    const all = store.stolen();
    const limit = req.limit ?? 0;
    const whole = limit === 0;
    const { items, more } = pageAfter(all, (sn) => sn, afterSn, whole ? all.length : Math.min(limit, LEASE_STOLEN_PAGE));
    const entries = items.flatMap((sn): pb.StolenEntry.$Properties[] => {
      const d = store.districtMark(sn);
      return [...(store.isLocallyStolen(sn) ? [{ machineSn: sn, source: "local" }] : []), ...(d ? [{ machineSn: sn, source: "district", by: d.by, at: d.at }] : [])];
    });
    const page: pb.StolenListReply.$Properties = { machineSns: items, entries, more, total: all.length };
    if (whole && pb.StolenListReply.encode(page).finish().byteLength > ONE_ANSWER_BYTES) {
      throw new SugarError("too_large", `the stolen list (${all.length} serial numbers) is larger than one answer: ask for it in pages (limit, after_sn), as sugar-server stolen list does`);
    }
    return { stolenlist: page };
  }

  async function setStolen(req: pb.StolenRequest.$Properties): Promise<pb.Reply.$Properties> {
    const sn = validate.machineSn(req.machineSn ?? "");
    const changed = await locks.run(["stolen"], () => store.setStolen(sn, !!req.stolen));
    if (changed) {
      const still = !req.stolen && store.districtMark(sn);
      // The school's list and the district's are apart: a local removal leaves a district mark in force.
      log.info(`${sn} ${req.stolen ? "added to" : "removed from"} the stolen list${still ? `; still on the district's (by ${still.by} at ${still.at})` : ""}`);
      publishStolen(sn, !!req.stolen);
    }
    return { stolen: { changed } };
  }

  const district: DistrictSync | undefined = config.district ? startDistrictSync(ctx, log, store, locks) : undefined;
  const renewer = startRenewer(ctx, log, store, locks, keyring, live);
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
        .with("stolenlist", () => stolenList(req.stolenlist!))
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
  const renewal = renewer.status();
  log.info(
    `ready: ${store.localStolen().length} stolen${district ? `, ${store.districtCount} on the district's list` : ""}, delegation ${config.delegation ? "on" : "off"}${renewal.enabled ? `, renewing ${renewal.aheadDays} days ahead` : ""}`,
  );

  return {
    name: "lease",
    stop: once(async () => {
      await serving.drain();
      await renewer.stop();
      await district?.stop();
      await following.drain();
      await activations.drain();
      await locks.idle();
    }),
  };
}
