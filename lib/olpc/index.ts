/**
 * OLPC activation records: the exact bytes an XO laptop's firmware
 * (OpenFirmware `security.fth`, OLPC bios-crypto) signs, parses and verifies
 * for activation leases (`act01`), server delegations (`del01`) and RTC
 * resets (`rtc01`). Pure functions over node:crypto: no I/O, no clock
 * (callers pass `now`), no caches. Each type is documented where it is declared.
 */
export { LeaseFormatError } from "./errors.js";
export { NEVER_EXPIRES_TEXT, PSS_SALT_LENGTH } from "./constants.js";
export { formatOlpcTime, parseOlpcTime, type OlpcTime, type OlpcTimeInput } from "./time.js";
export { key01Hex, key01Line, keyIdHex, parseKey01Line, publicKeyFromKey01 } from "./keys.js";
export { delegatedLeaseSignedBytes, delegationSignedBytes, leaseV1SignedBytes, leaseV2SignedBytes, rtcResetSignedBytes } from "./signed-bytes.js";
export {
  parseDelegationLine,
  parseLeaseLine,
  type DelegationLine,
  type LeaseLine,
  type LeaseVersion,
  type SignatureBlock,
  type SignatureLink,
} from "./records.js";
export {
  prepareDelegatedLease,
  prepareV1Lease,
  rtcRequestFields,
  signDelegatedLease,
  signDelegatedRtcReset,
  signDelegation,
  signInThreadPool,
  signRtcReset,
  signV1Lease,
  signV2Lease,
  type DelegatedLeaseRequest,
  type DelegatedRtcResetRequest,
  type DelegationRequest,
  type RtcResetRequest,
  type UnsignedLine,
  type V1LeaseRequest,
} from "./sign.js";
export { verifyDelegation, type DelegationVerified, type VerifyFailure, type VerifyProblem } from "./verify.js";
export { splitMultiLeaseFile, type LeaseFile, type LeaseFileEntry } from "./multi-lease.js";
