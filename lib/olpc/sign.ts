/**
 * Signing OLPC records: v1, v2 and delegated `act01:` leases, `del01:`
 * delegations and `rtc01:` clock resets, with RSASSA-PSS salt 8 (pss.ts).
 * The sign* functions sign at once, on the calling thread; the prepare*
 * functions stop short of the signature so a server can sign many on the
 * thread pool (signInThreadPool) without blocking its event loop.
 */
import type { KeyObject } from "node:crypto";
import { LEASE_DISPOSITION, NEVER_EXPIRES_TEXT } from "./constants.js";
import { checkSn, checkTime, checkUuid, nonceText } from "./fields.js";
import { key01Hex, keyIdHex, publicHalf, signingKey } from "./keys.js";
import { pssSign, pssSignInThreadPool } from "./pss.js";
import { parseDelegationLine } from "./records.js";
import {
  ascii,
  delegatedLeaseSignedBytes,
  delegationSignedBytes,
  lastLinkText,
  leaseV1SignedBytes,
  leaseV2SignedBytes,
  rtcPayload,
  rtcResetSignedBytes,
} from "./signed-bytes.js";
import { olpcTimeText, type OlpcTimeInput } from "./time.js";

/** A line waiting for its one signature: `data` to be signed with `key`, and `complete` to build the line from the 512-hex signature. */
export interface UnsignedLine {
  data: Buffer;
  key: KeyObject;
  complete(signatureHex: string): string;
}

/** Signs on libuv's thread pool and completes the line. */
export async function signInThreadPool(unsigned: UnsignedLine): Promise<string> {
  return unsigned.complete(await pssSignInThreadPool(unsigned.data, unsigned.key));
}

function signNow(unsigned: UnsignedLine): string {
  return unsigned.complete(pssSign(unsigned.data, unsigned.key));
}

/** A lease signed directly by a key the laptops trust (v1 or v2). */
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

/** signV1Lease up to the signature. `leaseKey01Hex` (the key's key01 hex, if the caller has it) saves exporting the key again. */
export function prepareV1Lease(request: V1LeaseRequest & { leaseKey01Hex?: string }): UnsignedLine {
  const key = signingKey(request.leaseKey, "lease key");
  const exp = olpcTimeText("expiry", request.expiry);
  const keyId = keyIdHex(request.leaseKey01Hex ?? key01Hex(key));
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

/** A delegation for one machine, from a root key to a school server's key. */
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
  const serverKey01Hex = key01Hex(publicHalf(request.serverPublicKey, "server key"));
  const sn = checkSn("SN", request.sn);
  const uuid = checkUuid("UUID", request.uuid);
  const delexp = olpcTimeText("delegation expiry", request.delegationExpiry);
  const signature = pssSign(delegationSignedBytes(sn, delexp, serverKey01Hex), root);
  return `del01: ${sn} ${uuid} sig02: sha256 ${keyIdHex(key01Hex(root))} ${delexp} ${signature}\n`;
}

/**
 * A lease signed by the server key under a delegation. The del01 line does
 * not carry the server key (only its signature covers it): a delegation for
 * another key yields a lease no laptop accepts, so check delegations when
 * they arrive (verifyDelegation), as the keyring does at import.
 */
export interface DelegatedLeaseRequest {
  /** A `del01:` line issued for this server's key. */
  delegationLine: string;
  /** The server's private key, the one named in the delegation's signed bytes. */
  serverKey: KeyObject;
  expiry: OlpcTimeInput;
}

/**
 * `act01: SN K EXP <del01's sig02 part> sha256 <server key01 hex> <EXP> <leasesig512>\n`
 * (make-lease.sh --chain). SN and UUID come from the del01 line. The laptop
 * checks each link's expiry on its own, so the lease stops working at DELEXP
 * even if EXP is later.
 */
export function signDelegatedLease(request: DelegatedLeaseRequest): string {
  return signNow(prepareDelegatedLease(request));
}

/** signDelegatedLease up to the signature. `serverKey01Hex` (if the caller has it) saves exporting the key for every lease. */
export function prepareDelegatedLease(request: DelegatedLeaseRequest & { serverKey01Hex?: string }): UnsignedLine {
  const delegation = parseDelegationLine(request.delegationLine);
  const key = signingKey(request.serverKey, "server key");
  const serverKey01Hex = request.serverKey01Hex ?? key01Hex(key);
  const exp = olpcTimeText("expiry", request.expiry);
  return {
    data: delegatedLeaseSignedBytes(delegation.sn, delegation.uuid, exp, exp),
    key,
    complete: (signature) => `act01: ${delegation.sn} ${LEASE_DISPOSITION} ${exp} ${delegation.sig02} sha256 ${serverKey01Hex} ${exp} ${signature}\n`,
  };
}

/** An rtc01 clock reset signed directly by a lease key. */
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
 * Inferred from bios-crypto make-rtcreset: currentrtc and nonce are the
 * request's timestamp and count; the nonce is zero-padded to 10.
 */
export function signRtcReset(request: RtcResetRequest): string {
  const key = signingKey(request.leaseKey, "lease key");
  const { sn, fields } = rtcFields(request.sn, request.currentRtc, request.nonce, request.newRtc);
  const signature = pssSign(rtcResetSignedBytes(sn, request.uuid, ...fields), key);
  return `rtc01: ${sn} ${fields.join(" ")} sig01: sha256 ${keyIdHex(key01Hex(key))} ${signature}\n`;
}

/** An rtc01 clock reset signed by the server key under the machine's delegation. */
export interface DelegatedRtcResetRequest {
  /** The machine's `del01:` line; SN and UUID come from it. */
  delegationLine: string;
  serverKey: KeyObject;
  currentRtc: string;
  nonce: string | number;
  newRtc: OlpcTimeInput;
}

/**
 * An rtc01 signed by the server key under a delegation (make-rtcreset --chain):
 * `rtc01: SN <cur> <nonce> <new> <del01's sig02 part> sha256 <server key01 hex> 00000000T000000Z <sig>\n`,
 * the last link signing `SN:00000000T000000Z:SN:UUID:cur:nonce:new`. Whether a
 * real XO accepts a chained rtc01 is unverified, so the keyring prefers a lease key.
 */
export function signDelegatedRtcReset(request: DelegatedRtcResetRequest): string {
  const delegation = parseDelegationLine(request.delegationLine);
  const key = signingKey(request.serverKey, "server key");
  const serverKey01Hex = key01Hex(key);
  const { sn, fields } = rtcFields(delegation.sn, request.currentRtc, request.nonce, request.newRtc);
  const payload = rtcPayload(sn, delegation.uuid, ...fields);
  const signature = pssSign(ascii(lastLinkText(sn, NEVER_EXPIRES_TEXT, payload)), key);
  return `rtc01: ${sn} ${fields.join(" ")} ${delegation.sig02} sha256 ${serverKey01Hex} ${NEVER_EXPIRES_TEXT} ${signature}\n`;
}

/**
 * The fields of an rtc01 after its SN, checked: the laptop's timestamp kept
 * as text, its count as the 10-digit nonce, and the new time. Lets a signer
 * refuse a bad request before it decides which key signs.
 */
export function rtcRequestFields(currentRtc: string, nonce: string | number, newRtc: OlpcTimeInput): { currentRtc: string; nonce: string; newRtc: string } {
  return { currentRtc: checkTime("current RTC", currentRtc).text, nonce: nonceText(nonce), newRtc: olpcTimeText("new RTC", newRtc) };
}

function rtcFields(
  sn: string,
  currentRtc: string,
  nonce: string | number,
  newRtc: OlpcTimeInput,
): { sn: string; fields: [string, string, string] } {
  const checkedSn = checkSn("SN", sn);
  const request = rtcRequestFields(currentRtc, nonce, newRtc);
  return { sn: checkedSn, fields: [request.currentRtc, request.nonce, request.newRtc] };
}
