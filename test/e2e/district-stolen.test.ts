/**
 * The district's subjects through the hub's accounts (deploy/district/
 * local-district.mjs, with school2 not allowed district marks): what each
 * school may ask, publish and hear, and the district actors on two keyring
 * hosts keeping the list in step through a kill -9 and a restart. The
 * schools' own use of it (lease and registry actors) is tested elsewhere.
 */
import { createHash, generateKeyPairSync } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { sugar } from "../../schemas/gen/messages.js";
import { subjects } from "../../src/bus/subjects.js";
import { NatsBus } from "../../src/bus/nats.js";
import { districtClient, districtFromClient } from "../../src/codec.js";
import { SugarError } from "../../src/errors.js";
import { localDistrict, type DistrictState, type LocalDistrict } from "../support/local-district.js";
import { requires, testsNeeding, TOOLS } from "../support/requires.js";
import { tempDir } from "../support/tmp.js";
import { waitFor } from "../support/wait.js";

const t = suite("district-stolen");
const requirement = requires(TOOLS.natsServer);
const register = testsNeeding(t, requirement);
const it = (name: string, fn: () => Promise<void>) => register(`district-stolen: ${name}`, fn);
let district: LocalDistrict;
let state: DistrictState;
const dir = tempDir("sugar-district-stolen-");
const districtDir = join(dir.path, "district");
const buses: NatsBus[] = [];

t.before(async () => {
  if (!requirement.ok) return;
  district = await localDistrict();
  state = await district.startDistrict(districtDir, { districtMarks: ["school1"] });
});
t.after(async () => {
  for (const b of buses) await b.close();
  if (requirement.ok) await district.stopDistrict(districtDir);
  dir.remove();
});

/** A connection to a school's leaf node: what that school's processes can do. */
async function schoolBus(i: number): Promise<NatsBus> {
  const bus = await NatsBus.connect({ servers: state.schools[i]!.nats, timeoutMs: 4000, reconnectTimeWaitMs: 100 });
  buses.push(bus);
  return bus;
}
const stolenOnDisk = (root: string): string[] => {
  const f = join(root, "district", "stolen");
  if (!existsSync(f)) return [];
  return (JSON.parse(readFileSync(f, "utf8")) as { marks: Array<{ machineSn: string; stolen: boolean }> }).marks.filter((m) => m.stolen).map((m) => m.machineSn).sort();
};
async function refused(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    assert.instance(err, SugarError);
    return (err as SugarError).code;
  }
  assert.unreachable("answered");
  return "";
}
function sshKey(): { line: string; uid: string } {
  const raw = generateKeyPairSync("ed25519").publicKey.export({ format: "der", type: "spki" }).subarray(-32);
  const str = (b: Buffer) => Buffer.concat([Buffer.from([0, 0, 0, b.length]), b]);
  const body = Buffer.concat([str(Buffer.from("ssh-ed25519")), str(raw)]).toString("base64");
  return { line: `ssh-ed25519 ${body}`, uid: createHash("sha1").update(body).digest("hex") };
}

it("an allowed school marks a machine stolen for the district; every school hears it and lists it; a school not allowed finds no responders", async () => {
  const [s1, s2] = [await schoolBus(0), await schoolBus(1)];
  const heard: string[] = [];
  s2.subscribe(subjects.districtEvent("stolen"), (data) => void heard.push(sugar.district.Mark.decode(data).machineSn));
  await s2.flush();
  const r = await districtFromClient(s1, "school1").call("stolen", { machineSn: "SHF0000000A", stolen: true });
  assert.equal([r.changed, r.mark!.by], [true, "school1"]);
  await waitFor("school2 hears the mark", () => heard.includes("SHF0000000A"));
  assert.equal((await districtClient(s2).call("stolenList", {})).marks!.map((m) => m.machineSn), ["SHF0000000A"]);
  assert.is(await refused(districtFromClient(s2, "school2").call("stolen", { machineSn: "SHF0000000B", stolen: true })), "unavailable");
  assert.is(await refused(districtFromClient(s1, "school2").call("stolen", { machineSn: "SHF0000000B", stolen: true })), "unavailable", "school1 cannot mark as school2");
  assert.is(await refused(districtFromClient(s1, "school2").call("directory", { digest: "" })), "unavailable", "school1 cannot feed as school2");
  assert.equal(stolenOnDisk(state.keyring.root), ["SHF0000000A"]);
});

it("a school's own publication on the district's events reaches neither the district actor nor another school", async () => {
  const [s1, s2] = [await schoolBus(0), await schoolBus(1)];
  const heard: string[] = [];
  s2.subscribe(subjects.districtEvent("stolen"), (data) => void heard.push(sugar.district.Mark.decode(data).machineSn));
  await s2.flush();
  s1.publish(subjects.districtEvent("stolen"), sugar.district.Mark.encode({ machineSn: "SHF0000000F", stolen: true, at: "2030-01-01T00:00:00.000Z", by: "school1" }).finish());
  await s1.flush();
  await districtFromClient(s1, "school1").call("stolen", { machineSn: "SHF0000000C", stolen: true });
  await waitFor("the real mark", () => heard.includes("SHF0000000C"));
  assert.not.ok(heard.includes("SHF0000000F"), "the forged event stayed in school1's account");
  assert.not.ok(stolenOnDisk(state.keyring.root).includes("SHF0000000F"));
});

it("the directory: a school's feed is looked up from another school, which cannot claim the uid", async () => {
  const [s1, s2] = [await schoolBus(0), await schoolBus(1)];
  const key = sshKey();
  const fed = await districtFromClient(s1, "school1").call("directory", { entries: [{ uid: key.uid, nickname: "Ana", pubkey: key.line, backupUrl: "schoolserver@school1.lan:backup/1" }] });
  assert.is(fed.accepted, 1);
  const found = (await districtClient(s2).call("lookup", { uid: key.uid })).entry!;
  assert.equal([found.site, found.backupUrl], ["school1", "schoolserver@school1.lan:backup/1"]);
  const claim = await districtFromClient(s2, "school2").call("directory", { entries: [{ uid: key.uid, nickname: "Ana", pubkey: key.line, backupUrl: "schoolserver@school2.lan:backup/1" }] });
  assert.equal(claim.refused!.map((r) => r.reason), ["uid is at home at school1"]);
});

it("a second keyring host catches up at start; with the first killed -9 the district still answers, and the first catches up when it is back", async () => {
  const s1 = await schoolBus(0);
  state = await district.startSecondKeyring(districtDir);
  const second = state.keyring2!.root;
  assert.equal(stolenOnDisk(second), stolenOnDisk(state.keyring.root), "caught up before it served");
  await district.killKeyring(districtDir, 0, "SIGKILL");
  const r = await districtFromClient(s1, "school1").call("stolen", { machineSn: "SHF0000000D", stolen: true });
  assert.is(r.changed, true);
  assert.ok(stolenOnDisk(second).includes("SHF0000000D"));
  await district.restartKeyring(districtDir, 0);
  assert.ok(stolenOnDisk(state.keyring.root).includes("SHF0000000D"), "the first caught up from the second at start");
});

it("a school cut off from the hub gets no answer; with its link back it reaches the district again", async () => {
  const s2 = await schoolBus(1);
  await district.stopLeaf(districtDir, "school2");
  assert.ok(["unavailable", "timeout"].includes(await refused(districtClient(s2, { timeoutMs: 1000 }).call("stolenList", {}))));
  await district.startLeaf(districtDir, "school2");
  const list = await waitFor("school2 reaches the district again", async () => (await districtClient(s2, { timeoutMs: 1000 }).call("stolenList", {})).marks ?? undefined, 20000, 200);
  assert.ok(list.some((m) => m.machineSn === "SHF0000000D"));
});

t.run();
