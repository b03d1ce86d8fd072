/**
 * Registry actor: the single writer of its site's users and machines.
 * Serves `sugar.<site>.registry.<op>` (queue group `registry`), one op per
 * field of `Request.op`, and publishes `registered` / `removed` events.
 */
import { join } from "node:path";
import { match } from "ts-pattern";
import { sugar } from "../../schemas/gen/messages.js";
import { serveOps } from "../../src/codec.js";
import { once, type Component, type Context } from "../../src/component.js";
import { backupUrl } from "../../src/config.js";
import { SugarError } from "../../src/errors.js";
import { KeyedMutex } from "../../src/mutex.js";
import { subjects } from "../../src/bus/subjects.js";
import * as validate from "../../src/validate.js";
import { RegistryStore, type MachineRecord, type UserRecord } from "./store.js";

import pb = sugar.registry;

export async function startRegistry(ctx: Context): Promise<Component> {
  const { bus, config } = ctx;
  const log = ctx.log.child("registry");
  const store = new RegistryStore(join(config.root, "home", "registry"), log);
  await store.load();
  const locks = new KeyedMutex();
  const site = config.site;
  const now = () => new Date().toISOString();

  const toUser = (u: UserRecord): pb.User.$Properties => ({
    uid: u.uid,
    nickname: u.nickname,
    machineSn: u.machine_sn,
    machineUuid: u.machine_uuid,
    pubkey: u.pubkey,
    created: u.created,
    updated: u.updated,
  });
  const toMachine = (m: MachineRecord): pb.Machine.$Properties => ({
    machineSn: m.machine_sn,
    machineUuid: m.machine_uuid,
    uid: m.uid,
    source: m.source,
    created: m.created,
    updated: m.updated,
  });
  const publish = (kind: "registered" | "removed", event: pb.Event.$Properties) =>
    bus.publish(subjects.event(site, kind), pb.Event.encode(event).finish());

  async function register(req: pb.RegisterRequest.$Properties): Promise<pb.Reply.$Properties> {
    const key = validate.publicKey(req.pubkey ?? "");
    const nickname = validate.nickname(req.nickname ?? "");
    const sn = req.machineSn ? validate.machineSn(req.machineSn) : "";
    const uuid = req.machineUuid ? validate.machineUuid(req.machineUuid) : "";
    const hardware = config["identity-model"] === "hardware";
    if (hardware && !sn) throw new SugarError("invalid_input", "machine_sn is required (identity-model = hardware)");
    return locks.run([key.uid, ...(sn ? [`sn:${sn}`] : [])], async () => {
      if (hardware && (!sn || !store.machine(sn))) {
        throw new SugarError("unknown_machine", `machine_sn ${sn} is not known to this server (identity-model = hardware)`);
      }
      const existing = store.user(key.uid);
      // Under the hardware model the serial number is the identity: a new key
      // for a known machine (a re-flashed XO) replaces the user registered
      // from it, whose uid is no longer registered.
      const previous = hardware && sn ? store.userBySn(sn) : undefined;
      const replaced = previous && previous.uid !== key.uid ? previous : undefined;
      const t = now();
      const user: UserRecord = {
        uid: key.uid,
        nickname,
        machine_sn: sn || existing?.machine_sn || "",
        machine_uuid: uuid || existing?.machine_uuid || "",
        pubkey: key.line,
        created: existing?.created ?? t,
        updated: t,
      };
      const changed = !existing || (["nickname", "machine_sn", "machine_uuid", "pubkey"] as const).some((k) => existing[k] !== user[k]);
      if (changed) await store.putUser(user);
      if (replaced) await store.removeUser(replaced.uid);
      const machine = sn ? store.machine(sn) : undefined;
      if (machine && machine.uid !== key.uid) await store.putMachine({ ...machine, uid: key.uid, updated: t });
      const stored = store.user(key.uid)!;
      if (changed || replaced) {
        log.info(`${existing ? "re-registered" : "registered"} ${key.uid} (${JSON.stringify(nickname)}${sn ? `, ${sn}` : ""})`);
        publish("registered", { registered: { user: toUser(stored), replacedUid: replaced?.uid ?? "", created: !existing } });
      }
      return {
        register: {
          user: toUser(stored),
          jabberServer: config["jabber-url"],
          backupUrl: backupUrl(config),
          backupPath: config["backup-path"],
          created: !existing,
          replacedUid: replaced?.uid ?? "",
        },
      };
    });
  }

  function status(req: pb.StatusRequest.$Properties): pb.Reply.$Properties {
    const u = store.user(validate.uid(req.uid ?? ""));
    if (!u) return { status: { registered: false } };
    return { status: { registered: true, jabberUrl: config["jabber-url"] } };
  }

  function lookup(req: pb.LookupRequest.$Properties): pb.Reply.$Properties {
    const sn = req.key === "machineSn" ? validate.machineSn(req.machineSn ?? "") : undefined;
    const user = match(req.key)
      .with("uid", () => store.user(validate.uid(req.uid ?? "")))
      .with("machineSn", () => store.userBySn(sn!))
      .with("machineUuid", () => store.userByUuid(validate.machineUuid(req.machineUuid ?? "")))
      .with(undefined, () => {
        throw new SugarError("invalid_input", "lookup needs a uid, machine_sn or machine_uuid");
      })
      .exhaustive();
    const known = sn ? store.machine(sn) : undefined;
    if (!user && !known) throw new SugarError("not_registered", "no such user");
    return { lookup: { user: user ? toUser(user) : null, machine: known ? toMachine(known) : null } };
  }

  async function remove(req: pb.RemoveRequest.$Properties): Promise<pb.Reply.$Properties> {
    const uid = validate.uid(req.uid ?? "");
    return locks.run([uid], async () => {
      const removed = await store.removeUser(uid);
      if (!removed) throw new SugarError("not_registered", `uid ${uid} is not registered`);
      log.info(`removed ${uid}`);
      publish("removed", { removed: { user: toUser(removed) } });
      return { remove: { user: toUser(removed) } };
    });
  }

  async function machine(req: pb.MachineRequest.$Properties): Promise<pb.Reply.$Properties> {
    const sn = validate.machineSn(req.machineSn ?? "");
    const uuid = req.machineUuid ? validate.machineUuid(req.machineUuid) : "";
    const source = /^[a-z-]{1,32}$/.test(req.source ?? "") ? req.source! : "admin";
    return locks.run([`sn:${sn}`], async () => {
      const old = store.machine(sn);
      const t = now();
      const m: MachineRecord = old
        ? { ...old, machine_uuid: uuid || old.machine_uuid, updated: t }
        : { machine_sn: sn, machine_uuid: uuid, uid: store.userBySn(sn)?.uid ?? "", source, created: t, updated: t };
      if (!old || old.machine_uuid !== m.machine_uuid) await store.putMachine(m);
      return { machine: { machine: toMachine(store.machine(sn)!), created: !old } };
    });
  }

  const sub = serveOps(
    bus,
    subjects.actorAll(site, "registry"),
    pb.Request,
    pb.Reply,
    (req) =>
      match(req.op)
        .with("register", () => register(req.register!))
        .with("status", () => status(req.status!))
        .with("lookup", () => lookup(req.lookup!))
        .with("list", () => {
          const page = store.listUsers(req.list?.offset ?? 0, req.list?.limit ?? 0);
          return { list: { users: page.users.map(toUser), total: page.total } };
        })
        .with("remove", () => remove(req.remove!))
        .with("machine", () => machine(req.machine!))
        .with("machines", () => ({ machines: { machines: store.listMachines().map(toMachine) } }))
        .exhaustive(),
    log,
    { queue: "registry" },
  );
  log.info(`ready: ${store.userCount} users (${store.dir})`);

  return {
    name: "registry",
    stop: once(async () => {
      await sub.drain();
      await locks.idle();
      await store.close();
    }),
  };
}
