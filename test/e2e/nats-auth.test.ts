/**
 * The NATS connection options a real deployment uses: a user and password,
 * and TLS with a private CA and client certificates (mutual TLS). A real
 * nats-server is configured for each; the certificates are made by openssl.
 */
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { makeKey } from "../support/keys.js";
import { startNatsServer, type NatsServer } from "../support/nats-server.js";
import { opensslPath } from "../support/openssl.js";
import { requires, testsNeeding, TOOLS } from "../support/requires.js";
import { runCli, startServer } from "../support/server.js";
import { tempDir } from "../support/tmp.js";

const t = suite("nats-auth");
const dir = tempDir("sugar-natsa-");
const cleanup: Array<() => Promise<unknown>> = [];

const needing = (...tools: Parameters<typeof requires>) => {
  const register = testsNeeding(t, requires(...tools));
  return (name: string, fn: () => Promise<void>) => register(`nats-auth: ${name}`, fn);
};
const withKeys = needing(TOOLS.natsServer, TOOLS.sshKeygen);
const withKeysAndCertificates = needing(TOOLS.natsServer, TOOLS.sshKeygen, TOOLS.openssl);

t.after(async () => {
  for (const c of cleanup.reverse()) await c().catch(() => undefined);
  dir.remove();
});

let n = 0;
const serverArgs = (nats: string) => ["--nats", nats, "--root", join(dir.path, `root${++n}`), "--site", `s${n}`, "--host", "127.0.0.1", "--httpd-port", "0", "--xmlrpc-port", "0", "--activation-port", "0"];

async function registers(httpPort: number): Promise<void> {
  const key = makeKey(dir.path);
  const res = await fetch(`http://127.0.0.1:${httpPort}/client/register`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ nickname: "Ana", pubkey: key.line }) });
  const body = (await res.json()) as Record<string, unknown>;
  assert.is(body.success, "OK", JSON.stringify(body));
  assert.is(body.uid, key.uid);
}

/** The one line a failed start prints, without its log lines. */
function errorLine(stderr: string): string {
  const lines = stderr.trim().split("\n").filter((l) => !/ (INFO|WARN) /.test(l));
  assert.is(lines.length, 1, stderr);
  return lines[0]!;
}

async function nats(opts: Parameters<typeof startNatsServer>[0]): Promise<NatsServer> {
  const server = await startNatsServer(opts);
  cleanup.push(() => server.stop());
  return server;
}

withKeys("a user and password: the right ones connect, a wrong password is a one-line error", async () => {
  const server = await nats({ args: ["--user", "school1", "--pass", "s3cret-pw"] });
  const ok = await startServer(["start", ...serverArgs(server.url), "--nats-user", "school1", "--nats-password", "s3cret-pw"]);
  cleanup.push(() => ok.stop());
  await registers(ok.ports.http!);
  // The same credentials inside the URL work too (nats://user:pw@host).
  const inUrl = await startServer(["start", ...serverArgs(server.url.replace("nats://", "nats://school1:s3cret-pw@"))]);
  cleanup.push(() => inUrl.stop());
  await registers(inUrl.ports.http!);

  const bad = await runCli(["start", ...serverArgs(server.url), "--nats-user", "school1", "--nats-password", "wrong"]);
  assert.is(bad.code, 1);
  const line = errorLine(bad.stderr);
  assert.match(line, /cannot connect to NATS/);
  assert.match(line, /authori[sz]ation/i);
  assert.not.match(bad.stderr, /wrong/, "the password is never printed");
});

/** A CA, a server certificate for 127.0.0.1 and a client certificate, all made by openssl. */
function makeCertificates(): { ca: string; serverCert: string; serverKey: string; clientCert: string; clientKey: string } {
  const d = join(dir.path, "pki");
  execFileSync("mkdir", ["-p", d]);
  const p = (name: string) => join(d, name);
  const ssl = (...args: string[]) => execFileSync(opensslPath(), args, { stdio: ["ignore", "ignore", "pipe"] });
  ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", p("ca.key"), "-out", p("ca.pem"), "-days", "2", "-subj", "/CN=sugar test CA");
  writeFileSync(p("server.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n");
  writeFileSync(p("client.ext"), "extendedKeyUsage=clientAuth\n");
  for (const who of ["server", "client"]) {
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", p(`${who}.key`), "-out", p(`${who}.csr`), "-subj", `/CN=sugar ${who}`);
    ssl("x509", "-req", "-in", p(`${who}.csr`), "-CA", p("ca.pem"), "-CAkey", p("ca.key"), "-CAcreateserial", "-out", p(`${who}.pem`), "-days", "2", "-extfile", p(`${who}.ext`));
  }
  return { ca: p("ca.pem"), serverCert: p("server.pem"), serverKey: p("server.key"), clientCert: p("client.pem"), clientKey: p("client.key") };
}

withKeysAndCertificates("mutual TLS: with the CA and a client certificate it connects; without the certificate, or trusting no CA, a one-line error", async () => {
  const pki = makeCertificates();
  const server = await nats({
    config: `tls {\n  cert_file: "${pki.serverCert}"\n  key_file: "${pki.serverKey}"\n  ca_file: "${pki.ca}"\n  verify: true\n  timeout: 5\n}\n`,
  });
  const tlsArgs = ["--nats-tls-ca", pki.ca, "--nats-tls-cert", pki.clientCert, "--nats-tls-key", pki.clientKey];
  const ok = await startServer(["start", ...serverArgs(server.url), ...tlsArgs]);
  cleanup.push(() => ok.stop());
  await registers(ok.ports.http!);
  // The keyring as its own process, over the same TLS: a split deployment's shape.
  const keyring = await startServer(["run", "keyring", ...serverArgs(server.url), ...tlsArgs], { expect: [] });
  cleanup.push(() => keyring.stop());

  const noCert = await runCli(["start", ...serverArgs(server.url), "--nats-tls-ca", pki.ca]);
  assert.is(noCert.code, 1);
  assert.match(errorLine(noCert.stderr), /cannot connect to NATS/);

  const noCa = await runCli(["start", ...serverArgs(server.url), "--nats-tls-cert", pki.clientCert, "--nats-tls-key", pki.clientKey]);
  assert.is(noCa.code, 1);
  const noCaLine = errorLine(noCa.stderr);
  assert.match(noCaLine, /cannot connect to NATS/);
  assert.match(noCaLine, /certificate/, "says the server's certificate is what failed");
});

t.run();
