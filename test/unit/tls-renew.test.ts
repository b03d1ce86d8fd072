/**
 * The school's TLS certificate at start (src/cli/tls.ts renewIfDue): renewed
 * for the same key and names when fewer than 30 days are left, left alone
 * otherwise, and kept (with a warning) when the keyring cannot be reached.
 * The real keyring actor signs, on a MemoryBus; "later" is a clock handed in.
 */
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { startKeyring } from "../../actors/keyring/index.js";
import { MemoryBus } from "../../src/bus/memory.js";
import { keyringCaClient, keyringClient } from "../../src/codec.js";
import type { Component } from "../../src/component.js";
import { configWith, type Config } from "../../src/config.js";
import { silentLogger } from "../../src/log.js";
import { RENEW_DAYS, issueServerCertificate, renewIfDue } from "../../src/cli/tls.js";
import { tlsPaths } from "../../src/tls.js";
import { captureLogger } from "../support/log.js";
import { tempDir } from "../support/tmp.js";

interface Ctx {
  dir: ReturnType<typeof tempDir>;
  config: Config;
  bus: MemoryBus;
  keyring: Component;
}
const t = suite<Ctx>("tls-renew");
const DAY = 24 * 3600 * 1000;
const cert = (c: Ctx) => new X509Certificate(readFileSync(tlsPaths(c.config).cert));

t.before.each(async (c) => {
  c.dir = tempDir("sugar-tls-renew-");
  c.config = configWith({ root: c.dir.path, site: "school" });
  c.bus = new MemoryBus({ timeoutMs: 5000 });
  c.keyring = await startKeyring({ bus: c.bus, config: c.config, log: silentLogger });
  await keyringClient(c.bus).call("init", { ca: true });
  await issueServerCertificate(c.config, keyringCaClient(c.bus, "school"), [], true);
});
t.after.each(async (c) => {
  await c.keyring.stop();
  await c.bus.close();
  c.dir.remove();
});

t("tls-renew: a certificate with more than 30 days left is left as it is", async (c) => {
  const before = readFileSync(tlsPaths(c.config).cert);
  await renewIfDue(c.config, keyringCaClient(c.bus, "school"), silentLogger);
  assert.ok(readFileSync(tlsPaths(c.config).cert).equals(before));
});

t("tls-renew: fewer than 30 days left: the same key and names, signed anew", async (c) => {
  const old = cert(c);
  const key = readFileSync(tlsPaths(c.config).key);
  const later = new Date(old.validTo).getTime() - (RENEW_DAYS - 1) * DAY;
  const { log, text } = captureLogger();
  await renewIfDue(c.config, keyringCaClient(c.bus, "school"), log, later);
  const fresh = cert(c);
  assert.is.not(fresh.serialNumber, old.serialNumber);
  assert.is(fresh.subjectAltName, old.subjectAltName);
  assert.ok(readFileSync(tlsPaths(c.config).key).equals(key));
  assert.match(text(), /INFO .*renewed the TLS certificate/);
});

t("tls-renew: the keyring unreachable: the old certificate stays, and the log says so", async (c) => {
  const before = readFileSync(tlsPaths(c.config).cert);
  await c.keyring.stop();
  const later = new Date(cert(c).validTo).getTime() - 10 * DAY;
  const { log, text } = captureLogger();
  await renewIfDue(c.config, keyringCaClient(c.bus, "school", { timeoutMs: 200 }), log, later);
  assert.ok(readFileSync(tlsPaths(c.config).cert).equals(before));
  assert.match(text(), /WARN .*could not renew the TLS certificate \(10 days left\)/, text());
});

t.run();
