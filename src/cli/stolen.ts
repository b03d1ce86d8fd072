/**
 * `sugar-server stolen add SN | remove SN | list`: this school's stolen list
 * (the lease actor's), and with `--district` the district's: a mark sent to
 * `sugar.district.from.<site>.stolen`, which the hub routes to the district
 * only from schools allowed to publish district marks. It needs no lease
 * actor (it works on the keyring host too). `list` shows every mark with
 * where it comes from: this school's list, or the district's (who marked it,
 * when); `list --district` asks the district for its list.
 */
import type { sugar } from "../../schemas/gen/messages.js";
import type { DistrictClient, DistrictFromClient, LeaseClient } from "../codec.js";
import { fetchStolenList, type StolenList } from "../district-pages.js";
import { SugarError } from "../errors.js";
import { fetchLeaseStolenList } from "../lease-pages.js";
import * as validate from "../validate.js";

export const STOLEN_USAGE = "usage: sugar-server stolen add SN [--district] | remove SN [--district] | list [--district]\n";

export interface StolenIo {
  out(text: string): void;
  err(text: string): void;
}

/** Who answers what: the lease actor (this school's list), the district (its list, and marks as this site). */
export interface StolenClients {
  lease: LeaseClient;
  district: DistrictClient;
  districtFrom: DistrictFromClient;
  site: string;
}

type Entry = sugar.lease.StolenEntry.$Properties;

/** No responders or no answer in time: the district (or the link to it) is down. */
const UNREACHABLE: ReadonlySet<string> = new Set(["unavailable", "timeout"]);
const districtDown = (code: string) =>
  `the district is not reachable (${code}): is the keyring host's district actor running (sugar-server run keyring district), and this server on the district's NATS (option nats) with its link to the hub up?`;

const describeEntry = (e: Entry) => (e.source === "district" ? `district by ${e.by} at ${e.at}` : "local");

/** Why a district mark got no answer: the district is down, or it is up and the hub does not route this school's marks. */
async function whyNoMark(err: SugarError, c: StolenClients): Promise<string> {
  if (err.code === "timeout") return `the district did not answer the mark in time (${err.message}): is the keyring host's district actor running and this school's link to the hub up?`;
  try {
    await c.district.call("stolenList", {});
  } catch (listErr) {
    const e = listErr instanceof SugarError ? listErr : new SugarError("internal", String(listErr));
    if (UNREACHABLE.has(e.code)) return districtDown(e.code);
    throw listErr;
  }
  return `this school (site ${c.site}) is not allowed to publish district stolen marks: the district answers, but the hub does not route sugar.district.from.${c.site}.stolen to it. Ask the district's administrator, or mark it on this school's list (without --district)`;
}

async function districtMark(sn: validate.MachineSn, stolen: boolean, c: StolenClients, io: StolenIo): Promise<number> {
  let r: sugar.district.MarkReply.$Properties;
  try {
    r = await c.districtFrom.call("stolen", { machineSn: sn, stolen });
  } catch (err) {
    if (!(err instanceof SugarError) || !UNREACHABLE.has(err.code)) throw err;
    io.err(`sugar-server: ${await whyNoMark(err, c)}\n`);
    return 1;
  }
  const m = r.mark;
  const by = m?.by ? ` (by ${m.by} at ${m.at})` : "";
  if (stolen) io.out(`${sn} ${r.changed ? "added to" : "already on"} the district's stolen list${by}: every school of the district answers STOLEN\n`);
  else io.out(`${sn} ${r.changed ? "removed from" : "was not on"} the district's stolen list${r.changed ? by : ""}\n`);
  return 0;
}

/** The district's mark in force on sn, if any: what `show` says (not_found: the lease actor knows nothing of sn, so no mark either). */
async function districtMarkOn(lease: LeaseClient, sn: validate.MachineSn): Promise<Entry | undefined> {
  try {
    return (await lease.call("show", { machineSn: sn })).districtMark ?? undefined;
  } catch (err) {
    if (err instanceof SugarError && err.code === "not_found") return undefined;
    throw err;
  }
}

async function localMark(sn: validate.MachineSn, stolen: boolean, c: StolenClients, io: StolenIo): Promise<number> {
  const lease = c.lease;
  const r = await lease.call("stolen", { machineSn: sn, stolen });
  io.out(`${sn} ${stolen ? (r.changed ? "added to" : "already on") : r.changed ? "removed from" : "was not on"} the stolen list\n`);
  if (!stolen) {
    // The district's mark is apart from this school's: removing ours leaves it in force.
    const d = await districtMarkOn(lease, sn);
    if (d) io.out(`${sn} is still on the district's stolen list (by ${d.by} at ${d.at}): port 191 still answers STOLEN; only \`sugar-server stolen remove ${sn} --district\` (from a school allowed to publish district marks) clears it\n`);
  }
  return 0;
}

export async function stolenCommand(args: string[], flags: ReadonlySet<string>, c: StolenClients, io: StolenIo): Promise<number> {
  const [sub, sn, ...rest] = args;
  const district = flags.has("district");
  if ((sub === "add" || sub === "remove") && sn && rest.length === 0) {
    const machineSn = validate.typedMachineSn(sn);
    return district ? districtMark(machineSn, sub === "add", c, io) : localMark(machineSn, sub === "add", c, io);
  }
  if (sub === "list" && sn === undefined && district) {
    // The district's own list (also on the keyring host, where no lease actor runs).
    let r: StolenList;
    try {
      r = await fetchStolenList((req) => c.district.call("stolenList", req), {});
    } catch (err) {
      if (!(err instanceof SugarError) || !UNREACHABLE.has(err.code)) throw err;
      io.err(`sugar-server: ${districtDown(err.code)}\n`);
      return 1;
    }
    for (const m of r.marks) if (m.stolen) io.out(`${m.machineSn} district by ${m.by} at ${m.at}\n`);
    return 0;
  }
  if (sub === "list" && sn === undefined) {
    // In pages: with the district's marks the list is more than one bus message holds.
    const r = await fetchLeaseStolenList((req) => c.lease.call("stolenlist", req));
    const entries = r.entries;
    // A lease actor older than the district's list gives serial numbers only.
    if (entries.length === 0) for (const s of r.machineSns) io.out(`${s}\n`);
    for (const e of entries) io.out(`${e.machineSn} ${describeEntry(e)}\n`);
    return 0;
  }
  io.err(STOLEN_USAGE);
  return 2;
}
