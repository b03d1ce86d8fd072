import { test } from "uvu";
import * as assert from "uvu/assert";
import { constants, createPrivateKey, createPublicKey, sign, verify, type KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { olpcVectorsDir } from "../support/paths.js";
import { opensslVerifyPss } from "../support/openssl.js";
import { xoActivate } from "../support/xo-client.js";
import {
  delegationSignedBytes,
  key01HexFromText,
  keyIdOf,
  leaseSignedBytes,
  leaseV1SignedBytes,
  parseAct01,
  rtcSignedBytes,
  xoVerifyLease,
  xoVerifyLeaseFile,
  xoVerifyRtc,
  type ParsedAct01,
  type SigLink,
  type XoVerifyResult,
} from "../support/xo-verify.js";

// ---------------------------------------------------------------------------
// Vectors (values from the OLPC vectors' README)

const vec = (name: string): string => readFileSync(join(olpcVectorsDir, name), "utf8");
const vecBytes = (name: string): Buffer => readFileSync(join(olpcVectorsDir, name));

const V1_SN = "SHF706002A7";
const V1_UUID = "8BF9AC40-26F8-4BCC-A699-BE51FD366419";
const CH_SN = "SHC005007B7";
const CH_UUID = "414737D8-2312-9241-9C7B-9886CB74403C";
const LEASE_EXP = "20991231T000000Z";
const DEL_EXP = "20991130T235959Z";
const NOW = new Date("2030-06-01T12:00:00Z");

const MASTER = key01HexFromText(vec("master.key01"));
const SERVER = key01HexFromText(vec("server.key01"));
const masterPriv: KeyObject = createPrivateKey(vec("master.pem"));
const serverPriv: KeyObject = createPrivateKey(vec("server.pem"));

const leaseV1 = vec("lease-v1.txt");
const leaseChained = vec("lease-chained.txt");
const delegation = vec("delegation.txt");

function parsed(line: string): ParsedAct01 {
  const p = parseAct01(line);
  if ("error" in p) throw new Error(p.error);
  return p;
}

function link(p: ParsedAct01, i: number): SigLink {
  const l = p.links[i];
  if (l === undefined) throw new Error(`no link ${i}`);
  return l;
}

/** PSS-sign with a test key (salt 8 like the firmware wants, or another salt for negative tests). */
function pssSign(key: KeyObject, data: Buffer, saltLength = 8): string {
  return sign("sha256", data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength }).toString("hex");
}

function assertOk(r: XoVerifyResult, what: string): void {
  if (!r.ok) assert.unreachable(`${what}: ${r.reason}`);
}

function assertRejected(r: XoVerifyResult, what: string, reasonPart?: string): void {
  if (r.ok) assert.unreachable(`${what}: accepted`);
  else if (reasonPart !== undefined) assert.ok(r.reason.includes(reasonPart), `${what}: reason "${r.reason}" lacks "${reasonPart}"`);
}

const v1 = (line: string, extra: { sn?: string; uuid?: string; keys?: string[]; now?: Date } = {}): XoVerifyResult =>
  xoVerifyLease({
    line,
    sn: extra.sn ?? V1_SN,
    uuid: extra.uuid ?? V1_UUID,
    trustedKey01Hex: extra.keys ?? [MASTER],
    now: extra.now ?? NOW,
  });

const chained = (
  line: string,
  extra: { sn?: string; uuid?: string; keys?: string[]; now?: Date; maxLineBytes?: number } = {},
): XoVerifyResult =>
  xoVerifyLease({
    line,
    sn: extra.sn ?? CH_SN,
    uuid: extra.uuid ?? CH_UUID,
    trustedKey01Hex: extra.keys ?? [MASTER],
    now: extra.now ?? NOW,
    ...(extra.maxLineBytes !== undefined ? { maxLineBytes: extra.maxLineBytes } : {}),
  });

/** Flip one hex digit in the middle of `hex`. */
function flipHex(hex: string): string {
  const i = Math.floor(hex.length / 2);
  const c = hex[i] === "0" ? "1" : "0";
  return hex.slice(0, i) + c + hex.slice(i + 1);
}

// ---------------------------------------------------------------------------
// Shared vectors, node:crypto

test("xo-verify: accepts lease-v1.txt with master as the only root", () => {
  assertOk(v1(leaseV1), "lease-v1");
});

test("xo-verify: accepts lease-chained.txt with master as the only root", () => {
  assertOk(chained(leaseChained), "lease-chained");
});

test("xo-verify: accepts the lease inside leases.cjson (raw text up to the next quote, as the initramfs does)", () => {
  const text = vec("leases.cjson");
  assert.is(text.slice(0, 5), '[1,{"');
  const start = text.indexOf(`"${V1_SN}":"`) + V1_SN.length + 4;
  const raw = text.slice(start, text.indexOf('"', start));
  // The initramfs does no JSON unescaping: the line ends in a literal backslash-n.
  assert.ok(raw.endsWith("\\n"));
  const obj = JSON.parse(text) as [number, Record<string, string>];
  assert.is(obj[0], 1);
  assert.is(obj[1][V1_SN], leaseV1);
  assertOk(v1(raw.slice(0, -2)), "cjson lease");
});

test("xo-verify: rejects bad-lease-v1-salt32.txt (node verify with saltLength 8 refuses salt 32)", () => {
  const bad = vec("bad-lease-v1-salt32.txt");
  assertRejected(v1(bad), "salt32", "bad signature");
  // It is a genuine salt-32 signature over the same bytes, so the rejection is about the salt alone.
  const key = createPublicKey({ key: Buffer.from(MASTER, "hex"), format: "der", type: "pkcs1" });
  const sig = Buffer.from(link(parsed(bad), 0).sigHex, "hex");
  const data = vecBytes("lease-v1.signed-bytes");
  assert.ok(verify("sha256", data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, sig));
  assert.not.ok(verify("sha256", data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 8 }, sig));
});

test("xo-verify: rejects bad-lease-v1-wrong-sn.txt for either serial number", () => {
  const bad = vec("bad-lease-v1-wrong-sn.txt");
  assertRejected(v1(bad), "wrong-sn as SHF706002A7", "not SHF706002A7");
  assertRejected(v1(bad, { sn: "SHF706002A8" }), "wrong-sn as SHF706002A8", "bad signature");
});

test("xo-verify: the server key alone as root rejects lease-chained.txt", () => {
  assertRejected(chained(leaseChained, { keys: [SERVER] }), "server-only root", "link 1");
  assertRejected(chained(leaseChained, { keys: [] }), "no roots", "link 1");
});

test("xo-verify: a tampered signature is rejected (v1, delegation link, lease link)", () => {
  const p1 = parsed(leaseV1);
  const sig1 = link(p1, 0).sigHex;
  assertRejected(v1(leaseV1.replace(sig1, flipHex(sig1))), "v1 tampered", "bad signature");
  const pc = parsed(leaseChained);
  const del = link(pc, 0).sigHex;
  const last = link(pc, 1).sigHex;
  assertRejected(chained(leaseChained.replace(del, flipHex(del))), "delegation tampered", "link 1: bad signature");
  assertRejected(chained(leaseChained.replace(last, flipHex(last))), "lease link tampered", "link 2: bad signature");
  // Signature not 256 bytes.
  assertRejected(v1(leaseV1.replace(sig1, sig1.slice(2))), "short signature", "255 bytes");
  assertRejected(v1(leaseV1.replace(sig1, "00" + sig1)), "long signature", "257 bytes");
});

test("xo-verify: wrong SN or UUID is rejected", () => {
  assertRejected(v1(leaseV1, { sn: "SHF706002A8" }), "v1 other SN", "not SHF706002A8");
  assertRejected(v1(leaseV1, { uuid: CH_UUID }), "v1 other UUID", "bad signature");
  assertRejected(v1(leaseV1, { uuid: V1_UUID.toLowerCase() }), "v1 lower-case UUID", "bad signature");
  assertRejected(chained(leaseChained, { sn: V1_SN }), "chained other SN", "not SHF706002A7");
  assertRejected(chained(leaseChained, { uuid: V1_UUID }), "chained other UUID", "link 2: bad signature");
});

test("xo-verify: expired leases and links are rejected", () => {
  const in2100 = new Date("2100-01-01T00:00:00Z");
  assertRejected(v1(leaseV1, { now: in2100 }), "v1 in 2100", "lease expired");
  assertRejected(chained(leaseChained, { now: in2100 }), "chained in 2100", "expired");
  // After the delegation's expiry but before the lease's: only the link has passed.
  const dec2099 = new Date("2099-12-15T00:00:00Z");
  assertOk(v1(leaseV1, { now: dec2099 }), "v1 in Dec 2099");
  assertRejected(chained(leaseChained, { now: dec2099 }), "chained in Dec 2099", "link 1: expired");
  // Exactly at the link expiry it has not passed yet; one second later it has.
  assertOk(chained(leaseChained, { now: new Date("2099-11-30T23:59:59Z") }), "at DELEXP");
  assertRejected(chained(leaseChained, { now: new Date("2099-12-01T00:00:00Z") }), "DELEXP + 1 s", "link 1: expired");
  // A clock before 2007 makes everything expired.
  assertRejected(v1(leaseV1, { now: new Date("2006-12-31T23:59:59Z") }), "clock in 2006", "expired");
});

test("xo-verify: line format is strict (single spaces, one line, act01 tag, sha256)", () => {
  assertOk(v1(leaseV1.trimEnd()), "without LF");
  assertRejected(v1(leaseV1.replace(" K ", "  K ")), "double space");
  assertRejected(v1(leaseV1 + leaseV1), "two lines", "more than one line");
  assertRejected(v1(leaseV1.replace("act01:", "dev01:")), "dev01 tag", "not an act01");
  assertRejected(v1(leaseV1.replace("sha256", "sha1")), "sha1", "not sha256");
  assertRejected(v1(leaseV1.replace(" sig01: ", " sig03: ")), "sig03", "unknown signature tag");
  assertRejected(v1(leaseV1.replace(LEASE_EXP, "20991331T000000Z")), "month 13", "malformed expiry");
  assertRejected(v1(leaseV1.replace(" K ", " KK ")), "two-letter disposition");
  // The firmware line limit (8,192 bytes counting the LF).
  assertRejected(chained(leaseChained, { maxLineBytes: 1724 }), "limit 1724", "longer than");
  assertOk(chained(leaseChained, { maxLineBytes: 1725 }), "limit 1725");
});

test("xo-verify: key fields: full key in the first link, key case, untrusted roots, SPKI roots ignored", () => {
  const masterId = keyIdOf(MASTER);
  // The first link may carry the full root key instead of its id (not part of any signed bytes).
  assertOk(chained(leaseChained.replace(masterId, MASTER)), "full master key in link 1");
  // ... but that key must still be trusted.
  assertRejected(chained(leaseChained.replace(masterId, MASTER), { keys: [SERVER] }), "untrusted full key", "not a trusted");
  // The next link's key text is hashed literally: upper-casing it breaks the delegation signature.
  assertRejected(chained(leaseChained.replace(SERVER, SERVER.toUpperCase())), "upper-case server key", "link 1: bad signature");
  // An SPKI (294-byte) trusted key is ignored.
  const spki = createPublicKey({ key: Buffer.from(MASTER, "hex"), format: "der", type: "pkcs1" })
    .export({ type: "spki", format: "der" })
    .toString("hex");
  assert.is(spki.length, 588);
  assertRejected(v1(leaseV1, { keys: [spki] }), "SPKI root", "matches no trusted key");
  // Trusted keys may be given as whole key01 lines.
  assertOk(v1(leaseV1, { keys: [vec("server.key01"), vec("master.key01")] }), "key01 lines");
});

test("xo-verify: xoVerifyLeaseFile scans like the firmware", () => {
  const both = leaseChained + leaseV1;
  const file = (text: string, sn: string, uuid: string): XoVerifyResult =>
    xoVerifyLeaseFile({ text, sn, uuid, trustedKey01Hex: [MASTER], now: NOW });
  assertOk(file(both, V1_SN, V1_UUID), "second line");
  assertOk(file(both, CH_SN, CH_UUID), "first line");
  assertRejected(file(both, "SHF000000000", V1_UUID), "absent SN", "no lease");
  assertRejected(file(delegation + leaseV1, V1_SN, V1_UUID), "del01 first", "not an act01");
  // The first line for this SN decides.
  assertRejected(file(vec("bad-lease-v1-salt32.txt") + leaseV1, V1_SN, V1_UUID), "bad then good");
  assertRejected(file("", V1_SN, V1_UUID), "empty reply", "no lease");
  assertRejected(file("STOLEN", V1_SN, V1_UUID), "STOLEN", "not an act01");
});

// ---------------------------------------------------------------------------
// Signed bytes and key ids

test("xo-verify: key ids derived from the key01 lines equal ids.txt", () => {
  const ids = vec("ids.txt");
  assert.ok(ids.includes(`master key id: ${keyIdOf(MASTER)}`));
  assert.ok(ids.includes(`server key id: ${keyIdOf(SERVER)}`));
  for (const k of [MASTER, SERVER]) {
    assert.is(k.length, 540);
    assert.ok(k.startsWith("3082010a0282010100"));
    assert.ok(k.endsWith("0203010001"));
  }
  assert.is(link(parsed(leaseV1), 0).keyField, keyIdOf(MASTER));
});

test("xo-verify: the *.signed-bytes files are reproduced from the fields", () => {
  const v1Bytes = leaseV1SignedBytes(V1_SN, V1_UUID, "K", LEASE_EXP);
  assert.is(v1Bytes.length, 67);
  assert.ok(v1Bytes.equals(vecBytes("lease-v1.signed-bytes")));

  const pc = parsed(leaseChained);
  const delBytes = delegationSignedBytes(CH_SN, link(pc, 0).exp ?? "", link(pc, 1).keyField);
  assert.is(delBytes.length, 577);
  assert.ok(delBytes.equals(vecBytes("delegation.signed-bytes")));
  assert.ok(delBytes.equals(delegationSignedBytes(CH_SN, DEL_EXP, SERVER)));

  const lastBytes = leaseSignedBytes(CH_SN, link(pc, 1).exp ?? "", CH_UUID, pc.disposition, pc.exp);
  assert.is(lastBytes.length, 96);
  assert.ok(lastBytes.equals(vecBytes("lease-chained.signed-bytes")));

  // lease-chained = del01's sig02 part + " sha256 <SRVKEY> <EXP> <LEASESIG>".
  const delSig02 = delegation.trimEnd().slice(`del01: ${CH_SN} ${CH_UUID} `.length);
  assert.is(leaseChained, `act01: ${CH_SN} K ${LEASE_EXP} ${delSig02} sha256 ${SERVER} ${LEASE_EXP} ${link(pc, 1).sigHex}\n`);
  assert.is(leaseChained.length, 1725);
});

// ---------------------------------------------------------------------------
// Leases made here with the vector test keys (v2, deep chains, never-expiring, rtc01)

function v1Line(sn: string, uuid: string, exp: string, saltLength = 8): string {
  const sig = pssSign(masterPriv, leaseV1SignedBytes(sn, uuid, "K", exp), saltLength);
  return `act01: ${sn} K ${exp} sig01: sha256 ${keyIdOf(MASTER)} ${sig}\n`;
}

test("xo-verify: v2 single-segment leases (SN:EXP:SN:UUID:K:EXP) signed by a trusted key", () => {
  const sig = pssSign(masterPriv, leaseSignedBytes(V1_SN, LEASE_EXP, V1_UUID, "K", LEASE_EXP));
  const line = `act01: ${V1_SN} K ${LEASE_EXP} sig02: sha256 ${keyIdOf(MASTER)} ${LEASE_EXP} ${sig}\n`;
  assertOk(v1(line), "v2");
  assertRejected(v1(line, { keys: [SERVER] }), "v2 untrusted", "matches no trusted key");
  // Signed as v1 bytes but labelled sig02: wrong bytes.
  const wrong = pssSign(masterPriv, leaseV1SignedBytes(V1_SN, V1_UUID, "K", LEASE_EXP));
  assertRejected(v1(line.replace(sig, wrong)), "v1 bytes in sig02", "bad signature");
  const salt32 = pssSign(masterPriv, leaseSignedBytes(V1_SN, LEASE_EXP, V1_UUID, "K", LEASE_EXP), 32);
  assertRejected(v1(line.replace(sig, salt32)), "v2 salt 32", "bad signature");
});

test("xo-verify: 00000000T000000Z never expires; fresh v1 with salt 32 or max salt is rejected", () => {
  assertOk(v1(v1Line(V1_SN, V1_UUID, "00000000T000000Z"), { now: new Date("2999-01-01T00:00:00Z") }), "never");
  assertOk(v1(v1Line(V1_SN, V1_UUID, LEASE_EXP)), "fresh salt 8");
  assertRejected(v1(v1Line(V1_SN, V1_UUID, LEASE_EXP, 32)), "fresh salt 32", "bad signature");
  assertRejected(v1(v1Line(V1_SN, V1_UUID, LEASE_EXP, constants.RSA_PSS_SALTLEN_MAX_SIGN)), "max salt", "bad signature");
});

function chainLine(links: number, exp = LEASE_EXP): string {
  // master -> server -> server -> ... -> lease: `links` links in all (>= 2).
  const segs: string[] = [];
  const keyFields = [keyIdOf(MASTER), ...Array.from({ length: links - 1 }, () => SERVER)];
  for (let i = 0; i < links; i++) {
    const signer = i === 0 ? masterPriv : serverPriv;
    const next = keyFields[i + 1];
    const data = next !== undefined
      ? delegationSignedBytes(CH_SN, DEL_EXP, next)
      : leaseSignedBytes(CH_SN, DEL_EXP, CH_UUID, "K", exp);
    segs.push(`sha256 ${keyFields[i] ?? ""} ${DEL_EXP} ${pssSign(signer, data)}`);
  }
  return `act01: ${CH_SN} K ${exp} sig02: ${segs.join(" ")}\n`;
}

test("xo-verify: chains up to 100 links verify, 101 links are rejected", () => {
  assertOk(chained(chainLine(3)), "3 links");
  const l100 = chainLine(100);
  assertRejected(chained(l100), "100 links within the line limit", "longer than");
  assertOk(chained(l100, { maxLineBytes: Infinity }), "100 links");
  assertRejected(chained(chainLine(101), { maxLineBytes: Infinity }), "101 links", "max 100");
});

test("xo-verify: a later link may name a trusted key by id", () => {
  const data0 = delegationSignedBytes(CH_SN, DEL_EXP, keyIdOf(SERVER));
  const data1 = leaseSignedBytes(CH_SN, DEL_EXP, CH_UUID, "K", LEASE_EXP);
  const line = `act01: ${CH_SN} K ${LEASE_EXP} sig02: sha256 ${keyIdOf(MASTER)} ${DEL_EXP} ${pssSign(masterPriv, data0)}` +
    ` sha256 ${keyIdOf(SERVER)} ${DEL_EXP} ${pssSign(serverPriv, data1)}\n`;
  assertOk(chained(line, { keys: [MASTER, SERVER] }), "id link with server trusted");
  assertRejected(chained(line, { keys: [MASTER] }), "id link without server trusted", "link 2");
});

test("xo-verify: rtc01 lines", () => {
  const cur = "20060101T000000Z";
  const nonce = "0000000042";
  const newrtc = "20300601T120000Z";
  const sig = pssSign(masterPriv, rtcSignedBytes(V1_SN, V1_UUID, cur, nonce, newrtc));
  const line = `rtc01: ${V1_SN} ${cur} ${nonce} ${newrtc} sig01: sha256 ${keyIdOf(MASTER)} ${sig}\n`;
  const rtc = (l: string, extra: { uuid?: string; keys?: string[]; expect?: { currentrtc?: string; nonce?: string } } = {}): XoVerifyResult =>
    xoVerifyRtc({
      line: l,
      sn: V1_SN,
      uuid: extra.uuid ?? V1_UUID,
      trustedKey01Hex: extra.keys ?? [MASTER],
      ...(extra.expect !== undefined ? { expect: extra.expect } : {}),
    });
  assertOk(rtc(line), "rtc01");
  assertOk(rtc(line, { expect: { currentrtc: cur, nonce } }), "rtc01 echoing the request");
  assertRejected(rtc(line, { expect: { nonce: "0000000043" } }), "other nonce", "nonce");
  assertRejected(rtc(line, { uuid: CH_UUID }), "other UUID", "bad signature");
  assertRejected(rtc(line, { keys: [SERVER] }), "untrusted", "matches no trusted key");
  const salt32 = pssSign(masterPriv, rtcSignedBytes(V1_SN, V1_UUID, cur, nonce, newrtc), 32);
  assertRejected(rtc(line.replace(sig, salt32)), "salt 32", "bad signature");
  assertRejected(rtc(line.replace("rtc01:", "act01:")), "wrong tag", "not an rtc01");
});

// ---------------------------------------------------------------------------
// openssl as a second, independent verifier

test("openssl: verifies lease-v1 over lease-v1.signed-bytes and rejects bad-lease-v1-salt32", async () => {
  const signedBytes = vecBytes("lease-v1.signed-bytes");
  const good = link(parsed(leaseV1), 0).sigHex;
  const salt32 = link(parsed(vec("bad-lease-v1-salt32.txt")), 0).sigHex;
  assert.is(await opensslVerifyPss({ key01Hex: MASTER, signedBytes, signatureHex: good }), true);
  assert.is(await opensslVerifyPss({ key01Hex: MASTER, signedBytes, signatureHex: salt32 }), false);
  assert.is(await opensslVerifyPss({ key01Hex: MASTER, signedBytes, signatureHex: flipHex(good) }), false);
  assert.is(await opensslVerifyPss({ key01Hex: SERVER, signedBytes, signatureHex: good }), false);
  // Accepts a whole key01 line too.
  assert.is(await opensslVerifyPss({ key01Hex: vec("master.key01"), signedBytes, signatureHex: good }), true);
});

test("openssl: verifies the delegation (master) and lease-chained's last link (server key)", async () => {
  const pc = parsed(leaseChained);
  const del = link(parsed(delegation.replace(/^del01: \S+ \S+ /, `act01: ${CH_SN} K ${LEASE_EXP} `)), 0).sigHex;
  assert.is(del, link(pc, 0).sigHex);
  assert.is(
    await opensslVerifyPss({ key01Hex: MASTER, signedBytes: vecBytes("delegation.signed-bytes"), signatureHex: del }),
    true,
  );
  assert.is(
    await opensslVerifyPss({
      key01Hex: SERVER,
      signedBytes: vecBytes("lease-chained.signed-bytes"),
      signatureHex: link(pc, 1).sigHex,
    }),
    true,
  );
  // The delegation without its final LF is not what was signed.
  assert.is(
    await opensslVerifyPss({
      key01Hex: MASTER,
      signedBytes: vecBytes("delegation.signed-bytes").subarray(0, -1),
      signatureHex: del,
    }),
    false,
  );
});

test("openssl: agrees with xo-verify on signatures made here (salt 8 accepted, salt 32 rejected)", async () => {
  const data = rtcSignedBytes(V1_SN, V1_UUID, "20060101T000000Z", "0000000001", "20300101T000000Z");
  assert.is(await opensslVerifyPss({ key01Hex: MASTER, signedBytes: data, signatureHex: pssSign(masterPriv, data) }), true);
  assert.is(await opensslVerifyPss({ key01Hex: MASTER, signedBytes: data, signatureHex: pssSign(masterPriv, data, 32) }), false);
});

// ---------------------------------------------------------------------------
// xo-client against a tiny port-191-like server

function listen(onSocket: (s: Socket) => void): Promise<{ server: Server; port: number }> {
  return new Promise((resolve, reject) => {
    const server = createServer({ allowHalfOpen: true }, onSocket);
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve({ server, port: (server.address() as AddressInfo).port }));
  });
}

function close(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

test("xo-client: sends the SN, half-closes, and reads the reply until the server closes", async () => {
  let received: Buffer | null = null;
  const { server, port } = await listen((s) => {
    const chunks: Buffer[] = [];
    s.on("data", (c: Buffer) => chunks.push(c));
    s.on("end", () => {
      received = Buffer.concat(chunks);
      s.end(received.toString("latin1") === V1_SN ? leaseV1 : "");
    });
  });
  try {
    const r = await xoActivate({ host: "127.0.0.1", port, payload: V1_SN, timeoutMs: 5000 });
    assert.is(r.closedBy, "server");
    assert.is(r.connected, true);
    assert.is(r.error, undefined);
    assert.is(String(received), V1_SN);
    assert.is(r.bytes.toString("latin1"), leaseV1);
    assertOk(xoVerifyLeaseFile({ text: r.bytes.toString("latin1"), sn: V1_SN, uuid: V1_UUID, trustedKey01Hex: [MASTER], now: NOW }), "reply");

    const u = await xoActivate({ host: "127.0.0.1", port, payload: "SHF000000000", timeoutMs: 5000 });
    assert.is(u.closedBy, "server");
    assert.is(u.bytes.length, 0);
  } finally {
    await close(server);
  }
});

test("xo-client: connect and send nothing times out when the server waits for EOF", async () => {
  const sockets: Socket[] = [];
  let gotData = false;
  const { server, port } = await listen((s) => {
    sockets.push(s);
    s.on("data", () => { gotData = true; });
    s.on("error", () => undefined);
  });
  try {
    const r = await xoActivate({ host: "127.0.0.1", port, timeoutMs: 300 });
    assert.is(r.closedBy, "timeout");
    assert.is(r.connected, true);
    assert.is(r.bytes.length, 0);
    assert.is(gotData, false);
    assert.ok(r.elapsedMs >= 250, `elapsed ${r.elapsedMs}`);
  } finally {
    for (const s of sockets) s.destroy();
    await close(server);
  }
});

test("xo-client: a refused connection reports closedBy error", async () => {
  const { server, port } = await listen(() => undefined);
  await close(server);
  const r = await xoActivate({ host: "127.0.0.1", port, payload: V1_SN, timeoutMs: 2000 });
  assert.is(r.closedBy, "error");
  assert.is(r.connected, false);
  assert.ok(r.error instanceof Error);
});

test.run();
