/**
 * Field checks shared by the builders and the parsers. The firmware hashes
 * the literal text of every field, so they are strict (single spaces,
 * lower-case hex, exact lengths): a line a laptop would refuse must be
 * refused at import, not served.
 */
import { isMachineSn, machineUuid, type MachineSn, type MachineUuid } from "../../src/validate.js";
import { KEY01_HEX_LENGTH, KEY01_PREFIX, KEY01_SUFFIX, MAX_LINE_BYTES } from "./constants.js";
import { fail, show } from "./errors.js";
import { parseOlpcTime, type OlpcTime } from "./time.js";

const LOWER_HEX = /^[0-9a-f]*$/;
const ANY_HEX = /^[0-9a-fA-F]*$/;
/** The nonce field of an rtc01 record: exactly 10 decimal digits. */
const NONCE = /^\d{10}$/;

/** A serial number exactly as the laptop reports it: the firmware signs it as is. */
export function checkSn(field: string, sn: string): MachineSn {
  if (isMachineSn(sn)) return sn;
  if (isMachineSn(sn.toUpperCase())) {
    throw fail(`${field} ${show(sn)} must be upper case: the firmware signs the serial number as the laptop reports it`);
  }
  throw fail(`${field} ${show(sn)} is not an XO serial number (3 letters A-Z and 8 hex digits, e.g. SHF706002A7)`);
}

/** A UUID kept exactly as given: the firmware signs it as stored in mfg-data. */
export function checkUuid(field: string, uuid: string): MachineUuid {
  try {
    return machineUuid(uuid);
  } catch (cause) {
    throw fail(`${field} ${show(uuid)} is not a UUID (8-4-4-4-12 hex digits)`, cause);
  }
}

/** A 16-character OLPC time field, returned as text (what is signed) and as a value. */
export function checkTime(field: string, text: string): { text: string; at: OlpcTime } {
  if (text.length !== 16) throw fail(`${field} ${show(text)} must be 16 characters (YYYYMMDDTHHMMSSZ), got ${text.length}`);
  const at = parseOlpcTime(text);
  if (at === undefined) throw fail(`${field} ${show(text)} is not a valid UTC time YYYYMMDDTHHMMSSZ`);
  return { text, at };
}

/** Hex of one of the allowed lengths, in lower case. */
export function checkHex(field: string, value: string, lengths: readonly number[]): string {
  if (!ANY_HEX.test(value)) throw fail(`${field} ${show(value)} is not hex`);
  if (!lengths.includes(value.length)) {
    throw fail(`${field} must be ${lengths.join(" or ")} hex digits, got ${value.length}`);
  }
  // The firmware hashes the text as written, so upper-case hex signs different bytes.
  if (!LOWER_HEX.test(value)) throw fail(`${field} must be lower-case hex`);
  return value;
}

/** A key01 value: 540 lower-case hex of the PKCS#1 DER of an RSA-2048 key with e = 65537. */
export function checkKey01Hex(field: string, hex: string): string {
  checkHex(field, hex, [KEY01_HEX_LENGTH]);
  if (!hex.startsWith(KEY01_PREFIX) || !hex.endsWith(KEY01_SUFFIX)) {
    throw fail(
      `${field} is not the PKCS#1 DER of an RSA-2048 key with e=65537 (it must start ${KEY01_PREFIX} and end ${KEY01_SUFFIX})`,
    );
  }
  return hex;
}

/** The nonce field as a record carries it: exactly 10 decimal digits. */
export function checkNonce(field: string, nonce: string): string {
  if (!NONCE.test(nonce)) throw fail(`${field} ${show(nonce)} must be exactly 10 decimal digits`);
  return nonce;
}

/** The nonce field from the rtcreset request's count, zero-padded to 10 decimal digits (bios-crypto make-rtcreset). */
export function nonceText(nonce: string | number): string {
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
export function fieldsOf(what: string, line: string): string[] {
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
