/**
 * The exact bytes each record's signatures cover (ASCII, no LF unless shown).
 * The firmware rebuilds these from the record's fields and the machine's
 * mfg-data, so they must match byte for byte.
 */
import { LEASE_DISPOSITION } from "./constants.js";
import { checkKey01Hex, checkNonce, checkSn, checkTime, checkUuid } from "./fields.js";

/** The bytes of record text (ASCII by construction: the fields are checked first). */
export const ascii = (text: string) => Buffer.from(text, "latin1");

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

/** A delegation (del01, first link, root key): `SN:DELEXP:key01: <server key01 hex>\n`, 577 bytes including the LF. */
export function delegationSignedBytes(sn: string, delegationExpiry: string, serverKey01Hex: string): Buffer {
  const delexp = checkTime("delegation expiry", delegationExpiry).text;
  return ascii(linkToNextText(checkSn("SN", sn), delexp, checkKey01Hex("server key", serverKey01Hex)));
}

/** rtc01 (sig01): `SN:UUID:currentrtc:nonce:newrtc`. */
export function rtcResetSignedBytes(sn: string, uuid: string, currentRtc: string, nonce: string, newRtc: string): Buffer {
  return ascii(rtcPayload(sn, uuid, currentRtc, nonce, newRtc));
}

/** A lease's v1 payload, `SN:UUID:K:EXP`: what sig01 signs and what the last sig02 link signs after its prefix. */
export function leasePayload(sn: string, uuid: string, expiry: string): string {
  return `${checkSn("SN", sn)}:${checkUuid("UUID", uuid)}:${LEASE_DISPOSITION}:${checkTime("expiry", expiry).text}`;
}

/** An rtc01's payload, `SN:UUID:currentrtc:nonce:newrtc`. */
export function rtcPayload(sn: string, uuid: string, currentRtc: string, nonce: string, newRtc: string): string {
  checkNonce("nonce", nonce);
  const current = checkTime("current RTC", currentRtc).text;
  return [checkSn("SN", sn), checkUuid("UUID", uuid), current, nonce, checkTime("new RTC", newRtc).text].join(":");
}

/** What a chain link signs when it is the last one: `SN:EXPi:<payload>`. */
export function lastLinkText(sn: string, linkExpiry: string, payload: string): string {
  return `${sn}:${linkExpiry}:${payload}`;
}

/** What a chain link signs when a link follows: `SN:EXPi:key01: <next key field as text>\n`. */
export function linkToNextText(sn: string, linkExpiry: string, nextKeyField: string): string {
  return `${sn}:${linkExpiry}:key01: ${nextKeyField}\n`;
}
