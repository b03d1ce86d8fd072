/**
 * OLPC lease cryptography: the exact bytes an XO laptop's firmware (OpenFirmware
 * `security.fth`, OLPC bios-crypto) signs, parses and verifies for activation
 * leases (`act01`), server delegations (`del01`) and RTC resets (`rtc01`).
 * Reference: shared/protocols.md §5.
 *
 * Everything here is a pure function over node:crypto: no I/O, no clock (callers
 * pass `now`), no caches. The firmware hashes the literal text of every field,
 * so the parsers are strict (single spaces, lower-case hex, exact lengths): a
 * line that a laptop would refuse must be refused at import, not served.
 */
import {
  KeyObject,
  constants,
  createPublicKey,
  sign as cryptoSign,
  verify as cryptoVerify,
} from "node:crypto";
import { SugarError } from "./errors.js";

// ---------------------------------------------------------------------------
// Errors

/** A lease, delegation, key or time that is not in the exact form the firmware accepts. */
export class LeaseFormatError extends SugarError {
  override readonly name: string = "LeaseFormatError";
  override readonly code = "invalid_input" as const;
  constructor(message: string, options?: { cause?: unknown }) {
    super("invalid_input", message, options);
  }
}

const fail = (message: string, cause?: unknown) =>
  new LeaseFormatError(message, cause === undefined ? undefined : { cause });

/** Shows a value in an error message without flooding it (signatures are 512 characters). */
const show = (value: string) => JSON.stringify(value.length > 24 ? `${value.slice(0, 24)}…` : value);

// ---------------------------------------------------------------------------
// Constants of the format (protocols.md §5)

/** PKCS#1 RSAPublicKey DER of an RSA-2048 key with e = 65537: 270 bytes. */
export const KEY01_HEX_LENGTH = 540;
/** A key id is the last 32 bytes of that DER; the firmware tail-matches it. */
export const KEY_ID_HEX_LENGTH = 64;
/** RSA-2048 signatures are 256 bytes, left-padded, as lower-case hex. */
export const SIGNATURE_HEX_LENGTH = 512;
/** The firmware demands PSS salt length 8; Node's default (the maximum) is refused by a real XO. */
export const PSS_SALT_LENGTH = 8;
/** The expiry text that means "never expires". */
export const NEVER_EXPIRES_TEXT = "00000000T000000Z";
/** The firmware reads at most this many bytes per lease line (LF included). */
export const MAX_LINE_BYTES = 8192;
/**
 * sig02 chains sugar-server accepts: a v2 lease (1 link) or a delegated lease
 * (root → server, 2 links). The firmware walks up to 100, but nothing in the
 * OLPC tool chain makes longer chains, so longer ones are refused at import.
 */
export const MAX_CHAIN_LINKS = 2;

/** The only disposition an `act01` activation lease carries (`A` is for `dev01` developer keys). */
const LEASE_DISPOSITION = "K";
/** Every PKCS#1 DER of RSA-2048/e=65537 starts and ends with these bytes. */
const KEY01_PREFIX = "3082010a0282010100";
const KEY01_SUFFIX = "0203010001";
/** The firmware treats a clock earlier than this as unset: every lease counts as expired. */
const EARLIEST_TRUSTED_CLOCK = Date.UTC(2007, 0, 1);

const SN_PATTERN = /^[A-Z]{3}[0-9A-F]{8}$/;
const UUID_PATTERN = /^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$/;
const OLPC_TIME_PATTERN = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/;
const NONCE_PATTERN = /^\d{10}$/;
const LOWER_HEX = /^[0-9a-f]*$/;
const ANY_HEX = /^[0-9a-fA-F]*$/;

// ---------------------------------------------------------------------------
// Time

/** A lease time: an instant, or the explicit "never expires" (`00000000T000000Z`). */
export type OlpcTime = Date | "never";
/** What the signing functions accept: an OlpcTime, or 16-character OLPC time text used exactly as given. */
export type OlpcTimeInput = OlpcTime | string;

/** `YYYYMMDDTHHMMSSZ` in UTC; milliseconds are dropped (the format has none). */
export function formatOlpcTime(time: OlpcTime): string {
  if (time === "never") return NEVER_EXPIRES_TEXT;
  if (!(time instanceof Date) || Number.isNaN(time.getTime())) throw fail("time is not a valid Date");
  const year = time.getUTCFullYear();
  // Year 0000 would collide with the never-expires text; five-digit years do not fit the format.
  if (year < 1 || year > 9999) throw fail(`year ${year} cannot be written as an OLPC time (0001-9999)`);
  const two = (n: number) => String(n).padStart(2, "0");
  return (
    String(year).padStart(4, "0") +
    two(time.getUTCMonth() + 1) +
    two(time.getUTCDate()) +
    "T" +
    two(time.getUTCHours()) +
    two(time.getUTCMinutes()) +
    two(time.getUTCSeconds()) +
    "Z"
  );
}

/**
 * Reads `YYYYMMDDTHHMMSSZ` (UTC). Returns "never" for `00000000T000000Z` and
 * undefined for anything else that is not a real calendar instant (month 1-12,
 * day within the month, hour 0-23, minute and second 0-59).
 */
export function parseOlpcTime(text: string): OlpcTime | undefined {
  if (text === NEVER_EXPIRES_TEXT) return "never";
  const m = OLPC_TIME_PATTERN.exec(text);
  if (!m) return undefined;
  const [year, month, day, hour, minute, second] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  if (year < 1 || month < 1 || month > 12 || day < 1 || day > 31) return undefined;
  if (hour > 23 || minute > 59 || second > 59) return undefined;
  // setUTCFullYear, unlike Date.UTC, does not map years 0-99 to 1900-1999.
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day);
  date.setUTCHours(hour, minute, second, 0);
  // Day 31 of a 30-day month rolls over into the next month: not a real date.
  if (date.getUTCMonth() !== month - 1 || date.getUTCDate() !== day) return undefined;
  return date;
}

/** The text to sign for a time input; strings are checked and kept byte for byte. */
function olpcTimeText(field: string, time: OlpcTimeInput): string {
  if (typeof time === "string" && time !== "never") {
    if (parseOlpcTime(time) === undefined) throw fail(`${field} ${show(time)} is not an OLPC time (YYYYMMDDTHHMMSSZ, UTC)`);
    return time;
  }
  return formatOlpcTime(time);
}

/** Whether `time` has passed at `now`, at the one-second resolution of the format. */
function hasPassed(time: OlpcTime, now: Date): boolean {
  if (time === "never") return false;
  return Math.floor(now.getTime() / 1000) > Math.floor(time.getTime() / 1000);
}

function checkNow(now: Date): void {
  if (!(now instanceof Date) || Number.isNaN(now.getTime())) throw fail("now is not a valid Date");
}

// ---------------------------------------------------------------------------
// Keys

/** Why a key is not usable as an OLPC key, or undefined if it is RSA-2048 with e = 65537. */
function rsa2048Problem(key: KeyObject): string | undefined {
  if (key.asymmetricKeyType !== "rsa") return `is a ${key.asymmetricKeyType ?? key.type} key, not RSA (rsaEncryption)`;
  const details = key.asymmetricKeyDetails;
  if (details?.modulusLength !== 2048) return `has a ${details?.modulusLength ?? "?"}-bit modulus, not 2048`;
  if (details.publicExponent !== 65537n) return `has public exponent ${details.publicExponent ?? "?"}, not 65537`;
  return undefined;
}

/** The public half of a public or private key object. */
function publicHalf(key: KeyObject, what: string): KeyObject {
  if (!(key instanceof KeyObject)) throw fail(`${what} is not a KeyObject`);
  if (key.type === "secret") throw fail(`${what} is a secret key, not an RSA key pair`);
  return key.type === "private" ? createPublicKey(key) : key;
}

/** A private key fit to sign OLPC records, or a clear refusal. */
function signingKey(key: KeyObject, what: string): KeyObject {
  if (!(key instanceof KeyObject) || key.type !== "private") throw fail(`${what} must be a private key`);
  const problem = rsa2048Problem(key);
  if (problem) throw fail(`${what} ${problem}`);
  return key;
}

/** Whether text has the shape of a key01 key: 540 lower-case hex of an RSA-2048/e=65537 PKCS#1 DER. */
function isKey01Hex(hex: string): boolean {
  return (
    hex.length === KEY01_HEX_LENGTH && LOWER_HEX.test(hex) && hex.startsWith(KEY01_PREFIX) && hex.endsWith(KEY01_SUFFIX)
  );
}

function checkKey01Hex(field: string, hex: string): string {
  checkHex(field, hex, [KEY01_HEX_LENGTH]);
  if (!hex.startsWith(KEY01_PREFIX) || !hex.endsWith(KEY01_SUFFIX)) {
    throw fail(
      `${field} is not the PKCS#1 DER of an RSA-2048 key with e=65537 (it must start ${KEY01_PREFIX} and end ${KEY01_SUFFIX})`,
    );
  }
  return hex;
}

/**
 * The key as a `key01` value: PKCS#1 RSAPublicKey DER (not SPKI, which the
 * firmware ignores), 540 lower-case hex. A private key gives its public half.
 */
export function key01Hex(publicKey: KeyObject): string {
  const key = publicHalf(publicKey, "key");
  const problem = rsa2048Problem(key);
  if (problem) throw fail(`key ${problem}`);
  const hex = key.export({ type: "pkcs1", format: "der" }).toString("hex");
  return checkKey01Hex("key", hex);
}

/** The `key01: <hex>` line (with LF) for a key, as mfg-data tools and the vectors write it. */
export function key01Line(publicKey: KeyObject): string {
  return `key01: ${key01Hex(publicKey)}\n`;
}

/** The key id the firmware matches: the last 32 bytes of the PKCS#1 DER, 64 hex. */
export function keyIdHex(key540hex: string): string {
  return checkKey01Hex("key01", key540hex).slice(-KEY_ID_HEX_LENGTH);
}

/** The key of a 540-hex key01 value, checked to be RSA-2048 with e = 65537. */
export function publicKeyFromKey01(hex: string): KeyObject {
  checkKey01Hex("key01", hex);
  let key: KeyObject;
  try {
    key = createPublicKey({ key: Buffer.from(hex, "hex"), format: "der", type: "pkcs1" });
  } catch (cause) {
    throw fail("key01 is not a valid PKCS#1 RSAPublicKey", cause);
  }
  const problem = rsa2048Problem(key);
  if (problem) throw fail(`key01 ${problem}`);
  return key;
}

/** The hex of a `key01: <hex>` line; one trailing LF is allowed (files end with one). */
export function parseKey01Line(line: string): string {
  const fields = fieldsOf("key01 line", line);
  if (fields[0] !== "key01:") throw fail(`key01 line must start with "key01: ", got ${show(line)}`);
  if (fields.length !== 2) throw fail(`key01 line must be "key01: <540 hex>", got ${fields.length} fields`);
  return checkKey01Hex("key01", fields[1] as string);
}

// ---------------------------------------------------------------------------
// Field checks shared by builders and parsers

function checkSn(field: string, sn: string): string {
  if (SN_PATTERN.test(sn)) return sn;
  if (SN_PATTERN.test(sn.toUpperCase())) {
    throw fail(`${field} ${show(sn)} must be upper case: the firmware signs the serial number as the laptop reports it`);
  }
  throw fail(`${field} ${show(sn)} is not an XO serial number (3 letters A-Z and 8 hex digits, e.g. SHF706002A7)`);
}

function checkUuid(field: string, uuid: string): string {
  if (!UUID_PATTERN.test(uuid)) throw fail(`${field} ${show(uuid)} is not a UUID (8-4-4-4-12 hex digits)`);
  return uuid;
}

/** A 16-character OLPC time field, returned as text (what is signed) and as a value. */
function checkTime(field: string, text: string): { text: string; at: OlpcTime } {
  if (text.length !== 16) throw fail(`${field} ${show(text)} must be 16 characters (YYYYMMDDTHHMMSSZ), got ${text.length}`);
  const at = parseOlpcTime(text);
  if (at === undefined) throw fail(`${field} ${show(text)} is not a valid UTC time YYYYMMDDTHHMMSSZ`);
  return { text, at };
}

function checkHex(field: string, value: string, lengths: readonly number[]): string {
  if (!ANY_HEX.test(value)) throw fail(`${field} ${show(value)} is not hex`);
  if (!lengths.includes(value.length)) {
    throw fail(`${field} must be ${lengths.join(" or ")} hex digits, got ${value.length}`);
  }
  // The firmware hashes the text as written, so upper-case hex signs different bytes.
  if (!LOWER_HEX.test(value)) throw fail(`${field} must be lower-case hex`);
  return value;
}

/** The nonce field: the rtcreset request's count, zero-padded to 10 decimal digits (bios-crypto make-rtcreset). */
function nonceText(nonce: string | number): string {
  const digits = typeof nonce === "number" ? (Number.isSafeInteger(nonce) && nonce >= 0 ? String(nonce) : "") : nonce;
  if (!/^\d{1,10}$/.test(digits)) throw fail(`nonce ${show(String(nonce))} must be a count of at most 10 decimal digits`);
  return digits.padStart(10, "0");
}

/**
 * The space-separated fields of one record line. Exactly one trailing LF is
 * allowed and dropped; CR, tabs, control or non-ASCII characters, a second
 * line, leading/trailing or doubled spaces are refused, because the firmware
 * splits on single spaces and hashes the text as is.
 */
function fieldsOf(what: string, line: string): string[] {
  if (typeof line !== "string") throw fail(`${what} is not text`);
  const body = line.endsWith("\n") ? line.slice(0, -1) : line;
  if (body.length === 0) throw fail(`${what} is empty`);
  if (Buffer.byteLength(body) + 1 > MAX_LINE_BYTES) throw fail(`${what} is longer than the firmware's ${MAX_LINE_BYTES}-byte line limit`);
  if (body.includes("\n")) throw fail(`${what} holds more than one line; split files with splitMultiLeaseFile first`);
  if (body.endsWith("\r")) throw fail(`${what} ends with CR (a CRLF line ending); OLPC records end with LF only`);
  if (/[^\x20-\x7e]/.test(body)) throw fail(`${what} contains a tab, control or non-ASCII character`);
  if (body.startsWith(" ") || body.endsWith(" ")) throw fail(`${what} has a leading or trailing space`);
  if (body.includes("  ")) throw fail(`${what} has two spaces in a row; the firmware splits fields on single spaces`);
  return body.split(" ");
}

// ---------------------------------------------------------------------------
// Signed bytes (protocols.md §5 "Signed bytes"): ASCII, no LF unless shown

const ascii = (text: string) => Buffer.from(text, "latin1");

/** act01 v1 (sig01): `SN:UUID:K:EXP`, 67 bytes. */
export function leaseV1SignedBytes(sn: string, uuid: string, expiry: string): Buffer {
  return ascii(leasePayload(sn, uuid, expiry));
}

/**
 * The last link of any sig02 chain signs `SN:<its own EXP>:` followed by the
 * record's v1 payload. For act01 this is `SN:EXP:SN:UUID:K:EXP`, the same for a
 * v2 lease (signed by the lease key) and a delegated lease (signed by the
 * server key); the OLPC tools write the same EXP twice.
 */
export function leaseV2SignedBytes(sn: string, uuid: string, expiry: string, linkExpiry: string = expiry): Buffer {
  return ascii(lastLinkText(sn, checkTime("link expiry", linkExpiry).text, leasePayload(sn, uuid, expiry)));
}

/** Delegated act01, last link (server key): `SN:EXP:SN:UUID:K:EXP`, 96 bytes. Same bytes as a v2 lease. */
export function delegatedLeaseSignedBytes(sn: string, uuid: string, expiry: string, linkExpiry: string = expiry): Buffer {
  return leaseV2SignedBytes(sn, uuid, expiry, linkExpiry);
}

/** A delegation (del01, first link, root key): `SN:DELEXP:key01: <srvkey540>\n`, 577 bytes including the LF. */
export function delegationSignedBytes(sn: string, delegationExpiry: string, serverKey540: string): Buffer {
  const delexp = checkTime("delegation expiry", delegationExpiry).text;
  return ascii(linkToNextText(checkSn("SN", sn), delexp, checkKey01Hex("server key", serverKey540)));
}

/** rtc01 (sig01): `SN:UUID:currentrtc:nonce:newrtc`. */
export function rtcResetSignedBytes(sn: string, uuid: string, currentRtc: string, nonce: string, newRtc: string): Buffer {
  return ascii(rtcPayload(sn, uuid, currentRtc, nonce, newRtc));
}

function leasePayload(sn: string, uuid: string, expiry: string): string {
  return `${checkSn("SN", sn)}:${checkUuid("UUID", uuid)}:${LEASE_DISPOSITION}:${checkTime("expiry", expiry).text}`;
}

function rtcPayload(sn: string, uuid: string, currentRtc: string, nonce: string, newRtc: string): string {
  if (!NONCE_PATTERN.test(nonce)) throw fail(`nonce ${show(nonce)} must be exactly 10 decimal digits`);
  const current = checkTime("current RTC", currentRtc).text;
  return [checkSn("SN", sn), checkUuid("UUID", uuid), current, nonce, checkTime("new RTC", newRtc).text].join(":");
}

/** What a chain link signs when it is the last one: `SN:EXPi:<payload>`. */
function lastLinkText(sn: string, linkExpiry: string, payload: string): string {
  return `${sn}:${linkExpiry}:${payload}`;
}

/** What a chain link signs when a link follows: `SN:EXPi:key01: <next key field as text>\n`. */
function linkToNextText(sn: string, linkExpiry: string, nextKeyField: string): string {
  return `${sn}:${linkExpiry}:key01: ${nextKeyField}\n`;
}

// ---------------------------------------------------------------------------
// Signing

/** RSASSA-PSS, SHA-256, MGF1-SHA-256 (OpenSSL's default: the signature digest), salt 8; 512 lower-case hex. */
function pssSign(data: Buffer, key: KeyObject): string {
  const signature = cryptoSign("sha256", data, {
    key,
    padding: constants.RSA_PKCS1_PSS_PADDING,
    saltLength: PSS_SALT_LENGTH,
  });
  return signature.toString("hex").padStart(SIGNATURE_HEX_LENGTH, "0");
}

/**
 * A line waiting for its one signature: `data` to be signed with `key`
 * (RSASSA-PSS as above), and `complete` to build the line from the 512-hex
 * signature. The sign* functions sign at once, on the calling thread;
 * `signInThreadPool` lets a server sign many in parallel without blocking
 * its event loop.
 */
export interface UnsignedLine {
  data: Buffer;
  key: KeyObject;
  complete(signatureHex: string): string;
}

/** Signs on libuv's thread pool (node:crypto's callback form) and completes the line. */
export function signInThreadPool(unsigned: UnsignedLine): Promise<string> {
  return new Promise((resolve, reject) => {
    cryptoSign("sha256", unsigned.data, { key: unsigned.key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: PSS_SALT_LENGTH }, (err, signature) => {
      if (err) reject(err);
      else resolve(unsigned.complete(signature.toString("hex").padStart(SIGNATURE_HEX_LENGTH, "0")));
    });
  });
}

function signNow(unsigned: UnsignedLine): string {
  return unsigned.complete(pssSign(unsigned.data, unsigned.key));
}

/** Verifies with salt length exactly 8, as the firmware does: a salt-32 signature fails. */
function pssVerify(data: Buffer, key: KeyObject, signatureHex: string): boolean {
  const signature = Buffer.from(signatureHex, "hex");
  if (signature.length !== SIGNATURE_HEX_LENGTH / 2) return false;
  try {
    return cryptoVerify("sha256", data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: PSS_SALT_LENGTH }, signature);
  } catch {
    return false;
  }
}

export interface V1LeaseRequest {
  sn: string;
  /** The machine's UUID exactly as in its mfg-data: it is signed but not written into the line. */
  uuid: string;
  expiry: OlpcTimeInput;
  /** A private key the laptops trust (built-in, a0 or a1-a9). */
  leaseKey: KeyObject;
}

/** `act01: SN K EXP sig01: sha256 <keyid64> <sig512>\n`: the classic lease, signed directly by a trusted key. */
export function signV1Lease(request: V1LeaseRequest): string {
  return signNow(prepareV1Lease(request));
}

/** signV1Lease up to the signature. `leaseKey540` (the key's key01 hex, if the caller has it) saves exporting the key again. */
export function prepareV1Lease(request: V1LeaseRequest & { leaseKey540?: string }): UnsignedLine {
  const key = signingKey(request.leaseKey, "lease key");
  const exp = olpcTimeText("expiry", request.expiry);
  const keyId = keyIdHex(request.leaseKey540 ?? key01Hex(key));
  return {
    data: leaseV1SignedBytes(request.sn, request.uuid, exp),
    key,
    complete: (signature) => `act01: ${request.sn} ${LEASE_DISPOSITION} ${exp} sig01: sha256 ${keyId} ${signature}\n`,
  };
}

/** `act01: SN K EXP sig02: sha256 <keyid64> <EXP> <sig512>\n` (make-lease.sh --v2), signed by a trusted key. */
export function signV2Lease(request: V1LeaseRequest): string {
  const key = signingKey(request.leaseKey, "lease key");
  const exp = olpcTimeText("expiry", request.expiry);
  const signature = pssSign(leaseV2SignedBytes(request.sn, request.uuid, exp, exp), key);
  return `act01: ${request.sn} ${LEASE_DISPOSITION} ${exp} sig02: sha256 ${keyIdHex(key01Hex(key))} ${exp} ${signature}\n`;
}

export interface DelegationRequest {
  sn: string;
  uuid: string;
  delegationExpiry: OlpcTimeInput;
  /** The trusted (root) private key that delegates. */
  rootKey: KeyObject;
  /** The school server's key the delegation is issued to (a private key gives its public half). */
  serverPublicKey: KeyObject;
}

/**
 * `del01: SN UUID sig02: sha256 <rootid64> <DELEXP> <delsig512>\n`
 * (make-server-delegations.py): lets the server key sign leases for one
 * machine until DELEXP. For tests and deployments that hold the root key.
 */
export function signDelegation(request: DelegationRequest): string {
  const root = signingKey(request.rootKey, "root key");
  const serverKey540 = key01Hex(publicHalf(request.serverPublicKey, "server key"));
  const sn = checkSn("SN", request.sn);
  const uuid = checkUuid("UUID", request.uuid);
  const delexp = olpcTimeText("delegation expiry", request.delegationExpiry);
  const signature = pssSign(delegationSignedBytes(sn, delexp, serverKey540), root);
  return `del01: ${sn} ${uuid} sig02: sha256 ${keyIdHex(key01Hex(root))} ${delexp} ${signature}\n`;
}

/** An optional check that a delegation really is for this server key and from a trusted root. */
export interface DelegationCheck {
  /** key01 hex of the keys the laptops trust. */
  trustedKeys: readonly string[];
  now: Date;
}

export interface DelegatedLeaseRequest {
  /** A `del01:` line issued for this server's key. */
  delegationLine: string;
  /** The server's private key, the one named in the delegation's signed bytes. */
  serverKey: KeyObject;
  expiry: OlpcTimeInput;
  /**
   * The del01 line does not carry the server key (only its signature covers
   * it), so whether the delegation is for `serverKey` can only be told by
   * verifying it against the root. Pass the trusted keys to do that; without
   * them a delegation for another key yields a lease no laptop accepts.
   */
  check?: DelegationCheck;
}

/**
 * `act01: SN K EXP <del01's sig02 part> sha256 <srvkey540> <EXP> <leasesig512>\n`
 * (make-lease.sh --chain): a lease signed by the server key under a delegation.
 * SN and UUID come from the del01 line. The laptop checks each link's expiry on
 * its own, so the lease stops working at DELEXP even if EXP is later.
 */
export function signDelegatedLease(request: DelegatedLeaseRequest): string {
  return signNow(prepareDelegatedLease(request));
}

/**
 * signDelegatedLease up to the signature. `serverKey540` (the server key's
 * key01 hex, if the caller has it) saves exporting the key for every lease.
 */
export function prepareDelegatedLease(request: DelegatedLeaseRequest & { serverKey540?: string }): UnsignedLine {
  const delegation = parseDelegationLine(request.delegationLine);
  const key = signingKey(request.serverKey, "server key");
  const serverKey540 = request.serverKey540 ?? key01Hex(key);
  if (request.check) requireDelegationFor(delegation, serverKey540, request.check);
  const exp = olpcTimeText("expiry", request.expiry);
  return {
    data: delegatedLeaseSignedBytes(delegation.sn, delegation.uuid, exp, exp),
    key,
    complete: (signature) => `act01: ${delegation.sn} ${LEASE_DISPOSITION} ${exp} ${delegation.sig02} sha256 ${serverKey540} ${exp} ${signature}\n`,
  };
}

export interface RtcResetRequest {
  sn: string;
  uuid: string;
  /** The laptop's RTC as sent in `rtcreset <SN> <rtctimestamp> <rtccount>`: the timestamp, kept as text. */
  currentRtc: string;
  /** The request's count; written as 10 zero-padded decimal digits. */
  nonce: string | number;
  /** The time to set the laptop's clock to (normally the server's now). */
  newRtc: OlpcTimeInput;
  leaseKey: KeyObject;
}

/**
 * `rtc01: SN <currentrtc16> <nonce10> <newrtc16> sig01: sha256 <keyid64> <sig512>\n`.
 * Inferred (protocols.md §5 [I], bios-crypto make-rtcreset): currentrtc and
 * nonce are the request's timestamp and count; the nonce is zero-padded to 10.
 */
export function signRtcReset(request: RtcResetRequest): string {
  const key = signingKey(request.leaseKey, "lease key");
  const { sn, fields } = rtcFields(request.sn, request.currentRtc, request.nonce, request.newRtc);
  const signature = pssSign(rtcResetSignedBytes(sn, request.uuid, ...fields), key);
  return `rtc01: ${sn} ${fields.join(" ")} sig01: sha256 ${keyIdHex(key01Hex(key))} ${signature}\n`;
}

export interface DelegatedRtcResetRequest {
  /** The machine's `del01:` line; SN and UUID come from it. */
  delegationLine: string;
  serverKey: KeyObject;
  currentRtc: string;
  nonce: string | number;
  newRtc: OlpcTimeInput;
  check?: DelegationCheck;
}

/**
 * An rtc01 signed by the server key under a delegation (make-rtcreset --chain):
 * `rtc01: SN <cur> <nonce> <new> <del01's sig02 part> sha256 <srvkey540> 00000000T000000Z <sig>\n`,
 * the last link signing `SN:00000000T000000Z:SN:UUID:cur:nonce:new`. Whether a
 * real XO accepts a chained rtc01 is unverified (protocols.md open question 7).
 */
export function signDelegatedRtcReset(request: DelegatedRtcResetRequest): string {
  const delegation = parseDelegationLine(request.delegationLine);
  const key = signingKey(request.serverKey, "server key");
  const serverKey540 = key01Hex(key);
  if (request.check) requireDelegationFor(delegation, serverKey540, request.check);
  const { sn, fields } = rtcFields(delegation.sn, request.currentRtc, request.nonce, request.newRtc);
  const payload = rtcPayload(sn, delegation.uuid, ...fields);
  const signature = pssSign(ascii(lastLinkText(sn, NEVER_EXPIRES_TEXT, payload)), key);
  return `rtc01: ${sn} ${fields.join(" ")} ${delegation.sig02} sha256 ${serverKey540} ${NEVER_EXPIRES_TEXT} ${signature}\n`;
}

function rtcFields(
  sn: string,
  currentRtc: string,
  nonce: string | number,
  newRtc: OlpcTimeInput,
): { sn: string; fields: [string, string, string] } {
  return {
    sn: checkSn("SN", sn),
    fields: [checkTime("current RTC", currentRtc).text, nonceText(nonce), olpcTimeText("new RTC", newRtc)],
  };
}

function requireDelegationFor(delegation: DelegationLine, serverKey540: string, check: DelegationCheck): void {
  const result = verifyParsedDelegation(delegation, serverKey540, check.trustedKeys, check.now);
  if (!result.ok) {
    throw new SugarError("invalid_input", `delegation for ${delegation.sn} cannot be used with this server key: ${result.reason}`);
  }
}

// ---------------------------------------------------------------------------
// Parsed records

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

/** `sig01: sha256 <keyid64> <sig512>` or `sig02: <links>`. */
export type SignatureBlock =
  | { scheme: "sig01"; hash: "sha256"; keyId: string; signature: string }
  | { scheme: "sig02"; links: readonly SignatureLink[] };

/** v1 = sig01; v2 = sig02 with one link; delegated = sig02 root → server key. */
export type LeaseVersion = "v1" | "v2" | "delegated";

export interface LeaseLine {
  version: LeaseVersion;
  sn: string;
  disposition: "K";
  /** EXP as written (signed as text). */
  expiry: string;
  expiresAt: OlpcTime;
  signature: SignatureBlock;
  /** The line as the laptop must receive it: the text with exactly one trailing LF. */
  line: string;
}

export interface DelegationLine {
  sn: string;
  /** Kept exactly as given: the firmware signs the UUID as stored in mfg-data. */
  uuid: string;
  /** The root link: key id (or key) of the delegating root, DELEXP, signature. */
  link: SignatureLink;
  /** `sig02: sha256 <rootid> <DELEXP> <delsig>`: what a delegated lease starts its signature with. */
  sig02: string;
  line: string;
}

export interface RtcResetLine {
  sn: string;
  currentRtc: string;
  nonce: string;
  newRtc: string;
  signature: SignatureBlock;
  line: string;
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

function checkHash(what: string, hash: string): void {
  if (hash !== "sha256") throw fail(`${what}: hash ${show(hash)} is not supported; the firmware accepts only sha256`);
}

function parseSignatureBlock(what: string, fields: readonly string[]): SignatureBlock {
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

/**
 * One `act01:` lease line (v1, v2 or delegated), syntax only: no signature is
 * checked. Accepts the text with or without its trailing LF; `line` always has it.
 */
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

/** One `rtc01:` line, syntax only (sig01, or sig02 with up to MAX_CHAIN_LINKS links). */
export function parseRtcResetLine(line: string): RtcResetLine {
  const what = "rtc reset";
  const fields = fieldsOf(what, line);
  if (fields[0] !== "rtc01:") throw fail(`${what}: line must start with "rtc01:", got ${show(fields[0] ?? "")}`);
  if (fields.length < 6) throw fail(`${what}: rtc01 line is truncated ("rtc01: <SN> <currentrtc> <nonce> <newrtc> sig0N: …")`);
  const sn = checkSn(`${what}: SN`, fields[1] as string);
  const currentRtc = checkTime(`${what}: current RTC`, fields[2] as string).text;
  const nonce = fields[3] as string;
  if (!NONCE_PATTERN.test(nonce)) throw fail(`${what}: nonce ${show(nonce)} must be exactly 10 decimal digits`);
  const newRtc = checkTime(`${what}: new RTC`, fields[4] as string).text;
  const signature = parseSignatureBlock(what, fields.slice(5));
  return { sn, currentRtc, nonce, newRtc, signature, line: fields.join(" ") + "\n" };
}

// ---------------------------------------------------------------------------
// Verification, the way the XO firmware does it

/** Why a record was refused, for logs and import reports. */
export type VerifyProblem =
  | "malformed" // not the exact syntax (see reason)
  | "wrong_sn" // for another machine
  | "clock_before_2007" // the firmware treats such a clock as unset: every lease is expired
  | "expired" // the record's or a link's expiry has passed
  | "untrusted_key" // the first key is not one the laptops trust
  | "bad_signature"; // a signature does not verify (wrong bytes, wrong UUID, wrong salt length…)

export interface VerifyFailure {
  ok: false;
  problem: VerifyProblem;
  reason: string;
}

export interface LeaseVerified {
  ok: true;
  version: LeaseVersion;
  sn: string;
  uuid: string;
  expiresAt: OlpcTime;
  /** The earliest of the lease's and its links' expiries: when the laptop stops accepting it. */
  effectiveExpiry: OlpcTime;
  /** Key id of the trusted key the signature chain starts from. */
  rootKeyId: string;
  /** The canonical line (one trailing LF). */
  line: string;
}

export interface DelegationVerified {
  ok: true;
  sn: string;
  uuid: string;
  expiresAt: OlpcTime;
  rootKeyId: string;
}

export interface RtcResetVerified {
  ok: true;
  sn: string;
  uuid: string;
  currentRtc: string;
  nonce: string;
  newRtc: string;
  rootKeyId: string;
}

const refuse = (problem: VerifyProblem, reason: string): VerifyFailure => ({ ok: false, problem, reason });

/** A trusted key list, checked: a malformed entry is a configuration error, not a lease problem. */
function checkTrustedKeys(trustedKeys: readonly string[]): readonly string[] {
  if (!Array.isArray(trustedKeys)) throw fail("trusted keys must be a list of key01 hex strings");
  trustedKeys.forEach((k, i) => checkKey01Hex(`trusted key ${i + 1}`, k));
  return trustedKeys;
}

/** The trusted key whose DER ends with `field` (a key id tail-matches; a full key matches itself). */
function findTrusted(trustedKeys: readonly string[], field: string): string | undefined {
  return trustedKeys.find((k) => k.endsWith(field));
}

function earliest(a: OlpcTime, b: OlpcTime): OlpcTime {
  if (a === "never") return b;
  if (b === "never") return a;
  return a.getTime() <= b.getTime() ? a : b;
}

/**
 * Verifies a signature block over a record's v1 payload (`SN:UUID:…`):
 * sig01 directly; sig02 by walking the chain as security.fth does.
 */
function verifySignatureBlock(
  sn: string,
  payload: string,
  block: SignatureBlock,
  trustedKeys: readonly string[],
  now: Date,
): { ok: true; rootKeyId: string; linksExpiry: OlpcTime } | VerifyFailure {
  if (block.scheme === "sig01") {
    const trusted = findTrusted(trustedKeys, block.keyId);
    if (!trusted) return refuse("untrusted_key", `key id ${block.keyId} is not a trusted lease key`);
    if (!pssVerify(ascii(payload), publicKeyFromKey01(trusted), block.signature)) {
      return refuse("bad_signature", "sig01 signature does not verify (wrong SN, UUID or expiry, wrong key, or PSS salt length not 8)");
    }
    return { ok: true, rootKeyId: keyIdHex(trusted), linksExpiry: "never" };
  }
  const links = block.links;
  let rootKeyId = "";
  let linksExpiry: OlpcTime = "never";
  for (let i = 0; i < links.length; i++) {
    const link = links[i] as SignatureLink;
    const n = i + 1;
    let keyHex: string;
    if (i === 0) {
      const trusted = findTrusted(trustedKeys, link.key);
      if (!trusted) return refuse("untrusted_key", `link 1 key ${link.key.slice(-KEY_ID_HEX_LENGTH)} is not a trusted lease key`);
      keyHex = trusted;
      rootKeyId = keyIdHex(trusted);
    } else {
      keyHex = link.key;
    }
    if (hasPassed(link.expiresAt, now)) {
      return refuse("expired", `link ${n} (${i === 0 && links.length > 1 ? "delegation" : "signature"}) expired at ${link.expiry}`);
    }
    let key: KeyObject;
    try {
      key = publicKeyFromKey01(keyHex);
    } catch (err) {
      return refuse("malformed", `link ${n} key: ${(err as Error).message}`);
    }
    const next = links[i + 1];
    const signed = next ? linkToNextText(sn, link.expiry, next.key) : lastLinkText(sn, link.expiry, payload);
    if (!pssVerify(ascii(signed), key, link.signature)) {
      return refuse(
        "bad_signature",
        next
          ? `link ${n} signature over the next key does not verify (delegation for another key or SN, or PSS salt length not 8)`
          : `link ${n} signature does not verify (wrong SN, UUID or expiry, wrong key, or PSS salt length not 8)`,
      );
    }
    linksExpiry = earliest(linksExpiry, link.expiresAt);
  }
  return { ok: true, rootKeyId, linksExpiry };
}

/** The checks every record shares before its signatures: SN and clock. */
function precheck(sn: string, expectedSn: string | undefined, now: Date): VerifyFailure | undefined {
  if (expectedSn !== undefined && sn !== expectedSn) return refuse("wrong_sn", `record is for ${sn}, not ${expectedSn}`);
  if (now.getTime() < EARLIEST_TRUSTED_CLOCK) {
    return refuse("clock_before_2007", "clock is before 20070101T000000Z: the firmware treats every lease as expired");
  }
  return undefined;
}

/**
 * Verifies an act01 lease as the XO firmware does. `uuid` is the machine's
 * mfg-data UUID: the lease signs it but does not carry it, so it is required.
 * With `expectedSn`, a lease for another machine is refused (the firmware skips it).
 * A malformed line gives `problem: "malformed"`; malformed trusted keys,
 * UUID or `now` are caller errors and throw LeaseFormatError.
 */
export function verifyLease(
  line: string,
  trustedKeys: readonly string[],
  now: Date,
  uuid: string,
  expectedSn?: string,
): LeaseVerified | VerifyFailure {
  checkNow(now);
  checkUuid("UUID", uuid);
  const trusted = checkTrustedKeys(trustedKeys);
  let lease: LeaseLine;
  try {
    lease = parseLeaseLine(line);
  } catch (err) {
    if (err instanceof LeaseFormatError) return refuse("malformed", err.message);
    throw err;
  }
  const early = precheck(lease.sn, expectedSn, now);
  if (early) return early;
  if (hasPassed(lease.expiresAt, now)) return refuse("expired", `lease expired at ${lease.expiry}`);
  const checked = verifySignatureBlock(lease.sn, leasePayload(lease.sn, uuid, lease.expiry), lease.signature, trusted, now);
  if (!checked.ok) return checked;
  return {
    ok: true,
    version: lease.version,
    sn: lease.sn,
    uuid,
    expiresAt: lease.expiresAt,
    effectiveExpiry: earliest(lease.expiresAt, checked.linksExpiry),
    rootKeyId: checked.rootKeyId,
    line: lease.line,
  };
}

/**
 * Verifies a del01 line: issued by a trusted root, not expired, and for
 * `serverKey540` (the key is only in the signed bytes, so it must be given).
 */
export function verifyDelegation(
  line: string,
  serverKey540: string,
  trustedKeys: readonly string[],
  now: Date,
): DelegationVerified | VerifyFailure {
  checkNow(now);
  checkKey01Hex("server key", serverKey540);
  const trusted = checkTrustedKeys(trustedKeys);
  let delegation: DelegationLine;
  try {
    delegation = parseDelegationLine(line);
  } catch (err) {
    if (err instanceof LeaseFormatError) return refuse("malformed", err.message);
    throw err;
  }
  return verifyParsedDelegation(delegation, serverKey540, trusted, now);
}

function verifyParsedDelegation(
  delegation: DelegationLine,
  serverKey540: string,
  trustedKeys: readonly string[],
  now: Date,
): DelegationVerified | VerifyFailure {
  checkNow(now);
  const trusted = checkTrustedKeys(trustedKeys);
  const early = precheck(delegation.sn, undefined, now);
  if (early) return early;
  const root = findTrusted(trusted, delegation.link.key);
  if (!root) {
    return refuse("untrusted_key", `delegation root ${delegation.link.key.slice(-KEY_ID_HEX_LENGTH)} is not a trusted lease key`);
  }
  if (hasPassed(delegation.link.expiresAt, now)) return refuse("expired", `delegation expired at ${delegation.link.expiry}`);
  const signed = ascii(linkToNextText(delegation.sn, delegation.link.expiry, serverKey540));
  if (!pssVerify(signed, publicKeyFromKey01(root), delegation.link.signature)) {
    return refuse(
      "bad_signature",
      "delegation signature does not verify for this server key (issued to another key, or PSS salt length not 8)",
    );
  }
  return { ok: true, sn: delegation.sn, uuid: delegation.uuid, expiresAt: delegation.link.expiresAt, rootKeyId: keyIdHex(root) };
}

/** Verifies an rtc01 line for the machine with this UUID (sig01, or a sig02 chain). */
export function verifyRtcReset(
  line: string,
  trustedKeys: readonly string[],
  now: Date,
  uuid: string,
  expectedSn?: string,
): RtcResetVerified | VerifyFailure {
  checkNow(now);
  checkUuid("UUID", uuid);
  const trusted = checkTrustedKeys(trustedKeys);
  let rtc: RtcResetLine;
  try {
    rtc = parseRtcResetLine(line);
  } catch (err) {
    if (err instanceof LeaseFormatError) return refuse("malformed", err.message);
    throw err;
  }
  const early = precheck(rtc.sn, expectedSn, now);
  if (early) return early;
  const payload = rtcPayload(rtc.sn, uuid, rtc.currentRtc, rtc.nonce, rtc.newRtc);
  const checked = verifySignatureBlock(rtc.sn, payload, rtc.signature, trusted, now);
  if (!checked.ok) return checked;
  return { ok: true, sn: rtc.sn, uuid, currentRtc: rtc.currentRtc, nonce: rtc.nonce, newRtc: rtc.newRtc, rootKeyId: checked.rootKeyId };
}

// ---------------------------------------------------------------------------
// Multi-lease files

export interface LeaseFileEntry {
  /** The SN the entry is filed under: the JSON key, or the line's second field (undefined if it has none). */
  sn: string | undefined;
  /** The line without its LF (a CR before the LF is dropped too); not yet checked: pass it to parseLeaseLine. */
  line: string;
  /** 1-based line number in the file, or within the JSON value. */
  lineNo: number;
  /** The JSON key the line came from (cjson files only). */
  key?: string;
  /** Where the line came from, for import reports: `line 3` or `"SHF706002A7" line 1`. */
  where: string;
}

export interface LeaseFile {
  format: "lines" | "cjson";
  entries: LeaseFileEntry[];
}

/**
 * Splits a multi-lease file into its lines, without judging them, so the
 * caller can import the good ones and report each refused one with its reason.
 * Two forms (protocols.md §5): concatenated lines (blank lines skipped), and
 * compact JSON `[1,{"<SN>":"<lines, each ending \n>",…}]` from
 * format_as_cjson_leases.py, read with a real JSON parser (any whitespace).
 * In cjson files the caller should also check that each line's SN equals its key.
 * Throws LeaseFormatError only when the file as a whole cannot be read.
 */
export function splitMultiLeaseFile(text: string): LeaseFile {
  if (typeof text !== "string") throw fail("lease file is not text");
  const body = text.startsWith("\ufeff") ? text.slice(1) : text;
  if (body.trimStart().startsWith("[")) return { format: "cjson", entries: splitCjson(body) };
  const entries: LeaseFileEntry[] = [];
  splitLines(body).forEach((line, i) => {
    if (line.trim() === "") return;
    entries.push({ sn: secondField(line), line, lineNo: i + 1, where: `line ${i + 1}` });
  });
  return { format: "lines", entries };
}

/** Lines without their terminators; a CRLF file (edited on Windows) yields the same lines as LF. */
function splitLines(text: string): string[] {
  const lines = text.split("\n").map((l) => (l.endsWith("\r") ? l.slice(0, -1) : l));
  if (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  return lines;
}

function secondField(line: string): string | undefined {
  const field = line.split(" ")[1];
  return field === undefined || field === "" ? undefined : field;
}

function splitCjson(text: string): LeaseFileEntry[] {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (cause) {
    throw fail(`lease file starts with "[" but is not valid JSON: ${(cause as Error).message}`, cause);
  }
  if (!Array.isArray(data) || data.length !== 2 || data[0] !== 1) {
    throw fail('JSON lease file must be [1, {"<SN>": "<lease lines>", …}]');
  }
  const map: unknown = data[1];
  if (typeof map !== "object" || map === null || Array.isArray(map)) {
    throw fail('JSON lease file must be [1, {"<SN>": "<lease lines>", …}]: the second element is not an object');
  }
  const entries: LeaseFileEntry[] = [];
  for (const [key, value] of Object.entries(map)) {
    if (typeof value !== "string") throw fail(`JSON lease file: the value for ${show(key)} is not a string`);
    splitLines(value).forEach((line, i) => {
      if (line.trim() === "") return;
      entries.push({ sn: key, line, lineNo: i + 1, key, where: `${JSON.stringify(key)} line ${i + 1}` });
    });
  }
  return entries;
}
