/**
 * Certificate requests to send the district CA, and the real tools that check
 * what it signed from outside: `openssl verify` / `openssl x509 -text` and
 * `ssh-keygen -L`. Tests that call the tools register with
 * `requires(TOOLS.openssl, TOOLS.sshKeygen)`.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { subtle, x509 } from "../../src/x509.js";
import { toolBin, TOOLS } from "./requires.js";

const run = promisify(execFile);

export type CsrKey = "rsa2048" | "rsa1024" | "p256" | "p384" | "p521" | "ed25519";

const ALGORITHMS: Record<CsrKey, RsaHashedKeyGenParams | EcKeyGenParams | Algorithm> = {
  rsa2048: { name: "RSASSA-PKCS1-v1_5", modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" } as RsaHashedKeyGenParams,
  rsa1024: { name: "RSASSA-PKCS1-v1_5", modulusLength: 1024, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" } as RsaHashedKeyGenParams,
  p256: { name: "ECDSA", namedCurve: "P-256" } as EcKeyGenParams,
  p384: { name: "ECDSA", namedCurve: "P-384" } as EcKeyGenParams,
  p521: { name: "ECDSA", namedCurve: "P-521" } as EcKeyGenParams,
  ed25519: { name: "Ed25519" },
};
const SIGNING: Record<CsrKey, Algorithm> = {
  rsa2048: ALGORITHMS.rsa2048,
  rsa1024: ALGORITHMS.rsa1024,
  p256: { name: "ECDSA", hash: "SHA-256" } as EcdsaParams,
  p384: { name: "ECDSA", hash: "SHA-384" } as EcdsaParams,
  p521: { name: "ECDSA", hash: "SHA-512" } as EcdsaParams,
  ed25519: { name: "Ed25519" },
};

export interface CsrOptions {
  key?: CsrKey;
  /** The subject the request asks for (the keyring decides its own). */
  subject?: string;
  /** SAN dNSNames the request asks for (the keyring ignores them). */
  sans?: string[];
  /** Extensions the request asks for. */
  extensions?: x509.Extension[];
}

/** A PKCS#10 request, PEM. */
export async function makeCsr(opts: CsrOptions = {}): Promise<string> {
  const key = opts.key ?? "p256";
  const keys = (await subtle.generateKey({ ...ALGORITHMS[key], ...SIGNING[key] } as EcKeyGenParams, true, ["sign", "verify"])) as CryptoKeyPair;
  const extensions = [...(opts.extensions ?? [])];
  if (opts.sans?.length) extensions.push(new x509.SubjectAlternativeNameExtension(opts.sans.map((value) => ({ type: "dns" as const, value }))));
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: opts.subject ?? "CN=evil.example", keys, signingAlgorithm: SIGNING[key], extensions });
  return csr.toString("pem") + "\n";
}

/** The request with one bit of its signature flipped: the signature no longer matches its key. */
export function tamperedCsr(pem: string): string {
  const der = Buffer.from(pem.replace(/-----[A-Z ]+-----/g, "").replace(/\s+/g, ""), "base64");
  der[der.length - 3]! ^= 0x01;
  return x509.PemConverter.encode(der, "CERTIFICATE REQUEST");
}

/** Runs a real tool in a scratch directory holding `files`; its stdout, or the failure with its stderr. */
async function inScratch(bin: string, args: (dir: string) => string[], files: Record<string, string>): Promise<{ ok: boolean; out: string }> {
  const dir = mkdtempSync(join(tmpdir(), "sugar-pki-"));
  try {
    for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text, { mode: 0o600 }); // ssh-keygen reads no private key others could
    try {
      const { stdout, stderr } = await run(bin, args(dir));
      return { ok: true, out: stdout + stderr };
    } catch (err) {
      const e = err as { stdout?: string; stderr?: string };
      return { ok: false, out: `${e.stdout ?? ""}${e.stderr ?? ""}` };
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** `openssl verify -CAfile ca.crt [-purpose P] cert.pem`: ok and openssl's words. */
export function opensslVerify(caPem: string, certPem: string, purpose?: "sslserver" | "sslclient"): Promise<{ ok: boolean; out: string }> {
  return inScratch(toolBin(TOOLS.openssl), (d) => ["verify", "-CAfile", join(d, "ca.crt"), ...(purpose ? ["-purpose", purpose] : []), join(d, "cert.pem")], { "ca.crt": caPem, "cert.pem": certPem });
}

/** `openssl x509 -noout -text -fingerprint -sha256` of a certificate. */
export async function opensslText(certPem: string): Promise<string> {
  const r = await inScratch(toolBin(TOOLS.openssl), (d) => ["x509", "-noout", "-text", "-fingerprint", "-sha256", "-in", join(d, "cert.pem")], { "cert.pem": certPem });
  if (!r.ok) throw new Error(`openssl x509 failed: ${r.out}`);
  return r.out;
}

/** `ssh-keygen -L -f host-cert.pub`. */
export async function sshKeygenList(certLine: string): Promise<string> {
  const r = await inScratch(toolBin(TOOLS.sshKeygen), (d) => ["-L", "-f", join(d, "host-cert.pub")], { "host-cert.pub": certLine.trimEnd() + "\n" });
  if (!r.ok) throw new Error(`ssh-keygen -L failed: ${r.out}`);
  return r.out;
}

/** `ssh-keygen -l -f key.pub`: the SHA256 fingerprint ssh-keygen prints for a public key line. */
export async function sshFingerprint(publicLine: string): Promise<string> {
  const r = await inScratch(toolBin(TOOLS.sshKeygen), (d) => ["-l", "-E", "sha256", "-f", join(d, "key.pub")], { "key.pub": publicLine.trimEnd() + "\n" });
  if (!r.ok) throw new Error(`ssh-keygen -l failed: ${r.out}`);
  return r.out.split(" ")[1]!;
}

/** `ssh-keygen -y -f ca.pem`: the OpenSSH public key of a PEM private key, as OpenSSH reads it. */
export async function sshPublicOf(privatePem: string): Promise<string> {
  const r = await inScratch(toolBin(TOOLS.sshKeygen), (d) => ["-y", "-f", join(d, "key")], { key: privatePem });
  if (!r.ok) throw new Error(`ssh-keygen -y failed: ${r.out}`);
  return r.out.trim();
}

/** A new host key made by ssh-keygen: its private file's text and its .pub line. */
export async function sshHostKey(type: "ed25519" | "ecdsa" | "rsa", bits?: number): Promise<{ privateText: string; publicLine: string }> {
  const dir = mkdtempSync(join(tmpdir(), "sugar-hostkey-"));
  try {
    const key = join(dir, "host");
    await run(toolBin(TOOLS.sshKeygen), ["-q", "-t", type, ...(bits ? ["-b", String(bits)] : []), "-N", "", "-C", "host@test", "-f", key]);
    return { privateText: readFileSync(key, "utf8"), publicLine: readFileSync(`${key}.pub`, "utf8").trim() };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
