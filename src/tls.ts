/**
 * Where a school's TLS identity lives (`<root>/tls/`), and the district CA's
 * fingerprint as clients pin it. One owner for these paths: `tls init`
 * writes them, the TLS listener and the registration replies read them.
 */
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Config } from "./config.js";

export interface TlsPaths {
  dir: string;
  /** The school's private key, mode 0600. */
  key: string;
  /** The certificate request `tls init` sends to the keyring. */
  csr: string;
  /** The school's certificate followed by the district CA certificate (the chain). */
  cert: string;
  /** The district CA certificate alone: what clients pin. */
  ca: string;
}

export function tlsPaths(config: Pick<Config, "root">): TlsPaths {
  const dir = join(config.root, "tls");
  return { dir, key: join(dir, "server.key"), csr: join(dir, "server.csr"), cert: join(dir, "server.crt"), ca: join(dir, "ca.crt") };
}

/** SHA-256 of a certificate's DER as upper-case hex pairs joined by ":" (what `openssl x509 -fingerprint -sha256` prints). */
export function fingerprintOf(pem: string | Buffer): string {
  return new X509Certificate(pem).fingerprint256;
}

/** The district CA's fingerprint, when this school has run `tls init`; "" otherwise. */
export function serverCaFingerprint(config: Pick<Config, "root">): string {
  let pem: Buffer;
  try {
    pem = readFileSync(tlsPaths(config).ca);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return "";
    throw err;
  }
  return fingerprintOf(pem);
}
