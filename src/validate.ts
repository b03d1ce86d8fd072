/**
 * One validator per kind of identifier. Paths are only ever built from values
 * these functions returned. Each throws SugarError `invalid_input` with a
 * message a person can act on.
 */
import { createHash } from "node:crypto";
import { SugarError } from "./errors.js";

/** A string that a validator below accepted: only those may name a file or reach a store. */
declare const brand: unique symbol;
export type Valid<Kind extends string> = string & { readonly [brand]: Kind };
export type Uid = Valid<"uid">;
export type MachineSn = Valid<"machine_sn">;
export type MachineUuid = Valid<"machine_uuid">;
export type Nickname = Valid<"nickname">;
export type DeviceId = Valid<"device_id">;

/** The one serial-number pattern: three letters A-Z and eight upper-case hex digits (`SHF706002A7`). */
export const MACHINE_SN = /^[A-Z]{3}[0-9A-F]{8}$/;
/** The one OLPC time pattern (`YYYYMMDDTHHMMSSZ`), as rtcreset requests and lease fields carry it. */
export const OLPC_TIME = /^\d{8}T\d{6}Z$/;
const UUID = /^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$/;
const UID = /^[0-9a-f]{40}$/;
export const NICKNAME_MAX = 200;

const bad = (msg: string) => new SugarError("invalid_input", msg);
const show = (v: string) => JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);

export const isMachineSn = (value: string): value is MachineSn => MACHINE_SN.test(value);

/** An XO serial number exactly as the XO sends it (port 191, XML-RPC, the bus): no change is made to it. */
export function machineSn(value: string): MachineSn {
  if (!isMachineSn(value)) throw bad(`machine_sn ${show(value)} is not a serial number (3 letters A-Z and 8 hex digits, e.g. SHF706002A7)`);
  return value;
}

/**
 * What a person typed as a serial number (the CLI, the REST API, files an
 * admin edits): surrounding space trimmed and upper-cased, then checked. The
 * one normalizer. Port 191 and XML-RPC do not use it, on purpose: the XO and
 * Sugar send the serial number read from mfg-data, and a lower-case one
 * there is a different (wrong) serial number, not a typing slip.
 */
export function typedMachineSn(value: string): MachineSn {
  return machineSn(value.trim().toUpperCase());
}

/** RFC 4122 text form, kept exactly as sent: the lease signs the UUID as stored in mfg-data. */
export function machineUuid(value: string): MachineUuid {
  if (!UUID.test(value)) throw bad(`machine_uuid ${show(value)} is not a UUID (8-4-4-4-12 hex digits)`);
  return value as MachineUuid;
}

/** 40 lower-case hex digits: SHA-1 of the public key body. */
export function uid(value: string): Uid {
  if (!UID.test(value)) throw bad(`uid ${show(value)} is not 40 lower-case hex digits`);
  return value as Uid;
}

/** Any Unicode but control and format characters, 1 to 200 characters. */
export function nickname(value: string): Nickname {
  const length = [...value].length;
  if (length === 0) throw bad("nickname is empty");
  if (length > NICKNAME_MAX) throw bad(`nickname is ${length} characters long; at most ${NICKNAME_MAX}`);
  if (/[\p{Cc}\u2028\u2029]/u.test(value)) throw bad("nickname contains control characters");
  // Format characters (bidi overrides, zero-width joiners, ...) can make a name shown to an admin read as another.
  if (/\p{Cf}/u.test(value)) throw bad("nickname contains invisible format characters (such as bidi overrides)");
  return value as Nickname;
}

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
/**
 * What a device reports when it cannot read its own address: Android has
 * answered 02:00:00:00:00:00 to every app since Android 6. Every such device
 * would get the same uid (the uid is derived from the device_id), so these
 * are refused rather than made one user.
 */
const PLACEHOLDER_MACS = new Set(["02:00:00:00:00:00", "00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff"]);

/**
 * A device_id a client utility sends for a device without Sugar (a phone): a
 * MAC address `aa:bb:cc:dd:ee:ff`, case folded to lower; or empty (none).
 */
export function deviceId(value: string): DeviceId | "" {
  if (value === "") return "";
  const mac = value.toLowerCase();
  if (!MAC.test(mac)) throw bad(`device_id ${show(value)} is not a MAC address (six pairs of hex digits separated by colons, e.g. 3c:5a:b4:01:02:03)`);
  if (PLACEHOLDER_MACS.has(mac)) throw bad(`device_id ${mac} is a placeholder many devices report, not this device's own address`);
  return mac as DeviceId;
}

/** An SSH public key, parsed: its canonical authorized_keys form and the Sugar uid. */
export interface PublicKey {
  type: string;
  /** The base64 body exactly as canonical base64. */
  body: string;
  /** `<type> <body>`: what goes into authorized_keys after the server's options. */
  line: string;
  /** SHA-1 hex of the ASCII base64 body: Sugar's JID local part, the xoid cookie's pkey_hash. */
  uid: Uid;
}

const KEY_TYPES = new Set([
  "ssh-dss",
  "ssh-rsa",
  "ssh-ed25519",
  "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521",
  "sk-ssh-ed25519@openssh.com",
  "sk-ecdsa-sha2-nistp256@openssh.com",
]);
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
const MAX_KEY_TEXT = 16 * 1024;

/** Reads the SSH wire format: uint32 length-prefixed strings. */
class WireReader {
  private pos = 0;
  constructor(private readonly buf: Buffer) {}
  string(what: string): Buffer {
    if (this.pos + 4 > this.buf.length) throw bad(`public key is truncated (${what})`);
    const len = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    if (len > this.buf.length - this.pos) throw bad(`public key is truncated (${what})`);
    const out = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return out;
  }
  end(): void {
    if (this.pos !== this.buf.length) throw bad("public key has trailing bytes");
  }
}

/**
 * Parses what a client sent as its key: a full line `type base64 [comment]`,
 * or the bare base64 body old Sugar sends over XML-RPC (its `ssh-dss ` prefix
 * stripped). Options in front, newlines, unknown types, bad base64 and
 * blobs whose structure does not match their type are refused.
 */
export function publicKey(text: string): PublicKey {
  if (text.length > MAX_KEY_TEXT) throw bad(`public key is longer than ${MAX_KEY_TEXT} characters`);
  if (/[\r\n\0]/.test(text)) throw bad("public key must be one line");
  const tokens = text.trim().split(/[ \t]+/).filter((t) => t.length > 0);
  if (tokens.length === 0) throw bad("public key is empty");
  let declared: string | undefined;
  let body: string;
  if (KEY_TYPES.has(tokens[0]!)) {
    declared = tokens[0]!;
    if (tokens.length < 2) throw bad(`public key has a type (${declared}) but no body`);
    body = tokens[1]!;
  } else if (BASE64.test(tokens[0]!) && tokens[0]!.length >= 16) {
    if (tokens.length > 1) throw bad("public key body must be followed by nothing (or give the full line: type, body, comment)");
    body = tokens[0]!;
  } else if (/^[a-z0-9-]+(@[a-z0-9.-]+)?$/.test(tokens[0]!) && tokens.length >= 2 && BASE64.test(tokens[1]!)) {
    throw bad(`public key type ${show(tokens[0]!)} is not supported`);
  } else {
    throw bad("public key must start with its type or its base64 body (authorized_keys options are not accepted)");
  }
  if (!BASE64.test(body) || body.length % 4 !== 0) throw bad("public key body is not base64");
  const blob = Buffer.from(body, "base64");
  if (blob.toString("base64") !== body) throw bad("public key body is not canonical base64");
  const reader = new WireReader(blob);
  const type = reader.string("type").toString("latin1");
  if (!KEY_TYPES.has(type)) throw bad(`public key type ${show(type)} is not supported`);
  if (declared !== undefined && declared !== type) throw bad(`public key says ${declared} but its body is ${type}`);
  checkKeyStructure(type, reader);
  reader.end();
  return { type, body, line: `${type} ${body}`, uid: createHash("sha1").update(body, "ascii").digest("hex") as Uid };
}

function checkKeyStructure(type: string, r: WireReader): void {
  switch (type) {
    case "ssh-rsa": {
      const e = r.string("e");
      const n = r.string("n");
      if (e.length === 0 || n.length < 64) throw bad("ssh-rsa key is too small");
      return;
    }
    case "ssh-dss":
      for (const part of ["p", "q", "g", "y"]) if (r.string(part).length === 0) throw bad(`ssh-dss key has an empty ${part}`);
      return;
    case "ssh-ed25519":
      if (r.string("key").length !== 32) throw bad("ssh-ed25519 key must be 32 bytes");
      return;
    case "sk-ssh-ed25519@openssh.com":
      if (r.string("key").length !== 32) throw bad("sk-ssh-ed25519 key must be 32 bytes");
      r.string("application");
      return;
    default: {
      // ecdsa-sha2-<curve> and its security-key variant
      const curve = r.string("curve").toString("latin1");
      if (!type.includes(curve)) throw bad(`ecdsa key curve ${show(curve)} does not match ${type}`);
      if (r.string("point").length === 0) throw bad("ecdsa key has an empty point");
      if (type.startsWith("sk-")) r.string("application");
    }
  }
}
