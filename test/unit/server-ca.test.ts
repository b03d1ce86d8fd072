/**
 * The district CA fingerprint registration replies carry: read at start,
 * then noticed (one stat in the background, at most every few seconds) when
 * `tls init` writes or replaces ca.crt — never read per request.
 */
import { X509Certificate } from "node:crypto";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { serverCa } from "../../adapters/kit/server-ca.js";
import { configWith } from "../../src/config.js";
import { silentLogger } from "../../src/log.js";
import { requires, testsNeeding, TOOLS } from "../support/requires.js";
import { makeTlsFixture } from "../support/tls-fixture.js";
import { tempDir } from "../support/tmp.js";
import { waitFor } from "../support/wait.js";

const withOpenssl = testsNeeding(test, requires(TOOLS.openssl));

withOpenssl("server-ca: empty without ca.crt; a ca.crt written later shows after the recheck interval, a removed one goes", async () => {
  const d = tempDir();
  try {
    const config = configWith({ root: join(d.path, "root") });
    let clock = 1_000_000;
    const ca = serverCa(config, silentLogger, () => clock);
    assert.is(ca(), "");
    const made = makeTlsFixture(join(d.path, "ca"), join(d.path, "elsewhere"));
    mkdirSync(join(config.root, "tls"), { recursive: true });
    writeFileSync(join(config.root, "tls", "ca.crt"), readFileSync(made.caCert));
    assert.is(ca(), "", "within the interval: the cached answer");
    clock += 5000;
    const want = new X509Certificate(readFileSync(made.caCert)).fingerprint256;
    await waitFor("the new fingerprint", () => {
      clock += 5000;
      return ca() === want;
    });
    rmSync(join(config.root, "tls", "ca.crt"));
    await waitFor("no fingerprint", () => {
      clock += 5000;
      return ca() === "";
    });
  } finally {
    d.remove();
  }
});

test("server-ca: a ca.crt that is no certificate gives no fingerprint (and a warning), not a failed start", async () => {
  const d = tempDir();
  try {
    const config = configWith({ root: d.path });
    mkdirSync(join(d.path, "tls"));
    writeFileSync(join(d.path, "tls", "ca.crt"), "not a certificate\n");
    const warned: string[] = [];
    const log = { ...silentLogger, warn: (m: string) => void warned.push(m) };
    assert.is(serverCa(config, log)(), "");
    assert.is(warned.length, 1);
    assert.not.match(warned[0]!, new RegExp(d.path), "no path in the log line");
  } finally {
    d.remove();
  }
});

test.run();
