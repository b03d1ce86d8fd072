/** `sugar-server keyring init --ca` and `keyring show` as an operator runs them: the CA files, the fingerprint openssl agrees with. */
import { chmodSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { opensslText } from "../support/pki.js";
import { requires, testsNeeding, TOOLS } from "../support/requires.js";
import { runCli } from "../support/server.js";
import { tempDir } from "../support/tmp.js";

const t = suite("keyring-ca-cli");
const test = testsNeeding(t, requires(TOOLS.openssl));
const dirs: { remove(): void }[] = [];
t.after(() => dirs.forEach((d) => d.remove()));

function root(): string {
  const d = tempDir();
  dirs.push(d);
  return join(d.path, "root");
}

test("keyring-ca-cli: init --ca makes ca.pem (0600) and ca.crt; init and show print the fingerprint openssl computes; again nothing is replaced", async () => {
  const r = root();
  const init = await runCli(["keyring", "init", "--ca", "--root", r]);
  assert.is(init.code, 0, init.stderr);
  assert.is(statSync(join(r, "keyring", "ca.pem")).mode & 0o777, 0o600);
  const fingerprint = /sha256 Fingerprint=([0-9A-F:]+)/i.exec(await opensslText(readFileSync(join(r, "keyring", "ca.crt"), "utf8")))![1]!;
  assert.match(init.stdout, new RegExp(`^district CA: SHA-256 ${fingerprint}$`, "m"));
  const show = await runCli(["keyring", "show", "--root", r]);
  assert.match(show.stdout, new RegExp(`^district CA: SHA-256 ${fingerprint}$`, "m"));
  assert.not.match(show.stdout + init.stdout, /PRIVATE KEY/);
  const crt = readFileSync(join(r, "keyring", "ca.crt"), "utf8");
  const again = await runCli(["keyring", "init", "--ca", "--root", r]);
  assert.match(again.stdout, /already exist/);
  assert.is(readFileSync(join(r, "keyring", "ca.crt"), "utf8"), crt);
});

test("keyring-ca-cli: without --ca no CA is made and show prints none", async () => {
  const r = root();
  assert.is((await runCli(["keyring", "init", "--root", r])).code, 0);
  assert.not.match((await runCli(["keyring", "show", "--root", r])).stdout, /district CA/);
});

test("keyring-ca-cli: a ca.pem others can read stops the keyring at start", async () => {
  const r = root();
  assert.is((await runCli(["keyring", "init", "--ca", "--root", r])).code, 0);
  chmodSync(join(r, "keyring", "ca.pem"), 0o644);
  const run = await runCli(["run", "keyring", "--root", r]);
  assert.is(run.code, 1);
  assert.match(run.stderr, /ca\.pem is readable by others \(mode 644\)/);
});

t.run();
