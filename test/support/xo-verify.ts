/**
 * Test-side lease verifier that checks lease lines the way the XO firmware does
 * (OpenFirmware `security.fth`, and the OLPC activation protocol it implements).
 *
 * It is written from the protocol text only and shares no code with the server's
 * signing code, so a test that passes here checks the server against the
 * protocol, not against itself.
 *
 * Modelled behaviour:
 * - fields are split on single spaces (a double space makes an empty field,
 *   which fails);
 * - trusted keys are PKCS#1 RSAPublicKey DER (270 bytes); any other length is ignored;
 * - a key field of 540 hex chars is the key itself, anything else is a key id
 *   tail-matched against the trusted keys;
 * - signatures are RSASSA-PSS / SHA-256 / MGF1-SHA-256 with salt length exactly 8,
 *   256 bytes;
 * - times are `YYYYMMDDTHHMMSSZ` UTC, `00000000T000000Z` never expires, and a clock
 *   before 20070101T000000Z makes every lease expired. "Passed" means `now > exp`
 *   at one-second precision.
 */
import { constants, createPublicKey, verify, type KeyObject } from "node:crypto";

export type XoVerifyResult = { ok: true } | { ok: false; reason: string };

export interface XoLeaseCheck {
  /** One lease line, with or without its final LF. */
  line: string;
  /** The machine's serial number, as in mfg-data (upper case). */
  sn: string;
  /** The machine's UUID, exactly as stored in mfg-data. */
  uuid: string;
  /** Trusted lease keys: `key01` hex (540 hex chars), with or without the `key01: ` prefix. */
  trustedKey01Hex: string[];
  /** The machine's clock. */
  now: Date;
  /** Longest accepted line in bytes, counting its LF (firmware: 8,192). Pass Infinity to disable. */
  maxLineBytes?: number;
}

export interface XoRtcCheck {
  /** One `rtc01:` line, with or without its final LF. */
  line: string;
  sn: string;
  uuid: string;
  trustedKey01Hex: string[];
  /** When given, the line's CURRENTRTC / NONCE must equal these (the values the XO sent in `rtcreset`). */
  expect?: { currentrtc?: string; nonce?: string };
}

/** One `sha256 <key> [<EXP>] <sig>` segment of a `sig01:` / `sig02:` field. */
export interface SigLink {
  hash: string;
  /** Key field exactly as written: a 540-hex key or a key id. */
  keyField: string;
  /** Link expiry (sig02 only). */
  exp?: string;
  sigHex: string;
}

export interface ParsedAct01 {
  sn: string;
  disposition: string;
  exp: string;
  sigTag: "sig01:" | "sig02:";
  links: SigLink[];
}

export const KEY_DER_BYTES = 270;
export const KEY_HEX_CHARS = KEY_DER_BYTES * 2;
export const SIG_BYTES = 256;
export const MAX_CHAIN_LINKS = 100;
export const FIRMWARE_LINE_LIMIT = 8192;
export const NEVER_EXPIRES = "00000000T000000Z";
/** A clock before this makes every lease expired. */
export const EARLIEST_VALID_CLOCK = "20070101T000000Z";

// ---------------------------------------------------------------------------
// Signed bytes: what each signature covers

/** act01 v1 / dev01: `SN:UUID:D:EXP` (67 bytes for real SNs and UUIDs). */
export function leaseV1SignedBytes(sn: string, uuid: string, disposition: string, exp: string): Buffer {
  return Buffer.from(`${sn}:${uuid}:${disposition}:${exp}`, "utf8");
}

/** The last link of a sig02 chain (also the only link of a v2 lease): `SN:EXPi:SN:UUID:D:EXP`. */
export function leaseSignedBytes(sn: string, linkExp: string, uuid: string, disposition: string, exp: string): Buffer {
  return Buffer.from(`${sn}:${linkExp}:${sn}:${uuid}:${disposition}:${exp}`, "utf8");
}

/** A non-last sig02 link: `SN:EXPi:key01: <next link's key field text>\n` (with the LF). */
export function delegationSignedBytes(sn: string, linkExp: string, nextKeyField: string): Buffer {
  return Buffer.from(`${sn}:${linkExp}:key01: ${nextKeyField}\n`, "utf8");
}

/** rtc01: `SN:UUID:currentrtc:nonce:newrtc`. */
export function rtcSignedBytes(sn: string, uuid: string, currentrtc: string, nonce: string, newrtc: string): Buffer {
  return Buffer.from(`${sn}:${uuid}:${currentrtc}:${nonce}:${newrtc}`, "utf8");
}

// ---------------------------------------------------------------------------
// Keys

/** Accepts `key01: <hex>\n` or bare hex; returns the hex text (case kept). */
export function key01HexFromText(text: string): string {
  const t = text.trim();
  return t.startsWith("key01:") ? t.slice("key01:".length).trim() : t;
}

/** Key id = last 32 bytes of the PKCS#1 DER = last 64 hex chars, lowercase. */
export function keyIdOf(key01Hex: string): string {
  const hex = key01HexFromText(key01Hex);
  return hex.slice(-64).toLowerCase();
}

function decodeHex(hex: string): Buffer | null {
  if (hex.length === 0 || hex.length % 2 !== 0 || !/^[0-9a-fA-F]+$/.test(hex)) return null;
  return Buffer.from(hex, "hex");
}

function trustedKeyList(trusted: string[]): Buffer[] {
  const out: Buffer[] = [];
  for (const t of trusted) {
    const der = decodeHex(key01HexFromText(t));
    if (der !== null && der.length === KEY_DER_BYTES) out.push(der);
  }
  return out;
}

function tailMatch(trusted: Buffer[], id: Buffer): Buffer | null {
  for (const k of trusted) {
    if (id.length <= k.length && k.subarray(k.length - id.length).equals(id)) return k;
  }
  return null;
}

type Resolved = { ok: true; der: Buffer } | { ok: false; reason: string };

/** Resolve a key field: 540 hex = the key itself; otherwise a key id tail-matched against trusted keys. */
function resolveKeyField(field: string, trusted: Buffer[], mustBeTrusted: boolean): Resolved {
  const bytes = decodeHex(field);
  if (bytes === null) return { ok: false, reason: `key field is not hex: ${short(field)}` };
  if (field.length === KEY_HEX_CHARS) {
    if (mustBeTrusted && tailMatch(trusted, bytes) === null) {
      return { ok: false, reason: "first link's key is not a trusted lease key" };
    }
    return { ok: true, der: bytes };
  }
  const match = tailMatch(trusted, bytes);
  if (match === null) return { ok: false, reason: `key id ${short(field)} matches no trusted key` };
  return { ok: true, der: match };
}

function publicKeyOf(der: Buffer): KeyObject | null {
  try {
    return createPublicKey({ key: der, format: "der", type: "pkcs1" });
  } catch {
    return null;
  }
}

/**
 * RSASSA-PSS / SHA-256 / MGF1-SHA-256, salt length exactly 8 (node rejects any other salt
 * length when saltLength is given). The signature must be 512 hex chars = 256 bytes.
 */
export function pssVerify(keyDerOrHex: Buffer | string, data: Buffer, sigHex: string): XoVerifyResult {
  const der = typeof keyDerOrHex === "string" ? decodeHex(key01HexFromText(keyDerOrHex)) : keyDerOrHex;
  if (der === null) return { ok: false, reason: "key is not hex" };
  const sig = decodeHex(sigHex);
  if (sig === null) return { ok: false, reason: "signature is not hex" };
  if (sig.length !== SIG_BYTES) return { ok: false, reason: `signature is ${sig.length} bytes, not ${SIG_BYTES}` };
  const key = publicKeyOf(der);
  if (key === null) return { ok: false, reason: "key is not a PKCS#1 RSAPublicKey" };
  let good = false;
  try {
    good = verify("sha256", data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 8 }, sig);
  } catch {
    good = false;
  }
  return good ? { ok: true } : { ok: false, reason: "bad signature" };
}

// ---------------------------------------------------------------------------
// Time

/** Seconds since the epoch, `"never"` for 00000000T000000Z, null when malformed or out of range. */
export function parseXoTime(s: string): number | "never" | null {
  if (s === NEVER_EXPIRES) return "never";
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(s);
  if (m === null) return null;
  const [y, mo, d, h, mi, se] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 59) return null;
  return Date.UTC(y, mo - 1, d, h, mi, se) / 1000;
}

function nowSeconds(now: Date): number {
  return Math.floor(now.getTime() / 1000);
}

/** Has `exp` passed at `now`? Malformed expiries count as passed. */
function expired(exp: string, now: Date): boolean {
  const earliest = parseXoTime(EARLIEST_VALID_CLOCK) as number;
  const n = nowSeconds(now);
  if (n < earliest) return true;
  const e = parseXoTime(exp);
  if (e === null) return true;
  if (e === "never") return false;
  return n > e;
}

// ---------------------------------------------------------------------------
// Parsing

function short(s: string): string {
  return s.length > 24 ? s.slice(0, 12) + "…" + s.slice(-8) : s;
}

type LineResult = { ok: true; body: string } | { ok: false; reason: string };

function oneLine(line: string, maxLineBytes: number): LineResult {
  const body = line.endsWith("\n") ? line.slice(0, -1) : line;
  if (body.includes("\n")) return { ok: false, reason: "more than one line" };
  if (Buffer.byteLength(body, "utf8") + 1 > maxLineBytes) {
    return { ok: false, reason: `line longer than ${maxLineBytes} bytes` };
  }
  return { ok: true, body };
}

function parseLinks(tag: "sig01:" | "sig02:", fields: string[]): SigLink[] | string {
  if (tag === "sig01:") {
    if (fields.length !== 3) return `sig01 needs 3 fields, got ${fields.length}`;
    const [hash, keyField, sigHex] = fields as [string, string, string];
    return [{ hash, keyField, sigHex }];
  }
  if (fields.length === 0 || fields.length % 4 !== 0) return `sig02 fields are not whole links (${fields.length})`;
  const links: SigLink[] = [];
  for (let i = 0; i < fields.length; i += 4) {
    const [hash, keyField, exp, sigHex] = fields.slice(i, i + 4) as [string, string, string, string];
    links.push({ hash, keyField, exp, sigHex });
  }
  return links;
}

/** Split an `act01:` line into its fields (no cryptography). */
export function parseAct01(line: string): ParsedAct01 | { error: string } {
  const body = line.endsWith("\n") ? line.slice(0, -1) : line;
  const f = body.split(" ");
  if (f[0] !== "act01:") return { error: "not an act01: line" };
  if (f.length < 5) return { error: "act01 line too short" };
  const [, sn, disposition, exp, sigTag] = f as [string, string, string, string, string];
  if (sigTag !== "sig01:" && sigTag !== "sig02:") return { error: `unknown signature tag ${short(sigTag)}` };
  const links = parseLinks(sigTag, f.slice(5));
  if (typeof links === "string") return { error: links };
  return { sn, disposition, exp, sigTag, links };
}

// ---------------------------------------------------------------------------
// Verification

/** Verify a sig02 chain whose last link signs `finalBytes(linkExp)`. */
function verifyChain(
  sn: string,
  links: SigLink[],
  trusted: Buffer[],
  now: Date,
  finalBytes: (linkExp: string) => Buffer,
): XoVerifyResult {
  if (links.length > MAX_CHAIN_LINKS) return { ok: false, reason: `chain has ${links.length} links (max ${MAX_CHAIN_LINKS})` };
  for (let i = 0; i < links.length; i++) {
    const link = links[i] as SigLink;
    const at = `link ${i + 1}`;
    if (link.hash !== "sha256") return { ok: false, reason: `${at}: hash ${short(link.hash)} is not sha256` };
    const key = resolveKeyField(link.keyField, trusted, i === 0);
    if (!key.ok) return { ok: false, reason: `${at}: ${key.reason}` };
    const exp = link.exp ?? "";
    if (parseXoTime(exp) === null) return { ok: false, reason: `${at}: malformed expiry ${short(exp)}` };
    if (expired(exp, now)) return { ok: false, reason: `${at}: expired ${exp}` };
    const next = links[i + 1];
    const data = next !== undefined ? delegationSignedBytes(sn, exp, next.keyField) : finalBytes(exp);
    const v = pssVerify(key.der, data, link.sigHex);
    if (!v.ok) return { ok: false, reason: `${at}: ${v.reason}` };
  }
  return { ok: true };
}

/** Verify one `act01:` line as the XO firmware would. */
export function xoVerifyLease(check: XoLeaseCheck): XoVerifyResult {
  const l = oneLine(check.line, check.maxLineBytes ?? FIRMWARE_LINE_LIMIT);
  if (!l.ok) return l;
  const p = parseAct01(l.body);
  if ("error" in p) return { ok: false, reason: p.error };
  if (p.sn !== check.sn) return { ok: false, reason: `lease is for ${short(p.sn)}, not ${check.sn}` };
  if (p.disposition.length !== 1) return { ok: false, reason: "disposition must be one character" };
  if (parseXoTime(p.exp) === null) return { ok: false, reason: `malformed expiry ${short(p.exp)}` };
  if (expired(p.exp, check.now)) return { ok: false, reason: `lease expired ${p.exp}` };
  const trusted = trustedKeyList(check.trustedKey01Hex);
  if (p.sigTag === "sig01:") {
    const link = p.links[0] as SigLink;
    if (link.hash !== "sha256") return { ok: false, reason: `hash ${short(link.hash)} is not sha256` };
    const key = resolveKeyField(link.keyField, trusted, true);
    if (!key.ok) return key;
    return pssVerify(key.der, leaseV1SignedBytes(p.sn, check.uuid, p.disposition, p.exp), link.sigHex);
  }
  return verifyChain(p.sn, p.links, trusted, check.now, (linkExp) =>
    leaseSignedBytes(p.sn, linkExp, check.uuid, p.disposition, p.exp),
  );
}

/**
 * Scan a lease file (or a port-191 reply) like the firmware scans `security/lease.sig`:
 * lines for other SNs are skipped, the first line for this SN decides, a line not starting
 * with `act01:` aborts the scan as invalid. Empty trailing text after the last LF is ignored.
 */
export function xoVerifyLeaseFile(check: Omit<XoLeaseCheck, "line"> & { text: string }): XoVerifyResult {
  const lines = check.text.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  for (const line of lines) {
    if (!line.startsWith("act01:")) return { ok: false, reason: `not an act01: line: ${short(line)}` };
    const sn = line.split(" ")[1];
    if (sn !== check.sn) continue;
    return xoVerifyLease({ ...check, line });
  }
  return { ok: false, reason: `no lease for ${check.sn}` };
}

/** Verify an `rtc01: SN CURRENTRTC NONCE NEWRTC sig01: sha256 <keyid> <sig>` line. */
export function xoVerifyRtc(check: XoRtcCheck): XoVerifyResult {
  const l = oneLine(check.line, FIRMWARE_LINE_LIMIT);
  if (!l.ok) return l;
  const f = l.body.split(" ");
  if (f[0] !== "rtc01:") return { ok: false, reason: "not an rtc01: line" };
  if (f.length !== 9) return { ok: false, reason: `rtc01 line has ${f.length} fields, expected 9` };
  const [, sn, currentrtc, nonce, newrtc, tag, hash, keyField, sigHex] = f as [
    string, string, string, string, string, string, string, string, string,
  ];
  if (tag !== "sig01:") return { ok: false, reason: `unsupported signature tag ${short(tag)}` };
  if (sn !== check.sn) return { ok: false, reason: `rtc01 is for ${short(sn)}, not ${check.sn}` };
  if (currentrtc.length === 0 || nonce.length === 0) return { ok: false, reason: "empty currentrtc or nonce" };
  const t = parseXoTime(newrtc);
  if (t === null || t === "never") return { ok: false, reason: `malformed new RTC ${short(newrtc)}` };
  if (check.expect?.currentrtc !== undefined && check.expect.currentrtc !== currentrtc) {
    return { ok: false, reason: "currentrtc does not echo the request" };
  }
  if (check.expect?.nonce !== undefined && check.expect.nonce !== nonce) {
    return { ok: false, reason: "nonce does not echo the request" };
  }
  if (hash !== "sha256") return { ok: false, reason: `hash ${short(hash)} is not sha256` };
  const key = resolveKeyField(keyField, trustedKeyList(check.trustedKey01Hex), true);
  if (!key.ok) return key;
  return pssVerify(key.der, rtcSignedBytes(sn, check.uuid, currentrtc, nonce, newrtc), sigHex);
}
