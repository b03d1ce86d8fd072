/**
 * OLPC lease cryptography (lib/olpc) against the independent OLPC vectors in
 * test/fixtures/olpc (see their README). Signatures use a random PSS salt, so
 * fresh signatures are compared by verifying them, never byte for byte: with
 * the independent XO-side verifier (test/support/xo-verify.ts) wherever it
 * can, so the server's code does not check itself; the classifying verifier
 * (test/support/olpc-verify.ts) is tested on the vectors.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import {
  LeaseFormatError,
  NEVER_EXPIRES_TEXT,
  delegatedLeaseSignedBytes,
  delegationSignedBytes,
  formatOlpcTime,
  key01Hex,
  key01Line,
  keyIdHex,
  leaseV1SignedBytes,
  leaseV2SignedBytes,
  parseDelegationLine,
  parseKey01Line,
  parseLeaseLine,
  parseOlpcTime,
  prepareDelegatedLease,
  prepareV1Lease,
  publicKeyFromKey01,
  rtcResetSignedBytes,
  signDelegatedLease,
  signDelegatedRtcReset,
  signDelegation,
  signRtcReset,
  signV1Lease,
  signInThreadPool,
  signV2Lease,
  splitMultiLeaseFile,
  verifyDelegation,
} from "../../lib/olpc/index.js";
import { SugarError } from "../../src/errors.js";
import { opensslVerifyPss } from "../support/openssl.js";
import { parseRtcResetLine, verifyLease, verifyRtcReset, type LeaseVerified, type VerifyFailure } from "../support/olpc-verify.js";
import { olpcVectorsDir } from "../support/paths.js";
import { requires, testsNeeding, TOOLS } from "../support/requires.js";
import { xoVerifyLease, xoVerifyRtc } from "../support/xo-verify.js";

const vector = (name: string) => readFileSync(join(olpcVectorsDir, name), "latin1");
const vectorBytes = (name: string) => readFileSync(join(olpcVectorsDir, name));

// Fields from the vectors README.
const V1 = { sn: "SHF706002A7", uuid: "8BF9AC40-26F8-4BCC-A699-BE51FD366419", expiry: "20991231T000000Z" };
const DEL = {
  sn: "SHC005007B7",
  uuid: "414737D8-2312-9241-9C7B-9886CB74403C",
  delegationExpiry: "20991130T235959Z",
  expiry: "20991231T000000Z",
};

const masterKey = createPrivateKey(vector("master.pem"));
const serverKey = createPrivateKey(vector("server.pem"));
const masterKey01Hex = parseKey01Line(vector("master.key01"));
const serverKey01Hex = parseKey01Line(vector("server.key01"));
const NOW = new Date("2030-06-15T12:00:00Z");

function expectOk<T extends { ok: true }>(result: T | VerifyFailure): T {
  if (!result.ok) assert.unreachable(`expected ok, got ${result.problem}: ${result.reason}`);
  return result as T;
}

function expectRefused(result: { ok: boolean } | VerifyFailure, problem: VerifyFailure["problem"]): VerifyFailure {
  if (result.ok) assert.unreachable(`expected ${problem}, got ok`);
  const failure = result as VerifyFailure;
  assert.is(failure.problem, problem, failure.reason);
  return failure;
}

function expectFormatError(fn: () => unknown, message: RegExp): void {
  try {
    fn();
  } catch (err) {
    assert.instance(err, LeaseFormatError);
    assert.instance(err, SugarError);
    assert.is((err as LeaseFormatError).code, "invalid_input");
    assert.match((err as Error).message, message);
    return;
  }
  assert.unreachable(`expected LeaseFormatError matching ${message}`);
}

let spareKeys: { privateKey: KeyObject; publicKey: KeyObject } | undefined;
/** A third RSA-2048 key nobody trusts (generated once: key generation is slow). */
function strangerKey(): { privateKey: KeyObject; publicKey: KeyObject } {
  spareKeys ??= generateKeyPairSync("rsa", { modulusLength: 2048, publicExponent: 65537 });
  return spareKeys;
}

// --- keys -------------------------------------------------------------------

test("olpc: key ids derive from the key01 lines and equal ids.txt", () => {
  const ids = vector("ids.txt");
  assert.ok(ids.includes(`master key id: ${keyIdHex(masterKey01Hex)}\n`));
  assert.ok(ids.includes(`server key id: ${keyIdHex(serverKey01Hex)}\n`));
  assert.is(keyIdHex(masterKey01Hex).length, 64);
});

test("olpc: key01Hex of the PEM keys equals the key01 files", () => {
  assert.is(key01Hex(createPublicKey(masterKey)), masterKey01Hex);
  assert.is(key01Hex(serverKey), serverKey01Hex, "a private key gives its public half");
  assert.is(key01Line(masterKey), vector("master.key01"));
  assert.is(masterKey01Hex.length, 540);
  assert.ok(masterKey01Hex.startsWith("3082010a0282010100") && masterKey01Hex.endsWith("0203010001"));
  assert.is(key01Hex(publicKeyFromKey01(serverKey01Hex)), serverKey01Hex);
});

test("olpc: key01Hex refuses keys that are not RSA-2048 with e=65537", () => {
  const ed = generateKeyPairSync("ed25519").publicKey;
  expectFormatError(() => key01Hex(ed), /not RSA/);
  const small = generateKeyPairSync("rsa", { modulusLength: 1024 }).publicKey;
  expectFormatError(() => key01Hex(small), /1024-bit/);
  const e3 = generateKeyPairSync("rsa", { modulusLength: 2048, publicExponent: 3 }).publicKey;
  expectFormatError(() => key01Hex(e3), /exponent 3/);
});

test("olpc: publicKeyFromKey01 and parseKey01Line refuse SPKI, upper case and junk", () => {
  const spki = createPublicKey(masterKey).export({ type: "spki", format: "der" }).toString("hex");
  expectFormatError(() => publicKeyFromKey01(spki), /540 hex digits, got 588/);
  expectFormatError(() => publicKeyFromKey01(masterKey01Hex.toUpperCase()), /lower-case/);
  expectFormatError(() => publicKeyFromKey01("00" + masterKey01Hex.slice(2)), /PKCS#1 DER of an RSA-2048/);
  expectFormatError(() => parseKey01Line(`key01:  ${masterKey01Hex}\n`), /two spaces/);
  expectFormatError(() => parseKey01Line(`key02: ${masterKey01Hex}`), /must start with "key01: "/);
  assert.is(parseKey01Line(`key01: ${masterKey01Hex}`), masterKey01Hex, "the LF is optional");
});

// --- time -------------------------------------------------------------------

test("olpc: OLPC times format and parse in UTC, with an explicit never", () => {
  assert.is(formatOlpcTime(new Date("2025-01-31T00:00:00.999Z")), "20250131T000000Z");
  assert.is(formatOlpcTime("never"), NEVER_EXPIRES_TEXT);
  assert.equal(parseOlpcTime("20251231T235959Z"), new Date("2025-12-31T23:59:59Z"));
  assert.is(parseOlpcTime("00000000T000000Z"), "never");
  assert.equal(parseOlpcTime("00500101T000000Z"), new Date("0050-01-01T00:00:00Z"), "no 19xx mapping of small years");
  for (const bad of [
    "20251331T000000Z", // month 13
    "20250230T000000Z", // 30 February
    "20250101T240000Z",
    "20250101T006000Z",
    "20250101T000060Z",
    "20250100T000000Z",
    "00000000T000001Z",
    "20250101t000000z",
    "2025-01-01T00:00",
    "20250101T000000",
    "20250101T000000Z\n",
  ]) {
    assert.is(parseOlpcTime(bad), undefined, bad);
  }
  expectFormatError(() => formatOlpcTime(new Date(Number.NaN)), /not a valid Date/);
});

// --- signed bytes -----------------------------------------------------------

test("olpc: the three signed-bytes files are reproduced byte for byte from the fields", () => {
  const v1 = leaseV1SignedBytes(V1.sn, V1.uuid, V1.expiry);
  assert.is(v1.length, 67);
  assert.ok(v1.equals(vectorBytes("lease-v1.signed-bytes")));

  const delegation = delegationSignedBytes(DEL.sn, DEL.delegationExpiry, serverKey01Hex);
  assert.is(delegation.length, 577);
  assert.is(delegation[delegation.length - 1], 0x0a, "the delegation signs its trailing LF");
  assert.ok(delegation.equals(vectorBytes("delegation.signed-bytes")));

  const chained = delegatedLeaseSignedBytes(DEL.sn, DEL.uuid, DEL.expiry);
  assert.is(chained.length, 96);
  assert.ok(chained.equals(vectorBytes("lease-chained.signed-bytes")));
  assert.ok(leaseV2SignedBytes(DEL.sn, DEL.uuid, DEL.expiry).equals(chained), "v2 and delegated last links sign the same text");

  assert.is(
    rtcResetSignedBytes(V1.sn, V1.uuid, "20110512T003512Z", "0000000135", "20110412T003512Z").toString(),
    `${V1.sn}:${V1.uuid}:20110512T003512Z:0000000135:20110412T003512Z`,
  );
  expectFormatError(() => leaseV1SignedBytes("shf706002a7", V1.uuid, V1.expiry), /upper case/);
});

// --- the vectors ------------------------------------------------------------

test("olpc: verifies lease-v1.txt with master as the only root", () => {
  const ok = expectOk<LeaseVerified>(verifyLease(vector("lease-v1.txt"), [masterKey01Hex], NOW, V1.uuid, V1.sn));
  assert.is(ok.version, "v1");
  assert.is(ok.sn, V1.sn);
  assert.is(ok.rootKeyId, keyIdHex(masterKey01Hex));
  assert.equal(ok.effectiveExpiry, parseOlpcTime(V1.expiry));
  assert.is(ok.line, vector("lease-v1.txt"));
});

test("olpc: verifies lease-chained.txt with master as the only root", () => {
  const line = vector("lease-chained.txt");
  assert.is(Buffer.byteLength(line), 1725);
  const ok = expectOk<LeaseVerified>(verifyLease(line, [masterKey01Hex], NOW, DEL.uuid, DEL.sn));
  assert.is(ok.version, "delegated");
  assert.is(ok.rootKeyId, keyIdHex(masterKey01Hex));
  assert.equal(ok.effectiveExpiry, parseOlpcTime(DEL.delegationExpiry), "the delegation ends first");
});

test("olpc: vector leases need the master root and the right UUID", () => {
  expectRefused(verifyLease(vector("lease-v1.txt"), [serverKey01Hex], NOW, V1.uuid), "untrusted_key");
  expectRefused(verifyLease(vector("lease-chained.txt"), [serverKey01Hex], NOW, DEL.uuid), "untrusted_key");
  expectRefused(verifyLease(vector("lease-v1.txt"), [masterKey01Hex], NOW, DEL.uuid), "bad_signature");
  expectRefused(verifyLease(vector("lease-chained.txt"), [masterKey01Hex], NOW, V1.uuid), "bad_signature");
  expectRefused(verifyLease(vector("lease-v1.txt"), [masterKey01Hex], NOW, V1.uuid, DEL.sn), "wrong_sn");
});

test("olpc: delegation.txt verifies for the server key only", () => {
  const ok = expectOk(verifyDelegation(vector("delegation.txt"), serverKey01Hex, [masterKey01Hex], NOW));
  assert.is(ok.sn, DEL.sn);
  assert.is(ok.uuid, DEL.uuid);
  expectRefused(verifyDelegation(vector("delegation.txt"), masterKey01Hex, [masterKey01Hex], NOW), "bad_signature");
  expectRefused(verifyDelegation(vector("delegation.txt"), serverKey01Hex, [serverKey01Hex], NOW), "untrusted_key");
  expectRefused(verifyDelegation(vector("delegation.txt"), serverKey01Hex, [masterKey01Hex], new Date("2099-12-01T00:00:00Z")), "expired");
});

test("olpc: rejects bad-lease-v1-salt32.txt (PSS salt length must be 8)", () => {
  const line = vector("bad-lease-v1-salt32.txt");
  assert.is(parseLeaseLine(line).version, "v1", "well-formed; only the signature is wrong");
  expectRefused(verifyLease(line, [masterKey01Hex], NOW, V1.uuid, V1.sn), "bad_signature");
});

test("olpc: rejects bad-lease-v1-wrong-sn.txt", () => {
  const line = vector("bad-lease-v1-wrong-sn.txt");
  expectRefused(verifyLease(line, [masterKey01Hex], NOW, V1.uuid), "bad_signature");
  expectRefused(verifyLease(line, [masterKey01Hex], NOW, V1.uuid, V1.sn), "wrong_sn");
});

// --- fresh signatures -------------------------------------------------------

test("olpc: a freshly signed v1 lease verifies", () => {
  const line = signV1Lease({ sn: V1.sn, uuid: V1.uuid, expiry: parseOlpcTime(V1.expiry) as Date, leaseKey: masterKey });
  assert.match(line, /^act01: SHF706002A7 K 20991231T000000Z sig01: sha256 [0-9a-f]{64} [0-9a-f]{512}\n$/);
  assert.is(line.length, vector("lease-v1.txt").length);
  assert.is.not(line, vector("lease-v1.txt"), "random salt: a fresh signature differs");
  assert.equal(xoVerifyLease({ line, sn: V1.sn, uuid: V1.uuid, trustedKey01Hex: [serverKey01Hex, masterKey01Hex], now: NOW }), { ok: true });
});

test("olpc: a freshly signed v2 lease verifies", () => {
  const line = signV2Lease({ sn: V1.sn, uuid: V1.uuid, expiry: "20991231T000000Z", leaseKey: masterKey });
  assert.match(line, /^act01: SHF706002A7 K 20991231T000000Z sig02: sha256 [0-9a-f]{64} 20991231T000000Z [0-9a-f]{512}\n$/);
  assert.is(parseLeaseLine(line).version, "v2");
  assert.equal(xoVerifyLease({ line, sn: V1.sn, uuid: V1.uuid, trustedKey01Hex: [masterKey01Hex], now: NOW }), { ok: true });
});

test("olpc: a freshly signed delegated lease from delegation.txt with server.pem verifies", () => {
  const line = signDelegatedLease({ delegationLine: vector("delegation.txt"), serverKey, expiry: DEL.expiry });
  const delegation = parseDelegationLine(vector("delegation.txt"));
  assert.ok(line.startsWith(`act01: ${DEL.sn} K ${DEL.expiry} ${delegation.sig02} sha256 ${serverKey01Hex} ${DEL.expiry} `));
  assert.is(Buffer.byteLength(line), 1725);
  assert.is.not(line, vector("lease-chained.txt"));
  assert.is(parseLeaseLine(line).version, "delegated");
  assert.equal(xoVerifyLease({ line, sn: DEL.sn, uuid: DEL.uuid, trustedKey01Hex: [masterKey01Hex], now: NOW }), { ok: true });
});

test("olpc: leases signed on the thread pool are the same lines, and verify", async () => {
  const delegated = await signInThreadPool(
    prepareDelegatedLease({ delegationLine: vector("delegation.txt"), serverKey, serverKey01Hex, expiry: DEL.expiry }),
  );
  const now = signDelegatedLease({ delegationLine: vector("delegation.txt"), serverKey, expiry: DEL.expiry });
  assert.is(delegated.slice(0, -513), now.slice(0, -513), "everything but the (salted) signature");
  assert.is(parseLeaseLine(delegated).version, "delegated");
  assert.equal(xoVerifyLease({ line: delegated, sn: DEL.sn, uuid: DEL.uuid, trustedKey01Hex: [masterKey01Hex], now: NOW }), { ok: true });
  const v1 = await signInThreadPool(prepareV1Lease({ sn: V1.sn, uuid: V1.uuid, expiry: parseOlpcTime(V1.expiry) as Date, leaseKey: masterKey }));
  assert.is(parseLeaseLine(v1).version, "v1");
  assert.equal(xoVerifyLease({ line: v1, sn: V1.sn, uuid: V1.uuid, trustedKey01Hex: [masterKey01Hex], now: NOW }), { ok: true });
});

test("olpc: a delegation issued to another key is refused for that key, and a lease signed under it fails the XO's check", () => {
  const stranger = strangerKey();
  const refused = expectRefused(verifyDelegation(vector("delegation.txt"), key01Hex(stranger.publicKey), [masterKey01Hex], NOW), "bad_signature");
  assert.match(refused.reason, /issued to another key/);
  // The del01 line does not carry the server key, so signing under it works; the laptop refuses the result.
  const line = signDelegatedLease({ delegationLine: vector("delegation.txt"), serverKey: stranger.privateKey, expiry: DEL.expiry });
  const xo = xoVerifyLease({ line, sn: DEL.sn, uuid: DEL.uuid, trustedKey01Hex: [masterKey01Hex], now: NOW });
  assert.equal(xo, { ok: false, reason: "link 1: bad signature" });
});

test("olpc: a fresh delegation, then a lease under it, verify end to end", () => {
  const stranger = strangerKey();
  const del = signDelegation({
    sn: V1.sn,
    uuid: V1.uuid,
    delegationExpiry: new Date("2031-01-01T00:00:00Z"),
    rootKey: masterKey,
    serverPublicKey: stranger.publicKey,
  });
  assert.match(del, /^del01: SHF706002A7 8BF9AC40-26F8-4BCC-A699-BE51FD366419 sig02: sha256 [0-9a-f]{64} 20310101T000000Z [0-9a-f]{512}\n$/);
  const parsed = parseDelegationLine(del);
  assert.is(parsed.line, del);
  assert.is(parsed.link.key, keyIdHex(masterKey01Hex));
  expectOk(verifyDelegation(del, key01Hex(stranger.publicKey), [masterKey01Hex], NOW));

  const lease = signDelegatedLease({ delegationLine: del, serverKey: stranger.privateKey, expiry: "never" });
  assert.is(parseLeaseLine(lease).expiresAt, "never");
  const xo = (now: Date) => xoVerifyLease({ line: lease, sn: V1.sn, uuid: V1.uuid, trustedKey01Hex: [masterKey01Hex], now });
  assert.equal(xo(NOW), { ok: true });
  assert.equal(xo(new Date("2031-01-01T00:00:00Z")), { ok: true }, "the delegation holds through its last second");
  assert.equal(xo(new Date("2031-01-01T00:00:01Z")).ok, false, "the lease ends with its delegation");
});

test("olpc: a signed rtc01 verifies, its nonce is 10 digits", () => {
  const line = signRtcReset({
    sn: V1.sn,
    uuid: V1.uuid,
    currentRtc: "20110512T003512Z",
    nonce: 135,
    newRtc: new Date("2030-06-15T12:00:00Z"),
    leaseKey: masterKey,
  });
  assert.match(line, /^rtc01: SHF706002A7 20110512T003512Z 0000000135 20300615T120000Z sig01: sha256 [0-9a-f]{64} [0-9a-f]{512}\n$/);
  const parsed = parseRtcResetLine(line);
  assert.is(parsed.nonce, "0000000135");
  assert.is(parsed.newRtc, "20300615T120000Z");
  const xo = (uuid: string, trustedKey01Hex: string[]) => xoVerifyRtc({ line, sn: V1.sn, uuid, trustedKey01Hex, expect: { currentrtc: "20110512T003512Z", nonce: "0000000135" } });
  assert.equal(xo(V1.uuid, [masterKey01Hex]), { ok: true });
  assert.equal(xo(DEL.uuid, [masterKey01Hex]), { ok: false, reason: "bad signature" });
  assert.equal(xo(V1.uuid, [serverKey01Hex]).ok, false, "signed by a key the laptop does not trust");
  assert.match(signRtcReset({ sn: V1.sn, uuid: V1.uuid, currentRtc: "20110512T003512Z", nonce: "42", newRtc: "20300615T120000Z", leaseKey: masterKey }), / 0000000042 /);
  expectFormatError(
    () => signRtcReset({ sn: V1.sn, uuid: V1.uuid, currentRtc: "20110512T003512Z", nonce: "12345678901", newRtc: NOW, leaseKey: masterKey }),
    /at most 10 decimal digits/,
  );
  expectFormatError(
    () => signRtcReset({ sn: V1.sn, uuid: V1.uuid, currentRtc: "2011-05-12", nonce: 1, newRtc: NOW, leaseKey: masterKey }),
    /current RTC/,
  );
});

test("olpc: a delegated rtc01 from delegation.txt verifies", () => {
  const line = signDelegatedRtcReset({
    delegationLine: vector("delegation.txt"),
    serverKey,
    currentRtc: "20110512T003512Z",
    nonce: 7,
    newRtc: NOW,
  });
  // xo-verify reads sig01 rtc01 lines only: the chained form is checked by the classifying verifier.
  assert.ok(line.startsWith(`rtc01: ${DEL.sn} 20110512T003512Z 0000000007 20300615T120000Z sig02: sha256 ${keyIdHex(masterKey01Hex)} `));
  assert.ok(line.includes(` sha256 ${serverKey01Hex} ${NEVER_EXPIRES_TEXT} `));
  expectOk(verifyRtcReset(line, [masterKey01Hex], NOW, DEL.uuid, DEL.sn));
});

test("olpc: fresh leases and rtc01 pass the independent XO verifier", () => {
  const v1 = signV1Lease({ ...V1, leaseKey: masterKey });
  const v2 = signV2Lease({ ...V1, leaseKey: masterKey });
  const chained = signDelegatedLease({ delegationLine: vector("delegation.txt"), serverKey, expiry: DEL.expiry });
  const rtc = signRtcReset({ sn: V1.sn, uuid: V1.uuid, currentRtc: "20110512T003512Z", nonce: 135, newRtc: NOW, leaseKey: masterKey });
  const trustedKey01Hex = [masterKey01Hex];
  for (const line of [v1, v2]) assert.equal(xoVerifyLease({ line, sn: V1.sn, uuid: V1.uuid, trustedKey01Hex, now: NOW }), { ok: true });
  assert.equal(xoVerifyLease({ line: chained, sn: DEL.sn, uuid: DEL.uuid, trustedKey01Hex, now: NOW }), { ok: true });
  assert.equal(xoVerifyRtc({ line: rtc, sn: V1.sn, uuid: V1.uuid, trustedKey01Hex, expect: { currentrtc: "20110512T003512Z", nonce: "0000000135" } }), { ok: true });
});

testsNeeding(test, requires(TOOLS.openssl))("olpc: a fresh v1 lease passes openssl", async () => {
  const v1 = signV1Lease({ ...V1, leaseKey: masterKey });
  const signatureHex = v1.trimEnd().split(" ").at(-1) ?? "";
  assert.ok(await opensslVerifyPss({ key01Hex: masterKey01Hex, signedBytes: leaseV1SignedBytes(V1.sn, V1.uuid, V1.expiry), signatureHex }));
});

test("olpc: the signers refuse keys that cannot sign for a laptop", () => {
  expectFormatError(() => signV1Lease({ ...V1, leaseKey: createPublicKey(masterKey) }), /must be a private key/);
  const small = generateKeyPairSync("rsa", { modulusLength: 1024 }).privateKey;
  expectFormatError(() => signV1Lease({ ...V1, leaseKey: small }), /1024-bit/);
  expectFormatError(() => signV1Lease({ ...V1, expiry: "2099-12-31", leaseKey: masterKey }), /expiry/);
});

// --- expiry and key ids -----------------------------------------------------

test("olpc: an expired delegation or lease is rejected", () => {
  const chained = vector("lease-chained.txt");
  const afterDelegation = new Date("2099-12-15T00:00:00Z");
  const refused = expectRefused(verifyLease(chained, [masterKey01Hex], afterDelegation, DEL.uuid), "expired");
  assert.match(refused.reason, /link 1 \(delegation\) expired at 20991130T235959Z/);
  expectRefused(verifyLease(chained, [masterKey01Hex], new Date("2100-01-01T00:00:00Z"), DEL.uuid), "expired");
  expectOk(verifyLease(chained, [masterKey01Hex], new Date("2099-11-30T23:59:59Z"), DEL.uuid), );

  const past = signV1Lease({ ...V1, expiry: new Date("2020-01-01T00:00:00Z"), leaseKey: masterKey });
  expectRefused(verifyLease(past, [masterKey01Hex], NOW, V1.uuid), "expired");
  expectOk(verifyLease(past, [masterKey01Hex], new Date("2019-12-31T23:59:59Z"), V1.uuid));

  const forever = signV1Lease({ ...V1, expiry: "never", leaseKey: masterKey });
  assert.ok(forever.includes(` K ${NEVER_EXPIRES_TEXT} sig01:`));
  const ok = expectOk<LeaseVerified>(verifyLease(forever, [masterKey01Hex], new Date("9999-12-31T00:00:00Z"), V1.uuid));
  assert.is(ok.effectiveExpiry, "never");
  expectRefused(verifyLease(forever, [masterKey01Hex], new Date("2006-12-31T23:59:59Z"), V1.uuid), "clock_before_2007");
});

test("olpc: a lease with a wrong key id is rejected", () => {
  const line = vector("lease-v1.txt");
  const masterId = keyIdHex(masterKey01Hex);
  const serverId = keyIdHex(serverKey01Hex);
  const strangerId = keyIdHex(key01Hex(strangerKey().publicKey));
  expectRefused(verifyLease(line.replace(masterId, strangerId), [masterKey01Hex, serverKey01Hex], NOW, V1.uuid), "untrusted_key");
  expectRefused(verifyLease(line.replace(masterId, serverId), [masterKey01Hex, serverKey01Hex], NOW, V1.uuid), "bad_signature");
  const chained = vector("lease-chained.txt");
  expectRefused(verifyLease(chained.replace(masterId, strangerId), [masterKey01Hex], NOW, DEL.uuid), "untrusted_key");
  // Swapping the delegated key breaks the root's signature over it.
  expectRefused(verifyLease(chained.replace(serverKey01Hex, key01Hex(strangerKey().publicKey)), [masterKey01Hex], NOW, DEL.uuid), "bad_signature");
});

test("olpc: verifyLease reports malformed lines and throws on caller errors", () => {
  expectRefused(verifyLease("act01: nonsense\n", [masterKey01Hex], NOW, V1.uuid), "malformed");
  expectFormatError(() => verifyLease(vector("lease-v1.txt"), [masterKey01Hex], NOW, "not-a-uuid"), /UUID/);
  expectFormatError(() => verifyLease(vector("lease-v1.txt"), [masterKey01Hex.slice(2)], NOW, V1.uuid), /trusted key 1/);
  expectFormatError(() => verifyLease(vector("lease-v1.txt"), [masterKey01Hex], new Date(Number.NaN), V1.uuid), /now/);
});

// --- parsing ----------------------------------------------------------------

test("olpc: parses v1, v2 and delegated act01 lines and del01 lines", () => {
  const v1 = parseLeaseLine(vector("lease-v1.txt"));
  assert.is(v1.version, "v1");
  assert.is(v1.sn, V1.sn);
  assert.is(v1.expiry, V1.expiry);
  assert.is(v1.signature.scheme, "sig01");
  if (v1.signature.scheme === "sig01") assert.is(v1.signature.keyId, keyIdHex(masterKey01Hex));

  const chained = parseLeaseLine(vector("lease-chained.txt"));
  assert.is(chained.version, "delegated");
  if (chained.signature.scheme !== "sig02") throw new Error("expected sig02");
  assert.is(chained.signature.links.length, 2);
  assert.is(chained.signature.links[0]?.expiry, DEL.delegationExpiry);
  assert.is(chained.signature.links[1]?.key, serverKey01Hex);

  const del = parseDelegationLine(vector("delegation.txt"));
  assert.is(del.uuid, DEL.uuid);
  assert.is(del.link.expiry, DEL.delegationExpiry);
  assert.ok(vector("lease-chained.txt").includes(` ${del.sig02} `));
  const lowerUuid = vector("delegation.txt").replace(DEL.uuid, DEL.uuid.toLowerCase());
  assert.is(parseDelegationLine(lowerUuid).uuid, DEL.uuid.toLowerCase(), "UUID kept as given");
});

test("olpc: the trailing LF is optional on input and always present on output", () => {
  const withLf = vector("lease-v1.txt");
  const without = withLf.slice(0, -1);
  assert.is(parseLeaseLine(without).line, withLf);
  assert.is(parseLeaseLine(withLf).line, withLf);
  expectOk(verifyLease(without, [masterKey01Hex], NOW, V1.uuid));
  expectFormatError(() => parseLeaseLine(without + "\r\n"), /CRLF/);
  expectFormatError(() => parseLeaseLine(withLf + "\n"), /more than one line/);
  expectFormatError(() => parseLeaseLine(withLf + withLf), /more than one line/);
  expectFormatError(() => parseLeaseLine("\n"), /empty/);
});

test("olpc: malformed lease lines are refused with a clear reason", () => {
  const line = vector("lease-v1.txt");
  const [head, sig] = [line.slice(0, line.lastIndexOf(" ")), line.slice(line.lastIndexOf(" ") + 1, -1)];
  const cases: [string, RegExp][] = [
    [`${head} ${sig.slice(2)}\n`, /signature must be 512 hex digits, got 510/],
    [`${head} ${sig}00\n`, /signature must be 512 hex digits, got 514/],
    [`${head} ${sig.toUpperCase()}\n`, /lower-case hex/],
    [line.replace(" K ", "  K "), /two spaces in a row/],
    [" " + line, /leading or trailing space/],
    [line.replace("\n", " \n"), /leading or trailing space/],
    [line.replace(" sig01:", "\tsig01:"), /tab, control or non-ASCII/],
    [line.replace(V1.sn, V1.sn.toLowerCase()), /must be upper case/],
    [line.replace(V1.sn, "SH706002A7"), /not an XO serial number/],
    [line.replace(" K ", " A "), /disposition must be "K"/],
    [line.replace(V1.expiry, "20991331T000000Z"), /expiry .* not a valid UTC time/],
    [line.replace(V1.expiry, "2099123T000000Z"), /must be 16 characters/],
    [line.replace("sha256", "sha1"), /only sha256/],
    [line.replace("sig01:", "sig03:"), /expected "sig01:" or "sig02:"/],
    [line.replace(keyIdHex(masterKey01Hex), keyIdHex(masterKey01Hex).slice(0, 40)), /key id must be 64 hex digits, got 40/],
    [line.replace("act01:", "dev01:"), /only act01/],
    [line.replace(/ [0-9a-f]{512}\n$/, "\n"), /sig01 must be "sig01: sha256 <keyid64> <sig512>"/],
    ["act01: SHF706002A7 K\n", /truncated/],
  ];
  for (const [input, message] of cases) expectFormatError(() => parseLeaseLine(input), message);
});

test("olpc: malformed sig02 chains and del01 lines are refused", () => {
  const chained = vector("lease-chained.txt").slice(0, -1);
  const lastLink = chained.slice(chained.indexOf(` sha256 ${serverKey01Hex}`));
  expectFormatError(() => parseLeaseLine(chained + lastLink), /3 links; at most 2/);
  expectFormatError(() => parseLeaseLine(chained.replace(` sha256 ${serverKey01Hex}`, ` sha256 ${keyIdHex(serverKey01Hex)}`)), /link 2 key must be 540 hex digits/);
  expectFormatError(() => parseLeaseLine(chained.slice(0, chained.lastIndexOf(" "))), /groups of "sha256 <key> <EXP> <signature>"/);
  expectFormatError(() => parseLeaseLine(chained.replace(DEL.delegationExpiry, "20991130T245959Z")), /link 1 expiry/);

  const del = vector("delegation.txt");
  expectFormatError(() => parseDelegationLine(del.replace(DEL.uuid, "414737D8-2312-9241-9C7B")), /not a UUID/);
  expectFormatError(() => parseDelegationLine(del.replace("del01:", "act01:")), /must start with "del01:"/);
  expectFormatError(() => parseDelegationLine(del.replace("sig02:", "sig01:")), /del01: <SN> <UUID> sig02:/);
  expectFormatError(() => parseDelegationLine(del.replace("2f85ec86", "2F85EC86")), /lower-case/);
});

// --- multi-lease files ------------------------------------------------------

test("olpc: splits leases.cjson and its lease verifies", () => {
  const file = splitMultiLeaseFile(vector("leases.cjson"));
  assert.is(file.format, "cjson");
  assert.is(file.entries.length, 1);
  const [entry] = file.entries;
  assert.is(entry?.sn, V1.sn);
  assert.is(entry?.key, V1.sn);
  assert.is(entry?.lineNo, 1);
  assert.is(entry?.line + "\n", vector("lease-v1.txt"));
  expectOk(verifyLease(entry?.line ?? "", [masterKey01Hex], NOW, V1.uuid, entry?.sn));
});

test("olpc: splits cjson with several SNs, lines and whitespace by really parsing the JSON", () => {
  const v1 = vector("lease-v1.txt");
  const chained = vector("lease-chained.txt");
  const json = JSON.stringify([1, { [V1.sn]: v1 + v1, [DEL.sn]: chained }], null, 2);
  const file = splitMultiLeaseFile(json);
  assert.is(file.format, "cjson");
  assert.equal(
    file.entries.map((e) => [e.sn, e.lineNo, e.where]),
    [
      [V1.sn, 1, `"${V1.sn}" line 1`],
      [V1.sn, 2, `"${V1.sn}" line 2`],
      [DEL.sn, 1, `"${DEL.sn}" line 1`],
    ],
  );
  assert.is(file.entries[2]?.line + "\n", chained);
  expectFormatError(() => splitMultiLeaseFile('[1,{"SHF706002A7":"act01: …"'), /not valid JSON/);
  expectFormatError(() => splitMultiLeaseFile('[2,{"SHF706002A7":"x"}]'), /must be \[1,/);
  expectFormatError(() => splitMultiLeaseFile("[1,[]]"), /not an object/);
  expectFormatError(() => splitMultiLeaseFile('[1,{"SHF706002A7":5}]'), /not a string/);
});

test("olpc: splits concatenated lease lines, skipping blank lines", () => {
  const v1 = vector("lease-v1.txt");
  const chained = vector("lease-chained.txt");
  const file = splitMultiLeaseFile(`${v1}\n${chained}   \n${v1.slice(0, 40)}`);
  assert.is(file.format, "lines");
  assert.equal(
    file.entries.map((e) => [e.sn, e.lineNo]),
    [
      [V1.sn, 1],
      [DEL.sn, 3],
      [V1.sn, 5],
    ],
  );
  assert.is(parseLeaseLine(file.entries[1]?.line ?? "").line, chained);
  expectFormatError(() => parseLeaseLine(file.entries[2]?.line ?? ""), /truncated|sig0/);

  const crlf = splitMultiLeaseFile((v1 + chained).replace(/\n/g, "\r\n"));
  assert.is(crlf.entries.length, 2);
  assert.is(parseLeaseLine(crlf.entries[0]?.line ?? "").line, v1, "CRLF files give LF lines");
  assert.is(splitMultiLeaseFile("").entries.length, 0);
  assert.is(splitMultiLeaseFile("garbage\n").entries[0]?.sn, undefined);
});

test.run();
