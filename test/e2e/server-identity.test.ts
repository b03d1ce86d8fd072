/**
 * The district vouches for its school servers, end to end, the way an admin
 * does it: `keyring init --ca`, `tls init`, `tls ssh-host-cert`, `tls
 * known-hosts`, all through the real `sugar-server` command. A real sshd
 * presents the host certificate; the real ssh and rsync, with nothing in
 * known_hosts but the district's `@cert-authority` line and
 * StrictHostKeyChecking=yes, back up through it, and refuse a second sshd
 * on the same name whose key nobody signed: the fake school server is caught.
 * On the TLS port (`start --https-port`), curl pinned to the district CA
 * registers, gets a client certificate and logs in with it alone; a fake
 * server with a certificate of its own fails curl's handshake.
 */
import { execFileSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { createServer as createTlsServer } from "node:https";
import { mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { clientDir } from "../../actors/backup/paths.js";
import { requires, testsNeeding, toolBin, TOOLS } from "../support/requires.js";
import { makeKey } from "../support/keys.js";
import { runCli, startServer, type ServerProcess } from "../support/server.js";
import { rsyncAs, SSHD_TOOLS, startSshd, type Sshd } from "../support/sshd.js";
import { tempDir } from "../support/tmp.js";
import { runTool } from "../support/tls-school.js";
import { waitFor } from "../support/wait.js";

const NAME = "school.schoolserver.lan";
const requirement = requires(...SSHD_TOOLS, TOOLS.rrsync, TOOLS.openssl, TOOLS.curl);

interface Ctx {
  tmp: ReturnType<typeof tempDir>;
  root: string;
  args: string[];
  knownHosts: string;
  server?: ServerProcess;
  sshd?: Sshd;
}
const t = suite<Ctx>("server identity");
const test = testsNeeding(t, requirement);

async function cli(ctx: Ctx, ...args: string[]): Promise<string> {
  const r = await runCli([...args, ...ctx.args]);
  assert.is(r.code, 0, `sugar-server ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

const openssl = (...args: string[]) => execFileSync(toolBin(TOOLS.openssl), args, { encoding: "utf8" });

t.before(async (ctx) => {
  if (!requirement.ok) return;
  ctx.tmp = tempDir("sugar-identity-");
  ctx.root = join(ctx.tmp.path, "root");
  ctx.args = ["--root", ctx.root, "--site", "school", "--backup-host", NAME, "--backup-max-load", "1000", "--backup-min-free", "0", "--rrsync-path", toolBin(TOOLS.rrsync)];
  ctx.knownHosts = join(ctx.tmp.path, "known_hosts");
});
t.after(async (ctx) => {
  if (!requirement.ok) return;
  await ctx.sshd?.stop();
  await ctx.server?.stop();
  ctx.tmp.remove();
});

test("server identity: keyring init --ca makes the district CA, its key 0600 and never replaced", async (ctx) => {
  const out = await cli(ctx, "keyring", "init", "--ca");
  const dir = join(ctx.root, "keyring");
  assert.is(statSync(join(dir, "ca.pem")).mode & 0o777, 0o600);
  const ca = new X509Certificate(readFileSync(join(dir, "ca.crt")));
  assert.ok(ca.ca, "ca.crt is a CA certificate");
  assert.ok(out.includes(ca.fingerprint256), out);
  const before = readFileSync(join(dir, "ca.pem"));
  await cli(ctx, "keyring", "init", "--ca");
  assert.ok(readFileSync(join(dir, "ca.pem")).equals(before), "a second init --ca keeps the CA");
});

test("server identity: tls init makes the school's key and a certificate the district CA signed", async (ctx) => {
  const out = await cli(ctx, "tls", "init");
  const tls = join(ctx.root, "tls");
  assert.is(statSync(join(tls, "server.key")).mode & 0o777, 0o600);
  assert.match(openssl("verify", "-CAfile", join(tls, "ca.crt"), join(tls, "server.crt")), /: OK/);
  const text = openssl("x509", "-in", join(tls, "server.crt"), "-noout", "-text");
  assert.match(text, /DNS:school\.schoolserver\.lan\n/);
  assert.match(text, /Subject: O ?= ?school, CN ?= ?school\.schoolserver\.lan/);
  assert.match(text, /CA:FALSE/);
  assert.match(text, /TLS Web Server Authentication/);
  assert.match(out, /school\.schoolserver\.lan/);
  // The CA in the school's ca.crt is the keyring's.
  assert.ok(readFileSync(join(tls, "ca.crt")).equals(readFileSync(join(ctx.root, "keyring", "ca.crt"))));
});

test("server identity: tls show prints subject, names, expiry and the CA fingerprint openssl computes", async (ctx) => {
  const out = await cli(ctx, "tls", "show");
  const fp = openssl("x509", "-in", join(ctx.root, "tls", "ca.crt"), "-noout", "-fingerprint", "-sha256").trim().split("=")[1]!;
  assert.ok(out.includes(fp), out);
  assert.match(out, /names: school\.schoolserver\.lan\n/);
  assert.match(out, /expires: \d{4}-\d\d-\d\dT.*\((36[45]|366) days left\)/);
});

test("server identity: tls renew signs the same key anew for the same names", async (ctx) => {
  const tls = join(ctx.root, "tls");
  const key = readFileSync(join(tls, "server.key"));
  const old = new X509Certificate(readFileSync(join(tls, "server.crt")));
  await cli(ctx, "tls", "renew");
  const fresh = new X509Certificate(readFileSync(join(tls, "server.crt")));
  assert.is.not(fresh.serialNumber, old.serialNumber);
  assert.ok(readFileSync(join(tls, "server.key")).equals(key), "the key stays");
  assert.is(fresh.subjectAltName, old.subjectAltName);
});

test("server identity: tls init --name outside ca-server-names is refused and changes nothing", async (ctx) => {
  const tls = join(ctx.root, "tls");
  const before = readFileSync(join(tls, "server.crt"));
  const r = await runCli(["tls", "init", "--name", "school2.schoolserver.lan", ...ctx.args]);
  assert.is.not(r.code, 0);
  assert.match(r.stderr, /school2\.schoolserver\.lan/);
  assert.ok(readFileSync(join(tls, "server.crt")).equals(before));
});

test("server identity: tls renew against a keyring with another CA is refused and changes nothing", async (ctx) => {
  const tls = join(ctx.root, "tls");
  const before = { cert: readFileSync(join(tls, "server.crt")), ca: readFileSync(join(tls, "ca.crt")) };
  const other = ["--keyring-dir", join(ctx.tmp.path, "other-keyring")];
  await cli(ctx, "keyring", "init", "--ca", ...other);
  const r = await runCli(["tls", "renew", ...other, ...ctx.args]);
  assert.is(r.code, 1, r.stderr);
  assert.match(r.stderr, /another CA .* than this school's/);
  assert.ok(readFileSync(join(tls, "server.crt")).equals(before.cert));
  assert.ok(readFileSync(join(tls, "ca.crt")).equals(before.ca));
});

test("server identity: tls ssh-host-cert refuses a private key before anything leaves the host", async (ctx) => {
  const key = makeKey(ctx.tmp.path);
  const r = await runCli(["tls", "ssh-host-cert", key.privatePath, ...ctx.args]);
  assert.is(r.code, 1);
  assert.match(r.stderr, /is a private key: give the host key's \.pub file/);
  const garbage = join(ctx.tmp.path, "garbage.pub");
  writeFileSync(garbage, "not a key at all\n");
  const g = await runCli(["tls", "ssh-host-cert", garbage, ...ctx.args]);
  assert.is(g.code, 1);
  assert.match(g.stderr, /is not an OpenSSH public key line/);
});

test("server identity: tls known-hosts prints the @cert-authority line for the district's names", async (ctx) => {
  const line = (await cli(ctx, "tls", "known-hosts")).trim();
  assert.match(line, /^@cert-authority \*\.schoolserver\.lan ecdsa-sha2-nistp256 AAAA[A-Za-z0-9+/=]+$/);
  writeFileSync(ctx.knownHosts, `${line}\n`);
});

test("server identity: a backup goes through the sshd the district certified, and a fake sshd on the same name is refused", async (ctx) => {
  ctx.server = await startServer(["start", ...ctx.args, "--host", "127.0.0.1", "--httpd-port", "0", "--xmlrpc-port", "0", "--activation-port", "0", "--https-port", "0"], { expect: ["http", "https"] });
  const keysFile = join(ctx.root, ".ssh", "authorized_keys");
  let certText = "";
  ctx.sshd = await startSshd({
    authorizedKeysFiles: [keysFile],
    hostCertificate: async (pub) => {
      const out = await cli(ctx, "tls", "ssh-host-cert", pub);
      const cert = pub.replace(/\.pub$/, "-cert.pub");
      assert.ok(out.includes(cert), out);
      certText = execFileSync(toolBin(TOOLS.sshKeygen), ["-L", "-f", cert], { encoding: "utf8" });
      return cert;
    },
  });
  assert.match(certText, /Type: ecdsa-sha2-nistp256-cert-v01@openssh.com host certificate|host certificate/);
  assert.match(certText, /Principals:\s*\n\s+school\.schoolserver\.lan\n\s+Critical/);

  // A child registers with the school over REST, then backs up as Sugar does.
  const child = makeKey(ctx.tmp.path);
  const reg = await fetch(`http://127.0.0.1:${ctx.server.ports.http}/client/register`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ nickname: "Ana", pubkey: child.line }),
  });
  assert.is(reg.status, 200, await reg.clone().text());
  await waitFor("the child's key line", () => readFileSync(keysFile, "utf8").includes(child.uid));
  const journal = join(ctx.tmp.path, "journal");
  mkdirSync(journal);
  writeFileSync(join(journal, "diario.txt"), "hoy aprendí TLS\n");
  const check = { knownHosts: ctx.knownHosts, hostName: NAME };
  const ok = await rsyncAs(ctx.sshd, child.privatePath, ["-rlt", `${journal}/`, ctx.sshd.remote("datastore-current")], 60000, check);
  assert.is(ok.code, 0, ok.stderr);
  assert.is(readFileSync(join(clientDir(ctx.root, child.uid), "datastore-current", "diario.txt"), "utf8"), "hoy aprendí TLS\n");

  // The certificate names this school only: the same sshd under school2's name is refused.
  const otherName = await rsyncAs(ctx.sshd, child.privatePath, ["-rlt", `${journal}/`, ctx.sshd.remote("datastore-current")], 60000, { ...check, hostName: "school2.schoolserver.lan" });
  assert.is.not(otherName.code, 0);
  assert.match(otherName.stderr, /Host key verification failed|certificate|not in permitted principals/i);

  // A fake server on the same name, same keys file, with a host key nobody signed.
  const fake = await startSshd({ authorizedKeysFiles: [keysFile] });
  try {
    const r = await rsyncAs(fake, child.privatePath, ["-rlt", `${journal}/`, fake.remote("datastore-current")], 60000, check);
    assert.is.not(r.code, 0);
    assert.match(r.stderr, /Host key verification failed/);
  } finally {
    await fake.stop();
  }
});

test("server identity: a client that pinned the district CA registers and logs in with a client certificate over TLS; a fake school server fails the handshake", async (ctx) => {
  assert.ok(ctx.server, "the server of the test before");
  const port = ctx.server!.ports.https!;
  const ca = join(ctx.root, "tls", "ca.crt");
  const url = (path: string) => `https://${NAME}:${port}${path}`;
  // The client knows the server by its name; the test's resolver is curl's --resolve.
  const curl = (...args: string[]) => runTool(toolBin(TOOLS.curl), ["-sS", "--max-time", "15", "--resolve", `${NAME}:${port}:127.0.0.1`, "--cacert", ca, ...args]);
  const json = (text: string) => JSON.parse(text) as Record<string, unknown>;

  const key = makeKey(ctx.tmp.path);
  const reg = await curl("-H", "Content-Type: application/json", "-d", JSON.stringify({ nickname: "Beto", pubkey: key.line }), url("/client/register"));
  assert.is(reg.code, 0, reg.stderr);
  const registered = json(reg.stdout);
  assert.is(registered.success, "OK", reg.stdout);
  const fingerprint = openssl("x509", "-in", ca, "-noout", "-fingerprint", "-sha256").trim().split("=")[1];
  assert.is(registered.server_ca, fingerprint, "the reply names the CA the client pinned");

  const login = json((await curl("-H", "Content-Type: application/json", "-d", JSON.stringify({ credential: registered.credential }), url("/client/login"))).stdout);
  const headers = Object.entries(login.headers as Record<string, string>).flatMap(([k, v]) => ["-H", `${k}: ${v}`]);
  const clientKey = join(ctx.tmp.path, "client.key");
  const clientCsr = join(ctx.tmp.path, "client.csr");
  openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", clientKey, "-subj", "/CN=whatever", "-out", clientCsr);
  const issued = json((await curl(...headers, "-H", "Content-Type: application/json", "-d", JSON.stringify({ csr: readFileSync(clientCsr, "utf8") }), url("/client/certificate"))).stdout);
  assert.is(issued.success, "OK", JSON.stringify(issued));
  const clientCert = join(ctx.tmp.path, "client.crt");
  writeFileSync(clientCert, String(issued.certificate));
  assert.match(openssl("verify", "-CAfile", ca, "-purpose", "sslclient", clientCert), /: OK/);
  assert.match(openssl("x509", "-in", clientCert, "-noout", "-subject"), new RegExp(`O ?= ?school, CN ?= ?${registered.uid}`));

  // The certificate alone is the login: /auth/verify names its uid at level token.
  const verify = await curl("-i", "--cert", clientCert, "--key", clientKey, url("/auth/verify"));
  assert.match(verify.stdout, /^HTTP\/1\.1 200/);
  assert.match(verify.stdout, new RegExp(`X-Sugar-Uid: ${registered.uid}`, "i"));
  assert.match(verify.stdout, /X-Sugar-Auth-Level: token/i);

  // A fake school server on the same name, with a certificate the district never signed.
  const fakeDir = join(ctx.tmp.path, "fake");
  mkdirSync(fakeDir);
  openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", join(fakeDir, "key.pem"), "-out", join(fakeDir, "cert.pem"), "-days", "30", "-subj", `/CN=${NAME}`, "-addext", `subjectAltName=DNS:${NAME}`);
  const fake = createTlsServer({ key: readFileSync(join(fakeDir, "key.pem")), cert: readFileSync(join(fakeDir, "cert.pem")) }, (_req, res) => res.end('{"success":"OK"}'));
  await new Promise<void>((resolve) => fake.listen(0, "127.0.0.1", resolve));
  try {
    const fakePort = (fake.address() as { port: number }).port;
    const r = await runTool(toolBin(TOOLS.curl), ["-sS", "--max-time", "15", "--resolve", `${NAME}:${fakePort}:127.0.0.1`, "--cacert", ca, "-d", JSON.stringify({ nickname: "Beto", pubkey: key.line }), `https://${NAME}:${fakePort}/client/register`]);
    assert.is(r.code, 60, `curl refuses the peer's certificate: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, /certificate/i);
  } finally {
    await new Promise<void>((resolve) => fake.close(() => resolve()));
  }
});

t.run();
