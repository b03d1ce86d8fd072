/**
 * How the TLS port starts and what `tls-client-auth` does: `sugar-server
 * start` with https-port set but no `tls init` refuses to start and says
 * so; with the files it serves and names the port in its ready line; under
 * `required` a client without a certificate of the district CA does not
 * finish the handshake; under `off` a certificate is not even asked for.
 */
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { connect as tlsConnect } from "node:tls";
import type { HttpListener } from "../../adapters/kit/listener.js";
import { loadTls } from "../../adapters/kit/tls.js";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { allOf, requires, testsNeeding, toolBin, TOOLS } from "../support/requires.js";
import { runCli, startServer } from "../support/server.js";
import { makeTlsFixture } from "../support/tls-fixture.js";
import { runTool, startTlsSchool } from "../support/tls-school.js";
import { tempDir } from "../support/tmp.js";
import { waitFor } from "../support/wait.js";

const t = suite("tls-modes");
const test = testsNeeding(t, requires(TOOLS.openssl));
const withCurl = testsNeeding(t, allOf(requires(TOOLS.openssl), requires(TOOLS.curl)));
const PORTS = ["--host", "127.0.0.1", "--httpd-port", "0", "--xmlrpc-port", "0", "--activation-port", "0"];

test("tls-modes: a renewed certificate is served to new connections without a restart (reloadTls)", async () => {
  const s = await startTlsSchool();
  try {
    const serialNow = () =>
      new Promise<string>((resolve, reject) => {
        const sock = tlsConnect({ host: "127.0.0.1", port: s.ports.https, rejectUnauthorized: false }, () => {
          resolve(sock.getPeerCertificate().serialNumber);
          sock.end();
        });
        sock.on("error", reject);
      });
    const before = await serialNow();
    // A new certificate (here from a new fixture CA) in <root>/tls/, as `tls renew` writes it.
    makeTlsFixture(join(s.dir.path, "ca2"), s.root);
    const https = s.server.components.find((c) => c.name === "https") as HttpListener;
    https.reloadTls(loadTls(s.config));
    const after = await serialNow();
    assert.is.not(after, before);
    assert.is(after, new X509Certificate(readFileSync(join(s.root, "tls", "server.crt"))).serialNumber);
    assert.match(s.log(), /serving the renewed TLS certificate/);
  } finally {
    await s.stop();
  }
});

t("tls-modes: start with https-port set and no `tls init` refuses to start, saying to run it", async () => {
  const d = tempDir();
  try {
    const r = await runCli(["start", "--root", join(d.path, "root"), ...PORTS, "--https-port", "0"]);
    assert.is(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /run `sugar-server tls init` first/);
    assert.not.match(r.stderr, new RegExp(d.path), "no file path in the message");
  } finally {
    d.remove();
  }
});

test("tls-modes: start with the TLS files serves https-port and names it in the ready line; run https alone without https-port says why it does nothing", async () => {
  const d = tempDir();
  const root = join(d.path, "root");
  makeTlsFixture(join(d.path, "ca"), root);
  const server = await startServer(["start", "--root", root, ...PORTS, "--https-port", "0"], { expect: ["http", "xmlrpc", "https"] });
  try {
    await waitFor("the ready line", () => /sugar-server: ready: /.test(server.output()));
    assert.match(server.output(), new RegExp(`sugar-server: ready: .*https 127\\.0\\.0\\.1:${server.ports.https}`));
    const r = await runTool(toolBin(TOOLS.openssl), ["s_client", "-connect", `127.0.0.1:${server.ports.https}`, "-CAfile", join(root, "tls", "ca.crt"), "-ign_eof"], "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert.match(r.stdout, /HTTP\/1\.1 200 OK/);
  } finally {
    await server.stop();
  }
  const alone = await runCli(["run", "https", "--root", root, ...PORTS]);
  assert.is(alone.code, 1);
  assert.match(alone.stderr, /https not started: https-port is empty/);
  d.remove();
});

withCurl("tls-modes: tls-client-auth = required: without a client certificate, or with another CA's, the handshake fails; with the district's it serves", async () => {
  const s = await startTlsSchool({ "tls-client-auth": "required" });
  try {
    const d = await s.registerDevice("02:00:00:03:00:01");
    const url = `https://localhost:${s.ports.https}/healthz`;
    const curl = (...a: string[]) => runTool(toolBin(TOOLS.curl), ["-sS", "--max-time", "15", "--cacert", s.tls.caCert, ...a, url]);
    const none = await curl();
    assert.is.not(none.code, 0, "no answer without a certificate");
    assert.match(none.stderr, /alert|handshake|certificate required/i);
    const foreign = s.tls.client(d.uid, "other");
    assert.is.not((await curl("--cert", foreign.cert, "--key", foreign.key)).code, 0, "no answer with another CA's certificate");
    const mine = s.tls.client(d.uid);
    const ok = await curl("--cert", mine.cert, "--key", mine.key);
    assert.is(ok.code, 0, ok.stderr);
    assert.is(JSON.parse(ok.stdout).status, "ok");
  } finally {
    await s.stop();
  }
});

withCurl("tls-modes: tls-client-auth = off: a client certificate is not asked for, so it logs nobody in (client-auth = token still wants a login)", async () => {
  const s = await startTlsSchool({ "tls-client-auth": "off", "client-auth": "token" });
  try {
    const d = await s.registerDevice("02:00:00:03:00:02");
    const mine = s.tls.client(d.uid);
    const r = await runTool(toolBin(TOOLS.curl), ["-sS", "--max-time", "15", "--cacert", s.tls.caCert, "--cert", mine.cert, "--key", mine.key, `https://localhost:${s.ports.https}/client/status?uid=${d.uid}`]);
    assert.is(JSON.parse(r.stdout).code, "auth_required");
  } finally {
    await s.stop();
  }
});

t.run();
