/**
 * The district CA's X.509 side: the self-signed CA certificate, and the
 * server and client certificates it signs. Every field of a certificate is
 * decided here; from the request only the (checked) public key is used.
 */
import { randomBytes } from "node:crypto";
import type { CheckedCsr } from "./csr.js";
import { subtle, x509 } from "../../../src/x509.js";

export const CA_ALGORITHM = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;
const DAY_MS = 86_400_000;
const CA_YEARS = 20;
export const CERT_DAYS = 365;
/** A little back-dating, for the clocks of the machines that check it. */
export const BACKDATE_MS = 5 * 60_000;

/** The CA as the keyring holds it: the signing key never leaves this process. */
export interface Ca {
  key: CryptoKey;
  cert: x509.X509Certificate;
  /** PEM of cert, as ca.crt holds it. */
  pem: string;
}

export interface Issued {
  pem: string;
  notAfter: Date;
  serial: string;
}

/** A random positive serial of 16 bytes (RFC 5280 allows 20), hex; its first byte non-zero, so DER keeps all 16. */
export function randomSerial(): string {
  const b = randomBytes(16);
  b[0] = (b[0]! & 0x7f) | 0x01;
  return b.toString("hex");
}

/** A new CA key and its self-signed certificate: PKCS#8 PEM of the key, PEM of the certificate. */
export async function createCa(commonName: string, now = new Date()): Promise<{ keyPem: string; certPem: string }> {
  const keys = (await subtle.generateKey(CA_ALGORITHM, true, ["sign", "verify"])) as CryptoKeyPair;
  const notAfter = new Date(now);
  notAfter.setUTCFullYear(notAfter.getUTCFullYear() + CA_YEARS);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: [{ CN: [commonName] }],
    notBefore: new Date(now.getTime() - BACKDATE_MS),
    notAfter,
    keys,
    signingAlgorithm: CA_ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true), // pathLen 0: it signs schools' and clients' certificates, never another CA
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const pkcs8 = Buffer.from(await subtle.exportKey("pkcs8", keys.privateKey));
  return { keyPem: x509.PemConverter.encode(pkcs8, "PRIVATE KEY"), certPem: cert.toString("pem") + "\n" };
}

/** The CA's certificate and key as read back from disk (the key not extractable again). */
export async function loadCa(keyDer: Buffer, certPem: string): Promise<Ca> {
  const key = await subtle.importKey("pkcs8", keyDer, CA_ALGORITHM, false, ["sign"]);
  return { key, cert: new x509.X509Certificate(certPem), pem: certPem };
}

export type Profile = { kind: "server"; names: string[]; site: string } | { kind: "client"; uid: string; site: string };

/** A certificate for `csr`'s key: CA:false, the profile's usages and subject, CERT_DAYS long. */
export async function issue(ca: Ca, csr: CheckedCsr, profile: Profile, now = new Date()): Promise<Issued> {
  const KU = x509.KeyUsageFlags;
  const server = profile.kind === "server";
  const usages = KU.digitalSignature | (server && csr.rsa ? KU.keyEncipherment : 0);
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(usages, true),
    new x509.ExtendedKeyUsageExtension([server ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth], false),
    await x509.AuthorityKeyIdentifierExtension.create(ca.cert.publicKey),
    await x509.SubjectKeyIdentifierExtension.create(csr.publicKey),
  ];
  if (server) extensions.push(new x509.SubjectAlternativeNameExtension(profile.names.map((value) => ({ type: "dns" as const, value })), false));
  const notAfter = new Date(now.getTime() + CERT_DAYS * DAY_MS);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    // O names the school in both: a client (or the TLS port, for a client certificate) can check the site as well as the CA.
    subject: server ? [{ O: [profile.site] }, { CN: [profile.names[0]!] }] : [{ O: [profile.site] }, { CN: [profile.uid] }],
    issuer: ca.cert.subjectName,
    notBefore: new Date(now.getTime() - BACKDATE_MS),
    notAfter,
    publicKey: csr.publicKey,
    signingKey: ca.key,
    signingAlgorithm: CA_ALGORITHM,
    extensions,
  });
  return { pem: cert.toString("pem") + "\n", notAfter: cert.notAfter, serial: cert.serialNumber };
}
