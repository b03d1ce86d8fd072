/**
 * The district CA on disk (actors/keyring/ca/store.ts): made once, never
 * replaced, even by a second process (another keyring, a CLI run) whose
 * store was loaded before the first made it, or that makes one at the same time.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { CaStore } from "../../actors/keyring/ca/store.js";
import { tempDir } from "../support/tmp.js";

test("keyring-ca-store: a store loaded before another process made the CA keeps that CA instead of replacing it", async () => {
  const dir = tempDir("sugar-ca-store-");
  try {
    const early = new CaStore(dir.path);
    await early.load();
    const other = new CaStore(dir.path);
    assert.is(await other.init("first CA"), true);
    const key = readFileSync(join(dir.path, "ca.pem"));
    assert.is(await early.init("second CA"), false);
    assert.ok(readFileSync(join(dir.path, "ca.pem")).equals(key), "ca.pem kept");
    assert.is(early.ca?.fingerprint, other.ca?.fingerprint);
  } finally {
    dir.remove();
  }
});

test("keyring-ca-store: two inits at once make one CA; both stores hold it", async () => {
  const dir = tempDir("sugar-ca-store-");
  try {
    const a = new CaStore(dir.path);
    const b = new CaStore(dir.path);
    await Promise.all([a.load(), b.load()]);
    const created = await Promise.all([a.init("a"), b.init("b")]);
    assert.equal(created.filter(Boolean).length, 1, `created: ${created}`);
    const check = new CaStore(dir.path);
    await check.load();
    assert.is(a.ca?.fingerprint, check.ca?.fingerprint);
    assert.is(b.ca?.fingerprint, check.ca?.fingerprint);
  } finally {
    dir.remove();
  }
});

test.run();
