/**
 * What the server verifies, the way the XO firmware does: a `del01:`
 * delegation at import (issued by a trusted root, not expired, for this
 * server's key). The server only signs and serves leases and rtc resets, so
 * their verifier lives with the tests (test/support/olpc-verify.ts), built on
 * the helpers exported here.
 */
import { EARLIEST_TRUSTED_CLOCK, KEY_ID_HEX_LENGTH } from "./constants.js";
import { LeaseFormatError, fail } from "./errors.js";
import { checkKey01Hex } from "./fields.js";
import { keyIdHex, publicKeyFromKey01 } from "./keys.js";
import { pssVerify } from "./pss.js";
import { parseDelegationLine, type DelegationLine } from "./records.js";
import { ascii, linkToNextText } from "./signed-bytes.js";
import { checkNow, hasPassed, type OlpcTime } from "./time.js";

/** Why a record was refused, for logs and import reports. */
export type VerifyProblem =
  | "malformed" // not the exact syntax (see reason)
  | "wrong_sn" // for another machine
  | "clock_before_2007" // the firmware treats such a clock as unset: every lease is expired
  | "expired" // the record's or a link's expiry has passed
  | "untrusted_key" // the first key is not one the laptops trust
  | "bad_signature"; // a signature does not verify (wrong bytes, wrong UUID, wrong salt length…)

/** A refused record: the problem, and a reason a person can act on. */
export interface VerifyFailure {
  ok: false;
  problem: VerifyProblem;
  reason: string;
}

/** A delegation that holds: for whom, until when, from which trusted root. */
export interface DelegationVerified {
  ok: true;
  sn: DelegationLine["sn"];
  uuid: DelegationLine["uuid"];
  expiresAt: OlpcTime;
  rootKeyId: string;
}

/** A VerifyFailure for a problem and its reason. */
export const refuse = (problem: VerifyProblem, reason: string): VerifyFailure => ({ ok: false, problem, reason });

/** A trusted key list, checked: a malformed entry is a configuration error, not a record problem. */
export function checkTrustedKeys(trustedKeys: readonly string[]): readonly string[] {
  if (!Array.isArray(trustedKeys)) throw fail("trusted keys must be a list of key01 hex strings");
  trustedKeys.forEach((k, i) => checkKey01Hex(`trusted key ${i + 1}`, k));
  return trustedKeys;
}

/** The trusted key whose DER ends with `field` (a key id tail-matches; a full key matches itself). */
export function findTrusted(trustedKeys: readonly string[], field: string): string | undefined {
  return trustedKeys.find((k) => k.endsWith(field));
}

/** The checks every record shares before its signatures: SN and clock. */
export function precheck(sn: string, expectedSn: string | undefined, now: Date): VerifyFailure | undefined {
  if (expectedSn !== undefined && sn !== expectedSn) return refuse("wrong_sn", `record is for ${sn}, not ${expectedSn}`);
  if (now.getTime() < EARLIEST_TRUSTED_CLOCK) {
    return refuse("clock_before_2007", "clock is before 20070101T000000Z: the firmware treats every lease as expired");
  }
  return undefined;
}

/**
 * Verifies a del01 line: issued by a trusted root, not expired, and for
 * `serverKey01Hex` (the key is only in the signed bytes, so it must be given).
 * A malformed line gives `problem: "malformed"`; a malformed server key,
 * trusted key or `now` is a caller error and throws LeaseFormatError.
 */
export function verifyDelegation(
  line: string,
  serverKey01Hex: string,
  trustedKeys: readonly string[],
  now: Date,
): DelegationVerified | VerifyFailure {
  checkNow(now);
  checkKey01Hex("server key", serverKey01Hex);
  const trusted = checkTrustedKeys(trustedKeys);
  let delegation: DelegationLine;
  try {
    delegation = parseDelegationLine(line);
  } catch (err) {
    if (err instanceof LeaseFormatError) return refuse("malformed", err.message);
    throw err;
  }
  const early = precheck(delegation.sn, undefined, now);
  if (early) return early;
  const root = findTrusted(trusted, delegation.link.key);
  if (!root) {
    return refuse("untrusted_key", `delegation root ${delegation.link.key.slice(-KEY_ID_HEX_LENGTH)} is not a trusted lease key`);
  }
  if (hasPassed(delegation.link.expiresAt, now)) return refuse("expired", `delegation expired at ${delegation.link.expiry}`);
  const signed = ascii(linkToNextText(delegation.sn, delegation.link.expiry, serverKey01Hex));
  if (!pssVerify(signed, publicKeyFromKey01(root), delegation.link.signature)) {
    return refuse(
      "bad_signature",
      "delegation signature does not verify for this server key (issued to another key, or PSS salt length not 8)",
    );
  }
  return { ok: true, sn: delegation.sn, uuid: delegation.uuid, expiresAt: delegation.link.expiresAt, rootKeyId: keyIdHex(root) };
}
