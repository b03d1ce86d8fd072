/**
 * The district CA's client and SSH host certificates on every bus
 * (test/contract/keyring-ca-certs.test.ts): a client certificate only for a
 * uid the asking school's own registry knows, host certificates within the
 * school's names; checked from outside with openssl and ssh-keygen -L.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as assert from "uvu/assert";
import { x509 } from "../../src/x509.js";
import type { sugar } from "../../schemas/gen/messages.js";
import { expectError } from "../support/bus-errors.js";
import { makeCsr, opensslText, opensslVerify, sshFingerprint, sshHostKey, sshKeygenList } from "../support/pki.js";
import type { BusKind } from "./buses.js";
import { caSuite, UID1, UID2, unchanged } from "./keyring-ca.harness.js";

const DAY_MS = 86_400_000;
const daysFromNow = (iso: string) => (Date.parse(iso) - Date.now()) / DAY_MS;

export function keyringCaCertsContract(kind: BusKind): void {
  const { t, it, keyring, registry } = caSuite(kind, "keyring-ca-certs");

  // --- client_cert -------------------------------------------------------------

  it("client_cert for a uid the school registered: openssl verifies it as a client; CN=uid, O=site, clientAuth, CA:FALSE, no SAN", async (c) => {
    const k = await keyring(c);
    await registry(c, "school1", [UID1]);
    let cert!: sugar.keyring.ICertReply;
    await unchanged(k.dir, async () => {
      cert = await k.as("school1").call("clientCert", { csr: await makeCsr({ sans: ["evil.example"], subject: "CN=root" }), uid: UID1 });
    });
    const ca = readFileSync(join(k.dir, "ca.crt"), "utf8");
    assert.is(cert.ca, ca);
    const v = await opensslVerify(ca, cert.certificate!, "sslclient");
    assert.ok(v.ok, v.out);
    assert.not.ok((await opensslVerify(ca, cert.certificate!, "sslserver")).ok, "no server certificate");
    const text = await opensslText(cert.certificate!);
    assert.match(text, new RegExp(`Subject: O ?= ?school1, CN ?= ?${UID1}\n`));
    assert.match(text, /X509v3 Basic Constraints: critical\s+CA:FALSE/);
    assert.match(text, /X509v3 Key Usage: critical\s+Digital Signature\n/);
    assert.match(text, /X509v3 Extended Key Usage: \s*TLS Web Client Authentication\n/);
    assert.not.match(text, /Subject Alternative Name|evil|root/);
    assert.equal([...cert.names!], [UID1]);
    assert.ok(Math.abs(daysFromNow(cert.notAfter!) - 365) < 0.1, cert.notAfter!);
  });

  it("client_cert for a uid the asking school has not registered is forbidden, though another school has it", async (c) => {
    const k = await keyring(c);
    await registry(c, "school1", [UID1]);
    await registry(c, "school2", [UID2]);
    await unchanged(k.dir, async () => {
      await expectError(k.as("school1").call("clientCert", { csr: await makeCsr(), uid: UID2 }), "forbidden", new RegExp(`uid ${UID2} is not registered at school1`));
    });
    assert.ok((await k.as("school2").call("clientCert", { csr: await makeCsr(), uid: UID2 })).certificate);
  });

  it("client_cert with a malformed uid is invalid_input, before the registry is asked", async (c) => {
    const k = await keyring(c);
    await unchanged(k.dir, async () => {
      for (const uid of ["", "ABC", UID1.toUpperCase(), `${UID1}0`, "../etc/passwd"]) {
        await expectError(k.as("school1").call("clientCert", { csr: await makeCsr(), uid }), "invalid_input", /uid/);
      }
    });
  });

  it("client_cert when the school's registry does not answer is unavailable", async (c) => {
    const k = await keyring(c);
    await unchanged(k.dir, async () => {
      await expectError(k.as("school1").call("clientCert", { csr: await makeCsr(), uid: UID1 }), "unavailable");
    });
  });

  it("client_cert with a CSR that asks for serverAuth or CA:TRUE is invalid_input", async (c) => {
    const k = await keyring(c);
    await registry(c, "school1", [UID1]);
    await unchanged(k.dir, async () => {
      const server = await makeCsr({ extensions: [new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth, x509.ExtendedKeyUsage.serverAuth])] });
      await expectError(k.as("school1").call("clientCert", { csr: server, uid: UID1 }), "invalid_input", /extended key usage serverAuth/);
      const caTrue = await makeCsr({ extensions: [new x509.BasicConstraintsExtension(true)] });
      await expectError(k.as("school1").call("clientCert", { csr: caTrue, uid: UID1 }), "invalid_input", /CA:TRUE/);
    });
  });

  it("client_cert with an empty, oversized or garbage CSR is refused as server_cert's is", async (c) => {
    const k = await keyring(c);
    await registry(c, "school1", [UID1]);
    await unchanged(k.dir, async () => {
      await expectError(k.as("school1").call("clientCert", { csr: "", uid: UID1 }), "invalid_input", /csr is empty/);
      await expectError(k.as("school1").call("clientCert", { csr: "x".repeat(100 * 1024), uid: UID1 }), "too_large");
      await expectError(k.as("school1").call("clientCert", { csr: "garbage", uid: UID1 }), "invalid_input", /not PEM/);
    });
  });

  // --- ssh_host_cert -------------------------------------------------------------

  it("ssh_host_cert signs an ed25519 host key: ssh-keygen -L shows a host certificate for the site's names, signed by the CA key, 52 weeks", async (c) => {
    const k = await keyring(c);
    const host = await sshHostKey("ed25519");
    let r!: sugar.keyring.ISshHostCertReply;
    await unchanged(k.dir, async () => {
      r = await k.as("school1").call("sshHostCert", { publicKey: host.publicLine });
    });
    assert.match(r.certificate!, /^ssh-ed25519-cert-v01@openssh.com AAAA/);
    const listed = await sshKeygenList(r.certificate!);
    assert.match(listed, /Type: ssh-ed25519-cert-v01@openssh.com host certificate/);
    assert.match(listed, /Principals: \n\s+school1.schoolserver.lan\n\s+Critical/);
    assert.match(listed, /Key ID: "school1 host"/);
    assert.match(listed, new RegExp(`Serial: ${r.serial}\n`));
    const caKey = (await k.as("school1").call("ca", {})).sshPublicKey!;
    assert.match(listed, new RegExp(`Signing CA: ECDSA ${(await sshFingerprint(caKey)).replace(/[+/]/g, "\\$&")}`));
    assert.match(listed, new RegExp(`Public key: ED25519-CERT ${(await sshFingerprint(host.publicLine)).replace(/[+/]/g, "\\$&")}`));
    assert.equal([...r.principals!], ["school1.schoolserver.lan"]);
    assert.ok(Math.abs(daysFromNow(r.notAfter!) - 52 * 7) < 0.1, r.notAfter!);
    assert.not.match(listed, /permit-pty|force-command/, "a host certificate carries no user options");
  });

  it("ssh_host_cert signs ecdsa and rsa (3072) host keys, for the names asked within the site's patterns", async (c) => {
    const k = await keyring(c);
    for (const [type, bits, certType] of [["ecdsa", 256, "ecdsa-sha2-nistp256-cert-v01@openssh.com"], ["rsa", 3072, "ssh-rsa-cert-v01@openssh.com"]] as const) {
      const host = await sshHostKey(type, bits);
      const r = await k.as("school1").call("sshHostCert", { publicKey: host.publicLine, names: ["School1.schoolserver.lan"] });
      const listed = await sshKeygenList(r.certificate!);
      assert.match(listed, new RegExp(`Type: ${certType} host certificate`));
      assert.match(listed, /Principals: \n\s+school1.schoolserver.lan\n\s+Critical/);
    }
  });

  it("ssh_host_cert for another school's name is forbidden", async (c) => {
    const k = await keyring(c);
    const host = await sshHostKey("ed25519");
    await unchanged(k.dir, async () => {
      await expectError(k.as("school1").call("sshHostCert", { publicKey: host.publicLine, names: ["school2.schoolserver.lan"] }), "forbidden", /not a name school1 may have/);
      await expectError(k.as("school1").call("sshHostCert", { publicKey: host.publicLine, names: ["*.schoolserver.lan"] }), "invalid_input", /no wildcard/);
    });
  });

  it("ssh_host_cert with garbage, an empty line or several lines is invalid_input", async (c) => {
    const k = await keyring(c);
    const host = await sshHostKey("ed25519");
    await unchanged(k.dir, async () => {
      await expectError(k.as("school1").call("sshHostCert", { publicKey: "" }), "invalid_input", /public_key is empty/);
      await expectError(k.as("school1").call("sshHostCert", { publicKey: "ssh-ed25519 !!!notbase64" }), "invalid_input", /not an OpenSSH public key/);
      await expectError(k.as("school1").call("sshHostCert", { publicKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA==" }), "invalid_input", /not an OpenSSH public key/);
      await expectError(k.as("school1").call("sshHostCert", { publicKey: `${host.publicLine}\n${host.publicLine}` }), "invalid_input", /one line/);
      await expectError(k.as("school1").call("sshHostCert", { publicKey: "x".repeat(20_000) }), "too_large");
    });
  });

  it("ssh_host_cert with a private key is invalid_input and does not echo it", async (c) => {
    const k = await keyring(c);
    const host = await sshHostKey("ed25519");
    await unchanged(k.dir, async () => {
      const err = await expectError(k.as("school1").call("sshHostCert", { publicKey: host.privateText }), "invalid_input", /PEM \(a private key\?\)/);
      assert.not.ok(err.message.includes(host.privateText.split("\n")[1]!.slice(0, 20)));
    });
  });

  it("ssh_host_cert with an unsupported key type, a certificate or an RSA key under 2048 bits is invalid_input", async (c) => {
    const k = await keyring(c);
    const small = await sshHostKey("rsa", 1024);
    const host = await sshHostKey("ed25519");
    const cert = (await k.as("school1").call("sshHostCert", { publicKey: host.publicLine })).certificate!;
    await unchanged(k.dir, async () => {
      await expectError(k.as("school1").call("sshHostCert", { publicKey: "ssh-dss AAAAB3NzaC1kc3MAAACBAP8= old" }), "invalid_input", /type "ssh-dss" is not accepted/);
      await expectError(k.as("school1").call("sshHostCert", { publicKey: cert }), "invalid_input", /is a certificate/);
      await expectError(k.as("school1").call("sshHostCert", { publicKey: small.publicLine }), "invalid_input", /1024 bits is too weak/);
    });
  });

  t.run();
}
