/** The registry's records as bus messages, and the events it publishes. */
import { sugar } from "../../schemas/gen/messages.js";
import type { Bus } from "../../src/bus/types.js";
import { subjects } from "../../src/bus/subjects.js";
import type { ClaimRecord, MachineRecord, UserRecord } from "./store.js";

import pb = sugar.registry;

export const toUser = (u: UserRecord): pb.User.$Properties => ({
  uid: u.uid,
  nickname: u.nickname,
  machineSn: u.machine_sn,
  machineUuid: u.machine_uuid,
  pubkey: u.pubkey,
  admin: u.admin,
  kind: u.kind,
  deviceId: u.device_id,
  created: u.created,
  updated: u.updated,
});

export const toMachine = (m: MachineRecord): pb.Machine.$Properties => ({
  machineSn: m.machine_sn,
  machineUuid: m.machine_uuid,
  uid: m.uid,
  source: m.source,
  created: m.created,
  updated: m.updated,
});

export const toClaim = (c: ClaimRecord): pb.Claim.$Properties => ({
  newUid: c.new_uid,
  oldUid: c.old_uid,
  machineSn: c.machine_sn,
  newNickname: c.new_nickname,
  oldNickname: c.old_nickname,
  created: c.created,
});

export type RegistryEvent = "registered" | "removed" | "reflash_pending" | "reflash_approved" | "reflash_rejected";

/** Publishes one registry event on `sugar.<site>.events.<kind>`; the Event's case is the kind. */
export function publisher(bus: Bus, site: string): (kind: RegistryEvent, event: pb.Event.$Properties) => void {
  return (kind, event) => bus.publish(subjects.event(site, kind), pb.Event.encode(event).finish());
}
