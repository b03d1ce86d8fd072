/**
 * What the scenarios feed the servers: distinct valid SSH keys made cheaply,
 * serial numbers, UUIDs, registry files written directly in the registry's
 * own format, and v1 leases signed with the OLPC vector master key.
 */
import { createHash, createPrivateKey, randomFillSync, randomUUID } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as olpc from "../../lib/olpc/index.js";
import { vectors } from "../support/olpc-fixtures.js";

export interface FakeKey {
  /** `ssh-ed25519 <body> bench`: what a client sends over REST. */
  line: string;
  /** The base64 body: what Sugar sends over XML-RPC. */
  body: string;
}

const ED25519 = Buffer.from("ssh-ed25519", "latin1");
const BLOB = Buffer.alloc(4 + ED25519.length + 4 + 32);
BLOB.writeUInt32BE(ED25519.length, 0);
ED25519.copy(BLOB, 4);
BLOB.writeUInt32BE(32, 4 + ED25519.length);
const KEY_AT = 4 + ED25519.length + 4;

/**
 * A new ssh-ed25519 public key: the wire blob is string "ssh-ed25519" +
 * string(32 random bytes). The server checks structure, not the curve point.
 */
export function fakeKey(): FakeKey {
  randomFillSync(BLOB, KEY_AT, 32);
  const body = BLOB.toString("base64");
  return { line: `ssh-ed25519 ${body} bench`, body };
}

/** Sugar's uid: SHA-1 hex of the key's base64 body. */
export function uidOf(body: string): string {
  return createHash("sha1").update(body, "ascii").digest("hex");
}

let serials = Math.floor(Math.random() * 0x10000000);
/** A fresh, well-formed serial number (three letters, eight hex digits). */
export function nextSerial(prefix = "SHF"): string {
  serials = (serials + 1) >>> 0;
  return `${prefix}${serials.toString(16).toUpperCase().padStart(8, "0")}`;
}

export const uuid = (): string => randomUUID().toUpperCase();

/** 40 random hex digits: a uid nobody registered. */
export function unknownUid(): string {
  const b = Buffer.alloc(20);
  randomFillSync(b);
  return b.toString("hex");
}

/**
 * Writes n users straight into `<root>/home/registry/users/<uid>`, in the
 * format actors/registry/store.ts writes. Returns their uids.
 */
export function writeRegistryUsers(root: string, n: number): string[] {
  const dir = join(root, "home", "registry", "users");
  mkdirSync(dir, { recursive: true });
  mkdirSync(join(root, "home", "registry", "machines"), { recursive: true });
  const uids: string[] = [];
  const t = new Date().toISOString();
  for (let i = 0; i < n; i++) {
    const k = fakeKey();
    const uid = uidOf(k.body);
    const record = { uid, nickname: `bench user ${i}`, machine_sn: nextSerial(), machine_uuid: uuid(), pubkey: `ssh-ed25519 ${k.body}`, pending_restore: false, created: t, updated: t };
    writeFileSync(join(dir, uid), JSON.stringify(record, null, 2) + "\n");
    uids.push(uid);
  }
  return uids;
}

export const masterKey = () => createPrivateKey(vectors.masterPem);
export const serverKey = () => createPrivateKey(vectors.serverPem);

/** A year from now, in OLPC time. */
export function inAYear(): string {
  return olpc.formatOlpcTime(new Date(Date.now() + 365 * 24 * 3600 * 1000));
}

/** Writes leases straight into `<root>/share/leases/<SN[-2:]>/<SN>`, the lease store's layout (what `leases import` writes, without its fsyncs). */
export function writeLeaseFiles(root: string, leases: ReadonlyArray<{ sn: string; lease: string }>): void {
  for (const { sn, lease } of leases) {
    const dir = join(root, "share", "leases", sn.slice(-2));
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, sn), lease);
  }
}

/** n v1 leases (act01 … sig01, LF-terminated), each signed with the vector master key for its own serial number. */
export function signLeases(n: number): Array<{ sn: string; lease: string }> {
  const leaseKey = masterKey();
  const expiry = inAYear();
  return Array.from({ length: n }, () => {
    const sn = nextSerial("SHC");
    return { sn, lease: olpc.signV1Lease({ sn, uuid: uuid(), expiry, leaseKey }) };
  });
}
