/**
 * The district CA's OpenSSH side: the CA key as an OpenSSH public key (what a
 * client's known_hosts names in an `@cert-authority` line) and host
 * certificates for a school's sshd host key. The same P-256 key signs both
 * kinds of certificate, so one CA is trusted for both.
 */
import { randomBytes } from "node:crypto";
import sshpk from "sshpk";
import { SugarError } from "../../../src/errors.js";
import { BACKDATE_MS } from "./x509.js";

/** A host public key line is under 1 KB; this bounds what is parsed. */
export const MAX_SSH_KEY_BYTES = 16 * 1024;
const WEEK_MS = 7 * 86_400_000;
export const HOST_CERT_WEEKS = 52;
const HOST_KEY_TYPES = new Set(["ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa"]);

const bad = (message: string) => new SugarError("invalid_input", message);

/** The CA key for sshpk, from the PKCS#8 PEM ca.pem holds. */
export function sshCaKey(keyPem: string): sshpk.PrivateKey {
  return sshpk.parsePrivateKey(keyPem, "pkcs8");
}

/** `ecdsa-sha2-nistp256 AAAA...`: type and body, no comment. */
export function sshPublicKeyLine(key: sshpk.PrivateKey): string {
  return key.toPublic().toString("ssh").split(" ").slice(0, 2).join(" ");
}

/** A host's public key from its `.pub` line; anything else is refused without echoing it. */
function hostKeyOf(line: string): sshpk.Key {
  if (Buffer.byteLength(line) > MAX_SSH_KEY_BYTES) throw new SugarError("too_large", `the public key is over ${MAX_SSH_KEY_BYTES} bytes`);
  const text = line.trim();
  if (text === "") throw bad("no public key (public_key is empty)");
  if (text.startsWith("-----BEGIN")) throw bad("public_key is PEM (a private key?): send the host key's .pub line, e.g. ssh_host_ed25519_key.pub");
  if (/[\r\n]/.test(text)) throw bad("public_key must be one line");
  const type = text.split(/[ \t]+/)[0]!;
  if (type.includes("-cert-v01@openssh.com")) throw bad("public_key is a certificate: send the host key's .pub line");
  if (!HOST_KEY_TYPES.has(type)) throw bad(`public_key type ${JSON.stringify(type.slice(0, 40))} is not accepted: ssh-ed25519, ecdsa-sha2-nistp256/384/521 or ssh-rsa`);
  let key: sshpk.Key;
  try {
    key = sshpk.parseKey(text, "ssh");
  } catch (cause) {
    throw new SugarError("invalid_input", "public_key is not an OpenSSH public key line", { cause });
  }
  if (sshpk.PrivateKey.isPrivateKey(key, [1, 0])) throw bad("public_key is a private key: send the .pub line");
  if (key.type === "rsa" && key.size < 2048) throw bad(`an RSA key of ${key.size} bits is too weak: 2048 bits or more`);
  return key;
}

export interface HostCert {
  line: string;
  notAfter: Date;
  serial: string;
}

/** An OpenSSH host certificate for `publicKeyLine`, valid for `principals`, HOST_CERT_WEEKS long. */
export function issueHostCert(ca: sshpk.PrivateKey, publicKeyLine: string, principals: string[], site: string, now = new Date()): HostCert {
  const key = hostKeyOf(publicKeyLine);
  const serial = randomBytes(8);
  serial[0]! &= 0x7f;
  const validUntil = new Date(now.getTime() + HOST_CERT_WEEKS * WEEK_MS);
  const cert = sshpk.createCertificate(
    principals.map((p) => sshpk.identityForHost(p)),
    key,
    sshpk.identityForHost(principals[0]!),
    ca,
    { validFrom: new Date(now.getTime() - BACKDATE_MS), validUntil, serial },
  );
  // sshpk names the key id after the first principal; sshd logs it, so it says whose host this is. It is signed, so sign again.
  cert.signatures.openssh!.keyId = `${site} host`;
  cert.signWith(ca);
  return { line: cert.toString("openssh"), notAfter: validUntil, serial: BigInt(`0x${serial.toString("hex")}`).toString() };
}
