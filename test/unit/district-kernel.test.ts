/** src/district.ts: the digests both ends of the district compute, and what makes a directory entry trustworthy. */
import { createHash, generateKeyPairSync } from "node:crypto";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { isBackupUrl } from "../../src/config.js";
import { directoryDigest, directoryEntry, stolenDigest } from "../../src/district.js";
import { SugarError } from "../../src/errors.js";

const sha = (s: string) => createHash("sha256").update(s).digest("hex");

function edKey(): { line: string; uid: string; body: string } {
  const jwk = generateKeyPairSync("ed25519").publicKey.export({ format: "jwk" });
  const str = (b: Buffer) => Buffer.concat([Buffer.from([0, 0, 0, b.length]), b]);
  const body = Buffer.concat([str(Buffer.from("ssh-ed25519")), str(Buffer.from(jwk.x!, "base64url"))]).toString("base64");
  return { line: `ssh-ed25519 ${body}`, body, uid: createHash("sha1").update(body).digest("hex") };
}
const good = (k = edKey()) => ({ uid: k.uid, site: "school1", nickname: "Ana", pubkey: k.line, backupUrl: "sugar@xs.example:datastore-current", machineSn: "SHF706002A7", updated: "2024-05-06T07:08:09.123Z" });
const refused = (e: object, why: RegExp) => {
  try {
    directoryEntry(e);
  } catch (err) {
    assert.ok(err instanceof SugarError && err.code === "invalid_input", String(err));
    assert.match((err as Error).message, why);
    return;
  }
  assert.unreachable("accepted");
};

test("district: the directory digest is SHA-256 over the sorted \"uid pubkey backup_url\" lines joined by newlines", () => {
  const a = { uid: "b".repeat(40), pubkey: "ssh-ed25519 AAAA", backupUrl: "u@h:p" };
  const b = { uid: "a".repeat(40), pubkey: "", backupUrl: "u@h:p" };
  assert.is(directoryDigest([a, b]), sha(`${"a".repeat(40)}  u@h:p\n${"b".repeat(40)} ssh-ed25519 AAAA u@h:p`));
  assert.is(directoryDigest([b, a]), directoryDigest([a, b]), "order does not matter");
  assert.is(directoryDigest([]), sha(""));
});

test("district: the stolen digest is SHA-256 over the sorted serial numbers joined by newlines", () => {
  assert.is(stolenDigest(["SHF00000002", "SHF00000001"]), sha("SHF00000001\nSHF00000002"));
  assert.is(stolenDigest([]), sha(""));
});

test("district: a good entry is taken as it is", () => {
  const e = good();
  assert.equal(directoryEntry(e), { ...e, removed: false });
  assert.equal(directoryEntry({ ...e, pubkey: "", machineSn: "", updated: "" }).pubkey, "", "a browser user has no key");
});

test("district: a removal needs only uid and site, and comes back with nothing else", () => {
  const k = edKey();
  assert.equal(directoryEntry({ uid: k.uid, site: "school1", removed: true, backupUrl: "junk" }), { uid: k.uid, site: "school1", nickname: "", pubkey: "", backupUrl: "", machineSn: "", updated: "", removed: true });
  refused({ uid: "x", site: "school1", removed: true }, /uid/);
});

test("district: an entry with a bad uid is refused", () => refused({ ...good(), uid: "A".repeat(40) }, /uid/));
test("district: an entry with a bad site is refused", () => refused({ ...good(), site: "School 1" }, /site/));
test("district: an entry with a reserved site is refused", () => refused({ ...good(), site: "keyring" }, /site/));
test("district: an entry with a bad backup URL is refused", () => refused({ ...good(), backupUrl: "sugar@xs.example:../x" }, /backup_url/));
test("district: an entry with no backup URL is refused", () => refused({ ...good(), backupUrl: "" }, /backup_url/));
test("district: an entry whose key is another uid's is refused", () => refused({ ...good(), pubkey: edKey().line }, /does not belong/));
test("district: an entry whose key is not canonical is refused", () => {
  const k = edKey();
  refused({ ...good(k), pubkey: `${k.line} comment` }, /canonical/);
});
test("district: an entry with a bad nickname is refused", () => refused({ ...good(), nickname: "" }, /nickname/));
test("district: an entry with a bad serial number is refused", () => refused({ ...good(), machineSn: "shf706002a7" }, /machine_sn/));
test("district: an entry with a bad time is refused", () => refused({ ...good(), updated: "yesterday" }, /updated/));

test("config: isBackupUrl takes what backupUrl builds and nothing else", () => {
  assert.ok(isBackupUrl("sugar@xs.example:datastore-current"));
  assert.ok(isBackupUrl("backup_1@school1.district.example:a/b.c"));
  for (const bad of ["", "xs.example:datastore-current", "sugar@xs.example", "su-gar@xs.example:d", "sugar@xs example:d", "sugar@fe80::1:d", "sugar@xs.example:/abs", "sugar@xs.example:a/../b", "a@b@c:d"]) {
    assert.not.ok(isBackupUrl(bad), bad);
  }
});

test.run();
