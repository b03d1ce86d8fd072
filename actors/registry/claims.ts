/**
 * Settling re-flash claims (register.ts files them). Approving gives the new
 * uid the serial number and retires the old uid (`registered: false`, so its
 * key line goes); the `reflash_approved` event tells the backup actor to make
 * the old user's last snapshot the new uid's restore source. Rejecting drops
 * the claim: the new key stays a user of its own, with its own backups.
 */
import { sugar } from "../../schemas/gen/messages.js";
import { SugarError } from "../../src/errors.js";
import type { Logger } from "../../src/log.js";
import type { KeyedMutex } from "../../src/mutex.js";
import * as validate from "../../src/validate.js";
import { toClaim, toUser, type RegistryEvent } from "./messages.js";
import type { ClaimRecord, RegistryStore } from "./store.js";

import pb = sugar.registry;

export interface ClaimDeps {
  store: RegistryStore;
  locks: KeyedMutex;
  log: Logger;
  publish: (kind: RegistryEvent, event: pb.Event.$Properties) => void;
}

export function claims(deps: ClaimDeps) {
  const { store, locks, log, publish } = deps;

  /** Approves a claim; the caller holds the locks of its serial number (and uids). */
  async function approveNow(claim: ClaimRecord): Promise<void> {
    const t = new Date().toISOString();
    const fresh = store.user(claim.new_uid);
    if (!fresh) throw new SugarError("not_registered", `uid ${claim.new_uid} is not registered any more`);
    const old = store.user(claim.old_uid);
    await store.putUser({ ...fresh, machine_sn: claim.machine_sn, machine_uuid: fresh.machine_uuid || old?.machine_uuid || "", updated: t });
    if (old) {
      await store.removeUser(old.uid);
      publish("removed", { removed: { user: toUser(old) } });
    }
    const machine = store.machine(claim.machine_sn);
    if (machine && machine.uid !== claim.new_uid) await store.putMachine({ ...machine, uid: claim.new_uid, updated: t });
    await store.removeClaim(claim.new_uid);
    log.info(`re-flash of ${claim.machine_sn} approved: ${claim.new_uid} takes over from ${claim.old_uid}, which is retired`);
    publish("reflash_approved", { reflashApproved: toClaim(claim) });
  }

  /** The claim filed for `newUid`, with every lock it needs held while `fn` runs. */
  async function settle(newUid: string, fn: (claim: ClaimRecord) => Promise<void>): Promise<pb.Claim.$Properties> {
    const uid = validate.uid(newUid);
    const first = store.claim(uid);
    if (!first) throw new SugarError("not_found", `no re-flash claim for ${uid} (sugar-server users pending lists them)`);
    return locks.run([first.new_uid, first.old_uid, `sn:${first.machine_sn}`], async () => {
      const claim = store.claim(uid);
      if (!claim) throw new SugarError("not_found", `no re-flash claim for ${uid}`);
      await fn(claim);
      return toClaim(claim);
    });
  }

  return {
    approveNow,
    list: (): pb.Reply.$Properties => ({ claims: { claims: store.listClaims().map(toClaim) } }),
    approve: async (req: pb.SettleRequest.$Properties): Promise<pb.Reply.$Properties> => ({ approve: { claim: await settle(req.newUid ?? "", approveNow) } }),
    reject: async (req: pb.SettleRequest.$Properties): Promise<pb.Reply.$Properties> => ({
      reject: {
        claim: await settle(req.newUid ?? "", async (claim) => {
          await store.removeClaim(claim.new_uid);
          log.info(`re-flash claim of ${claim.new_uid} for ${claim.machine_sn} rejected; ${claim.old_uid} keeps it`);
          publish("reflash_rejected", { reflashRejected: toClaim(claim) });
        }),
      },
    }),
  };
}
