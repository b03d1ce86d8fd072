/**
 * The district CA on every bus (test/contract/keyring-ca.test.ts): creating
 * it, the op families kept apart, the `ca` op and `server_cert`, with what
 * the keyring signs checked from outside by the real openssl.
 */
import { chmodSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as assert from "uvu/assert";
import { startKeyring } from "../../actors/keyring/index.js";
import { x509 } from "../../src/x509.js";
import { sugar } from "../../schemas/gen/messages.js";
import { subjects } from "../../src/bus/subjects.js";
import { silentLogger } from "../../src/log.js";
import { expectError, expectRawError } from "../support/bus-errors.js";
import { makeCsr, opensslText, opensslVerify, sshPublicOf, tamperedCsr } from "../support/pki.js";
import type { BusKind } from "./buses.js";
import { caSuite, unchanged } from "./keyring-ca.harness.js";

const DAY_MS = 86_400_000;
const daysFromNow = (iso: string) => (Date.parse(iso) - Date.now()) / DAY_MS;
const CA_OPS = ["ca", "serverCert", "clientCert", "sshHostCert"] as const;

export function keyringCaContract(kind: BusKind): void {
  const { t, it, keyring } = caSuite(kind, "keyring-ca");

  // --- init --ca, show -------------------------------------------------------

  it("init --ca creates ca.pem (0600, PKCS#8 P-256) and a 20-year self-signed CA certificate; show gives its SHA-256 fingerprint", async (c) => {
    const k = await keyring(c, { ca: false });
    assert.is((await k.admin.call("show", {})).caFingerprint, "");
    const r = await k.admin.call("init", { ca: true });
    assert.is(r.created, true);
    const keyPem = readFileSync(join(k.dir, "ca.pem"), "utf8");
    assert.match(keyPem, /^-----BEGIN PRIVATE KEY-----\n/);
    assert.is(statSync(join(k.dir, "ca.pem")).mode & 0o777, 0o600);
    const certPem = readFileSync(join(k.dir, "ca.crt"), "utf8");
    const text = await opensslText(certPem);
    assert.match(text, /X509v3 Basic Constraints: critical\s+CA:TRUE, pathlen:0/);
    assert.match(text, /X509v3 Key Usage: critical\s+Certificate Sign, CRL Sign/);
    assert.match(text, /Subject: CN ?= ?central district CA/);
    assert.match(text, /ASN1 OID: prime256v1/);
    const notAfter = /Not After : (.+)/.exec(text)![1]!;
    assert.ok(Math.abs(daysFromNow(new Date(notAfter).toISOString()) - 20 * 365.25) < 2, notAfter);
    assert.ok((await opensslVerify(certPem, certPem)).ok, "self-signed: verifies against itself");
    const fingerprint = /sha256 Fingerprint=([0-9A-F:]+)/i.exec(text)![1]!;
    assert.is(r.keys?.caFingerprint, fingerprint);
    assert.is((await k.admin.call("show", {})).caFingerprint, fingerprint);
    assert.not.ok(JSON.stringify(r).includes("PRIVATE"), "no reply carries the key");
  });

  it("init --ca never replaces a CA: again, and after a restart, the same fingerprint and files", async (c) => {
    const k = await keyring(c);
    const first = (await k.admin.call("show", {})).caFingerprint;
    await unchanged(k.dir, async () => {
      const again = await k.admin.call("init", { ca: true });
      assert.is(again.keys?.caFingerprint, first);
      assert.is(again.created, false);
    });
    for (const component of c.running.splice(0)) await component.stop();
    c.running.push(await startKeyring({ bus: c.bus, config: k.config, log: silentLogger }));
    await c.bus.flush();
    assert.is((await k.admin.call("show", {})).caFingerprint, first);
  });

  it("a ca.pem that others can read is refused at start, as server.pem is", async (c) => {
    const k = await keyring(c);
    for (const component of c.running.splice(0)) await component.stop();
    chmodSync(join(k.dir, "ca.pem"), 0o640);
    await expectError(startKeyring({ bus: c.bus, config: k.config, log: silentLogger }), "forbidden", /ca\.pem is readable by others/);
  });

  it("a ca.crt that is not ca.pem's certificate is refused at start", async (c) => {
    const k = await keyring(c);
    for (const component of c.running.splice(0)) await component.stop();
    const other = await x509.X509CertificateGenerator.createSelfSigned({
      name: "CN=other",
      keys: (await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign", "verify"])) as CryptoKeyPair,
      signingAlgorithm: { name: "ECDSA", hash: "SHA-256" } as EcdsaParams,
    });
    writeFileSync(join(k.dir, "ca.crt"), other.toString("pem"));
    await expectError(startKeyring({ bus: c.bus, config: k.config, log: silentLogger }), "invalid_config", /not the certificate of the key/);
  });

  // --- the two families --------------------------------------------------------

  it("without a CA every CA op is unavailable, saying to run keyring init --ca", async (c) => {
    const k = await keyring(c, { ca: false });
    const s = k.as("school1");
    await unchanged(k.dir, async () => {
      await expectError(s.call("ca", {}), "unavailable", /keyring init --ca/);
      await expectError(s.call("serverCert", { csr: await makeCsr() }), "unavailable", /keyring init --ca/);
      await expectError(s.call("clientCert", { csr: await makeCsr(), uid: "1".repeat(40) }), "unavailable", /keyring init --ca/);
      await expectError(s.call("sshHostCert", { publicKey: "ssh-ed25519 AAAA" }), "unavailable", /keyring init --ca/);
    });
  });

  it("a CA op on sugar.keyring.<op> (no site) names no school and is invalid_input", async (c) => {
    const k = await keyring(c);
    await unchanged(k.dir, async () => {
      for (const op of CA_OPS) {
        const data = sugar.keyring.Request.encode({ [op]: {} }).finish();
        await expectRawError(c.bus, subjects.keyring(op), data, "invalid_input", /names no school/);
      }
    });
  });

  it("a lease op on sugar.keyring.<site>.<op> is refused: init, show, sign, trust and import are no school's", async (c) => {
    const k = await keyring(c, { ca: false });
    await unchanged(k.dir, async () => {
      const s = k.as("school1");
      await expectError(s.call("init", { ca: true, leaseKey: true }), "invalid_input", /no district CA op/);
      await expectError(s.call("show", {}), "invalid_input", /no district CA op/);
      await expectError(s.call("sign", { machineSn: "SHC005007B7" }), "invalid_input", /no district CA op/);
      await expectError(s.call("trust", { text: "x" }), "invalid_input", /no district CA op/);
      await expectError(s.call("import", { text: "x" }), "invalid_input", /no district CA op/);
    });
  });

  // --- ca ----------------------------------------------------------------------

  it("ca gives the CA certificate, its fingerprint, its OpenSSH key, the known_hosts patterns and the asking site's names", async (c) => {
    const k = await keyring(c);
    const r = await k.as("school1").call("ca", {});
    assert.is(r.certificate, readFileSync(join(k.dir, "ca.crt"), "utf8"));
    assert.is(r.fingerprint, (await k.admin.call("show", {})).caFingerprint);
    assert.is(r.sshPublicKey, await sshPublicOf(readFileSync(join(k.dir, "ca.pem"), "utf8")));
    assert.match(r.sshPublicKey!, /^ecdsa-sha2-nistp256 AAAA[A-Za-z0-9+/=]+$/);
    assert.equal([...r.hostPatterns!], ["*.schoolserver.lan"]);
    assert.equal([...r.names!], ["school1.schoolserver.lan"]);
    assert.equal([...(await k.as("school2").call("ca", {})).names!], ["school2.schoolserver.lan"]);
  });

  it("ca with ca-server-names patterns: * stays in host_patterns and out of names", async (c) => {
    const k = await keyring(c, { options: { "ca-server-names": "{site}.example.org, *.{site}.example.org ,Backup.Example.org" } });
    const r = await k.as("north").call("ca", {});
    assert.equal([...r.hostPatterns!], ["*.example.org", "*.*.example.org", "backup.example.org"]);
    assert.equal([...r.names!], ["north.example.org", "backup.example.org"]);
  });

  // --- server_cert ---------------------------------------------------------------

  it("server_cert signs the site's names: openssl verifies it as a server; CA:FALSE, serverAuth, the SANs, nothing from the CSR", async (c) => {
    const k = await keyring(c);
    const csr = await makeCsr({ sans: ["evil.example", "school2.schoolserver.lan"], subject: "CN=evil.example, O=Evil" });
    let r!: sugar.keyring.ICertReply;
    await unchanged(k.dir, async () => {
      r = await k.as("school1").call("serverCert", { csr });
    });
    const ca = readFileSync(join(k.dir, "ca.crt"), "utf8");
    assert.is(r.ca, ca);
    const v = await opensslVerify(ca, r.certificate!, "sslserver");
    assert.ok(v.ok, v.out);
    const text = await opensslText(r.certificate!);
    assert.match(text, /X509v3 Basic Constraints: critical\s+CA:FALSE/);
    assert.match(text, /X509v3 Key Usage: critical\s+Digital Signature\n/);
    assert.match(text, /X509v3 Extended Key Usage: \s*TLS Web Server Authentication\n/);
    assert.match(text, /X509v3 Subject Alternative Name: \s*DNS:school1.schoolserver.lan\n/);
    assert.match(text, /Subject: O ?= ?school1, CN ?= ?school1.schoolserver.lan\n/);
    assert.match(text, /X509v3 Authority Key Identifier/);
    assert.match(text, /X509v3 Subject Key Identifier/);
    assert.not.match(text, /evil|Evil|school2/);
    assert.equal([...r.names!], ["school1.schoolserver.lan"]);
    assert.ok(Math.abs(daysFromNow(r.notAfter!) - 365) < 0.1, r.notAfter!);
    const serial = /Serial Number:\s*\n?\s*([0-9a-f:]+)/.exec(text)![1]!.replace(/:/g, "");
    assert.is(serial, r.serial);
    assert.ok(parseInt(serial.slice(0, 2), 16) < 0x80, "positive serial");
    const notBefore = new Date(/Not Before: (.+)/.exec(text)![1]!).getTime();
    assert.ok(notBefore < Date.now() - 60_000 && notBefore > Date.now() - 10 * 60_000, "a few minutes back");
    const again = await k.as("school1").call("serverCert", { csr });
    assert.is.not(again.serial, r.serial, "random serials");
  });

  it("server_cert for an RSA key adds keyEncipherment; RSA 2048, P-256, P-384 and Ed25519 keys all verify", async (c) => {
    const k = await keyring(c);
    const ca = readFileSync(join(k.dir, "ca.crt"), "utf8");
    for (const key of ["rsa2048", "p256", "p384", "ed25519"] as const) {
      const r = await k.as("school1").call("serverCert", { csr: await makeCsr({ key }) });
      const v = await opensslVerify(ca, r.certificate!, "sslserver");
      assert.ok(v.ok, `${key}: ${v.out}`);
      const usage = /X509v3 Key Usage: critical\s+(.+)\n/.exec(await opensslText(r.certificate!))![1]!;
      assert.is(usage, key === "rsa2048" ? "Digital Signature, Key Encipherment" : "Digital Signature", key);
    }
  });

  it("server_cert with names: each within the site's patterns, without case, * one label; in the order asked", async (c) => {
    const k = await keyring(c, { options: { "ca-server-names": "schoolserver,{site}.schoolserver.lan,*.{site}.schoolserver.lan" } });
    const r = await k.as("school1").call("serverCert", { csr: await makeCsr(), names: ["WWW.School1.SchoolServer.LAN", "school1.schoolserver.lan.", "www.school1.schoolserver.lan"] });
    assert.equal([...r.names!], ["www.school1.schoolserver.lan", "school1.schoolserver.lan"]);
    assert.match(await opensslText(r.certificate!), /Subject: O ?= ?school1, CN ?= ?www.school1.schoolserver.lan\n[\s\S]*DNS:www.school1.schoolserver.lan, DNS:school1.schoolserver.lan\n/);
    await unchanged(k.dir, async () => {
      await expectError(k.as("school1").call("serverCert", { csr: await makeCsr(), names: ["a.b.school1.schoolserver.lan"] }), "forbidden", /not a name school1 may have/);
    });
  });

  it("server_cert for another school's name is forbidden, and nothing is written", async (c) => {
    const k = await keyring(c);
    await unchanged(k.dir, async () => {
      await expectError(k.as("school1").call("serverCert", { csr: await makeCsr(), names: ["school2.schoolserver.lan"] }), "forbidden", /school2.schoolserver.lan is not a name school1 may have/);
      await expectError(k.as("school1").call("serverCert", { csr: await makeCsr(), names: ["schoolserver", "www.example.com"] }), "forbidden");
    });
  });

  it("server_cert for a wildcard name is invalid_input, even where a pattern has *", async (c) => {
    const k = await keyring(c, { options: { "ca-server-names": "*.{site}.schoolserver.lan" } });
    await unchanged(k.dir, async () => {
      await expectError(k.as("school1").call("serverCert", { csr: await makeCsr(), names: ["*.school1.schoolserver.lan"] }), "invalid_input", /no wildcard/);
    });
  });

  it("server_cert for a name that is no DNS name is invalid_input", async (c) => {
    const k = await keyring(c);
    await unchanged(k.dir, async () => {
      for (const name of ["", "school server", "-bad.schoolserver.lan", "a..b", "x".repeat(64) + ".lan", "école.lan"]) {
        await expectError(k.as("school1").call("serverCert", { csr: await makeCsr(), names: [name] }), "invalid_input", /not a DNS host name/);
      }
    });
  });

  it("server_cert without names where the patterns give the site no concrete name is invalid_input", async (c) => {
    const k = await keyring(c, { options: { "ca-server-names": "*.{site}.schoolserver.lan" } });
    await unchanged(k.dir, async () => {
      await expectError(k.as("school1").call("serverCert", { csr: await makeCsr() }), "invalid_input", /no name without a wildcard/);
    });
  });

  it("server_cert with a CSR whose signature does not match its key is invalid_input", async (c) => {
    const k = await keyring(c);
    const csr = tamperedCsr(await makeCsr());
    await unchanged(k.dir, async () => {
      await expectError(k.as("school1").call("serverCert", { csr }), "invalid_input", /signature does not match/);
    });
  });

  it("server_cert with a CSR that asks for CA:TRUE is invalid_input", async (c) => {
    const k = await keyring(c);
    const csr = await makeCsr({ extensions: [new x509.BasicConstraintsExtension(true, undefined, true)] });
    await unchanged(k.dir, async () => {
      await expectError(k.as("school1").call("serverCert", { csr }), "invalid_input", /asks for CA:TRUE/);
    });
  });

  it("server_cert with a CSR whose extension cannot be read is invalid_input, not a keyring failure", async (c) => {
    const k = await keyring(c);
    // basicConstraints (2.5.29.19) whose value is not a SEQUENCE: ff 01 02.
    const csr = await makeCsr({ extensions: [new x509.Extension("2.5.29.19", false, new Uint8Array([0xff, 0x01, 0x02]))] });
    await unchanged(k.dir, async () => {
      await expectError(k.as("school1").call("serverCert", { csr }), "invalid_input", /extension that cannot be read/);
    });
  });

  it("server_cert with a CSR that asks for keyCertSign or cRLSign is invalid_input", async (c) => {
    const k = await keyring(c);
    await unchanged(k.dir, async () => {
      const KU = x509.KeyUsageFlags;
      for (const [flags, re] of [[KU.digitalSignature | KU.keyCertSign, /keyCertSign/], [KU.cRLSign, /cRLSign/]] as const) {
        const csr = await makeCsr({ extensions: [new x509.KeyUsagesExtension(flags, true)] });
        await expectError(k.as("school1").call("serverCert", { csr }), "invalid_input", re);
      }
    });
  });

  it("server_cert with a CSR that asks for another extended key usage (clientAuth, codeSigning) is invalid_input", async (c) => {
    const k = await keyring(c);
    await unchanged(k.dir, async () => {
      for (const eku of [x509.ExtendedKeyUsage.clientAuth, x509.ExtendedKeyUsage.codeSigning]) {
        const csr = await makeCsr({ extensions: [new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, eku])] });
        await expectError(k.as("school1").call("serverCert", { csr }), "invalid_input", /extended key usage (clientAuth|codeSigning)/);
      }
    });
    const asked = await makeCsr({ extensions: [new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]), new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature)] });
    assert.ok((await k.as("school1").call("serverCert", { csr: asked })).certificate, "asking for what a server gets is fine");
  });

  it("server_cert with an empty CSR is invalid_input", async (c) => {
    const k = await keyring(c);
    await unchanged(k.dir, async () => {
      await expectError(k.as("school1").call("serverCert", { csr: "" }), "invalid_input", /csr is empty/);
      await expectError(k.as("school1").call("serverCert", {}), "invalid_input", /csr is empty/);
    });
  });

  it("server_cert with a CSR over 16 KB is too_large, refused by size before it is parsed", async (c) => {
    const k = await keyring(c);
    const big = "-----BEGIN CERTIFICATE REQUEST-----\n" + "A".repeat(100 * 1024) + "\n-----END CERTIFICATE REQUEST-----\n";
    await unchanged(k.dir, async () => {
      await expectError(k.as("school1").call("serverCert", { csr: big }), "too_large", /over 16384 bytes/);
    });
  });

  it("server_cert with garbage for a CSR is invalid_input", async (c) => {
    const k = await keyring(c);
    await unchanged(k.dir, async () => {
      await expectError(k.as("school1").call("serverCert", { csr: "hello" }), "invalid_input", /not PEM/);
      const junk = "-----BEGIN CERTIFICATE REQUEST-----\nAAAAAAAAAAAA\n-----END CERTIFICATE REQUEST-----\n";
      await expectError(k.as("school1").call("serverCert", { csr: junk }), "invalid_input", /not a PKCS#10/);
      const two = (await makeCsr()) + (await makeCsr());
      await expectError(k.as("school1").call("serverCert", { csr: two }), "invalid_input", /2 PEM blocks/);
    });
  });

  it("server_cert with a PEM of another type (a private key, a certificate) is invalid_input and does not echo it", async (c) => {
    const k = await keyring(c);
    const keyPem = readFileSync(join(k.dir, "ca.pem"), "utf8");
    await unchanged(k.dir, async () => {
      const err = await expectError(k.as("school1").call("serverCert", { csr: keyPem }), "invalid_input", /a PEM "PRIVATE KEY", not a CERTIFICATE REQUEST/);
      assert.not.ok(err.message.includes(keyPem.split("\n")[1]!.slice(0, 20)));
      await expectError(k.as("school1").call("serverCert", { csr: readFileSync(join(k.dir, "ca.crt"), "utf8") }), "invalid_input", /"CERTIFICATE", not/);
    });
  });

  it("server_cert with an RSA key under 2048 bits or an EC P-521 key is invalid_input", async (c) => {
    const k = await keyring(c);
    await unchanged(k.dir, async () => {
      await expectError(k.as("school1").call("serverCert", { csr: await makeCsr({ key: "rsa1024" }) }), "invalid_input", /1024 bits is too weak/);
      await expectError(k.as("school1").call("serverCert", { csr: await makeCsr({ key: "p521" }) }), "invalid_input", /curve secp521r1 is not accepted/);
    });
  });

  t.run();
}
