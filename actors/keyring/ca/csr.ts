/**
 * What the keyring takes from a school's PKCS#10 request: its public key, and
 * nothing else. The request is checked before it is used: a bounded PEM of the
 * right type, a signature that its own key made, a key type and size a TLS
 * client accepts, and no request for more power than the certificate will
 * have (CA:true, certificate or CRL signing, another extended key usage): such
 * a request is refused with the reason, so nobody believes they got it.
 */
import { createPublicKey } from "node:crypto";
import { SugarError } from "../../../src/errors.js";
import { x509 } from "../../../src/x509.js";

/** A school server's CSR is under 2 KB; 16 KB bounds what is parsed at all. */
export const MAX_CSR_BYTES = 16 * 1024;

export type Profile = "server" | "client";

export interface CheckedCsr {
  /** The request's public key: the one thing copied into the certificate. */
  publicKey: x509.PublicKey;
  /** An RSA key also gets keyEncipherment (RSA key exchange). */
  rsa: boolean;
}

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([A-Za-z0-9+/=\r\n]+?)-----END \1-----/g;
const PEM_TYPES = new Set(["CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"]);

const bad = (message: string) => new SugarError("invalid_input", message);

function derOf(pem: string): Buffer {
  if (Buffer.byteLength(pem) > MAX_CSR_BYTES) throw new SugarError("too_large", `the certificate request is over ${MAX_CSR_BYTES} bytes`);
  if (pem.trim() === "") throw bad("no certificate request (csr is empty)");
  const blocks = [...pem.matchAll(PEM_BLOCK)];
  if (blocks.length === 0) throw bad("csr is not PEM: expected -----BEGIN CERTIFICATE REQUEST-----");
  if (blocks.length > 1) throw bad(`csr holds ${blocks.length} PEM blocks: send the certificate request alone`);
  const [, type, body] = blocks[0]!;
  // The type names what was sent; the body (perhaps a private key) is never echoed.
  if (!PEM_TYPES.has(type!)) throw bad(`csr is a PEM "${type}", not a CERTIFICATE REQUEST`);
  return Buffer.from(body!.replace(/\s+/g, ""), "base64");
}

function keyTypeOf(spki: ArrayBuffer): { rsa: boolean } {
  let key;
  try {
    key = createPublicKey({ key: Buffer.from(spki), format: "der", type: "spki" });
  } catch (cause) {
    throw new SugarError("invalid_input", "the certificate request's public key cannot be read", { cause });
  }
  const details = key.asymmetricKeyDetails ?? {};
  switch (key.asymmetricKeyType) {
    case "rsa":
      if ((details.modulusLength ?? 0) < 2048) throw bad(`an RSA key of ${details.modulusLength} bits is too weak: 2048 bits or more`);
      if ((details.modulusLength ?? 0) > 8192) throw bad(`an RSA key of ${details.modulusLength} bits is more than 8192`);
      return { rsa: true };
    case "ec":
      if (details.namedCurve !== "prime256v1" && details.namedCurve !== "secp384r1") throw bad(`EC curve ${details.namedCurve} is not accepted: P-256 or P-384`);
      return { rsa: false };
    case "ed25519":
      return { rsa: false };
    default:
      throw bad(`a ${key.asymmetricKeyType} key is not accepted: RSA (2048 bits or more), EC P-256/P-384 or Ed25519`);
  }
}

const KU = x509.KeyUsageFlags;
/** Key usages a TLS endpoint may ask for; what it gets is the keyring's choice. */
const HARMLESS_KU = KU.digitalSignature | KU.keyEncipherment | KU.keyAgreement;
const EKU_OF: Record<Profile, string> = { server: x509.ExtendedKeyUsage.serverAuth, client: x509.ExtendedKeyUsage.clientAuth };
const EKU_NAME: Record<string, string> = {
  [x509.ExtendedKeyUsage.serverAuth]: "serverAuth",
  [x509.ExtendedKeyUsage.clientAuth]: "clientAuth",
  [x509.ExtendedKeyUsage.codeSigning]: "codeSigning",
  [x509.ExtendedKeyUsage.emailProtection]: "emailProtection",
  [x509.ExtendedKeyUsage.timeStamping]: "timeStamping",
  [x509.ExtendedKeyUsage.ocspSigning]: "OCSPSigning",
  "2.5.29.37.0": "anyExtendedKeyUsage",
};

/** Refuses a request that asks for more than a `profile` certificate will carry. */
function checkAsked(csr: x509.Pkcs10CertificateRequest, profile: Profile): void {
  for (const ext of csr.extensions) {
    if (ext instanceof x509.BasicConstraintsExtension && ext.ca) throw bad("the certificate request asks for CA:TRUE: the keyring signs no CA certificates for schools");
    if (ext instanceof x509.KeyUsagesExtension && (ext.usages & ~HARMLESS_KU) !== 0) {
      const names = Object.entries(KU).filter(([, v]) => typeof v === "number" && (ext.usages & v & ~HARMLESS_KU) !== 0).map(([k]) => k);
      throw bad(`the certificate request asks for key usage ${names.join(", ")}: a ${profile} certificate gets digitalSignature${profile === "server" ? " (and keyEncipherment for RSA)" : ""} only`);
    }
    if (ext instanceof x509.ExtendedKeyUsageExtension) {
      const extra = ext.usages.map(String).filter((u) => u !== EKU_OF[profile]);
      if (extra.length) throw bad(`the certificate request asks for extended key usage ${extra.map((u) => EKU_NAME[u] ?? u).join(", ")}: a ${profile} certificate gets ${EKU_NAME[EKU_OF[profile]]} only`);
    }
  }
}

/** The checked request, or invalid_input (too_large over MAX_CSR_BYTES) saying what is wrong. */
export async function checkCsr(pem: string, profile: Profile): Promise<CheckedCsr> {
  const der = derOf(pem);
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(new Uint8Array(der));
  } catch (cause) {
    throw new SugarError("invalid_input", "csr is not a PKCS#10 certificate request", { cause });
  }
  const { rsa } = keyTypeOf(csr.publicKey.rawData);
  let signed: boolean;
  try {
    signed = await csr.verify();
  } catch (cause) {
    throw new SugarError("invalid_input", "the certificate request's signature cannot be checked (unsupported algorithm?)", { cause });
  }
  if (!signed) throw bad("the certificate request's signature does not match its public key");
  try {
    checkAsked(csr, profile);
  } catch (err) {
    // Reading a malformed extension throws the library's own error: the request is at fault, not the keyring.
    if (err instanceof SugarError) throw err;
    throw new SugarError("invalid_input", "the certificate request has an extension that cannot be read", { cause: err });
  }
  return { publicKey: csr.publicKey, rsa };
}
