/**
 * A district CA and its certificates, made by the real `openssl` CLI, and a
 * school's `<root>/tls/` written as `sugar-server tls init` writes it
 * (server.key, server.crt = certificate + CA chain, ca.crt). Client
 * certificates have subject O = site, CN = uid (one kind for another site); one kind comes from ANOTHER CA, one
 * kind is expired (OpenSSL 3.0's `x509` cannot set dates in the past, so
 * those go through `openssl ca -startdate/-enddate`). Keys are EC P-256:
 * quick to make. Tests that use this are registered with
 * `requires(TOOLS.openssl)`.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { toolBin, TOOLS } from "./requires.js";

export interface CertFiles {
  cert: string;
  key: string;
}

export interface TlsFixture {
  /** The district CA certificate (PEM file), also at <root>/tls/ca.crt. */
  caCert: string;
  /** A client certificate with CN = uid from the district CA; `other` from another CA; `expired` long ago. */
  client(uid: string, kind?: "valid" | "other" | "expired" | "other-site"): CertFiles;
  /** A key and a PKCS#10 request with CN = cn, as a client makes one for POST /client/certificate. */
  csr(cn: string): { key: string; csr: string };
  /** Signs a CSR with the district CA as a client certificate for uid (the stub keyring's work). */
  signClient(csrPem: string, uid: string): { certificate: string; serial: string; notAfter: string };
}

const KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

function config(dir: string, names: readonly string[]): string {
  const san = names.map((n) => (/^[\d.]+$|:/.test(n) ? `IP:${n}` : `DNS:${n}`)).join(",");
  return `[req]
distinguished_name = dn
prompt = no
[dn]
CN = placeholder
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = ${san}
[client]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
[ca]
default_ca = testca
[testca]
database = ${join(dir, "index.txt")}
new_certs_dir = ${join(dir, "newcerts")}
serial = ${join(dir, "serial")}
default_md = sha256
policy = anything
unique_subject = no
copy_extensions = none
[anything]
organizationName = optional
commonName = supplied
`;
}

/**
 * Makes the CAs in `work` and the school's TLS files under `<root>/tls/`.
 * The server certificate names `names` (default: localhost, 127.0.0.1, ::1).
 */
/** Client certificates name the school as the district CA does: O = `site`, CN = uid. */
export function makeTlsFixture(work: string, root: string, names: readonly string[] = ["localhost", "127.0.0.1", "::1"], site = "school"): TlsFixture {
  const openssl = (...args: string[]) => execFileSync(toolBin(TOOLS.openssl), args, { stdio: ["ignore", "pipe", "pipe"] }).toString("utf8");
  mkdirSync(join(work, "newcerts"), { recursive: true });
  writeFileSync(join(work, "index.txt"), "");
  writeFileSync(join(work, "serial"), "1000\n");
  const cnf = join(work, "openssl.cnf");
  writeFileSync(cnf, config(work, names));
  const file = (name: string) => join(work, name);

  const makeCa = (name: string, cn: string) => {
    openssl("req", "-x509", "-new", "-config", cnf, "-extensions", "v3_ca", ...KEY, "-keyout", file(`${name}.key`), "-out", file(`${name}.crt`), "-days", "30", "-subj", `/CN=${cn}`);
  };
  makeCa("ca", "Test District CA");
  makeCa("other-ca", "Some Other CA");

  let n = 0;
  const request = (cn: string, o?: string) => {
    const base = file(`leaf-${++n}`);
    openssl("req", "-new", "-config", cnf, ...KEY, "-keyout", `${base}.key`, "-out", `${base}.csr`, "-subj", `${o ? `/O=${o}` : ""}/CN=${cn}`);
    return { base, key: `${base}.key`, csr: `${base}.csr` };
  };
  const sign = (csr: string, out: string, ext: "server" | "client", ca: "ca" | "other-ca", subject?: string) =>
    openssl("x509", "-req", "-in", csr, "-CA", file(`${ca}.crt`), "-CAkey", file(`${ca}.key`), "-set_serial", String(Date.now() * 1000 + ++n), "-days", "30",
      "-extfile", cnf, "-extensions", ext, ...(subject ? ["-subj", `/O=${site}/CN=${subject}`] : []), "-out", out);

  const tls = join(root, "tls");
  mkdirSync(tls, { recursive: true, mode: 0o700 });
  const server = request(names[0] ?? "localhost");
  sign(server.csr, `${server.base}.crt`, "server", "ca");
  writeFileSync(join(tls, "server.key"), readFileSync(server.key), { mode: 0o600 });
  writeFileSync(join(tls, "server.crt"), readFileSync(`${server.base}.crt`, "utf8") + readFileSync(file("ca.crt"), "utf8"));
  writeFileSync(join(tls, "ca.crt"), readFileSync(file("ca.crt")));

  return {
    caCert: file("ca.crt"),
    client(uid, kind = "valid") {
      const r = request(uid, kind === "other-site" ? "another-school" : site);
      const cert = `${r.base}.crt`;
      if (kind === "expired") {
        openssl("ca", "-batch", "-config", cnf, "-name", "testca", "-cert", file("ca.crt"), "-keyfile", file("ca.key"), "-extensions", "client", "-extfile", cnf,
          "-startdate", "20200101000000Z", "-enddate", "20200201000000Z", "-notext", "-in", r.csr, "-out", cert);
      } else sign(r.csr, cert, "client", kind === "other" ? "other-ca" : "ca");
      return { cert, key: r.key };
    },
    csr(cn) {
      const r = request(cn);
      return { key: r.key, csr: readFileSync(r.csr, "utf8") };
    },
    signClient(csrPem, uid) {
      const base = file(`signed-${++n}`);
      writeFileSync(`${base}.csr`, csrPem);
      sign(`${base}.csr`, `${base}.crt`, "client", "ca", uid);
      const certificate = readFileSync(`${base}.crt`, "utf8");
      const serial = openssl("x509", "-in", `${base}.crt`, "-noout", "-serial").trim().replace(/^serial=/, "");
      const end = openssl("x509", "-in", `${base}.crt`, "-noout", "-enddate").trim().replace(/^notAfter=/, "");
      return { certificate, serial, notAfter: new Date(end).toISOString() };
    },
  };
}

/** What `openssl x509 -fingerprint -sha256` prints for a certificate file: "AA:BB:...". */
export function opensslFingerprint(certFile: string): string {
  const out = execFileSync(toolBin(TOOLS.openssl), ["x509", "-in", certFile, "-noout", "-fingerprint", "-sha256"], { encoding: "utf8" });
  return out.trim().replace(/^sha256 Fingerprint=/i, "");
}
