/**
 * Keyring actor: the only holder of private keys. Signs delegated leases
 * (under a del01 from the deployment's root), v1 leases (with the
 * deployment's own lease key) and rtc01 clock resets. Serves
 * `sugar.keyring.<op>` in queue group `keyring`, so a district can run it
 * centrally, and two keyring hosts share the load.
 *
 * A v1 lease or a directly signed rtc01 signs the machine's UUID, which only
 * the registry knows. Rather than have every caller look it up first, the
 * keyring answers `needs_uuid` when it would sign one and was given no UUID;
 * the caller looks it up and asks again (or says `uuid_unknown`).
 */
import { match } from "ts-pattern";
import { sugar } from "../../schemas/gen/messages.js";
import { serveOps } from "../../src/codec.js";
import { once, type Component, type Context } from "../../src/component.js";
import { SugarError } from "../../src/errors.js";
import { subjects } from "../../src/bus/subjects.js";
import { KeyedMutex } from "../../src/mutex.js";
import * as olpc from "../../lib/olpc/index.js";
import * as validate from "../../src/validate.js";
import { caOps } from "./ca/ops.js";
import { CaStore } from "./ca/store.js";
import { KeyringStore } from "./store.js";

import pb = sugar.keyring;

const DAY_MS = 24 * 3600 * 1000;

export async function startKeyring(ctx: Context): Promise<Component> {
  const { bus, config } = ctx;
  const log = ctx.log.child("keyring");
  const store = new KeyringStore(config["keyring-dir"], log);
  await store.load();
  const caStore = new CaStore(config["keyring-dir"]);
  await caStore.load();
  const ca = caOps(caStore, config, bus, log);
  // Writes (init, trust, import) one at a time; signing needs no lock.
  const writes = new KeyedMutex();

  const show = (): pb.ShowReply.$Properties => ({
    key01: store.serverKey ? olpc.key01Line(store.serverKey) : "",
    keyId: store.serverKey01Hex ? olpc.keyIdHex(store.serverKey01Hex) : "",
    delegations: store.delegationCount,
    leaseKey01: store.leaseKey ? olpc.key01Line(store.leaseKey) : "",
    leaseKeyId: store.leaseKey01Hex ? olpc.keyIdHex(store.leaseKey01Hex) : "",
    trustedKeyIds: store.trustedKeys.map((k) => olpc.keyIdHex(k)),
    directory: store.dir,
    caFingerprint: caStore.ca?.fingerprint ?? "",
  });

  // Signs on the thread pool: a district keyring signs for many schools at once.
  async function sign(req: pb.SignRequest.$Properties): Promise<pb.Reply.$Properties> {
    const sn = validate.machineSn(req.machineSn ?? "");
    const now = new Date();
    // A school may ask for a shorter lease, never a longer one than the district signs.
    const days = Math.min(req.days || config["lease-days"], config["lease-days"]);
    const expiry = olpc.formatOlpcTime(new Date(now.getTime() + days * DAY_MS));
    const delegation = store.delegation(sn);
    if (delegation && store.serverKey) {
      if (delegation.expiresAt !== "never" && delegation.expiresAt.getTime() < now.getTime()) {
        throw new SugarError("forbidden", `the delegation for ${sn} expired at ${olpc.formatOlpcTime(delegation.expiresAt)}`);
      }
      const lease = await olpc.signInThreadPool(
        olpc.prepareDelegatedLease({ delegationLine: delegation.line, serverKey: store.serverKey, serverKey01Hex: store.serverKey01Hex, expiry }),
      );
      return { sign: { lease, kind: "delegated", expiry } };
    }
    if (store.leaseKey && req.machineUuid) {
      const lease = await olpc.signInThreadPool(
        olpc.prepareV1Lease({ sn, uuid: validate.machineUuid(req.machineUuid), expiry, leaseKey: store.leaseKey, leaseKey01Hex: store.leaseKey01Hex }),
      );
      return { sign: { lease, kind: "v1", expiry } };
    }
    if (store.leaseKey && !req.uuidUnknown) return { sign: { needsUuid: true } };
    if (!store.serverKey && !store.leaseKey) throw new SugarError("unavailable", "the keyring has no keys yet: run `sugar-server keyring init`");
    throw new SugarError("not_found", `no delegation for ${sn}${store.leaseKey ? " and its UUID is unknown" : " and no lease key"}`);
  }

  function rtc(req: pb.RtcRequest.$Properties): pb.Reply.$Properties {
    const sn = validate.machineSn(req.machineSn ?? "");
    const common = olpc.rtcRequestFields(req.currentRtc ?? "", req.nonce ?? "", req.newRtc || new Date());
    // The lease key first: a sig01 rtc01 is what the firmware is known to accept.
    if (store.leaseKey && req.machineUuid) {
      return { rtc: { line: olpc.signRtcReset({ sn, uuid: validate.machineUuid(req.machineUuid), leaseKey: store.leaseKey, ...common }) } };
    }
    if (store.leaseKey && !req.uuidUnknown) return { rtc: { needsUuid: true } };
    const delegation = store.delegation(sn);
    if (delegation && store.serverKey) {
      return { rtc: { line: olpc.signDelegatedRtcReset({ delegationLine: delegation.line, serverKey: store.serverKey, ...common }) } };
    }
    throw new SugarError("not_found", `cannot sign an rtc reset for ${sn}: no lease key with its UUID, and no delegation`);
  }

  type Req = pb.Request & { op: NonNullable<pb.Request["op"]> };

  /** sugar.keyring.<op>: the deployment's lease keys. */
  const leaseOps = (req: Req): pb.Reply.$Properties | Promise<pb.Reply.$Properties> =>
    match(req.op)
      .with("sign", () => sign(req.sign!))
      .with("rtc", () => rtc(req.rtc!))
      .with("show", () => ({ show: show() }))
      .with("init", () =>
        writes.run(["keys"], async () => {
          const created = await store.init(!!req.init?.leaseKey);
          const createdCa = req.init?.ca ? await caStore.init(`${config.site} district CA`) : false;
          if (created) log.info("created keys");
          if (createdCa) log.info(`created the district CA (SHA-256 ${caStore.ca!.fingerprint})`);
          return { init: { keys: show(), created: created || createdCa } };
        }),
      )
      .with("trust", () =>
        writes.run(["keys"], async () => {
          await store.trust(req.trust?.text ?? "");
          return { trust: { trustedKeyIds: store.trustedKeys.map((k) => olpc.keyIdHex(k)) } };
        }),
      )
      .with("import", () =>
        writes.run(["keys"], async () => {
          const r = await store.importDelegations(req["import"]?.text ?? "", new Date());
          log.info(`delegations: ${r.imported} imported, ${r.replaced} replaced, ${r.refused.length} refused`);
          return { import: r };
        }),
      )
      .with("ca", "serverCert", "clientCert", "sshHostCert", (op) => {
        throw new SugarError("invalid_input", `${subjects.keyring(op)} names no school: the district CA answers on ${subjects.keyring(op).replace("sugar.keyring.", "sugar.keyring.<site>.")}`);
      })
      .exhaustive();

  /** sugar.keyring.<site>.<op>: the district CA, for the school in the subject. */
  const siteOps = (req: Req, subject: string): pb.Reply.$Properties | Promise<pb.Reply.$Properties> => {
    const site = subjects.keyringSiteOf(subject);
    subjects.keyringFor(site, req.op); // refuses a site that is no subject token
    return match(req.op)
      .with("ca", () => ({ ca: ca.ca(site) }))
      .with("serverCert", async () => ({ serverCert: await ca.serverCert(site, req.serverCert!) }))
      .with("clientCert", async () => ({ clientCert: await ca.clientCert(site, req.clientCert!) }))
      .with("sshHostCert", () => ({ sshHostCert: ca.sshHostCert(site, req.sshHostCert!) }))
      .with("sign", "rtc", "show", "init", "import", "trust", (op) => {
        throw new SugarError("invalid_input", `${subject}: ${op} is no district CA op; it is served on ${subjects.keyring(op)}, with no site`);
      })
      .exhaustive();
  };

  const subs = [
    serveOps(bus, subjects.keyringAll(), pb.Request, pb.Reply, leaseOps, log, { queue: "keyring" }),
    serveOps(bus, subjects.keyringForAll(), pb.Request, pb.Reply, siteOps, log, { queue: "keyring" }),
  ];
  log.info(store.serverKey ? `ready: key id ${olpc.keyIdHex(store.serverKey01Hex!)}, ${store.delegationCount} delegations` : `ready without keys (run: sugar-server keyring init)`);
  if (caStore.ca) log.info(`district CA: SHA-256 ${caStore.ca.fingerprint}`);

  return {
    name: "keyring",
    stop: once(async () => {
      for (const sub of subs) await sub.drain();
      await writes.idle();
    }),
  };
}
