/**
 * The district actor's behaviour, run unchanged on every Bus implementation
 * (test/contract/district.test.ts): the stolen list's marks and their
 * last-writer-wins merge, its digest, two district actors on one bus keeping
 * each other in step (one started later catches up at start), the directory's
 * feeds and claim rule, lookup, and every kind of bad input. The district's
 * subjects carry no site of their own, so each test stops its actors before
 * the next starts. Digests are computed here, independently of the actor.
 */
import { createHash, generateKeyPairSync } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as assert from "uvu/assert";
import { startDistrict } from "../../actors/district/index.js";
import { sugar } from "../../schemas/gen/messages.js";
import { subjects } from "../../src/bus/subjects.js";
import type { Bus } from "../../src/bus/types.js";
import { districtClient, districtFromClient, serveOps } from "../../src/codec.js";
import type { Component } from "../../src/component.js";
import { configWith } from "../../src/config.js";
import { silentLogger } from "../../src/log.js";
import { expectError, expectRawError } from "../support/bus-errors.js";
import { describeDiff, sameSnapshot, snapshot } from "../support/disk.js";
import { captureLogger } from "../support/log.js";
import { waitFor } from "../support/wait.js";
import { contractSuite, type BusKind, type ContractCtx } from "./buses.js";

import pb = sugar.district;

type Ctx = ContractCtx;

const SN = ["SHF00000001", "SHF00000002", "SHF00000003"] as const;
const sha256 = (s: string) => createHash("sha256").update(s).digest("hex");
/** The stolen digest as the design defines it: SHA-256 hex over the sorted serial numbers joined by "\n". */
const stolenDigest = (sns: string[]) => sha256([...sns].sort().join("\n"));

/** An ed25519 public key as an SSH line, and its uid (SHA-1 of the base64 body). */
function sshKey(): { line: string; uid: string } {
  const raw = generateKeyPairSync("ed25519").publicKey.export({ format: "der", type: "spki" }).subarray(-32);
  const str = (b: Buffer) => Buffer.concat([Buffer.from([0, 0, 0, b.length]), b]);
  const body = Buffer.concat([str(Buffer.from("ssh-ed25519")), str(raw)]).toString("base64");
  return { line: `ssh-ed25519 ${body}`, uid: createHash("sha1").update(body).digest("hex") };
}

/** A claim older than any the tests make. */
const CLAIMED = "2020-01-01T00:00:00.000Z";
const backupUrl = (site: string) => `schoolserver@${site}.lan:backup/1`;
function entry(site: string, key = sshKey(), nickname = "Ana"): pb.Entry.$Properties & { uid: string } {
  return { uid: key.uid, site, nickname, pubkey: key.line, backupUrl: backupUrl(site), machineSn: "", updated: "2024-01-01T00:00:00.000Z" };
}
/** The directory digest as the design defines it: SHA-256 hex over the site's sorted "uid pubkey backup_url" lines joined by "\n". */
const directoryDigest = (entries: Array<pb.Entry.$Properties>) => sha256(entries.map((e) => `${e.uid} ${e.pubkey} ${e.backupUrl}`).sort().join("\n"));

/** status as [stolen, entries, sites]. */
const counts = (s: pb.IStatusReply) => [s.stolen, s.entries, s.sites];
const marksOnDisk = (root: string): Array<{ machineSn: string; stolen: boolean; at: string; by: string }> => {
  const f = join(root, "district", "stolen");
  return existsSync(f) ? (JSON.parse(readFileSync(f, "utf8")) as { marks: Array<{ machineSn: string; stolen: boolean; at: string; by: string }> }).marks : [];
};
const stolenOnDisk = (root: string) => marksOnDisk(root).filter((m) => m.stolen).map((m) => m.machineSn).sort();
const uidsOnDisk = (root: string, site: string): string[] => {
  const f = join(root, "district", "directory", `${site}.json`);
  return existsSync(f) ? (JSON.parse(readFileSync(f, "utf8")) as { entries: Array<{ uid: string }> }).entries.map((e) => e.uid).sort() : [];
};

export function districtContract(kind: BusKind): void {
  const { t, test } = contractSuite<Ctx>("district", kind);

  /** A district actor with root `<tmp>/<name>`, on the test's bus or on `bus`. */
  async function district(c: Ctx, name = "a", bus: Bus = c.bus, log = silentLogger): Promise<{ root: string; component: Component }> {
    const root = join(c.dir.path, name);
    const component = await startDistrict({ bus, config: configWith({ root }), log });
    c.running.push(component);
    await bus.flush();
    return { root, component };
  }
  const shared = (c: Ctx) => districtClient(c.bus, { timeoutMs: 3000 });
  const from = (c: Ctx, site: string) => districtFromClient(c.bus, site, { timeoutMs: 3000 });
  /** A peer's mark, published as a peer district actor would. */
  const publishMark = (c: Ctx, m: pb.Mark.$Properties) => c.bus.publish(subjects.districtEvent("stolen"), pb.Mark.encode(m).finish());
  async function stop(c: Ctx, component: Component): Promise<void> {
    await component.stop();
    c.running.splice(c.running.indexOf(component), 1);
  }

  const it = (name: string, fn: (c: Ctx) => Promise<void>) => test(`district[${kind.name}]: ${name}`, fn);

  // --- stolen marks -------------------------------------------------------------

  it("a mark makes a serial number stolen, by the site in the subject, persisted and published; the same mark again changes nothing", async (c) => {
    const d = await district(c);
    const seen: pb.Mark[] = [];
    const sub = c.bus.subscribe(subjects.districtEvent("stolen"), (data) => void seen.push(pb.Mark.decode(data)));
    await c.bus.flush();
    const before = Date.now();
    const r = await from(c, "school1").call("stolen", { machineSn: SN[0], stolen: true });
    assert.is(r.changed, true);
    assert.equal([r.mark!.machineSn, r.mark!.stolen, r.mark!.by], [SN[0], true, "school1"]);
    assert.match(r.mark!.at!, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    assert.ok(Date.parse(r.mark!.at!) >= before - 1 && Date.parse(r.mark!.at!) <= Date.now());
    assert.equal(stolenOnDisk(d.root), [SN[0]]);
    await waitFor("the mark published", () => seen.length === 1);
    assert.equal([seen[0]!.machineSn, seen[0]!.stolen, seen[0]!.at, seen[0]!.by], [SN[0], true, r.mark!.at, "school1"]);
    const again = await from(c, "school2").call("stolen", { machineSn: SN[0], stolen: true });
    assert.is(again.changed, false);
    assert.equal([again.mark!.by, again.mark!.at], ["school1", r.mark!.at], "the mark held is kept");
    const list = await shared(c).call("stolenList", {});
    assert.equal(list.marks!.map((m) => m.machineSn), [SN[0]]);
    assert.is(list.digest, stolenDigest([SN[0]]));
    assert.is((await shared(c).call("status", {})).stolen, 1);
    await c.bus.flush();
    assert.is(seen.length, 1, "nothing published for no change");
    sub.unsubscribe();
  });

  it("a cleared mark is kept (with_cleared lists it, the stolen list does not), and clearing what was never marked changes nothing", async (c) => {
    const d = await district(c);
    await from(c, "school1").call("stolen", { machineSn: SN[0], stolen: true });
    const cleared = await from(c, "school2").call("stolen", { machineSn: SN[0], stolen: false });
    assert.equal([cleared.changed, cleared.mark!.stolen, cleared.mark!.by], [true, false, "school2"]);
    assert.is((await from(c, "school1").call("stolen", { machineSn: SN[1], stolen: false })).changed, false);
    const list = await shared(c).call("stolenList", {});
    assert.equal([list.marks!.length, list.digest], [0, stolenDigest([])]);
    const all = await shared(c).call("stolenList", { withCleared: true });
    assert.equal(all.marks!.map((m) => [m.machineSn, m.stolen]), [[SN[0], false]]);
    assert.equal(marksOnDisk(d.root).map((m) => [m.machineSn, m.stolen]), [[SN[0], false]]);
  });

  it("stolen_list with the digest held answers unchanged and no marks; another digest gets the marks", async (c) => {
    await district(c);
    await from(c, "school1").call("stolen", { machineSn: SN[1], stolen: true });
    await from(c, "school1").call("stolen", { machineSn: SN[0], stolen: true });
    const digest = stolenDigest([SN[0], SN[1]]);
    const same = await shared(c).call("stolenList", { digest });
    assert.equal([same.unchanged, same.digest, same.marks!.length], [true, digest, 0]);
    const other = await shared(c).call("stolenList", { digest: stolenDigest([SN[0]]) });
    assert.equal([other.unchanged, other.digest], [false, digest]);
    assert.equal(other.marks!.map((m) => m.machineSn), [SN[0], SN[1]], "sorted");
  });

  it("peer marks merge last-writer-wins: a later one wins, an earlier one loses, a tie goes to the larger site, then to stolen", async (c) => {
    const d = await district(c);
    const m = (sn: string, stolen: boolean, at: string, by: string) => ({ machineSn: sn, stolen, at, by });
    publishMark(c, m(SN[0], true, "2024-05-01T10:00:00.000Z", "school1"));
    await waitFor("the peer's mark", () => stolenOnDisk(d.root).includes(SN[0]));
    publishMark(c, m(SN[0], false, "2024-05-01T09:59:59.999Z", "school9")); // earlier: loses
    publishMark(c, m(SN[1], false, "2024-05-01T10:00:00.000Z", "school1"));
    publishMark(c, m(SN[1], true, "2024-05-01T10:00:00.000Z", "school2")); // tie: larger site wins
    publishMark(c, m(SN[1], false, "2024-05-01T10:00:00.000Z", "school1")); // the smaller site loses the tie again
    publishMark(c, m(SN[2], false, "2024-05-01T10:00:00.000Z", "school1"));
    publishMark(c, m(SN[2], true, "2024-05-01T10:00:00.000Z", "school1")); // same at and by: stolen wins
    await waitFor("the merges", () => marksOnDisk(d.root).length === 3 && stolenOnDisk(d.root).length === 3);
    const all = await shared(c).call("stolenList", { withCleared: true });
    assert.equal(
      all.marks!.map((x) => [x.machineSn, x.stolen, x.by]),
      [
        [SN[0], true, "school1"],
        [SN[1], true, "school2"],
        [SN[2], true, "school1"],
      ],
    );
    publishMark(c, m(SN[0], false, "2024-05-02T00:00:00.000Z", "school3")); // later: wins
    await waitFor("the later clearing", () => !stolenOnDisk(d.root).includes(SN[0]));
    // A mark made here after a peer's from the future still wins: it is made later than the one it replaces.
    const r = await from(c, "school1").call("stolen", { machineSn: SN[0], stolen: true });
    assert.ok(r.mark!.at! > "2024-05-02T00:00:00.000Z", r.mark!.at!);
    publishMark(c, m(SN[1], false, "2999-01-01T00:00:00.000Z", "school1"));
    await waitFor("the clearing from the future", () => !stolenOnDisk(d.root).includes(SN[1]));
    const undo = await from(c, "school2").call("stolen", { machineSn: SN[1], stolen: true });
    assert.is(undo.mark!.at, "2999-01-01T00:00:00.001Z");
  });

  it("marks and directory entries survive a restart", async (c) => {
    const d = await district(c);
    await from(c, "school1").call("stolen", { machineSn: SN[0], stolen: true });
    await from(c, "school1").call("stolen", { machineSn: SN[1], stolen: true });
    await from(c, "school1").call("stolen", { machineSn: SN[1], stolen: false });
    const e = entry("school1");
    await from(c, "school1").call("directory", { entries: [e] });
    await stop(c, d.component);
    await district(c, "a");
    const all = await shared(c).call("stolenList", { withCleared: true });
    assert.equal(all.marks!.map((m) => [m.machineSn, m.stolen]), [[SN[0], true], [SN[1], false]]);
    assert.is((await shared(c).call("lookup", { uid: e.uid })).entry!.site, "school1");
    assert.equal(counts(await shared(c).call("status", {})), [1, 1, 1]);
  });

  // --- two district actors --------------------------------------------------------

  it("two district actors on one bus hold the same marks and directory, whichever serves a request", async (c) => {
    const a = await district(c, "a");
    const b = await district(c, "b");
    for (const sn of SN) await from(c, "school1").call("stolen", { machineSn: sn, stolen: true });
    await from(c, "school2").call("stolen", { machineSn: SN[1], stolen: false });
    const want = [SN[0], SN[2]];
    await waitFor("both lists", () => [a.root, b.root].every((r) => JSON.stringify(stolenOnDisk(r)) === JSON.stringify(want)));
    assert.equal(marksOnDisk(a.root), marksOnDisk(b.root), "the same marks, cleared ones too");
    const e1 = entry("school1");
    const e2 = entry("school1");
    await from(c, "school1").call("directory", { entries: [e1, e2] });
    await from(c, "school1").call("directory", { entries: [{ ...e2, removed: true }] });
    await waitFor("both directories", () => [a.root, b.root].every((r) => JSON.stringify(uidsOnDisk(r, "school1")) === JSON.stringify([e1.uid])));
    for (let i = 0; i < 6; i++) {
      // Whichever actor answers, it knows e1 and no longer e2.
      assert.is((await shared(c).call("lookup", { uid: e1.uid })).entry!.site, "school1");
      await expectError(shared(c).call("lookup", { uid: e2.uid }), "not_registered");
      assert.is((await shared(c).call("stolenList", {})).digest, stolenDigest(want));
    }
  });

  it("a district actor started after marks were made catches up at start, and tells the peer the marks it knew better", async (c) => {
    const a = await district(c, "a");
    await from(c, "school1").call("stolen", { machineSn: SN[0], stolen: true });
    await from(c, "school1").call("stolen", { machineSn: SN[1], stolen: true });
    await from(c, "school1").call("stolen", { machineSn: SN[1], stolen: false });
    // b's disk holds a mark a never saw (made while a was cut off from b).
    const bRoot = join(c.dir.path, "b");
    mkdirSync(join(bRoot, "district"), { recursive: true });
    writeFileSync(join(bRoot, "district", "stolen"), JSON.stringify({ marks: [{ machineSn: SN[2], stolen: true, at: "2024-01-01T00:00:00.000Z", by: "school2" }] }));
    const b = await district(c, "b");
    // Caught up before it served anything: its disk has every mark of a's already.
    assert.equal(
      marksOnDisk(b.root).map((m) => [m.machineSn, m.stolen]),
      [
        [SN[0], true],
        [SN[1], false],
        [SN[2], true],
      ],
    );
    await waitFor("a learns b's mark", () => stolenOnDisk(a.root).includes(SN[2]));
    assert.equal(marksOnDisk(a.root), marksOnDisk(b.root));
  });

  it("a lone district actor starts with no peer to ask (no responders) and serves", async (c) => {
    const cap = captureLogger();
    await district(c, "a", c.bus, cap.log);
    assert.match(cap.text(), /no peer district actor answered/);
    assert.is((await shared(c).call("stolenList", {})).digest, stolenDigest([]));
  });

  // --- directory --------------------------------------------------------------------

  it("a feed of changes is taken, persisted and published; the digest it answers is the site's; a removal removes", async (c) => {
    const d = await district(c);
    const seen: pb.IEntry[] = [];
    const sub = c.bus.subscribe(subjects.districtEvent("directory"), (data) => void seen.push(...pb.DirectoryEvent.decode(data).entries));
    await c.bus.flush();
    const e1 = entry("school1");
    const e2 = { ...entry("school1", sshKey(), "Bo"), site: "" }; // the site may be left out: the subject says it
    const r = await from(c, "school1").call("directory", { entries: [e1, e2], digest: "" });
    assert.equal([r.accepted, r.refused!.length, r.inStep], [2, 0, false]);
    assert.is(r.digest, directoryDigest([e1, e2]));
    assert.equal(uidsOnDisk(d.root, "school1"), [e1.uid, e2.uid].sort());
    await waitFor("the entries published", () => seen.length === 2);
    assert.equal(seen.map((e) => [e.uid, e.site, e.removed]).sort(), [[e1.uid, "school1", false], [e2.uid, "school1", false]].sort());
    const gone = await from(c, "school1").call("directory", { entries: [{ ...e2, removed: true }] });
    assert.is(gone.digest, directoryDigest([e1]));
    await waitFor("the removal published", () => seen.length === 3 && seen[2]!.removed);
    assert.equal(uidsOnDisk(d.root, "school1"), [e1.uid]);
    sub.unsubscribe();
  });

  it("a feed with only a digest answers in_step when the district holds exactly that site's users, and changes nothing", async (c) => {
    const d = await district(c);
    const e1 = entry("school1");
    await from(c, "school1").call("directory", { entries: [e1] });
    const before = snapshot(d.root);
    const same = await from(c, "school1").call("directory", { digest: directoryDigest([e1]) });
    assert.equal([same.inStep, same.digest, same.accepted], [true, directoryDigest([e1]), 0]);
    const other = await from(c, "school1").call("directory", { digest: directoryDigest([e1, entry("school1")]) });
    assert.equal([other.inStep, other.digest], [false, directoryDigest([e1])]);
    const empty = await from(c, "school2").call("directory", { digest: directoryDigest([]) });
    assert.is(empty.inStep, true, "a site the district knows nothing of is in step with no users");
    assert.ok(sameSnapshot(before, snapshot(d.root)), describeDiff(before, snapshot(d.root)));
  });

  it("a full feed replaces the site's set: what it leaves out is removed, other sites keep theirs", async (c) => {
    const d = await district(c);
    const [e1, e2, e3] = [entry("school1"), entry("school1"), entry("school1")];
    const other = entry("school2");
    await from(c, "school1").call("directory", { entries: [e1, e2] });
    await from(c, "school2").call("directory", { entries: [other] });
    const e1Renamed = { ...e1, nickname: "Ana Maria" };
    const r = await from(c, "school1").call("directory", { full: true, entries: [e1Renamed, e3], digest: directoryDigest([e1, e3]) });
    assert.equal([r.accepted, r.inStep, r.digest], [2, true, directoryDigest([e1, e3])]);
    assert.equal(uidsOnDisk(d.root, "school1"), [e1.uid, e3.uid].sort());
    assert.is((await shared(c).call("lookup", { uid: e1.uid })).entry!.nickname, "Ana Maria");
    await expectError(shared(c).call("lookup", { uid: e2.uid }), "not_registered");
    assert.equal(uidsOnDisk(d.root, "school2"), [other.uid]);
    const none = await from(c, "school1").call("directory", { full: true, entries: [] });
    assert.is(none.digest, directoryDigest([]));
    assert.equal(uidsOnDisk(d.root, "school1"), []);
    assert.equal(counts(await shared(c).call("status", {})), [0, 1, 1]);
  });

  it("a full feed in parts: each part replaces only its uid range, in any order", async (c) => {
    const d = await district(c);
    const all = Array.from({ length: 6 }, () => entry("school1")).sort((x, y) => (x.uid < y.uid ? -1 : 1));
    await from(c, "school1").call("directory", { entries: all });
    const cut = all[3]!.uid;
    // Part two (from `cut` on) first, without all[4]; then part one, without all[0].
    const two = await from(c, "school1").call("directory", { full: true, rangeFrom: cut, rangeTo: "", entries: [all[3]!, all[5]!] });
    assert.is(two.accepted, 2);
    assert.equal(uidsOnDisk(d.root, "school1"), all.filter((_, i) => i !== 4).map((e) => e.uid));
    await from(c, "school1").call("directory", { full: true, rangeFrom: "", rangeTo: cut, entries: [all[1]!, all[2]!] });
    const kept = [all[1]!, all[2]!, all[3]!, all[5]!];
    assert.equal(uidsOnDisk(d.root, "school1"), kept.map((e) => e.uid));
    assert.is((await from(c, "school1").call("directory", { digest: directoryDigest(kept) })).inStep, true);
  });

  it("a uid at home at one school is refused to another, even in a full feed, until its home removes it", async (c) => {
    const d = await district(c);
    const e = entry("school1");
    await from(c, "school1").call("directory", { entries: [e] });
    const claim = { ...e, site: "school3", backupUrl: backupUrl("school3") };
    const r = await from(c, "school3").call("directory", { entries: [claim, entry("school3")] });
    assert.equal([r.accepted, r.refused!.map((x) => [x.uid, x.reason])], [1, [[e.uid, "uid is at home at school1"]]]);
    const full = await from(c, "school3").call("directory", { full: true, entries: [claim] });
    assert.equal(full.refused!.map((x) => x.reason), ["uid is at home at school1"]);
    const removal = await from(c, "school3").call("directory", { entries: [{ ...claim, removed: true }] });
    assert.equal([removal.refused!.length], [0], "a removal of another's uid is no claim: nothing to refuse");
    const found = (await shared(c).call("lookup", { uid: e.uid })).entry!;
    assert.equal([found.site, found.backupUrl], ["school1", backupUrl("school1")], "the first home keeps it");
    assert.equal(uidsOnDisk(d.root, "school3"), []);
    await from(c, "school1").call("directory", { full: true, entries: [] });
    const now = await from(c, "school3").call("directory", { entries: [claim] });
    assert.equal([now.accepted, now.refused!.length], [1, 0]);
    assert.is((await shared(c).call("lookup", { uid: e.uid })).entry!.site, "school3");
  });

  it("lookup answers the entry with its home and backup URL; an unknown uid is not_registered", async (c) => {
    await district(c);
    const e = { ...entry("school1"), machineSn: SN[0] };
    await from(c, "school1").call("directory", { entries: [e] });
    const found = (await shared(c).call("lookup", { uid: e.uid })).entry!;
    assert.equal(
      [found.uid, found.site, found.nickname, found.pubkey, found.backupUrl, found.machineSn, found.updated, found.removed],
      [e.uid, "school1", "Ana", e.pubkey, e.backupUrl, SN[0], e.updated, false],
    );
    await expectError(shared(c).call("lookup", { uid: "a".repeat(40) }), "not_registered", /knows no user/);
  });

  it("peer directory events are followed; a peer's entry for a uid at home elsewhere is not taken", async (c) => {
    const d = await district(c);
    const mine = entry("school1");
    await from(c, "school1").call("directory", { entries: [mine] });
    const theirs = entry("school2");
    const publish = (entries: pb.Entry.$Properties[]) => c.bus.publish(subjects.districtEvent("directory"), pb.DirectoryEvent.encode({ entries }).finish());
    const later = new Date(Date.now() + 3600_000).toISOString();
    publish([{ ...theirs, claimed: CLAIMED }, { ...mine, site: "school2", claimed: later }]);
    await waitFor("the peer's entry", () => uidsOnDisk(d.root, "school2").length === 1);
    assert.equal(uidsOnDisk(d.root, "school2"), [theirs.uid]);
    assert.is((await shared(c).call("lookup", { uid: mine.uid })).entry!.site, "school1");
    publish([{ ...theirs, removed: true }]);
    await waitFor("the peer's removal", () => uidsOnDisk(d.root, "school2").length === 0);
  });

  it("two district actors agree on a uid's home: a claim made on an actor that started empty is undone by the peer's older claim", async (c) => {
    const child = entry("school2");
    const a = await district(c, "a");
    await from(c, "school2").call("directory", { entries: [child] });
    const home = (await shared(c).call("lookup", { uid: child.uid })).entry!;
    await stop(c, a.component);
    // A second keyring host that lost <root>/district: alone, it takes school1's claim of the child's uid.
    const cap = captureLogger();
    const b = await district(c, "b", c.bus, cap.log);
    const evil = { ...child, site: "school1", backupUrl: "evil@school1.lan:backup/1" };
    assert.is((await from(c, "school1").call("directory", { entries: [evil] })).accepted, 1);
    assert.equal(uidsOnDisk(b.root, "school1"), [child.uid]);
    // The first host comes back: its catch-up finds b's later claim, and tells b its own.
    await district(c, "a");
    await waitFor("b takes the first home", () => uidsOnDisk(b.root, "school1").length === 0 && uidsOnDisk(b.root, "school2").length === 1);
    assert.match(cap.text(), new RegExp(`WARN.*uid ${child.uid}: claim by school1 refused, at home at school2 since ${home.claimed!.replace(/\./g, "\\.")}`));
    for (let i = 0; i < 6; i++) {
      const e = (await shared(c).call("lookup", { uid: child.uid })).entry!;
      assert.equal([e.site, e.backupUrl, e.claimed], ["school2", child.backupUrl, home.claimed], "whichever actor answers");
    }
    const again = await from(c, "school1").call("directory", { entries: [evil] });
    assert.equal([again.accepted, again.refused!.map((r) => r.reason)], [0, ["uid is at home at school2"]]);
  });

  it("two running district actors: a peer's later claim of a uid held here is answered with the older one, which the peer takes", async (c) => {
    const d = await district(c);
    const child = entry("school2");
    await from(c, "school2").call("directory", { entries: [child] });
    const held = (await shared(c).call("lookup", { uid: child.uid })).entry!;
    const seen: pb.Entry.$Properties[] = [];
    const sub = c.bus.subscribe(subjects.districtEvent("directory"), (data) => void seen.push(...pb.DirectoryEvent.decode(data).entries));
    await c.bus.flush();
    const later = new Date(Date.now() + 1000).toISOString();
    c.bus.publish(subjects.districtEvent("directory"), pb.DirectoryEvent.encode({ entries: [{ ...child, site: "school1", claimed: later }] }).finish());
    await waitFor("the winner told", () => seen.some((e) => e.site === "school2" && e.claimed === held.claimed));
    assert.equal(uidsOnDisk(d.root, "school1"), []);
    // An older claim by another site wins here too (tie-free: older claimed).
    c.bus.publish(subjects.districtEvent("directory"), pb.DirectoryEvent.encode({ entries: [{ ...child, site: "school3", backupUrl: backupUrl("school3"), claimed: CLAIMED }] }).finish());
    await waitFor("the older claim taken", () => uidsOnDisk(d.root, "school3").length === 1 && uidsOnDisk(d.root, "school2").length === 0);
    sub.unsubscribe();
  });

  it("a district actor started empty learns the whole directory (more than one page) from its peer before it serves", async (c) => {
    const a = await district(c, "a");
    const all: Array<{ uid: string }> = [];
    for (let i = 0; i < 5; i++) {
      const part = Array.from({ length: 500 }, () => entry(`school${i % 2 + 1}`));
      await from(c, part[0]!.site!).call("directory", { entries: part });
      all.push(...part);
    }
    const first = (await shared(c).call("directoryList", {}));
    assert.equal([first.entries!.length, first.more], [2000, true]);
    assert.ok(first.entries!.every((e, i) => i === 0 || e.uid! > first.entries![i - 1]!.uid!), "sorted by uid");
    const rest = (await shared(c).call("directoryList", { afterUid: first.entries![1999]!.uid! }));
    assert.equal([rest.entries!.length, rest.more], [500, false]);
    assert.is((await shared(c).call("directoryList", { digest: first.digest! })).unchanged, true);
    assert.equal((await shared(c).call("directoryList", { limit: 3 })).entries!.length, 3);
    const cap = captureLogger();
    const b = await district(c, "b", c.bus, cap.log);
    await stop(c, a.component);
    assert.is((await shared(c).call("status", {})).entries, 2500, "b alone answers");
    assert.equal([...uidsOnDisk(b.root, "school1"), ...uidsOnDisk(b.root, "school2")].sort(), all.map((e) => e.uid).sort());
    assert.match(cap.text(), /directory caught up with a peer: 2 pages, 2500 entries learned, 0 told/);
  });

  it("a school's re-feed of its own uid keeps its claimed time, and a school's claimed is never taken", async (c) => {
    await district(c);
    const e = entry("school1");
    const before = Date.now();
    await from(c, "school1").call("directory", { entries: [{ ...e, claimed: CLAIMED }] });
    const first = (await shared(c).call("lookup", { uid: e.uid })).entry!;
    assert.match(first.claimed!, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    assert.ok(Date.parse(first.claimed!) >= before - 1 && Date.parse(first.claimed!) <= Date.now());
    await from(c, "school1").call("directory", { entries: [{ ...e, nickname: "Bea", updated: "2024-02-01T00:00:00.000Z", claimed: "2099-01-01T00:00:00.000Z" }] });
    await from(c, "school1").call("directory", { full: true, entries: [{ ...e, nickname: "Bea", updated: "2024-02-01T00:00:00.000Z" }] });
    const now = (await shared(c).call("lookup", { uid: e.uid })).entry!;
    assert.equal([now.nickname, now.claimed], ["Bea", first.claimed]);
  });

  // --- malformed events and bad inputs -------------------------------------------------

  it("a peer entry with a malformed claimed time is ignored, in an event (logged, nothing on disk)", async (c) => {
    const cap = captureLogger();
    const d = await district(c, "a", c.bus, cap.log);
    const before = snapshot(d.root);
    for (const claimed of ["yesterday", "2024-01-01T00:00:00Z", "2024-13-01T00:00:00.000Z", ""]) {
      c.bus.publish(subjects.districtEvent("directory"), pb.DirectoryEvent.encode({ entries: [{ ...entry("school2"), claimed }] }).finish());
    }
    await waitFor("four warnings", () => (cap.text().match(/WARN.*event ignored/g) ?? []).length >= 4);
    assert.ok(sameSnapshot(before, snapshot(d.root)), describeDiff(before, snapshot(d.root)));
  });

  it("a peer entry with a malformed claimed time is ignored, in a catch-up page (logged); the good ones are taken", async (c) => {
    const good = { ...entry("school2"), claimed: CLAIMED };
    const bad = { ...entry("school2"), claimed: "tomorrow" };
    const [lo, hi] = good.uid < bad.uid ? [good, bad] : [bad, good];
    const peer = serveOps(c.bus, subjects.districtAll(), pb.Request, pb.Reply, (req) =>
      req.op === "directoryList" ? { directoryList: { digest: "x", entries: [lo, hi], more: false } } : { stolenList: { digest: stolenDigest([]), marks: [] } },
    silentLogger, { queue: "district" });
    await c.bus.flush();
    const cap = captureLogger();
    const d = await district(c, "a", c.bus, cap.log);
    peer.unsubscribe();
    assert.equal(uidsOnDisk(d.root, "school2"), [good.uid]);
    assert.match(cap.text(), /WARN.*a peer's directory entry ignored.*claimed "tomorrow"/);
  });

  it("a malformed peer event (undecodable, or a bad field) is logged as a warning and changes nothing", async (c) => {
    const cap = captureLogger();
    const d = await district(c, "a", c.bus, cap.log);
    await from(c, "school1").call("stolen", { machineSn: SN[0], stolen: true });
    await from(c, "school1").call("directory", { entries: [entry("school1")] });
    const before = snapshot(d.root);
    c.bus.publish(subjects.districtEvent("stolen"), new Uint8Array([0xff, 0xff, 0xff]));
    publishMark(c, { machineSn: "shf00000009", stolen: true, at: "2030-01-01T00:00:00.000Z", by: "school1" });
    publishMark(c, { machineSn: SN[0], stolen: false, at: "tomorrow", by: "school1" });
    publishMark(c, { machineSn: SN[0], stolen: false, at: "2030-01-01T00:00:00.000Z", by: "School.1" });
    c.bus.publish(subjects.districtEvent("directory"), new Uint8Array([0x0a, 0xff]));
    c.bus.publish(subjects.districtEvent("directory"), pb.DirectoryEvent.encode({ entries: [{ ...entry("school2"), uid: "nope" }] }).finish());
    c.bus.publish(subjects.districtEvent("directory"), pb.DirectoryEvent.encode({ entries: [{ ...entry("school2"), site: "" }] }).finish());
    await waitFor("seven warnings", () => (cap.text().match(/WARN.*(not a valid event|event ignored)/gi) ?? []).length >= 7);
    assert.ok(sameSnapshot(before, snapshot(d.root)), describeDiff(before, snapshot(d.root)));
    assert.equal((await shared(c).call("stolenList", {})).marks!.map((m) => m.machineSn), [SN[0]], "still serving");
  });

  /** Runs `fn` against a fresh actor and asserts it changed nothing on disk. */
  async function nothingOnDisk(c: Ctx, fn: () => Promise<void>): Promise<void> {
    const d = await district(c);
    await from(c, "school1").call("stolen", { machineSn: SN[0], stolen: true });
    await from(c, "school1").call("directory", { entries: [entry("school1")] });
    const before = snapshot(d.root);
    await fn();
    assert.ok(sameSnapshot(before, snapshot(d.root)), describeDiff(before, snapshot(d.root)));
  }

  it("a mark with a malformed serial number is invalid_input, nothing on disk", (c) =>
    nothingOnDisk(c, async () => {
      await expectError(from(c, "school1").call("stolen", { machineSn: "shf00000001", stolen: true }), "invalid_input", /machine_sn/);
      await expectError(from(c, "school1").call("stolen", { machineSn: "", stolen: true }), "invalid_input", /machine_sn/);
    }));

  it("a mark or feed on sugar.district.<op> (no site) is invalid_input, nothing on disk", (c) =>
    nothingOnDisk(c, async () => {
      await expectError(shared(c).call("stolen", { machineSn: SN[1], stolen: true }), "invalid_input", /names no school/);
      await expectError(shared(c).call("directory", { entries: [entry("school1")] }), "invalid_input", /names no school/);
    }));

  it("a mark or feed for a reserved site is invalid_input, nothing on disk", (c) =>
    nothingOnDisk(c, async () => {
      for (const site of ["district", "keyring"]) {
        await expectError(from(c, site).call("stolen", { machineSn: SN[1], stolen: true }), "invalid_input", /not a site name/);
        await expectError(from(c, site).call("directory", { entries: [entry(site)] }), "invalid_input", /not a site name/);
      }
    }));

  it("stolen_list, lookup and status on a site's subject are invalid_input", (c) =>
    nothingOnDisk(c, async () => {
      await expectError(from(c, "school1").call("stolenList", {}), "invalid_input", /with no site/);
      await expectError(from(c, "school1").call("lookup", { uid: "a".repeat(40) }), "invalid_input", /with no site/);
      await expectError(from(c, "school1").call("status", {}), "invalid_input", /with no site/);
    }));

  it("directory_list on a site's subject is invalid_input", (c) =>
    nothingOnDisk(c, async () => {
      await expectError(from(c, "school1").call("directoryList", {}), "invalid_input", /with no site/);
    }));

  it("a feed with a malformed uid is refused whole: invalid_input, nothing on disk", (c) =>
    nothingOnDisk(c, async () => {
      await expectError(from(c, "school1").call("directory", { entries: [entry("school1"), { ...entry("school1"), uid: "A".repeat(40) }] }), "invalid_input", /uid/);
    }));

  it("a feed with a malformed public key is invalid_input, nothing on disk", (c) =>
    nothingOnDisk(c, async () => {
      await expectError(from(c, "school1").call("directory", { entries: [{ ...entry("school1"), pubkey: "ssh-ed25519 AAAA" }] }), "invalid_input", /public key/);
    }));

  it("a feed with an entry naming another site is invalid_input, nothing on disk", (c) =>
    nothingOnDisk(c, async () => {
      await expectError(from(c, "school1").call("directory", { entries: [entry("school2")] }), "invalid_input", /names site "school2", fed by school1/);
    }));

  it("a feed with a malformed serial number, nickname or backup URL is invalid_input, nothing on disk", (c) =>
    nothingOnDisk(c, async () => {
      await expectError(from(c, "school1").call("directory", { entries: [{ ...entry("school1"), machineSn: "XO-1" }] }), "invalid_input", /machine_sn/);
      await expectError(from(c, "school1").call("directory", { entries: [{ ...entry("school1"), nickname: "a\u202eb" }] }), "invalid_input", /nickname/);
      await expectError(from(c, "school1").call("directory", { entries: [{ ...entry("school1"), backupUrl: "x\ny" }] }), "invalid_input", /backup_url/);
    }));

  it("a full feed part with an entry outside its range is invalid_input, nothing on disk", (c) =>
    nothingOnDisk(c, async () => {
      const e = entry("school1");
      await expectError(from(c, "school1").call("directory", { full: true, rangeFrom: "f".repeat(40), entries: [{ ...e, uid: "0".repeat(40), pubkey: "" }] }), "invalid_input", /outside the feed's range/);
    }));

  it("a feed with a key that is not the uid's is invalid_input, nothing on disk", (c) =>
    nothingOnDisk(c, async () => {
      await expectError(from(c, "school1").call("directory", { entries: [{ ...entry("school1"), pubkey: sshKey().line }] }), "invalid_input", /does not belong to uid/);
    }));

  it("a full feed with one bad entry removes nothing: invalid_input, nothing on disk", (c) =>
    nothingOnDisk(c, async () => {
      await expectError(from(c, "school1").call("directory", { full: true, entries: [{ ...entry("school1"), uid: "x" }] }), "invalid_input", /uid/);
    }));

  it("a lookup of a malformed uid is invalid_input", async (c) => {
    await district(c);
    await expectError(shared(c).call("lookup", { uid: "../etc/passwd" }), "invalid_input", /uid/);
  });

  it("bytes that are no request, or a request whose op is not the subject's, are invalid_input, nothing on disk", (c) =>
    nothingOnDisk(c, async () => {
      await expectRawError(c.bus, subjects.districtFrom("school1", "stolen"), new Uint8Array([0xff, 0x01]), "invalid_input");
      await expectRawError(c.bus, subjects.districtFrom("school1", "stolen"), pb.Request.encode({ directory: { entries: [entry("school1")] } }).finish(), "invalid_input", /does not match/);
    }));

  t.run();
}
