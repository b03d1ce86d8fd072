/** The registry's index (`.index`): read at start when current; the files are read, and a new index written, when it is missing, corrupt or stale. */
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { RegistryStore, type UserRecord } from "../../actors/registry/store.js";
import type { Logger } from "../../src/log.js";
import { silentLogger } from "../../src/log.js";
import * as validate from "../../src/validate.js";
import { tempDir } from "../support/tmp.js";

interface Ctx {
  dir: { path: string; remove(): void };
}
const t = suite<Ctx>("registry-index");
t.before.each((c) => {
  c.dir = tempDir("sugar-registry-index-");
});
t.after.each((c) => c.dir.remove());

const user = (i: number): UserRecord => {
  const uid = validate.uid(i.toString(16).padStart(40, "0"));
  const time = new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString();
  return { uid, nickname: `kid ${i}`, machine_sn: "", machine_uuid: "", pubkey: `ssh-ed25519 AAAA${i}`, admin: false, kind: "", device_id: "", created: time, updated: time };
};

/** A logger that keeps its warnings. */
function warnings(): { log: Logger; seen: string[] } {
  const seen: string[] = [];
  const log: Logger = { ...silentLogger, warn: (m: string) => void seen.push(m), child: () => log };
  return { log, seen };
}

async function open(dir: string, log: Logger = silentLogger): Promise<RegistryStore> {
  const s = new RegistryStore(dir, log);
  await s.load();
  return s;
}

const uids = (s: RegistryStore) => s.listUsers(0, 0).users.map((u) => u.uid);

/** Ten users registered through a store, which is then closed (its last checkpoint wrote the files and the index). */
async function tenUsers(dir: string): Promise<string[]> {
  const s = await open(dir);
  for (let i = 1; i <= 10; i++) await s.putUser(user(i));
  const list = uids(s);
  await s.close();
  return list;
}

t("registry-index: a start after a clean stop reads the index, not the files", async (c) => {
  const want = await tenUsers(c.dir.path);
  const index = join(c.dir.path, ".index");
  assert.ok(existsSync(index));
  const w = warnings();
  const s = await open(c.dir.path, w.log);
  assert.equal(uids(s), want);
  assert.equal(w.seen, []);
  await s.close();
});

t("registry-index: a missing index: the files are read, the same users, and a new index is written", async (c) => {
  const want = await tenUsers(c.dir.path);
  const index = join(c.dir.path, ".index");
  rmSync(index);
  const s = await open(c.dir.path);
  assert.equal(uids(s), want);
  assert.equal(s.user(validate.uid(user(3).uid))?.nickname, "kid 3");
  await s.close();
  assert.ok(existsSync(index), "written again");
  const again = await open(c.dir.path);
  assert.equal(uids(again), want);
  await again.close();
});

t("registry-index: a corrupt index (a line damaged, the file cut short) is not trusted: the files are read, the same users", async (c) => {
  const want = await tenUsers(c.dir.path);
  const index = join(c.dir.path, ".index");
  const text = readFileSync(index, "utf8");
  for (const damaged of [text.replace('"kid 4"', '"kid 4'), text.replace('"kid 4"', '"kid X"').replace(/"uid":"0+4"/, '"uid":"nothex"'), text.slice(0, text.length - 30)]) {
    writeFileSync(index, damaged);
    const w = warnings();
    const s = await open(c.dir.path, w.log);
    assert.equal(uids(s), want);
    assert.equal(s.user(validate.uid(user(4).uid))?.nickname, "kid 4");
    assert.ok(w.seen.some((m) => /reading every registry file/.test(m)), w.seen.join("\n"));
    await s.close();
  }
});

t("registry-index: a stale index (a user file added behind the server's back) is not trusted: the files are read, the new user with them", async (c) => {
  const want = await tenUsers(c.dir.path);
  const extra = user(99);
  writeFileSync(join(c.dir.path, "users", extra.uid), JSON.stringify(extra, null, 2) + "\n");
  const w = warnings();
  const s = await open(c.dir.path, w.log);
  assert.equal(uids(s), [...want, extra.uid].sort());
  assert.ok(w.seen.some((m) => /reading every registry file: .*a directory changed/.test(m)), w.seen.join("\n"));
  await s.close();
  // The index written from the files is current again.
  const w2 = warnings();
  const again = await open(c.dir.path, w2.log);
  assert.equal(uids(again), [...want, extra.uid].sort());
  assert.equal(w2.seen, []);
  await again.close();
});

t.run();
