/**
 * The district directory's claims and pages, below the bus: an entry on disk
 * from before claims were stamped counts as first, and a directory_list page
 * stops at its byte budget (~512 KB) as well as at 2000 entries.
 */
import { createHash, generateKeyPairSync } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { CLAIMED_BEFORE, Directory } from "../../actors/district/directory.js";
import { silentLogger } from "../../src/log.js";
import { tempDir } from "../support/tmp.js";

function sshKey(): { line: string; uid: string } {
  const raw = generateKeyPairSync("ed25519").publicKey.export({ format: "der", type: "spki" }).subarray(-32);
  const str = (b: Buffer) => Buffer.concat([Buffer.from([0, 0, 0, b.length]), b]);
  const body = Buffer.concat([str(Buffer.from("ssh-ed25519")), str(raw)]).toString("base64");
  return { line: `ssh-ed25519 ${body}`, uid: createHash("sha1").update(body).digest("hex") };
}
const entry = (site: string) => {
  const k = sshKey();
  return { uid: k.uid, nickname: "Ana", pubkey: k.line, backupUrl: `schoolserver@${site}.lan:backup/1`, machineSn: "", updated: "2024-01-01T00:00:00.000Z" };
};

test("district-directory: an entry on disk with no claimed time counts as claimed first, and wins over a peer's claim", async () => {
  const dir = tempDir();
  try {
    const e = entry("school2");
    mkdirSync(join(dir.path, "district", "directory"), { recursive: true });
    writeFileSync(join(dir.path, "district", "directory", "school2.json"), JSON.stringify({ entries: [e] }));
    const d = new Directory(dir.path, silentLogger);
    await d.load();
    assert.is(d.lookup(e.uid)?.claimed, CLAIMED_BEFORE);
    const r = await d.follow([{ ...e, site: "school1", backupUrl: "evil@school1.lan:backup/1", claimed: "2000-01-01T00:00:00.000Z" }]);
    assert.equal([d.lookup(e.uid)?.site, r.changes.length, r.tell.map((t) => t.site)], ["school2", 0, ["school2"]]);
  } finally {
    dir.remove();
  }
});

test("district-directory: a directory_list page stops before its byte budget, and always holds one entry", async () => {
  const dir = tempDir();
  try {
    const d = new Directory(dir.path, silentLogger);
    await d.load();
    await d.feed("school1", Array.from({ length: 5 }, () => entry("school1")), false);
    const two = d.page("", 0, () => 200 * 1024);
    assert.equal([two.entries.length, two.more], [2, true]);
    const one = d.page("", 0, () => 600 * 1024);
    assert.equal([one.entries.length, one.more], [1, true]);
    const last = d.page(two.entries[1]!.uid, 10, () => 100);
    assert.equal([last.entries.length, last.more], [3, false]);
  } finally {
    dir.remove();
  }
});

test.run();
