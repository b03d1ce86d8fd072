/**
 * Registration, and the rules that keep it from taking over a user.
 *
 * A public key is public (the XMPP server and every collaboration peer has
 * it), so registering with it proves nothing:
 * - the first registration of a key makes its user and gets a credential
 *   from the auth actor (what /client/login takes later);
 * - registering a known key again changes nothing stored, unless the
 *   request carries a login of that very uid (token headers, `proof`), and
 *   even then it cannot move to a serial number another user holds;
 * - a new key with the serial number of a registered user is a re-flash
 *   (a reinstalled XO) or a stranger who read the sticker. Option `reflash`
 *   decides: `approve` (default) registers the new key as its own user with
 *   an empty backup directory and files a claim that an admin settles (or
 *   that a login of the OLD uid settles at once); `allow` is the seed's
 *   takeover (the new key replaces the old user and inherits its backups);
 *   `refuse` refuses until an admin removes the old user;
 * - Sugar's fallback serial number, shared by machines without one, is
 *   never a claim;
 * - under identity-model = hardware the serial number must be known, and
 *   when the server knows the machine's UUID the registration must carry
 *   exactly that UUID, whatever `reflash` says.
 *
 * A device without Sugar (a phone's browser, or a client utility on it)
 * registers with `register_device`: a user of kind `browser`, with no key and
 * so no Journal backup. With a device_id (the phone's MAC address) its uid is
 * derived from it, and registering the same device again is like registering
 * a known key: nothing changes (a MAC address is no secret either); without
 * one the uid is random, a new user each time.
 *
 * Under first-admin = first-registrant the very first user, of either kind,
 * is made admin (first-admin.ts).
 *
 * With option `district`, a key not registered here that the district's
 * directory has at home at another school (the same key: roaming.ts) is
 * answered with its home's user and backup URL, `home` set, and nothing is
 * stored here: no user, no credential (backups and logins stay at home).
 */
import { createHash, randomBytes } from "node:crypto";
import { sugar } from "../../schemas/gen/messages.js";
import type { AuthClient } from "../../src/codec.js";
import { describe } from "../../src/errors.js";
import { backupUrl, type Config } from "../../src/config.js";
import { SugarError } from "../../src/errors.js";
import type { Logger } from "../../src/log.js";
import type { KeyedMutex } from "../../src/mutex.js";
import * as validate from "../../src/validate.js";
import type { DeviceId, MachineSn, Uid } from "../../src/validate.js";
import type { DirectoryEntry } from "../../src/district.js";
import type { FirstAdmin } from "./first-admin.js";
import { toClaim, toUser, type RegistryEvent } from "./messages.js";
import type { ClaimRecord, RegistryStore, UserRecord } from "./store.js";

import pb = sugar.registry;

/** What Sugar sends when a machine has no serial number of its own: many machines share it. */
export const FALLBACK_SN = "SHF00000000";

export interface RegisterDeps {
  store: RegistryStore;
  locks: KeyedMutex;
  config: Config;
  log: Logger;
  auth: AuthClient;
  publish: (kind: RegistryEvent, event: pb.Event.$Properties) => void;
  /** Settles a claim in favour of the new uid (claims.ts); called under the claim's locks. */
  approveNow: (claim: ClaimRecord) => Promise<void>;
  firstAdmin: FirstAdmin;
  /** Option district: where a key not registered here is at home (absent: no district, nothing asked). */
  roaming?: { homeOfKey(key: validate.PublicKey): Promise<DirectoryEntry | undefined> };
}

export interface Registration {
  register(req: pb.RegisterRequest.$Properties): Promise<pb.Reply.$Properties>;
  registerDevice(req: pb.RegisterDeviceRequest.$Properties): Promise<pb.Reply.$Properties>;
}

/** The uid of a device registered with its device_id: the same device always gets the same uid. */
export const deviceUid = (device: DeviceId): Uid => createHash("sha1").update(`sugar-device:${device}`, "utf8").digest("hex") as Uid;

const now = () => new Date().toISOString();

export function registration(deps: RegisterDeps): Registration {
  const { store, locks, config, log, auth, publish, firstAdmin } = deps;
  const hardware = config["identity-model"] === "hardware";

  /** Whose login a request's token headers are, and whether the key itself proved it; bad headers refuse the request. */
  async function provenBy(proof: pb.Proof.$Properties | null | undefined): Promise<{ uid: Uid; byKey: boolean } | undefined> {
    if (!proof || (!proof.auth && !proof.uid)) return undefined;
    const r = await auth.call("verify", { uid: proof.uid ?? "", time: proof.time ?? "", lifetime: proof.lifetime ?? "", auth: proof.auth ?? "" });
    return { uid: validate.uid(r.uid ?? ""), byKey: r.proof === "key" };
  }

  /** A credential for a key's first registration; registration still succeeds when the auth actor cannot answer. */
  async function credentialFor(uid: Uid, sn: MachineSn | ""): Promise<string> {
    try {
      return (await auth.call("issue", { uid, machineSn: sn, initial: true })).credential ?? "";
    } catch (err) {
      log.warn(`registered ${uid} without a credential: auth: ${describe(err)}`);
      return "";
    }
  }

  const reply = (user: UserRecord, extra: Partial<pb.RegisterReply.$Properties>): pb.Reply.$Properties => ({
    register: { user: toUser(user), jabberServer: config["jabber-url"], backupUrl: backupUrl(config), backupPath: config["backup-path"], ...(deps.roaming ? { home: config.site } : {}), ...extra },
  });

  /** The first user ever, under first-admin = first-registrant (the caller holds `keys`). */
  function adminIfFirst(keys: readonly string[], uid: Uid): boolean {
    if (!firstAdmin.isFirst(keys)) return false;
    log.info(`${uid} is the first user registered: it is this server's admin (first-admin = first-registrant)`);
    return true;
  }

  async function register(req: pb.RegisterRequest.$Properties): Promise<pb.Reply.$Properties> {
    const key = validate.publicKey(req.pubkey ?? "");
    const nickname = validate.nickname(req.nickname ?? "");
    const sn = req.machineSn ? validate.machineSn(req.machineSn) : "";
    const uuid = req.machineUuid ? validate.machineUuid(req.machineUuid) : "";
    if (hardware && !sn) throw new SugarError("invalid_input", "machine_sn is required (identity-model = hardware)");
    if (deps.roaming && !store.user(key.uid)) {
      const home = await deps.roaming.homeOfKey(key);
      if (home) return roamer(home);
    }
    const proven = await provenBy(req.proof);
    const first = firstAdmin.lockKeys();
    return locks.run([key.uid, ...(sn ? [`sn:${sn}`] : []), ...first], async () => {
      if (hardware) {
        const m = sn ? store.machine(sn) : undefined;
        if (!m) throw new SugarError("unknown_machine", `machine_sn ${sn} is not known to this server (identity-model = hardware)`);
        if (m.machine_uuid && m.machine_uuid.toLowerCase() !== uuid.toLowerCase()) {
          throw new SugarError("unknown_machine", `machine_uuid ${uuid ? "does not match" : "is missing; it must match"} the UUID this server knows for ${sn} (identity-model = hardware)`);
        }
      }
      const existing = store.user(key.uid);
      if (existing) return reregister(existing, proven?.uid === key.uid, nickname, sn, uuid);

      const owner = sn && sn !== FALLBACK_SN ? store.userBySn(sn) : undefined;
      const reflash = owner ? config.reflash : undefined;
      if (reflash === "refuse") {
        throw new SugarError("conflict", `serial number ${sn} belongs to a registered user; an admin must remove that user first (sugar-server users remove ${owner!.uid})`);
      }
      const t = now();
      const claimed = reflash === "approve" ? owner : undefined;
      const replaced = reflash === "allow" ? owner : undefined;
      // A claimant does not take the serial number until the claim is approved: the old user keeps it.
      const user: UserRecord = {
        uid: key.uid,
        nickname,
        machine_sn: claimed ? "" : sn,
        machine_uuid: claimed ? "" : uuid,
        pubkey: key.line,
        admin: adminIfFirst(first, key.uid),
        kind: "",
        device_id: "",
        created: t,
        updated: t,
      };
      // The credential writes nothing, so it is asked for while the registration is made durable.
      const credential = credentialFor(key.uid, user.machine_sn);
      await store.putUser(user);
      if (replaced) await store.removeUser(replaced.uid);
      const machine = sn && !claimed ? store.machine(sn) : undefined;
      if (machine && machine.uid !== key.uid) await store.putMachine({ ...machine, uid: key.uid, updated: t });
      log.info(`registered ${key.uid} (${JSON.stringify(nickname)}${sn ? `, ${sn}` : ""})${replaced ? `, replacing ${replaced.uid} (reflash = allow)` : ""}`);
      publish("registered", { registered: { user: toUser(user), replacedUid: replaced?.uid ?? "", created: true } });

      let approved = false;
      if (claimed) {
        const claim: ClaimRecord = { new_uid: key.uid, old_uid: claimed.uid, machine_sn: sn as MachineSn, new_nickname: nickname, old_nickname: claimed.nickname, created: t };
        if (proven?.uid === claimed.uid && proven.byKey) {
          // The child kept owner.key: a login the OLD key proved (an SSHSIG, not a
          // credential, which a first registration hands to whoever registers a
          // public key) settles the claim. (The serial number's lock, held here,
          // is the one every claim of it takes.)
          await deps.approveNow(claim);
          approved = true;
        } else {
          await store.putClaim(claim);
          log.info(`re-flash claim: ${key.uid} registered with ${sn}, which belongs to ${claimed.uid}; an admin approves or rejects it (sugar-server users pending)`);
          publish("reflash_pending", { reflashPending: toClaim(claim) });
        }
      }
      const stored = store.user(key.uid)!;
      return reply(stored, {
        created: true,
        replacedUid: replaced?.uid ?? "",
        claimedUid: claimed?.uid ?? "",
        approved,
        credential: await credential,
      });
    });
  }

  /** A key at home at another school: its home's user and backup URL, nothing stored here. */
  function roamer(home: DirectoryEntry): pb.Reply.$Properties {
    log.info(`${home.uid} is at home at ${home.site}: answered with its home, nothing stored here`);
    const user: pb.User.$Properties = { uid: home.uid, nickname: home.nickname, machineSn: home.machineSn, machineUuid: "", pubkey: home.pubkey, admin: false, kind: "", deviceId: "", created: "", updated: home.updated };
    const path = home.backupUrl.slice(home.backupUrl.indexOf(":") + 1);
    return { register: { user, jabberServer: config["jabber-url"], backupUrl: home.backupUrl, backupPath: path, created: false, home: home.site } };
  }

  async function registerDevice(req: pb.RegisterDeviceRequest.$Properties): Promise<pb.Reply.$Properties> {
    const nickname = validate.nickname(req.nickname ?? "");
    const device = validate.deviceId(req.deviceId ?? "");
    const uid = device ? deviceUid(device) : validate.uid(randomBytes(20).toString("hex"));
    // No Journal backup for a user without a key: the reply names no backup URL.
    const answer = (user: UserRecord, extra: Partial<pb.RegisterReply.$Properties>): pb.Reply.$Properties => ({
      registerDevice: { user: toUser(user), jabberServer: config["jabber-url"], backupUrl: "", backupPath: "", ...extra },
    });
    const first = firstAdmin.lockKeys();
    return locks.run([uid, ...first], async () => {
      const existing = store.user(uid);
      if (existing) {
        // Only the same device_id derives the same uid (a random one never repeats): it registered before.
        if (existing.kind !== "browser" || existing.device_id !== device) throw new SugarError("conflict", `uid ${uid} is already registered to another user`);
        return answer(existing, { created: false });
      }
      const t = now();
      const user: UserRecord = {
        uid,
        nickname,
        machine_sn: "",
        machine_uuid: "",
        pubkey: "",
        admin: adminIfFirst(first, uid),
        kind: "browser",
        device_id: device,
        created: t,
        updated: t,
      };
      const credential = credentialFor(uid, "");
      await store.putUser(user);
      log.info(`registered ${uid} (${JSON.stringify(nickname)}, a browser${device ? ` on ${device}` : ""})`);
      publish("registered", { registered: { user: toUser(user), replacedUid: "", created: true } });
      return answer(user, { created: true, credential: await credential });
    });
  }

  return { register, registerDevice };

  /** A known key again: the record changes only for a request that proves it is that user. */
  async function reregister(existing: UserRecord, proven: boolean, nickname: string, sn: MachineSn | "", uuid: string): Promise<pb.Reply.$Properties> {
    if (!proven) return reply(existing, { created: false });
    // Proving the key proves nothing about a serial number: moving onto one another user holds
    // would skip the re-flash rules (and a claimant would take it before any approval).
    const holder = sn && sn !== existing.machine_sn && sn !== FALLBACK_SN ? store.userBySn(sn) : undefined;
    if (holder && holder.uid !== existing.uid) {
      throw new SugarError("conflict", `serial number ${sn} belongs to another registered user (${holder.uid}); registering again cannot move this key to it (an admin settles a re-flash claim, or removes that user first)`);
    }
    const user: UserRecord = {
      ...existing,
      nickname,
      machine_sn: sn || existing.machine_sn,
      machine_uuid: (uuid as UserRecord["machine_uuid"]) || existing.machine_uuid,
      updated: now(),
    };
    const changed = (["nickname", "machine_sn", "machine_uuid"] as const).some((k) => existing[k] !== user[k]);
    if (!changed) return reply(existing, { created: false });
    await store.putUser(user);
    log.info(`re-registered ${user.uid} (${JSON.stringify(nickname)}${user.machine_sn ? `, ${user.machine_sn}` : ""})`);
    publish("registered", { registered: { user: toUser(user), replacedUid: "", created: false } });
    return reply(user, { created: false });
  }
}
