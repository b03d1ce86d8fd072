/**
 * Roaming on the school side (option district): two schools' registries, a
 * and b, on one MemoryBus with a district test double
 * (test/support/district-double.ts). a feeds its users to the district; b
 * answers for a's users from the district's lookup, its roaming cache and
 * the directory events.
 */
import { createHash, generateKeyPairSync } from "node:crypto";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { sugar } from "../../schemas/gen/messages.js";
import { startRegistry } from "../../actors/registry/index.js";
import { fullFeedParts, FEED_PART_BYTES } from "../../actors/registry/directory-feed.js";
import { MemoryBus } from "../../src/bus/memory.js";
import { subjects } from "../../src/bus/subjects.js";
import { encodeReply, registryClient, type RegistryClient } from "../../src/codec.js";
import type { Component } from "../../src/component.js";
import { backupUrl, configWith, type Config } from "../../src/config.js";
import { directoryDigest } from "../../src/district.js";
import { silentLogger } from "../../src/log.js";
import { registryOnDisk } from "../support/registry-files.js";
import { DistrictDouble } from "../support/district-directory-double.js";
import { tempDir } from "../support/tmp.js";
import { waitFor } from "../support/wait.js";

import dpb = sugar.district;

interface School {
  site: string;
  dir: ReturnType<typeof tempDir>;
  config: Config;
  registry: Component;
  client: RegistryClient;
}
interface Ctx {
  bus: MemoryBus;
  district: DistrictDouble;
  a: School;
  b: School;
  /** Credentials the stub auth actors issued, by site. */
  issued: string[];
}

/** A real ed25519 key, made in-process: its canonical line and Sugar uid. */
function edKey(): { line: string; uid: string } {
  const jwk = generateKeyPairSync("ed25519").publicKey.export({ format: "jwk" });
  const str = (b: Buffer) => Buffer.concat([Buffer.from([0, 0, 0, b.length]), b]);
  const body = Buffer.concat([str(Buffer.from("ssh-ed25519")), str(Buffer.from(jwk.x!, "base64url"))]).toString("base64");
  return { line: `ssh-ed25519 ${body}`, uid: createHash("sha1").update(body).digest("hex") };
}

async function school(c: Ctx, site: string, overrides: Record<string, string | number | boolean> = {}, dir = tempDir(`sugar-roam-${site}-`)): Promise<School> {
  const config = configWith({ root: dir.path, site, district: true, "district-sync-seconds": 1, "jabber-url": `${site}.example`, "backup-user": "sugar", "backup-host": `xs-${site}.example`, ...overrides });
  const registry = await startRegistry({ bus: c.bus, config, log: silentLogger });
  return { site, dir, config, registry, client: registryClient(c.bus, site, { timeoutMs: 3000 }) };
}

const t = suite<Ctx>("registry-roaming");

t.before.each(async (c) => {
  c.bus = new MemoryBus({ timeoutMs: 3000 });
  c.issued = [];
  // Auth actors that issue credentials, counted (a roaming registration gets none).
  for (const site of ["a", "b"]) {
    c.bus.serve(subjects.actorAll(site, "auth"), async (data) => {
      const req = sugar.auth.Request.decode(data);
      c.issued.push(`${site}:${req.issue?.uid}`);
      return encodeReply(sugar.auth.Reply.encode({ issue: { credential: `cred-${site}` } }).finish());
    });
  }
  c.district = new DistrictDouble(c.bus);
  c.a = await school(c, "a");
  c.b = await school(c, "b");
});
t.after.each(async (c) => {
  for (const s of [c.a, c.b]) {
    await s.registry.stop();
    s.dir.remove();
  }
  await c.bus.close();
});

const roamingFile = (s: School) => join(s.config.root, "home", "registry", "roaming.json");
const roamers = (s: School): Array<Record<string, string>> => (existsSync(roamingFile(s)) ? JSON.parse(readFileSync(roamingFile(s), "utf8")).roamers : []);
const userFiles = async (s: School) => (await registryOnDisk(s.config.root), readdirSync(join(s.config.root, "home", "registry", "users")));

/** A user registered at a, and fed to the district. */
async function atHomeAtA(c: Ctx, nickname = "Ana"): Promise<{ line: string; uid: string }> {
  const key = edKey();
  await c.a.client.call("register", { nickname, pubkey: key.line, machineSn: "SHF706002A7" });
  await waitFor("a's user in the district", () => c.district.entries.get(key.uid));
  return key;
}

/** An entry as a would feed it, for the double's lookup answers. */
const entryAtA = (c: Ctx, key: { line: string; uid: string }, extra: Partial<dpb.Entry.$Properties> = {}): dpb.Entry.$Properties => ({
  uid: key.uid, site: "a", nickname: "Ana", pubkey: key.line, backupUrl: backupUrl(c.a.config), machineSn: "", updated: new Date().toISOString(), ...extra,
});

t("registry-roaming: a registration is fed to the district with the school's backup URL, a removal takes it out", async (c) => {
  const key = await atHomeAtA(c);
  const e = c.district.entries.get(key.uid)!;
  assert.is(e.site, "a");
  assert.is(e.pubkey, key.line);
  assert.is(e.nickname, "Ana");
  assert.is(e.machineSn, "SHF706002A7");
  assert.is(e.backupUrl, "sugar@xs-a.example:datastore-current");
  await c.a.client.call("remove", { uid: key.uid });
  await waitFor("the removal in the district", () => !c.district.entries.has(key.uid));
  assert.ok(c.district.feeds.some((f) => f.site === "a" && f.req.entries.some((x) => x.uid === key.uid && x.removed)));
});

t("registry-roaming: the digest sync finds the district out of step and feeds every user in full", async (c) => {
  await c.district.stop();
  const keys = [edKey(), edKey()];
  for (const k of keys) await c.a.client.call("register", { nickname: "Ana", pubkey: k.line });
  // What the district holds for a that a no longer has goes at the full feed.
  const stale = edKey();
  c.district.entries.set(stale.uid, entryAtA(c, stale));
  c.district.start();
  await waitFor("a's full feed", () => c.district.feeds.some((f) => f.site === "a" && f.req.full), 5000);
  await waitFor("a's users in the district", () => keys.every((k) => c.district.entries.has(k.uid)));
  assert.not.ok(c.district.entries.has(stale.uid), "the full feed drops what a does not have");
  assert.is(c.district.digest("a"), directoryDigest(keys.map((k) => ({ uid: k.uid, pubkey: k.line, backupUrl: backupUrl(c.a.config) }))));
  // In step now: the next syncs send only the digest.
  const fulls = c.district.feeds.filter((f) => f.req.full).length;
  const seen = c.district.feeds.length;
  await waitFor("a digest-only sync", () => c.district.feeds.slice(seen).find((f) => f.site === "a" && f.req.digest && !f.req.full), 5000);
  assert.is(c.district.feeds.filter((f) => f.req.full).length, fulls, "no full feed while in step");
});

t("registry-roaming: a full feed too big for one message goes in parts that cover every uid, each under the limit", () => {
  const body = "A".repeat(720); // about an RSA-4096 key's length
  const entries = Array.from({ length: 2000 }, (_, i) => ({
    uid: createHash("sha1").update(String(i)).digest("hex"), site: "a", nickname: `kid ${i}`, pubkey: `ssh-rsa ${body}`, backupUrl: "sugar@xs.example:datastore-current", machineSn: "SHF706002A7", updated: "2024-01-01T00:00:00.000Z",
  })).sort((x, y) => (x.uid < y.uid ? -1 : 1));
  const parts = fullFeedParts(entries);
  assert.ok(parts.length > 1, `${parts.length} parts`);
  for (const p of parts) {
    assert.ok(dpb.Request.encode({ directory: p }).finish().length < FEED_PART_BYTES, "each part under the limit");
    assert.is(p.full, true);
    for (const e of p.entries!) assert.ok(e.uid! >= p.rangeFrom! && (p.rangeTo === "" || e.uid! < p.rangeTo!), "each entry inside its part's range");
  }
  assert.is(parts[0]!.rangeFrom, "");
  assert.is(parts.at(-1)!.rangeTo, "");
  for (let i = 1; i < parts.length; i++) assert.is(parts[i]!.rangeFrom, parts[i - 1]!.rangeTo, "the ranges meet");
  assert.is(parts.flatMap((p) => p.entries!).length, entries.length);
  // A site that fits: one part, no range.
  assert.equal(fullFeedParts(entries.slice(0, 3)).map((p) => [p.rangeFrom ?? "", p.rangeTo ?? "", p.entries!.length]), [["", "", 3]]);
  assert.equal(fullFeedParts([]).map((p) => [p.full, p.entries!.length]), [[true, 0]]);
});

t("registry-roaming: status of a user at home at another school answers its home and the home's backup URL", async (c) => {
  const key = await atHomeAtA(c);
  const s = await c.b.client.call("status", { uid: key.uid });
  assert.is(s.registered, true);
  assert.is(s.home, "a");
  assert.is(s.homeBackupUrl, "sugar@xs-a.example:datastore-current");
  assert.is(s.jabberUrl, "b.example", "collaboration is the school's where the laptop is");
  await waitFor("the roamer remembered", () => roamers(c.b).find((r) => r.uid === key.uid));
  const local = await c.a.client.call("status", { uid: key.uid });
  assert.is(local.home, "a", "a local user's home is its own school");
  assert.is(local.homeBackupUrl, "");
  assert.is((await c.b.client.call("status", { uid: edKey().uid })).registered, false, "a uid the district does not know");
});

t("registry-roaming: with the district gone, a remembered roamer is answered from the cache, after a restart too", async (c) => {
  const key = await atHomeAtA(c);
  await c.b.client.call("status", { uid: key.uid });
  await waitFor("the roamer remembered", () => roamers(c.b).find((r) => r.uid === key.uid));
  await c.district.stop();
  assert.is((await c.b.client.call("status", { uid: key.uid })).home, "a");
  await c.b.registry.stop();
  c.b = await school(c, "b", {}, c.b.dir);
  const s = await c.b.client.call("status", { uid: key.uid });
  assert.is(s.registered, true);
  assert.is(s.homeBackupUrl, "sugar@xs-a.example:datastore-current");
  assert.is((await c.b.client.call("status", { uid: edKey().uid })).registered, false, "unknown and unreachable: not registered");
});

t("registry-roaming: a directory event that removes a roamer drops it from the cache", async (c) => {
  const key = await atHomeAtA(c);
  await c.b.client.call("status", { uid: key.uid });
  await waitFor("the roamer remembered", () => roamers(c.b).find((r) => r.uid === key.uid));
  c.district.entries.delete(key.uid);
  c.district.publish([{ uid: key.uid, site: "a", removed: true }]);
  await waitFor("the roamer forgotten", () => roamers(c.b).length === 0);
  assert.is((await c.b.client.call("status", { uid: key.uid })).registered, false);
});

t("registry-roaming: a removal the school missed (no event reached it) drops the cached roamer at a status after district-sync-seconds", async (c) => {
  const key = await atHomeAtA(c);
  await c.b.client.call("status", { uid: key.uid });
  await waitFor("the roamer remembered", () => roamers(c.b).find((r) => r.uid === key.uid));
  c.district.lookupAnswer = (uid) => (uid === key.uid ? undefined : c.district.entries.get(uid)); // removed at the district; the event never reached b
  const asked = c.district.lookups.length;
  assert.is((await c.b.client.call("status", { uid: key.uid })).home, "a", "within district-sync-seconds the cached answer stands, unasked");
  assert.is(c.district.lookups.length, asked, "a roamer just confirmed is not asked again");
  await waitFor("the stale roamer asked again and dropped", async () => (await c.b.client.call("status", { uid: key.uid })).registered === false, 5000, 100);
  await waitFor("the roamer gone from the file", () => roamers(c.b).length === 0);
});

t("registry-roaming: a cached roamer whose home changed while the school missed the event is answered with the new home after a recheck", async (c) => {
  const key = await atHomeAtA(c);
  await c.b.client.call("status", { uid: key.uid });
  await waitFor("the roamer remembered", () => roamers(c.b).find((r) => r.uid === key.uid));
  const moved = entryAtA(c, key, { backupUrl: "sugar@xs-a2.example:datastore-current" });
  c.district.lookupAnswer = (uid) => (uid === key.uid ? moved : c.district.entries.get(uid)); // changed at the district; the event never reached b
  await waitFor("the new backup URL", async () => (await c.b.client.call("status", { uid: key.uid })).homeBackupUrl === "sugar@xs-a2.example:datastore-current", 5000, 100);
});

t("registry-roaming: a directory event from the roamer's home updates the cached roamer", async (c) => {
  const key = await atHomeAtA(c);
  await c.b.client.call("status", { uid: key.uid });
  c.district.publish([entryAtA(c, key, { nickname: "Ana B", backupUrl: "sugar@xs-a2.example:datastore-current" })]);
  await waitFor("the roamer updated", () => roamers(c.b).find((r) => r.backup_url === "sugar@xs-a2.example:datastore-current"));
  assert.is((await c.b.client.call("status", { uid: key.uid })).homeBackupUrl, "sugar@xs-a2.example:datastore-current");
});

t("registry-roaming: a malformed directory event is ignored, the cached roamer kept", async (c) => {
  const key = await atHomeAtA(c);
  await c.b.client.call("status", { uid: key.uid });
  await waitFor("the roamer remembered", () => roamers(c.b).find((r) => r.uid === key.uid));
  c.district.publish([entryAtA(c, key, { backupUrl: "evil; rm -rf /" })]);
  c.district.publish([entryAtA(c, key, { nickname: "Ana C" })]); // a good one after it: the bad one was seen first
  await waitFor("the good event applied", () => roamers(c.b).find((r) => r.nickname === "Ana C"));
  assert.is(roamers(c.b)[0]!.backup_url, "sugar@xs-a.example:datastore-current");
});

t("registry-roaming: registering a key at home at another school answers the home's user and stores nothing here", async (c) => {
  const key = await atHomeAtA(c, "Ana at a");
  c.issued.length = 0;
  const r = await c.b.client.call("register", { nickname: "Ana at b", pubkey: key.line, machineSn: "SHF706002A7" });
  assert.is(r.user?.uid, key.uid);
  assert.is(r.user?.nickname, "Ana at a");
  assert.is(r.home, "a");
  assert.is(r.created, false);
  assert.is(r.backupUrl, "sugar@xs-a.example:datastore-current");
  assert.is(r.backupPath, "datastore-current");
  assert.is(r.jabberServer, "b.example");
  assert.is(r.credential, "");
  assert.equal(c.issued, [], "no credential asked for");
  assert.equal(await userFiles(c.b), [], "no user at b");
  assert.is((await c.b.client.call("admins", {})).users, 0);
  assert.is((await c.b.client.call("status", { uid: key.uid })).home, "a");
  // The key's own home answers as always, with its home named.
  const home = await c.a.client.call("register", { nickname: "Ana at a", pubkey: key.line });
  assert.is(home.home, "a");
});

t("registry-roaming: a lookup whose entry names another key registers the key here as usual", async (c) => {
  const key = edKey();
  // A browser user's entry (no key) for this uid: valid, but not this key's.
  c.district.lookupAnswer = (uid) => (uid === key.uid ? entryAtA(c, key, { pubkey: "" }) : undefined);
  const r = await c.b.client.call("register", { nickname: "Ana", pubkey: key.line });
  assert.is(r.created, true);
  assert.is(r.home, "b");
  assert.is(r.backupUrl, "sugar@xs-b.example:datastore-current");
  assert.equal(await userFiles(c.b), [key.uid]);
});

t("registry-roaming: a lookup whose entry carries a key that is not the uid's is not trusted: the key registers here", async (c) => {
  const key = edKey();
  const other = edKey();
  c.district.lookupAnswer = (uid) => (uid === key.uid ? entryAtA(c, key, { pubkey: other.line }) : undefined);
  const r = await c.b.client.call("register", { nickname: "Ana", pubkey: key.line });
  assert.is(r.created, true);
  assert.is(r.home, "b");
});

t("registry-roaming: with the district unreachable, a key not known here registers here", async (c) => {
  await c.district.stop();
  const key = edKey();
  const r = await c.b.client.call("register", { nickname: "Ana", pubkey: key.line });
  assert.is(r.created, true);
  assert.is(r.credential, "cred-b");
});

for (const [what, bad] of [
  ["a malformed uid", { uid: "NOT-A-UID" }],
  ["another uid than the one asked", { uid: "f".repeat(40), pubkey: "" }],
  ["a site that is no site name", { site: "School A" }],
  ["a reserved site", { site: "district" }],
  ["a backup URL that is none", { backupUrl: "sugar@xs-a.example:../../etc" }],
  ["an empty backup URL", { backupUrl: "" }],
  ["a nickname with control characters", { nickname: "Ana\u0007" }],
] as const) {
  t(`registry-roaming: a lookup answer with ${what} is not trusted`, async (c) => {
    const key = edKey();
    c.district.lookupAnswer = () => entryAtA(c, key, bad);
    const s = await c.b.client.call("status", { uid: key.uid });
    assert.is(s.registered, false);
    assert.equal(roamers(c.b), []);
    const r = await c.b.client.call("register", { nickname: "Ana", pubkey: key.line });
    assert.is(r.home, "b", "registered here");
  });
}

t("registry-roaming: a roaming file that is not JSON is left aside: the school starts and asks the district", async (c) => {
  const key = await atHomeAtA(c);
  await c.b.registry.stop();
  writeFileSync(roamingFile(c.b), "{not json");
  c.b = await school(c, "b", {}, c.b.dir);
  assert.is((await c.b.client.call("status", { uid: key.uid })).home, "a");
});

t("registry-roaming: the district refusing a uid at home elsewhere keeps it out of the digest, so the sync stays in step", async (c) => {
  const key = await atHomeAtA(c);
  // The same key registers at b while b cannot reach the district: b's own user now.
  await c.district.stop();
  await c.b.client.call("register", { nickname: "Ana", pubkey: key.line });
  c.district.start();
  await waitFor("b's full feed refused", () => c.district.feeds.some((f) => f.site === "b" && f.req.full), 5000);
  assert.is(c.district.entries.get(key.uid)?.site, "a", "the first home keeps it");
  const seen = c.district.feeds.length;
  await waitFor("two more syncs of b", () => c.district.feeds.slice(seen).filter((f) => f.site === "b").length >= 2, 5000);
  assert.not.ok(c.district.feeds.slice(seen).some((f) => f.site === "b" && f.req.full), "no full feed again and again");
  // a removes it: the district's event frees the uid, and b feeds it.
  await c.a.client.call("remove", { uid: key.uid });
  await waitFor("a's removal", () => !c.district.entries.has(key.uid));
  c.district.publish([{ uid: key.uid, site: "a", removed: true }]);
  await waitFor("b's user in the district", () => c.district.entries.get(key.uid)?.site === "b");
});

t("registry-roaming: without option district no district subject is asked or published", async (c) => {
  const asked: string[] = [];
  c.bus.subscribe("sugar.district.>", (_d, subject) => void asked.push(subject));
  const plain = await school(c, "c", { district: false });
  try {
    const key = edKey();
    c.district.entries.set(key.uid, entryAtA(c, key));
    const r = await plain.client.call("register", { nickname: "Ana", pubkey: key.line });
    assert.is(r.created, true, "registered here although the district has it at a");
    assert.is(r.home, "");
    const s = await plain.client.call("status", { uid: key.uid });
    assert.is(s.home, "");
    assert.is((await plain.client.call("status", { uid: edKey().uid })).registered, false);
    await plain.client.call("remove", { uid: key.uid });
    await c.bus.flush();
    assert.equal(asked.filter((x) => x.includes(".c.") || x === "sugar.district.lookup"), []);
    assert.not.ok(c.district.feeds.some((f) => f.site === "c"));
    assert.not.ok(existsSync(roamingFile(plain)));
  } finally {
    await plain.registry.stop();
    plain.dir.remove();
  }
});

t.run();
