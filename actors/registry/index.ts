/**
 * Registry actor: the single writer of its site's users, machines and
 * re-flash claims. Serves `sugar.<site>.registry.<op>` (queue group
 * `registry`), one op per field of `Request.op`, and publishes `registered`,
 * `removed` and `reflash_*` events. Registration and its rules are in
 * register.ts (keys and browser devices), settling claims in claims.ts, the
 * first-admin rule in first-admin.ts. With option `district` it feeds the
 * district directory (directory-feed.ts) and answers for users at home at
 * another school (roaming.ts); without it neither exists and nothing is
 * asked of the district.
 */
import { join } from "node:path";
import { match } from "ts-pattern";
import { sugar } from "../../schemas/gen/messages.js";
import { serveOps } from "../../src/codec.js";
import { once, type Component, type Context } from "../../src/component.js";
import { SugarError } from "../../src/errors.js";
import { KeyedMutex } from "../../src/mutex.js";
import { subjects } from "../../src/bus/subjects.js";
import * as validate from "../../src/validate.js";
import { authClient } from "../../src/codec.js";
import { claims } from "./claims.js";
import { directoryFeed, type DirectoryFeed } from "./directory-feed.js";
import { startRoaming, type Roaming } from "./roaming.js";
import { firstAdmin } from "./first-admin.js";
import { publisher, toMachine, toUser } from "./messages.js";
import { registration } from "./register.js";
import { RegistryStore, type MachineRecord } from "./store.js";

import pb = sugar.registry;

export async function startRegistry(ctx: Context): Promise<Component> {
  const { bus, config } = ctx;
  const log = ctx.log.child("registry");
  const store = new RegistryStore(join(config.root, "home", "registry"), log);
  await store.load();
  const locks = new KeyedMutex();
  const site = config.site;

  const feed: DirectoryFeed | undefined = config.district
    ? directoryFeed({ bus, config, log: log.child("district"), users: () => store.listUsers(0, 0).users, user: (uid) => store.user(uid as validate.Uid) })
    : undefined;
  const roaming: Roaming | undefined = config.district
    ? await startRoaming({ bus, config, log: log.child("district"), dir: store.dir, isLocal: (uid) => !!store.user(uid as validate.Uid), freed: (uid) => feed?.retry(uid) })
    : undefined;
  const publish = feeding(publisher(bus, site), store, feed);
  const auth = authClient(bus, site, { timeoutMs: config["bus-timeout"] });
  const settle = claims({ store, locks, log, publish });
  const { register, registerDevice } = registration({ store, locks, config, log, auth, publish, approveNow: settle.approveNow, firstAdmin: firstAdmin(store, config), roaming });

  function status(req: pb.StatusRequest.$Properties): pb.Reply.$Properties | Promise<pb.Reply.$Properties> {
    const uid = validate.uid(req.uid ?? "");
    if (store.user(uid)) return { status: { registered: true, jabberUrl: config["jabber-url"], ...(roaming ? { home: site } : {}) } };
    return roaming ? roamerStatus(roaming, uid) : { status: { registered: false } };
  }

  async function roamerStatus(r: Roaming, uid: validate.Uid): Promise<pb.Reply.$Properties> {
    const home = await r.homeOf(uid);
    if (!home) return { status: { registered: false } };
    return { status: { registered: true, jabberUrl: config["jabber-url"], home: home.site, homeBackupUrl: home.backupUrl } };
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
      await store.removeClaim(uid); // a removed claimant's claim goes with it
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
      const t = new Date().toISOString();
      const m: MachineRecord = old
        ? { ...old, machine_uuid: uuid || old.machine_uuid, updated: t }
        : { machine_sn: sn, machine_uuid: uuid, uid: store.userBySn(sn)?.uid ?? "", source, created: t, updated: t };
      if (!old || old.machine_uuid !== m.machine_uuid) await store.putMachine(m);
      return { machine: { machine: toMachine(store.machine(sn)!), created: !old } };
    });
  }

  async function setAdmin(req: pb.AdminRequest.$Properties): Promise<pb.Reply.$Properties> {
    const uid = validate.uid(req.uid ?? "");
    return locks.run([uid], async () => {
      const u = store.user(uid);
      if (!u) throw new SugarError("not_registered", `uid ${uid} is not registered`);
      const admin = !!req.admin;
      if (u.admin === admin) return { admin: { user: toUser(u), changed: false } };
      const next = { ...u, admin, updated: new Date().toISOString() };
      await store.putUser(next);
      log.info(`${uid} is ${admin ? "now" : "no longer"} an admin`);
      return { admin: { user: toUser(next), changed: true } };
    });
  }

  if (config["first-admin"] === "first-registrant") {
    log.warn(
      store.userCount === 0
        ? "first-admin = first-registrant: the first user to register (anyone who reaches this server first) becomes its admin"
        : "first-admin = first-registrant: users are registered already, so no one becomes admin by registering (sugar-server users admin UID on)",
    );
  }
  if (config.reflash === "allow") {
    log.warn("reflash = allow: anyone who knows a registered serial number can register a new key with it and take over that user and its backups");
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
          const page = store.listUsers(req.list?.offset ?? 0, req.list?.limit ?? 0, req.list?.query ?? "");
          return { list: { users: page.users.map(toUser), total: page.total } };
        })
        .with("remove", () => remove(req.remove!))
        .with("machine", () => machine(req.machine!))
        .with("machines", () => ({ machines: { machines: store.listMachines().map(toMachine) } }))
        .with("claims", () => settle.list())
        .with("approve", () => settle.approve(req.approve!))
        .with("reject", () => settle.reject(req.reject!))
        .with("admin", () => setAdmin(req.admin!))
        .with("registerDevice", () => registerDevice(req.registerDevice!))
        .with("admins", () => ({ admins: { admins: store.adminCount, users: store.userCount, machines: store.machineCount, claims: store.listClaims().length } }))
        .exhaustive(),
    log,
    { queue: "registry" },
  );
  log.info(`ready: ${store.userCount} users`);
  log.debug(`registry in ${store.dir}`);

  return {
    name: "registry",
    stop: once(async () => {
      await sub.drain();
      await locks.idle();
      await feed?.stop();
      await roaming?.stop();
      await store.close();
    }),
  };
}

/** The registry's events, and (option district) each change of a user fed to the district directory as well. */
function feeding(publish: ReturnType<typeof publisher>, store: RegistryStore, feed: DirectoryFeed | undefined): ReturnType<typeof publisher> {
  if (!feed) return publish;
  return (kind, event) => {
    publish(kind, event);
    match(kind)
      .with("registered", () => {
        const u = store.user((event.registered?.user?.uid ?? "") as validate.Uid);
        if (u) feed.changed(u);
        if (event.registered?.replacedUid) feed.removed(event.registered.replacedUid);
      })
      .with("removed", () => {
        if (event.removed?.user?.uid) feed.removed(event.removed.user.uid);
      })
      .with("reflash_approved", () => {
        const u = store.user((event.reflashApproved?.newUid ?? "") as validate.Uid);
        if (u) feed.changed(u);
      })
      .with("reflash_pending", "reflash_rejected", () => undefined)
      .exhaustive();
  };
}
