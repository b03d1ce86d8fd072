/**
 * `sugar-server tls ...`: the school's TLS identity, signed by the district
 * CA that the keyring holds. The school makes its own key (it never leaves
 * `<root>/tls/`), sends a certificate request over the bus, and writes what
 * the keyring signs. The keyring decides the names (within its
 * `ca-server-names` for this site), the key usages and the lifetime.
 *
 *   tls init [--name HOST...]   key (if none yet), CSR, signed certificate + CA
 *   tls renew [--name HOST...]  a new certificate for the same key
 *   tls show                    subject, names, expiry, CA fingerprint
 *   tls ssh-host-cert [PUBKEY]  an OpenSSH host certificate beside PUBKEY
 *   tls known-hosts             the @cert-authority line clients put in known_hosts
 */
import { X509Certificate, createPrivateKey, createPublicKey, generateKeyPair, type KeyObject } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import type { KeyringCaClient } from "../codec.js";
import type { Config } from "../config.js";
import { SugarError, describe } from "../errors.js";
import { ensureDir, readBytesIfExists, writeFileAtomic } from "../fs.js";
import type { Logger } from "../log.js";
import { fingerprintOf, tlsPaths, type TlsPaths } from "../tls.js";
import * as validate from "../validate.js";
import { subtle, x509 } from "../x509.js";

export interface TlsIo {
  out(text: string): void;
  err(text: string): void;
}

const USAGE =
  "usage: sugar-server tls init [--name HOST...] | renew [--name HOST...] | show | ssh-host-cert [PUBKEY] | known-hosts\n";
/** The host key OpenSSH makes on Debian; its certificate goes beside it. */
export const DEFAULT_HOST_KEY = "/etc/ssh/ssh_host_ed25519_key.pub";
/** `start` renews a certificate with fewer days than this left. */
export const RENEW_DAYS = 30;
const DAY_MS = 24 * 3600 * 1000;

function generateEcKey(): Promise<KeyObject> {
  return new Promise((resolve, reject) => generateKeyPair("ec", { namedCurve: "prime256v1" }, (err, _pub, priv) => (err ? reject(err) : resolve(priv))));
}

/** A PKCS#10 request signed by `key`. It names only the key: the keyring decides everything else. */
async function certificateRequest(key: KeyObject, commonName: string): Promise<string> {
  const type = key.asymmetricKeyType;
  const algorithm =
    type === "ec"
      ? { import: { name: "ECDSA", namedCurve: curveOf(key) }, sign: { name: "ECDSA", hash: "SHA-256" } }
      : type === "rsa"
        ? { import: { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" }, sign: { name: "RSASSA-PKCS1-v1_5" } }
        : undefined;
  if (!algorithm) throw new SugarError("invalid_config", `the school's TLS key is ${type}: use an EC (P-256/P-384) or RSA key`);
  const privateKey = await subtle.importKey("pkcs8", key.export({ type: "pkcs8", format: "der" }), algorithm.import, false, ["sign"]);
  const publicKey = await subtle.importKey("spki", createPublicKey(key).export({ type: "spki", format: "der" }), algorithm.import, true, ["verify"]);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create(
    { name: [{ CN: [commonName] }], keys: { privateKey, publicKey }, signingAlgorithm: algorithm.sign },
  );
  return csr.toString("pem");
}

function curveOf(key: KeyObject): string {
  const curve = key.asymmetricKeyDetails?.namedCurve;
  if (curve === "prime256v1") return "P-256";
  if (curve === "secp384r1") return "P-384";
  throw new SugarError("invalid_config", `the school's TLS key uses curve ${curve}: use P-256 or P-384`);
}

/** The school's key: the one on disk, or a new one (never replacing one that exists). */
async function schoolKey(paths: TlsPaths, create: boolean): Promise<{ key: KeyObject; created: boolean }> {
  const existing = await readBytesIfExists(paths.key);
  if (existing) {
    if (((await stat(paths.key)).mode & 0o077) !== 0) throw new SugarError("forbidden", `${paths.key} can be read by others: chmod 600 it (and consider the key known to them)`);
    try {
      return { key: createPrivateKey(existing), created: false };
    } catch (cause) {
      throw new SugarError("invalid_config", "the school's TLS key (tls/server.key) is not a private key in PEM", { cause });
    }
  }
  if (!create) throw new SugarError("not_found", "no TLS key yet: run `sugar-server tls init`");
  const key = await generateEcKey();
  await ensureDir(paths.dir, 0o700);
  await writeFileAtomic(paths.key, key.export({ type: "pkcs8", format: "pem" }) as string, 0o600);
  return { key, created: true };
}

/** The school's certificate as it is on disk, or undefined before `tls init`. */
export async function currentCertificate(config: Pick<Config, "root">): Promise<X509Certificate | undefined> {
  const pem = await readBytesIfExists(tlsPaths(config).cert);
  return pem ? new X509Certificate(pem) : undefined;
}

/** The DNS names of a certificate's subjectAltName. */
export function dnsNames(cert: X509Certificate): string[] {
  return (cert.subjectAltName ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.startsWith("DNS:"))
    .map((s) => s.slice(4));
}

/** Asks the keyring for a certificate for the school's key and writes it (with the CA as chain) and the CA. */
export async function issueServerCertificate(config: Config, ca: KeyringCaClient, names: readonly string[], create: boolean): Promise<{ cert: X509Certificate; keyCreated: boolean }> {
  const paths = tlsPaths(config);
  // The CA this school and its clients pinned: a renewal never switches it silently (`tls init` may, and says so).
  const pinned = await readBytesIfExists(paths.ca);
  const { key, created } = await schoolKey(paths, create);
  const csr = await certificateRequest(key, names[0] ?? config.site);
  const r = await ca.call("serverCert", { csr, names: [...names] });
  const certificate = r.certificate ?? "";
  const caPem = r.ca ?? "";
  const cert = new X509Certificate(certificate);
  // What the keyring signed must be for this key and chain to the CA it sent: a mix-up stops here, not at a client.
  if (!cert.checkPrivateKey(key)) throw new SugarError("internal", "the keyring signed a certificate for another key");
  if (!cert.verify(new X509Certificate(caPem).publicKey)) throw new SugarError("internal", "the keyring's certificate does not verify against its CA");
  if (pinned && !create && fingerprintOf(pinned) !== fingerprintOf(caPem)) {
    throw new SugarError("conflict", `the keyring answered with another CA (${fingerprintOf(caPem)}) than this school's (${fingerprintOf(pinned)}): nothing written; run \`sugar-server tls init\` to move to the new CA on purpose`);
  }
  await ensureDir(paths.dir, 0o700);
  await writeFileAtomic(paths.csr, csr, 0o644);
  await writeFileAtomic(paths.ca, withNewline(caPem), 0o644);
  await writeFileAtomic(paths.cert, withNewline(certificate) + withNewline(caPem), 0o644);
  return { cert, keyCreated: created };
}

const withNewline = (s: string) => (s.endsWith("\n") ? s : `${s}\n`);
const daysLeft = (cert: X509Certificate, now = Date.now()) => Math.floor((new Date(cert.validTo).getTime() - now) / DAY_MS);

/** `tls show`: what the school's certificate says; it needs no keyring. */
export async function tlsShow(config: Config, io: TlsIo): Promise<number> {
  const cert = await currentCertificate(config);
  if (!cert) {
    io.out("no TLS certificate yet: run `sugar-server tls init` (the keyring host runs `sugar-server keyring init --ca` first)\n");
    return 1;
  }
  const caPem = await readBytesIfExists(tlsPaths(config).ca);
  io.out(`subject: ${cert.subject.replace(/\n/g, ", ")}\n`);
  io.out(`names: ${dnsNames(cert).join(", ")}\n`);
  io.out(`expires: ${new Date(cert.validTo).toISOString()} (${daysLeft(cert)} days left)\n`);
  io.out(`issuer: ${cert.issuer.replace(/\n/g, ", ")}\n`);
  io.out(`serial: ${cert.serialNumber}\n`);
  io.out(`district CA fingerprint (SHA-256): ${caPem ? fingerprintOf(caPem) : "(no ca.crt)"}\n`);
  return 0;
}

function report(cert: X509Certificate, io: TlsIo): void {
  io.out(`certificate for ${dnsNames(cert).join(", ")}, expires ${new Date(cert.validTo).toISOString()}\n`);
}

async function sshHostCert(config: Config, ca: KeyringCaClient, names: readonly string[], pubPath: string, io: TlsIo): Promise<number> {
  let text: string;
  try {
    text = await readFile(pubPath, "utf8");
  } catch (cause) {
    throw new SugarError("not_found", `cannot read the host's public key ${pubPath}: ${(cause as Error).message}`, { cause });
  }
  // Checked here, before anything is sent: a private key given by mistake must never leave this host.
  if (text.includes("PRIVATE KEY")) throw new SugarError("invalid_input", `${pubPath} is a private key: give the host key's .pub file`);
  let publicKey: string;
  try {
    publicKey = validate.publicKey(text.trim()).line;
  } catch (cause) {
    throw new SugarError("invalid_input", `${pubPath} is not an OpenSSH public key line: ${(cause as Error).message}`, { cause });
  }
  // The principals are the school's own names: those of its TLS certificate, unless named here.
  const cert = names.length ? undefined : await currentCertificate(config);
  const principals = names.length ? names : cert ? dnsNames(cert) : [];
  const r = await ca.call("sshHostCert", { publicKey, names: [...principals] });
  const out = `${pubPath.replace(/\.pub$/, "")}-cert.pub`;
  await writeFileAtomic(out, withNewline(r.certificate ?? ""), 0o644);
  io.out(`wrote ${out}: host certificate for ${(r.principals ?? []).join(", ")}, valid until ${r.notAfter}\n`);
  io.out(`sshd_config: HostCertificate ${out}\n`);
  return 0;
}

async function knownHosts(ca: KeyringCaClient, io: TlsIo): Promise<number> {
  const r = await ca.call("ca", {});
  io.out(`${knownHostsLine(r.hostPatterns ?? [], r.sshPublicKey ?? "")}\n`);
  return 0;
}

/** The known_hosts line that trusts every host the district CA certified for these names. */
export function knownHostsLine(patterns: readonly string[], sshPublicKey: string): string {
  if (!patterns.length || !sshPublicKey) throw new SugarError("unavailable", "the keyring has no CA: run `sugar-server keyring init --ca` on the keyring host");
  // The key's type and body only: the comment of the CA's key line is no business of a client's known_hosts.
  const [type, body] = sshPublicKey.trim().split(/\s+/);
  return `@cert-authority ${patterns.join(",")} ${type} ${body}`;
}

/** `sugar-server tls ...`; `names` are the `--name` values. */
export async function tlsCommand(args: readonly string[], names: readonly string[], config: Config, ca: KeyringCaClient, io: TlsIo): Promise<number> {
  const [sub, arg, ...rest] = args;
  if (rest.length) {
    io.err(USAGE);
    return 2;
  }
  switch (sub) {
    case "init": {
      if (arg) break;
      const before = await readBytesIfExists(tlsPaths(config).ca);
      const { cert, keyCreated } = await issueServerCertificate(config, ca, names, true);
      io.out(keyCreated ? `made the school's key ${tlsPaths(config).key}\n` : "kept the school's existing key\n");
      const after = await readBytesIfExists(tlsPaths(config).ca);
      if (before && after && fingerprintOf(before) !== fingerprintOf(after)) io.out(`the district CA changed: clients that pinned ${fingerprintOf(before)} must pin ${fingerprintOf(after)}\n`);
      report(cert, io);
      return 0;
    }
    case "renew": {
      if (arg) break;
      const old = await currentCertificate(config);
      if (!old) throw new SugarError("not_found", "no TLS certificate to renew: run `sugar-server tls init`");
      const { cert } = await issueServerCertificate(config, ca, names.length ? names : dnsNames(old), false);
      report(cert, io);
      return 0;
    }
    case "show":
      if (arg) break;
      return tlsShow(config, io);
    case "ssh-host-cert":
      return sshHostCert(config, ca, names, arg ?? DEFAULT_HOST_KEY, io);
    case "known-hosts":
      if (arg) break;
      return knownHosts(ca, io);
  }
  io.err(USAGE);
  return 2;
}

/**
 * At start, and every hour while the TLS port is on: a certificate with
 * fewer than RENEW_DAYS left is renewed for the same names (true when it was). A keyring that cannot be reached is a
 * warning while the old certificate still works (the school keeps serving),
 * an error in the log once it has expired.
 */
export async function renewIfDue(config: Config, ca: KeyringCaClient, log: Logger, now = Date.now()): Promise<boolean> {
  const cert = await currentCertificate(config);
  if (!cert) return false; // the TLS listener says what to do
  const left = daysLeft(cert, now);
  if (left >= RENEW_DAYS) return false;
  try {
    const { cert: fresh } = await issueServerCertificate(config, ca, dnsNames(cert), false);
    log.info(`renewed the TLS certificate (${left} days were left): now valid until ${new Date(fresh.validTo).toISOString()}`);
    return true;
  } catch (err) {
    const line = `could not renew the TLS certificate (${left} days left): ${describe(err)}`;
    if (left < 0) log.error(line);
    else log.warn(line);
    return false;
  }
}
