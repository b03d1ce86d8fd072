/**
 * Backup actor: Journal backups over rsync + SSH, each client confined to
 * `<root>/home/backups/<uid[-2:]>/<uid>/`. Serves `sugar.<site>.backup.<op>`
 * (queue group `backup`):
 *   admit {uid | machine_sn}  may this client start a backup now (slots, disk, load)
 *   list                      BackupInfo of every registered user with a key (its directory made or not yet)
 *   show {uid}                one of them
 *   summary                   the admin console's overview: running now, today, disk and inodes free
 *
 * It publishes `backup` events (BackupEvent): `started` when an admission
 * is accepted, `finished` when the forced command reports a transfer.
 *
 * It keeps the backup user's authorized_keys equal to the registry
 * (authorized-keys.ts): the full list at start (waiting for the registry if
 * it is not up yet) and every 5 minutes (a NATS publish lost in an outage
 * is never replayed), and each `registered` / `removed` event in between. A
 * registered user gets its directory before its key line; a removed user's
 * line goes, its directory stays (its backups are the school's until an
 * administrator deletes them; a key that registers again finds them, see
 * pending restore below).
 *
 * It learns of finished transfers from the forced command's spool
 * (events.ts). After a completed upload it snapshots `datastore-current`
 * (snapshots.ts), frees the client's admission slot and clears the
 * client's pending-restore flag; a completed restore clears the flag too.
 *
 * Pending restore is this actor's own state (pending.ts), answered by the
 * `status` op that /client/status asks: a `registered` event for a new uid
 * whose directory already holds a backup (sshkey model: a key registering
 * again after its removal) sets the flag; under the hardware model, when the
 * event names a replaced uid (a re-flashed XO with a new key, same serial
 * number), the old uid's directory is renamed to the new uid's place (the
 * backups follow the machine; the old key is no longer registered) and the
 * flag is set. A removed user's flag is cleared.
 *
 * A user of kind `browser` (a phone's browser or a client utility: no SSH
 * key) has no Journal backup: no key line, no directory, and admission says
 * forbidden. It is skipped quietly: it is not a key gone wrong.
 */
import { constants, promises as fsp, statSync } from "node:fs";
import { match } from "ts-pattern";
import { sugar } from "../../schemas/gen/messages.js";
import { subjects } from "../../src/bus/subjects.js";
import type { Subscription } from "../../src/bus/types.js";
import { registryClient, serveOps, subscribeMessages } from "../../src/codec.js";
import { once, type Component, type Context } from "../../src/component.js";
import { backupUrl as backupUrlOf } from "../../src/config.js";
import { SugarError, describe } from "../../src/errors.js";
import { ensureDir } from "../../src/fs.js";
import { KeyedMutex } from "../../src/mutex.js";
import * as validate from "../../src/validate.js";
import type { Uid } from "../../src/validate.js";
import { Admission, systemProbes, type Probes } from "./admission.js";
import { AuthorizedKeys, commandScriptPath, type ForcedCommand } from "./authorized-keys.js";
import type { SpoolEvent } from "./events.js";
import { PendingRestores } from "./pending.js";
import { SpoolWatcher } from "./spool.js";
import { backupsDir, clientDir, spoolDir, stateDir } from "./paths.js";
import { adoptLatest, checkProcFd, ensureClientDir, exists, hasBackup, listSnapshots, makeSnapshot, moveClientDir, usage } from "./snapshots.js";
import { StateStore } from "./state.js";

import pb = sugar.backup;
import reg = sugar.registry;

const RESYNC_MS = 5 * 60 * 1000;
const REGISTRY_RETRY_MS = 250;
const PAGE = 1000;

export interface BackupOptions {
  /** Load, disk and clock for admission (tests replace them). */
  probes?: Probes;
}

export interface BackupHandle extends Component {
  /** The forced command every key line carries. */
  readonly forcedCommand: ForcedCommand;
  /** Settles once authorized_keys holds every registry user's line (the first reconcile, after ready). */
  readonly reconciled: Promise<void>;
}

export async function startBackup(ctx: Context, opts: BackupOptions = {}): Promise<BackupHandle> {
  const { bus, config } = ctx;
  const log = ctx.log.child("backup");
  const site = config.site;
  const root = config.root;
  const registry = registryClient(bus, site, { timeoutMs: config["bus-timeout"] });
  const backupUrl = backupUrlOf(config);
  const forcedCommand: ForcedCommand = { node: process.execPath, script: commandScriptPath(), root, rrsync: config["rrsync-path"] };

  await checkProcFd();
  const keys = new AuthorizedKeys(root, forcedCommand, log);
  await keys.init();
  await fsp.access(config["rrsync-path"], constants.X_OK).catch((err: unknown) =>
    log.warn(`rrsync-path ${config["rrsync-path"]} is not executable (${(err as Error).message}): every backup will fail until Debian's rsync package is installed`),
  );
  await ensureDir(backupsDir(root), 0o700);
  const state = new StateStore(stateDir(root));
  await state.init();
  const pending = new PendingRestores(stateDir(root), log);
  await pending.load();
  const probes = opts.probes ?? systemProbes;
  const admission = new Admission(
    { slots: config["backup-slots"], slotSeconds: config["backup-slot-seconds"], minFree: config["backup-min-free"], maxLoad: config["backup-max-load"] },
    backupsDir(root),
    probes,
  );
  /** Backups completed today (UTC) since this actor started: the overview's "backups today". */
  const today = { day: "", count: 0 };
  const publishBackup = (ev: pb.BackupEvent.$Properties) => bus.publish(subjects.event(site, "backup"), pb.BackupEvent.encode({ time: new Date().toISOString(), ...ev }).finish());
  // "events": registry events and full reloads, in order; "uid:<uid>": work in one client's directory.
  const locks = new KeyedMutex();
  const uidLock = (uid: string) => `uid:${uid}`;

  /** A user with no SSH key (a phone's browser): nothing of it belongs in authorized_keys or the backups. */
  const noBackup = (u: reg.User.$Properties): boolean => u.kind === "browser";

  /** The canonical key of a registry user, parsed again; undefined (logged) if it is not one the server would write. */
  const keyOf = (u: reg.User.$Properties): string | undefined => {
    try {
      const key = validate.publicKey(u.pubkey ?? "");
      if (key.uid !== u.uid) throw new SugarError("invalid_input", `the key's uid is ${key.uid}`);
      return key.line;
    } catch (err) {
      log.error(`registry user ${u.uid}: key not usable, no authorized_keys line: ${describe(err)}`);
      return undefined;
    }
  };

  /** Every registry user, a page at a time: 100,000 decoded users held at once would grow the heap for good. */
  async function forEachUser(fn: (u: reg.User.$Properties) => void | Promise<void>): Promise<void> {
    for (let offset = 0; ; ) {
      const page = await registry.call("list", { offset, limit: PAGE });
      const got = page.users ?? [];
      for (const u of got) await fn(u);
      offset += got.length;
      if (got.length === 0 || offset >= (page.total ?? 0)) return;
    }
  }

  /** The registry's full list → directories and authorized_keys. */
  async function reload(): Promise<void> {
    const map = new Map<Uid, string>();
    await forEachUser((u) => {
      const uid = validate.uid(u.uid ?? "");
      if (noBackup(u)) return;
      const key = keyOf(u);
      if (key) map.set(uid, key);
    });
    await keys.replaceAll(map);
  }

  /**
   * The first reconcile, after the actor is ready: authorized_keys on disk
   * still holds what the last run wrote (sshd keeps using it), so a start
   * need not wait for 100,000 users to be listed and their lines rebuilt.
   * It runs under the "events" lock, so an event that arrives first waits
   * for it and is never applied to an empty key map (which would rewrite the
   * file without every other user). A registry that does not answer is asked
   * again, with a pause that grows to 5 s, until it does or the actor stops.
   */
  async function reloadUntilDone(stopped: () => boolean): Promise<void> {
    let pause = REGISTRY_RETRY_MS;
    for (let told = false; !stopped(); ) {
      try {
        await reload();
        log.info(`authorized_keys reconciled with the registry: ${keys.size} keys${told ? " (the registry answered at last)" : ""}`);
        return;
      } catch (err) {
        const transient = err instanceof SugarError && (err.code === "unavailable" || err.code === "timeout");
        if (!told) (transient ? log.info : log.error).call(log, `waiting for the registry to reconcile authorized_keys (${describe(err)})`);
        told = true;
        await new Promise((r) => setTimeout(r, pause));
        pause = Math.min(pause * 2, 5000);
      }
    }
  }

  /** An event applied to the directories and the key map; `written` settles once authorized_keys holds it. */
  interface Applied {
    written: Promise<void>;
  }

  async function onRegistered(r: reg.Registered.$Properties): Promise<Applied> {
    const user = r.user;
    if (!user) throw new SugarError("invalid_input", "registered event without a user");
    const uid = validate.uid(user.uid ?? "");
    if (noBackup(user)) return { written: Promise.resolve() };
    const key = keyOf(user);
    const replaced = r.replacedUid ? validate.uid(r.replacedUid) : undefined;
    const dir = clientDir(root, uid);
    await locks.run([uidLock(uid), ...(replaced ? [uidLock(replaced)] : [])], async () => {
      let moved = false;
      if (replaced) {
        admission.release(replaced);
        moved = await moveClientDir(clientDir(root, replaced), dir, log);
        if (moved) {
          await state.move(replaced, uid);
          log.info(`${replaced} was replaced by ${uid} (same machine): its backups moved to the new uid's directory`);
        }
      }
      // The directory is made when it is first needed (admission, the forced command), not here: a
      // burst of registrations costs no directory creations. One that is there already may hold a
      // backup (a reinstalled laptop's, a key registering again after its removal).
      // (A synchronous stat: most registrations find no directory, and an async lstat's ENOENT
      // error, built and thrown per registration, cost more than the stat itself.)
      if ((r.created || moved) && statSync(dir, { throwIfNoEntry: false }) !== undefined && (await hasBackup(dir))) {
        log.info(`${uid} registered and a backup exists: pending restore`);
        await pending.set(uid, true);
      }
    });
    const written = keys.update((m) => {
      if (replaced) m.delete(replaced);
      if (key) m.set(uid, key);
    });
    return { written };
  }

  async function onRemoved(r: reg.Removed.$Properties): Promise<Applied> {
    const uid = validate.uid(r.user?.uid ?? "");
    admission.release(uid);
    await locks.run([uidLock(uid)], () => pending.set(uid, false));
    const written = keys.update((m) => m.delete(uid));
    log.info(`${uid} removed: key line dropped, its backup directory kept`);
    return { written };
  }

  /** A re-flash approved: the new uid restores the old uid's last snapshot (the old uid's `removed` came first). */
  async function onReflashApproved(c: reg.Claim.$Properties): Promise<Applied> {
    const newUid = validate.uid(c.newUid ?? "");
    const oldUid = validate.uid(c.oldUid ?? "");
    await locks.run([uidLock(newUid), uidLock(oldUid)], async () => {
      const adopted = await adoptLatest(clientDir(root, oldUid), clientDir(root, newUid), log);
      if (!adopted) {
        log.info(`re-flash of ${c.machineSn} approved: ${oldUid} has no snapshot for ${newUid} to restore`);
        return;
      }
      log.info(`re-flash of ${c.machineSn} approved: ${newUid} restores ${oldUid}'s ${adopted.name} (${adopted.files} files): pending restore`);
      await pending.set(newUid, true);
    });
    return { written: Promise.resolve() };
  }

  async function onSpool(ev: SpoolEvent): Promise<void> {
    publishBackup({ uid: ev.uid, phase: "finished", direction: ev.direction, exit: ev.exit });
    if (ev.direction === "backup" && ev.exit === 0) {
      const day = ev.finished.slice(0, 10);
      if (day === new Date().toISOString().slice(0, 10)) {
        if (today.day !== day) Object.assign(today, { day, count: 0 });
        today.count++;
      }
    }
    await locks.run([uidLock(ev.uid)], async () => {
      if (ev.direction === "backup") admission.release(ev.uid);
      if (ev.exit !== 0) {
        log.info(`${ev.direction} of ${ev.uid} failed (rsync exit ${ev.exit})`);
        return;
      }
      if (ev.direction === "backup") {
        const snap = await makeSnapshot(clientDir(root, ev.uid), new Date(ev.finished), config["backup-keep"], log);
        await state.update(ev.uid, { last_backup: ev.finished });
        log.info(`backup of ${ev.uid} done${snap ? `: snapshot ${snap.name} (${snap.files} files)${snap.removed.length ? `, pruned ${snap.removed.join(", ")}` : ""}` : " (no datastore-current, no snapshot)"}`);
      } else {
        await state.update(ev.uid, { last_restore: ev.finished });
        log.info(`restore of ${ev.uid} done`);
      }
      await pending.set(ev.uid, false);
    });
  }

  async function admit(req: pb.AdmitRequest.$Properties): Promise<pb.Reply.$Properties> {
    let user: reg.User.$Properties | null | undefined;
    if (req.uid) {
      const asked = validate.uid(req.uid);
      try {
        user = (await registry.call("lookup", { uid: asked })).user;
      } catch (err) {
        if (err instanceof SugarError && err.code === "not_registered") throw new SugarError("not_registered", `uid ${asked} is not registered`);
        throw err;
      }
      if (!user) throw new SugarError("not_registered", `uid ${asked} is not registered`);
    } else if (req.machineSn) {
      try {
        user = (await registry.call("lookup", { machineSn: req.machineSn })).user;
      } catch (err) {
        if (err instanceof SugarError && err.code === "not_registered") throw new SugarError("forbidden", `no user is registered from machine ${req.machineSn}`);
        throw err;
      }
      // A machine the server knows (a lease, an import) with no user registered from it.
      if (!user) throw new SugarError("forbidden", `no user is registered from machine ${req.machineSn}`);
    } else {
      throw new SugarError("invalid_input", "admit needs a uid or a machine_sn");
    }
    const uid: Uid = validate.uid(user.uid ?? "");
    if (noBackup(user)) throw new SugarError("forbidden", `${uid} is a browser: a browser has no Journal backup`);
    const d = await admission.decide(uid);
    ctx.metrics?.backupAdmissions.inc({ result: d.accepted ? "accepted" : d.reason.startsWith("disk full") ? "disk" : d.reason.startsWith("server busy") ? "load" : "slots" });
    if (!d.accepted) {
      log.info(`backup of ${uid} refused: ${d.reason}`);
      return { admit: { accepted: false, reason: d.reason, retryAfter: d.retryAfter, backupUrl } };
    }
    await ensureClientDir(clientDir(root, uid));
    log.debug(`backup of ${uid} accepted (${admission.inUse()}/${config["backup-slots"]} slots)`);
    publishBackup({ uid, phase: "started" });
    return { admit: { accepted: true, backupUrl } };
  }

  async function info(uid: Uid, nickname: string): Promise<pb.BackupInfo.$Properties> {
    const dir = clientDir(root, uid);
    const [use, snaps, st] = await Promise.all([usage(dir), listSnapshots(dir), state.get(uid)]);
    return {
      uid,
      nickname,
      sizeBytes: use.bytes,
      files: use.files,
      lastBackup: st.last_backup,
      lastRestore: st.last_restore,
      pendingRestore: pending.has(uid),
      snapshots: snaps,
      directory: dir,
    };
  }

  async function summary(): Promise<pb.Reply.$Properties> {
    const free = await probes.disk(backupsDir(root));
    const day = new Date().toISOString().slice(0, 10);
    return {
      summary: {
        running: admission.inUse(),
        slots: config["backup-slots"],
        today: today.day === day ? today.count : 0,
        diskFree: free.blocks,
        inodesFree: free.inodes ?? -1,
        runningUids: admission.holders(),
      },
    };
  }

  async function list(): Promise<pb.Reply.$Properties> {
    const out: pb.BackupInfo.$Properties[] = [];
    // Every user with a key, whether its directory is made yet (at its first backup) or not.
    await forEachUser(async (u) => {
      if (noBackup(u)) return;
      out.push(await info(validate.uid(u.uid ?? ""), u.nickname ?? ""));
    });
    return { list: { backups: out } };
  }

  async function show(req: pb.ShowRequest.$Properties): Promise<pb.Reply.$Properties> {
    const uid = validate.uid(req.uid ?? "");
    try {
      const u = (await registry.call("lookup", { uid })).user;
      return { show: { backup: await info(uid, u?.nickname ?? "") } };
    } catch (err) {
      // A removed user's directory stays: the administrator can still look at it.
      if (err instanceof SugarError && err.code === "not_registered" && (await exists(clientDir(root, uid)))) {
        return { show: { backup: await info(uid, "") } };
      }
      throw err;
    }
  }

  // Both kinds go through one queue, in the order they arrive. The queue holds
  // the directory work and the change to the key map, not the file rewrite
  // that follows: rewrites coalesce, so a burst of registrations costs a few
  // rewrites instead of one (of every line) each.
  const onEvent = async (ev: reg.Event): Promise<void> => {
    const applied = await locks.run(["events"], () =>
      match(ev.event)
        .with("registered", () => onRegistered(ev.registered!))
        .with("removed", () => onRemoved(ev.removed!))
        .with("reflashApproved", () => onReflashApproved(ev.reflashApproved!))
        .with("reflashPending", "reflashRejected", async (): Promise<Applied> => ({ written: Promise.resolve() }))
        .with(undefined, async (): Promise<Applied> => {
          log.warn("registry event without a kind");
          return { written: Promise.resolve() };
        })
        .exhaustive(),
    );
    await applied.written;
  };
  const events = [
    subscribeMessages(bus, subjects.event(site, "registered"), reg.Event, onEvent, log),
    subscribeMessages(bus, subjects.event(site, "removed"), reg.Event, onEvent, log),
    subscribeMessages(bus, subjects.event(site, "reflash_approved"), reg.Event, onEvent, log),
  ];
  const spool = new SpoolWatcher(spoolDir(root), onSpool, log);
  let sub: Subscription;
  let stopping = false;
  const reconciled = locks.run(["events"], () => reloadUntilDone(() => stopping)).then(() => {
    if (!stopping) keys.watch();
  });
  try {
    await spool.start();
    sub = serveOps(
      bus,
      subjects.actorAll(site, "backup"),
      pb.Request,
      pb.Reply,
      (req) =>
        match(req.op)
          .with("admit", () => admit(req.admit!))
          .with("list", () => list())
          .with("show", () => show(req.show!))
          .with("summary", () => summary())
          .with("status", () => {
            const uid = validate.uid(req.status?.uid ?? "");
            return { status: { pendingRestore: pending.has(uid), backupUrl } };
          })
          .exhaustive(),
      log,
      { queue: "backup" },
    );
  } catch (err) {
    stopping = true;
    await reconciled;
    await Promise.all(events.map((e) => e.drain()));
    await spool.stop();
    await keys.close();
    await locks.idle();
    throw err;
  }
  const timer = setInterval(() => {
    locks.run(["events"], reload).catch((err: unknown) => log.error(`periodic reload from the registry: ${describe(err)}`));
    spool.kick();
  }, RESYNC_MS);
  timer.unref();
  log.info("ready; authorized_keys is reconciled with the registry in the background");
  log.debug(`keys in ${keys.path}, backups in ${backupsDir(root)}`);

  return {
    name: "backup",
    forcedCommand,
    reconciled,
    afterReady: reconciled.catch(() => undefined),
    stop: once(async () => {
      stopping = true;
      clearInterval(timer);
      await reconciled;
      await sub.drain();
      // Closing first cuts short a pause between rewrites that the events draining would wait for.
      const keysClosed = keys.close();
      await Promise.all(events.map((e) => e.drain()));
      await spool.stop();
      await keysClosed;
      await locks.idle();
    }),
  };
}
