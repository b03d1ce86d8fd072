/**
 * Verifies leases and rtc resets with lib/olpc's strict parsers, classifying
 * why a record is refused (VerifyProblem) the way the firmware would. The
 * server never verifies these (it signs and serves them; it verifies only
 * delegations, lib/olpc/verify.ts), so this verifier lives with the tests.
 * It shares the server's parsers: a test of what the server signs checks it
 * with the independent test/support/xo-verify.ts wherever that can.
 */
import type { KeyObject } from "node:crypto";
import { KEY_ID_HEX_LENGTH } from "../../lib/olpc/constants.js";
import { LeaseFormatError, fail, show } from "../../lib/olpc/errors.js";
import { checkNonce, checkSn, checkTime, checkUuid, fieldsOf } from "../../lib/olpc/fields.js";
import { keyIdHex, publicKeyFromKey01 } from "../../lib/olpc/keys.js";
import { pssVerify } from "../../lib/olpc/pss.js";
import { parseLeaseLine, parseSignatureBlock, type LeaseLine, type LeaseVersion, type SignatureBlock, type SignatureLink } from "../../lib/olpc/records.js";
import { ascii, lastLinkText, leasePayload, linkToNextText, rtcPayload } from "../../lib/olpc/signed-bytes.js";
import { checkNow, hasPassed, type OlpcTime } from "../../lib/olpc/time.js";
import { checkTrustedKeys, findTrusted, precheck, refuse, type VerifyFailure } from "../../lib/olpc/verify.js";

export type { VerifyFailure } from "../../lib/olpc/verify.js";

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

export interface RtcResetVerified {
  ok: true;
  sn: string;
  uuid: string;
  currentRtc: string;
  nonce: string;
  newRtc: string;
  rootKeyId: string;
}

/** An `rtc01:` line, parsed. */
export interface RtcResetLine {
  sn: string;
  currentRtc: string;
  nonce: string;
  newRtc: string;
  signature: SignatureBlock;
  line: string;
}

/** One `rtc01:` line, syntax only (sig01, or sig02 with up to MAX_CHAIN_LINKS links). */
export function parseRtcResetLine(line: string): RtcResetLine {
  const what = "rtc reset";
  const fields = fieldsOf(what, line);
  if (fields[0] !== "rtc01:") throw fail(`${what}: line must start with "rtc01:", got ${show(fields[0] ?? "")}`);
  if (fields.length < 6) throw fail(`${what}: rtc01 line is truncated ("rtc01: <SN> <currentrtc> <nonce> <newrtc> sig0N: …")`);
  const sn = checkSn(`${what}: SN`, fields[1] as string);
  const currentRtc = checkTime(`${what}: current RTC`, fields[2] as string).text;
  const nonce = checkNonce(`${what}: nonce`, fields[3] as string);
  const newRtc = checkTime(`${what}: new RTC`, fields[4] as string).text;
  const signature = parseSignatureBlock(what, fields.slice(5));
  return { sn, currentRtc, nonce, newRtc, signature, line: fields.join(" ") + "\n" };
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

/** A parse that refuses (`malformed`) instead of throwing. */
function parsed<T>(parse: () => T): T | VerifyFailure {
  try {
    return parse();
  } catch (err) {
    if (err instanceof LeaseFormatError) return refuse("malformed", err.message);
    throw err;
  }
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
  const lease = parsed<LeaseLine>(() => parseLeaseLine(line));
  if ("ok" in lease) return lease;
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
  const rtc = parsed<RtcResetLine>(() => parseRtcResetLine(line));
  if ("ok" in rtc) return rtc;
  const early = precheck(rtc.sn, expectedSn, now);
  if (early) return early;
  const payload = rtcPayload(rtc.sn, uuid, rtc.currentRtc, rtc.nonce, rtc.newRtc);
  const checked = verifySignatureBlock(rtc.sn, payload, rtc.signature, trusted, now);
  if (!checked.ok) return checked;
  return { ok: true, sn: rtc.sn, uuid, currentRtc: rtc.currentRtc, nonce: rtc.nonce, newRtc: rtc.newRtc, rootKeyId: checked.rootKeyId };
}
