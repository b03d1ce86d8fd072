/**
 * What a district's schools and its district actor agree on
 * (schemas/district.proto): the two digests, and what makes a directory
 * entry trustworthy. Both sides compute a digest here and nowhere else, so
 * "in step" means the same thing on either end of the bus.
 */
import { createHash } from "node:crypto";
import { sugar } from "../schemas/gen/messages.js";
import { RESERVED_SITES } from "./bus/subjects.js";
import { isBackupUrl } from "./config.js";
import { SugarError } from "./errors.js";
import * as validate from "./validate.js";
import type { MachineSn, Uid } from "./validate.js";

/** What a directory digest covers of an entry (a district.Entry, or a school's user made into one). */
export interface DigestEntry {
  uid?: string | null;
  pubkey?: string | null;
  backupUrl?: string | null;
}

const sha256 = (lines: string[]) => createHash("sha256").update(lines.join("\n"), "utf8").digest("hex");

/**
 * A site's directory digest: SHA-256 hex over its entries' lines
 * "uid pubkey backup_url", sorted, joined by "\n" (no final newline).
 * No entries: the SHA-256 of the empty string.
 */
export function directoryDigest(entries: Iterable<DigestEntry>): string {
  const lines: string[] = [];
  for (const e of entries) lines.push(`${e.uid ?? ""} ${e.pubkey ?? ""} ${e.backupUrl ?? ""}`);
  return sha256(lines.sort());
}

/** The district stolen list's digest: SHA-256 hex over the sorted serial numbers joined by "\n". */
export function stolenDigest(sns: Iterable<string>): string {
  return sha256([...new Set(sns)].sort());
}

/** A district stolen mark, every field checked (checkMark). */
export interface StolenMark {
  machineSn: MachineSn;
  /** false = cleared (the district actors keep cleared marks so a peer learns of the removal). */
  stolen: boolean;
  /** ISO-8601 UTC with milliseconds, set by the district actor. */
  at: string;
  /** The site that marked it. */
  by: string;
}

const ISO_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const SITE_TOKEN = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/** A mark from the wire (an event, a list, a file): its fields checked, or invalid_input. */
export function checkMark(m: { machineSn?: string | null; stolen?: boolean | null; at?: string | null; by?: string | null }): StolenMark {
  const machineSn = validate.machineSn(m.machineSn ?? "");
  const at = m.at ?? "";
  if (!ISO_MS.test(at) || Number.isNaN(Date.parse(at))) throw new SugarError("invalid_input", `mark for ${machineSn}: at ${JSON.stringify(at.slice(0, 40))} is not an ISO-8601 UTC time with milliseconds`);
  const by = m.by ?? "";
  if (!SITE_TOKEN.test(by)) throw new SugarError("invalid_input", `mark for ${machineSn}: by ${JSON.stringify(by.slice(0, 40))} is not a site`);
  return { machineSn, stolen: !!m.stolen, at, by };
}

/**
 * The district's merge rule, the same at every district actor and school:
 * `a` wins over `b` when it is later, then (same time) when its site is the
 * larger, then (same site) when it is stolen and `b` cleared.
 */
export function markWins(a: Pick<StolenMark, "stolen" | "at" | "by">, b: Pick<StolenMark, "stolen" | "at" | "by">): boolean {
  if (a.at !== b.at) return a.at > b.at;
  if (a.by !== b.by) return a.by > b.by;
  return a.stolen && !b.stolen;
}

/** A site name as config `site` allows it: a subject token that is not reserved. */
export function isSiteName(v: string): boolean {
  return /^[a-z0-9][a-z0-9_-]{0,62}$/.test(v) && !RESERVED_SITES.has(v);
}

/** A directory entry whose every field was checked (directoryEntry). */
export interface DirectoryEntry {
  uid: Uid;
  site: string;
  nickname: string;
  /** Canonical "<type> <base64>" whose SHA-1 uid is `uid`; "" for a browser user. */
  pubkey: string;
  backupUrl: string;
  machineSn: MachineSn | "";
  updated: string;
  removed: boolean;
}

const bad = (why: string) => new SugarError("invalid_input", `directory entry: ${why}`);
const UPDATED = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z)?$/;

/**
 * A directory entry from the bus, checked before anything is built on it:
 * uid, site, backup URL, nickname, serial number and time as this server
 * would have made them, and a key (if any) that is canonical and whose uid
 * is the entry's. A removal (`removed`) needs only a good uid and site, and
 * comes back with nothing else.
 * Throws SugarError `invalid_input` naming the bad field.
 */
export function directoryEntry(e: sugar.district.Entry.$Properties): DirectoryEntry {
  const uid = validate.uid(e.uid ?? "");
  const site = e.site ?? "";
  if (!isSiteName(site)) throw bad(`site ${JSON.stringify(site.slice(0, 70))} is not a site name`);
  if (e.removed) return { uid, site, nickname: "", pubkey: "", backupUrl: "", machineSn: "", updated: "", removed: true };
  const pubkey = e.pubkey ?? "";
  const backupUrl = e.backupUrl ?? "";
  const sn = e.machineSn ?? "";
  const updated = e.updated ?? "";
  if (pubkey !== "") {
    const key = validate.publicKey(pubkey);
    if (key.line !== pubkey) throw bad("pubkey is not in canonical form");
    if (key.uid !== uid) throw bad(`pubkey does not belong to uid ${uid}`);
  }
  if (!isBackupUrl(backupUrl)) throw bad(`backup_url ${JSON.stringify(backupUrl.slice(0, 300))} is not a backup URL`);
  const nickname = validate.nickname(e.nickname ?? "");
  if (sn !== "" && !validate.isMachineSn(sn)) throw bad("machine_sn is not a serial number");
  if (!UPDATED.test(updated)) throw bad("updated is not an ISO-8601 UTC time");
  return { uid, site, nickname, pubkey, backupUrl, machineSn: sn as MachineSn | "", updated, removed: false };
}
