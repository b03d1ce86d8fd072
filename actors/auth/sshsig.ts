/**
 * Checks an OpenSSH signature (`ssh-keygen -Y sign`, PROTOCOL.sshsig) made
 * by a registered key, in this order: armor and magic, version 1, the
 * embedded public key equal to the registered one byte for byte, the
 * namespace, the hash, then the signature over the SSHSIG wrapper. Each
 * failure is a SugarError `auth_invalid` whose message says which check
 * failed (none of it is secret: it is about the client's own signature).
 *
 * sshpk turns the SSH public key into one node:crypto can use and converts
 * DSA/ECDSA signatures to DER; the SSH wire format itself (length-prefixed
 * strings) is read here.
 */
import { createHash, createPublicKey, verify, type KeyObject } from "node:crypto";
import sshpk from "sshpk";
import { SugarError } from "../../src/errors.js";
import { sameBytes } from "./mac.js";

export const NAMESPACE = "sugar-server";
const MAGIC = Buffer.from("SSHSIG", "latin1");
const BEGIN = "-----BEGIN SSH SIGNATURE-----";
const END = "-----END SSH SIGNATURE-----";
const MAX_ARMOR = 16 * 1024;
const HASHES = new Set(["sha512", "sha256"]);

const refuse = (why: string) => new SugarError("auth_invalid", `signature refused: ${why}`);

/** Reads SSH wire strings; running off the end is a refusal, never a crash. */
class Wire {
  private pos = 0;
  constructor(private readonly buf: Buffer) {}
  bytes(n: number, what: string): Buffer {
    if (this.pos + n > this.buf.length) throw refuse(`truncated (${what})`);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  uint32(what: string): number {
    return this.bytes(4, what).readUInt32BE(0);
  }
  string(what: string): Buffer {
    return this.bytes(this.uint32(what), what);
  }
  end(what: string): void {
    if (this.pos !== this.buf.length) throw refuse(`trailing bytes after ${what}`);
  }
}

const sshString = (b: Buffer): Buffer => {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(b.length);
  return Buffer.concat([len, b]);
};

/** The bytes the key signs for `message` (PROTOCOL.sshsig): magic, namespace, reserved, hash name, H(message). */
export function signedData(namespace: string, reserved: Buffer, hash: string, message: Buffer): Buffer {
  const digest = createHash(hash).update(message).digest();
  return Buffer.concat([MAGIC, sshString(Buffer.from(namespace, "utf8")), sshString(reserved), sshString(Buffer.from(hash, "latin1")), sshString(digest)]);
}

export interface SshSig {
  publicKey: Buffer;
  namespace: string;
  reserved: Buffer;
  hash: string;
  algorithm: string;
  blob: Buffer;
}

/** The armored text's fields; refuses bad armor, bad magic and any version but 1. */
export function parseSshSig(armored: string): SshSig {
  if (armored.length > MAX_ARMOR) throw refuse(`longer than ${MAX_ARMOR} characters`);
  const lines = armored.trim().split(/\r?\n/).map((l) => l.trim());
  if (lines.length < 3 || lines[0] !== BEGIN || lines[lines.length - 1] !== END) throw refuse("not an armored SSH signature");
  const body = lines.slice(1, -1).join("");
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(body) || body.length % 4 !== 0) throw refuse("armor is not base64");
  const raw = Buffer.from(body, "base64");
  const r = new Wire(raw);
  if (!r.bytes(6, "magic").equals(MAGIC)) throw refuse("no SSHSIG magic");
  const version = r.uint32("version");
  if (version !== 1) throw refuse(`version ${version}, not 1`);
  const publicKey = r.string("public key");
  const namespace = r.string("namespace").toString("utf8");
  const reserved = r.string("reserved");
  const hash = r.string("hash algorithm").toString("latin1");
  const signature = r.string("signature");
  r.end("the signature");
  const s = new Wire(signature);
  const algorithm = s.string("signature algorithm").toString("latin1");
  const blob = s.string("signature blob");
  s.end("the signature blob");
  return { publicKey, namespace, reserved, hash, algorithm, blob };
}

/** How a key type's signatures are checked: the node:crypto hash (null for Ed25519) and the blob as node wants it. */
interface Scheme {
  hash: string | null;
  signature(blob: Buffer): Buffer;
}

function schemeFor(keyType: string, algorithm: string): Scheme {
  switch (keyType) {
    case "ssh-ed25519":
      if (algorithm !== "ssh-ed25519") break;
      return { hash: null, signature: (b) => b };
    case "ssh-rsa":
      if (algorithm === "ssh-rsa") throw refuse("ssh-rsa (SHA-1) signatures are refused; sign with rsa-sha2-512 or rsa-sha2-256");
      if (algorithm === "rsa-sha2-512") return { hash: "sha512", signature: (b) => b };
      if (algorithm === "rsa-sha2-256") return { hash: "sha256", signature: (b) => b };
      break;
    case "ssh-dss":
      // DSA over SHA-1 is what a DSA key can do; old Sugar profiles only have such keys.
      if (algorithm !== "ssh-dss") break;
      return { hash: "sha1", signature: (b) => derOf(b, "dsa") };
    case "ecdsa-sha2-nistp256":
    case "ecdsa-sha2-nistp384":
    case "ecdsa-sha2-nistp521": {
      if (algorithm !== keyType) break;
      const hash = { "ecdsa-sha2-nistp256": "sha256", "ecdsa-sha2-nistp384": "sha384", "ecdsa-sha2-nistp521": "sha512" }[keyType];
      return { hash, signature: (b) => derOf(b, "ecdsa") };
    }
    default:
      throw refuse(`${keyType} keys cannot prove themselves here`);
  }
  // The algorithm is the client's text: named only when it looks like an algorithm name.
  throw refuse(`${/^[A-Za-z0-9@._-]{1,64}$/.test(algorithm) ? `a ${algorithm}` : "this"} signature does not fit a ${keyType} key`);
}

/** SSH's r ‖ s (DSA: 20 + 20 bytes; ECDSA: two mpints) as the DER node:crypto verifies. */
function derOf(blob: Buffer, type: "dsa" | "ecdsa"): Buffer {
  try {
    return sshpk.parseSignature(blob, type, "ssh").toBuffer("asn1");
  } catch (err) {
    throw new SugarError("auth_invalid", `signature refused: the ${type} signature blob is malformed`, { cause: err });
  }
}

/** The registered key (`<type> <base64>`) as its wire blob and a node:crypto key. */
export function registeredKey(line: string): { type: string; blob: Buffer; key: KeyObject } {
  const [type, body] = line.split(" ");
  if (!type || !body) throw new SugarError("internal", "the registered key is not `<type> <base64>`");
  try {
    const pem = sshpk.parseKey(line, "ssh").toString("pkcs8");
    return { type, blob: Buffer.from(body, "base64"), key: createPublicKey(pem) };
  } catch (err) {
    throw new SugarError("auth_invalid", `signature refused: a ${type} key cannot prove itself here`, { cause: err });
  }
}

/**
 * Checks that `armored` is a signature of `message` in the sugar-server
 * namespace by the registered key `pubkeyLine`. Throws auth_invalid when not.
 */
export function verifySshSig(armored: string, message: Buffer, pubkeyLine: string): void {
  const sig = parseSshSig(armored);
  const reg = registeredKey(pubkeyLine);
  // Never trust the key inside the signature on its own: it must be the one registered.
  if (!sameBytes(sig.publicKey, reg.blob)) throw refuse("it is made by another key than the registered one");
  if (sig.namespace !== NAMESPACE) throw refuse(`namespace must be ${NAMESPACE} (ssh-keygen -Y sign -n ${NAMESPACE})`);
  if (!HASHES.has(sig.hash)) throw refuse("hash must be sha512 or sha256");
  const scheme = schemeFor(reg.type, sig.algorithm);
  const data = signedData(sig.namespace, sig.reserved, sig.hash, message);
  let ok: boolean;
  try {
    ok = verify(scheme.hash, data, reg.key, scheme.signature(sig.blob));
  } catch (err) {
    if (err instanceof SugarError) throw err;
    throw new SugarError("auth_invalid", "signature refused: it does not verify", { cause: err });
  }
  if (!ok) throw refuse("it does not verify (another message, or altered)");
}
