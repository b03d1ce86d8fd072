/**
 * Parsed records: `act01:` leases and `del01:` delegations, syntax only (no
 * signature is checked here). Accepts the text with or without its trailing
 * LF; `line` always has exactly one.
 */
import type { MachineSn, MachineUuid } from "../../src/validate.js";
import { KEY01_HEX_LENGTH, KEY_ID_HEX_LENGTH, LEASE_DISPOSITION, MAX_CHAIN_LINKS, SIGNATURE_HEX_LENGTH } from "./constants.js";
import { fail, show } from "./errors.js";
import { checkHex, checkKey01Hex, checkSn, checkTime, checkUuid, fieldsOf } from "./fields.js";
import type { OlpcTime } from "./time.js";

/** One link of a sig02 chain: `sha256 <key> <EXP> <sig512>`. */
export interface SignatureLink {
  hash: "sha256";
  /** The key field as text: a 64-hex key id (first link only) or a 540-hex key01 key. */
  key: string;
  /** EXP as written (signed as text). */
  expiry: string;
  expiresAt: OlpcTime;
  signature: string;
}

/** A record's signature: `sig01: sha256 <keyid64> <sig512>` (signed directly by a trusted key) or `sig02: <links>` (a chain). */
export type SignatureBlock =
  | { scheme: "sig01"; hash: "sha256"; keyId: string; signature: string }
  | { scheme: "sig02"; links: readonly SignatureLink[] };

/** v1 = sig01; v2 = sig02 with one link; delegated = sig02 root → server key. */
export type LeaseVersion = "v1" | "v2" | "delegated";

/** An `act01:` activation lease line, parsed. */
export interface LeaseLine {
  version: LeaseVersion;
  sn: MachineSn;
  disposition: "K";
  /** EXP as written (signed as text). */
  expiry: string;
  expiresAt: OlpcTime;
  signature: SignatureBlock;
  /** The line as the laptop must receive it: the text with exactly one trailing LF. */
  line: string;
}

/** A `del01:` delegation line, parsed: a root key's permission for the server key to sign leases for one machine. */
export interface DelegationLine {
  sn: MachineSn;
  /** Kept exactly as given: the firmware signs the UUID as stored in mfg-data. */
  uuid: MachineUuid;
  /** The root link: key id (or key) of the delegating root, DELEXP, signature. */
  link: SignatureLink;
  /** `sig02: sha256 <rootid> <DELEXP> <delsig>`: what a delegated lease starts its signature with. */
  sig02: string;
  /** The line with exactly one trailing LF. */
  line: string;
}

function checkHash(what: string, hash: string): void {
  if (hash !== "sha256") throw fail(`${what}: hash ${show(hash)} is not supported; the firmware accepts only sha256`);
}

/** Parses `sha256 <key> <EXP> <sig512>` groups, checking key-field rules per position. */
function parseLinks(what: string, fields: readonly string[]): SignatureLink[] {
  if (fields.length === 0 || fields.length % 4 !== 0) {
    throw fail(`${what}: sig02 must be followed by groups of "sha256 <key> <EXP> <signature>", got ${fields.length} fields`);
  }
  const count = fields.length / 4;
  if (count > MAX_CHAIN_LINKS) throw fail(`${what}: sig02 chain has ${count} links; at most ${MAX_CHAIN_LINKS} are accepted`);
  const links: SignatureLink[] = [];
  for (let i = 0; i < count; i++) {
    const [hash, key, expiry, signature] = fields.slice(i * 4, i * 4 + 4) as [string, string, string, string];
    const n = i + 1;
    checkHash(`${what}: link ${n}`, hash);
    // The first link names a trusted key (by id, or in full); later links carry the delegated key itself.
    if (i === 0) {
      checkHex(`${what}: link ${n} key`, key, [KEY_ID_HEX_LENGTH, KEY01_HEX_LENGTH]);
      if (key.length === KEY01_HEX_LENGTH) checkKey01Hex(`${what}: link ${n} key`, key);
    } else {
      checkKey01Hex(`${what}: link ${n} key`, key);
    }
    const time = checkTime(`${what}: link ${n} expiry`, expiry);
    checkHex(`${what}: link ${n} signature`, signature, [SIGNATURE_HEX_LENGTH]);
    links.push({ hash: "sha256", key, expiry: time.text, expiresAt: time.at, signature });
  }
  return links;
}

/** The signature block that ends a record: its fields from `sig01:` or `sig02:` on. */
export function parseSignatureBlock(what: string, fields: readonly string[]): SignatureBlock {
  const [tag, ...rest] = fields;
  if (tag === "sig01:") {
    if (rest.length !== 3) throw fail(`${what}: sig01 must be "sig01: sha256 <keyid64> <sig512>", got ${rest.length} fields after it`);
    const [hash, keyId, signature] = rest as [string, string, string];
    checkHash(what, hash);
    checkHex(`${what}: sig01 key id`, keyId, [KEY_ID_HEX_LENGTH]);
    checkHex(`${what}: sig01 signature`, signature, [SIGNATURE_HEX_LENGTH]);
    return { scheme: "sig01", hash: "sha256", keyId, signature };
  }
  if (tag === "sig02:") return { scheme: "sig02", links: parseLinks(what, rest) };
  throw fail(`${what}: expected "sig01:" or "sig02:", got ${show(tag ?? "")}`);
}

/** One `act01:` lease line (v1, v2 or delegated), syntax only. */
export function parseLeaseLine(line: string): LeaseLine {
  const what = "lease";
  const fields = fieldsOf(what, line);
  if (fields[0] !== "act01:") {
    throw fail(`${what}: only act01 activation leases are accepted, line starts with ${show(fields[0] ?? "")}`);
  }
  if (fields.length < 5) throw fail(`${what}: act01 line is truncated ("act01: <SN> K <EXP> sig0N: …")`);
  const sn = checkSn(`${what}: SN`, fields[1] as string);
  if (fields[2] !== LEASE_DISPOSITION) {
    throw fail(`${what}: disposition must be "K" for an activation lease, got ${show(fields[2] as string)}`);
  }
  const time = checkTime(`${what}: expiry`, fields[3] as string);
  const signature = parseSignatureBlock(what, fields.slice(4));
  const version: LeaseVersion = signature.scheme === "sig01" ? "v1" : signature.links.length === 1 ? "v2" : "delegated";
  return { version, sn, disposition: "K", expiry: time.text, expiresAt: time.at, signature, line: fields.join(" ") + "\n" };
}

/** One `del01:` delegation line, syntax only. */
export function parseDelegationLine(line: string): DelegationLine {
  const what = "delegation";
  const fields = fieldsOf(what, line);
  if (fields[0] !== "del01:") throw fail(`${what}: line must start with "del01:", got ${show(fields[0] ?? "")}`);
  if (fields.length !== 8 || fields[3] !== "sig02:") {
    throw fail(`${what}: must be "del01: <SN> <UUID> sig02: sha256 <rootid64> <DELEXP> <sig512>"`);
  }
  const sn = checkSn(`${what}: SN`, fields[1] as string);
  const uuid = checkUuid(`${what}: UUID`, fields[2] as string);
  const [link] = parseLinks(what, fields.slice(4)) as [SignatureLink];
  return { sn, uuid, link, sig02: fields.slice(3).join(" "), line: fields.join(" ") + "\n" };
}
