/**
 * A district that keeps working (issue 15), on one machine with the real
 * parts of deploy/: a NATS hub with an account per school, two school leaf
 * nodes, each school's sugar-server, and two keyring hosts (`run keyring
 * district`, the second with a copy of the first's keyring directory). A
 * school's link to the hub is cut and mended with local-district's cutLink
 * and restoreLink (its leaf node and its own bus keep running).
 * School 1 may publish district stolen marks, school 2 may not (hub.conf's
 * exports). Schools check the district every second (district-sync-seconds)
 * and renew leases expiring within 30 days every second (lease-renew-seconds).
 */
import { createPrivateKey } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { sugar } from "../../schemas/gen/messages.js";
import { NatsBus } from "../../src/bus/nats.js";
import { subjects } from "../../src/bus/subjects.js";
import { districtFromClient, keyringClient, leaseClient } from "../../src/codec.js";
import { SugarError } from "../../src/errors.js";
import * as olpc from "../../lib/olpc/index.js";
import { pythonRegister } from "../support/console.js";
import { makeKey } from "../support/keys.js";
import { vectors } from "../support/olpc-fixtures.js";
import { opensslVerifyPss } from "../support/openssl.js";
import { olpcVectorsDir } from "../support/paths.js";
import { localDistrict, onBus, type DistrictState, type LocalDistrict } from "../support/local-district.js";
import { requires, testsNeeding, TOOLS } from "../support/requires.js";
import { runCli } from "../support/server.js";
import { tempDir } from "../support/tmp.js";
import { waitFor } from "../support/wait.js";
import { xoActivate } from "../support/xo-client.js";
import { leaseSignedBytes, parseAct01, xoVerifyLease } from "../support/xo-verify.js";

const t = suite("district-offline");
const requirement = requires(TOOLS.natsServer);
let district: LocalDistrict;
let state: DistrictState;
const dir = tempDir("sugar-district-offline-");
const districtDir = () => join(dir.path, "district");
const DAY_MS = 24 * 3600 * 1000;

// Machines with delegations from the vectors' master key to the vectors' server key (the keyrings' key).
const machine = (i: number) => ({ sn: `SHD${String(i).padStart(8, "0")}`, uuid: `00000000-0000-4000-8000-${String(i).padStart(12, "0")}` });
const STORM = 60;
const machines = Array.from({ length: 10 + STORM }, (_, i) => machine(i));
const [stolenAtOne, stolenWhileCut, notAllowed, ahead1, ahead2, ahead3] = machines;
const stormMachines = machines.slice(10);

const needing = (...tools: Parameters<typeof requires>) => {
  const register = testsNeeding(t, requires(TOOLS.natsServer, ...tools));
  return (name: string, fn: () => Promise<void>) => register(`district-offline: ${name}`, fn);
};
const it = needing();
const withKeys = needing(TOOLS.sshKeygen);
const withOpenssl = needing(TOOLS.openssl);
const withKeysAndPython = needing(TOOLS.sshKeygen, TOOLS.python3);

t.before(async () => {
  if (!requirement.ok) return;
  const delegations = join(dir.path, "delegations.txt");
  const master = createPrivateKey(vectors.masterPem);
  const server = createPrivateKey(vectors.serverPem);
  writeFileSync(delegations, machines.map((m) => olpc.signDelegation({ ...m, delegationExpiry: "20991231T000000Z", rootKey: master, serverPublicKey: server })).join(""));
  district = await localDistrict();
  state = await district.startDistrict(districtDir(), {
    serverKey: join(olpcVectorsDir, "server.pem"),
    trust: join(olpcVectorsDir, "master.key01"),
    delegations,
    districtMarks: ["school1"],
    schoolArgs: ["--district-sync-seconds", "1", "--lease-renew-seconds", "1", "--activation-per-source", "1000", "--activation-concurrency", "100"],
  });
  await district.startSecondKeyring(districtDir());
});
t.after(async () => {
  if (requirement.ok) await district.stopDistrict(districtDir());
  dir.remove();
});

const school = (i: number) => state.schools[i]!;
const rest = (i: number) => `http://127.0.0.1:${school(i).ports.http}`;
const xo = (i: number, sn: string) => xoActivate({ host: "127.0.0.1", port: school(i).ports.activation!, payload: sn, timeoutMs: 8000 });
const cli = (i: number, args: string[]) => runCli([...args, "--nats", school(i).nats, "--site", school(i).site, "--root", school(i).root]);
const answer = async (i: number, sn: string) => (await xo(i, sn)).bytes.toString();
const STOLEN = "STOLEN";

const onSchoolBus = <T>(i: number, fn: (bus: NatsBus) => Promise<T>) => onBus(school(i).nats, fn);

// --- the district's stolen list ---------------------------------------------

it("a district stolen mark made at school 1 makes school 2 answer STOLEN within 1 s; stolen list says where it came from", async () => {
  assert.match(await answer(1, stolenAtOne!.sn), /^act01: /, "a lease before the mark");
  const r = await cli(0, ["stolen", "add", stolenAtOne!.sn, "--district"]);
  assert.is(r.code, 0, r.stderr);
  const marked = Date.now();
  await waitFor("school 2 answers STOLEN", async () => (await answer(1, stolenAtOne!.sn)) === STOLEN || undefined, 1000);
  assert.ok(Date.now() - marked <= 1000, `${Date.now() - marked} ms`);
  assert.is(await answer(0, stolenAtOne!.sn), STOLEN, "school 1 too");
  const list = await cli(1, ["stolen", "list"]);
  assert.is(list.code, 0, list.stderr);
  assert.match(list.stdout, new RegExp(`${stolenAtOne!.sn}.*district.*school1`));
  // Each school stores the mark itself: its own file, not the admin's.
  assert.match(readFileSync(join(school(1).root, "share", "stolen-district"), "utf8"), new RegExp(stolenAtOne!.sn));
  const adminFile = join(school(1).root, "share", "stolen");
  assert.not.ok(existsSync(adminFile) && readFileSync(adminFile, "utf8").replace(/^#.*$/gm, "").includes(stolenAtOne!.sn), "the admin's own list is untouched");
});

it("school 2 cut off from the hub misses a mark; once its link is back it answers STOLEN (it asks for the list)", async () => {
  await district.cutLink(districtDir(), "school2");
  try {
    const r = await cli(0, ["stolen", "add", stolenWhileCut!.sn, "--district"]);
    assert.is(r.code, 0, r.stderr);
    await waitFor("school 1 answers STOLEN", async () => (await answer(0, stolenWhileCut!.sn)) === STOLEN || undefined, 2000);
  } finally {
    await district.restoreLink(districtDir(), "school2");
  }
  await waitFor("school 2 catches up", async () => (await answer(1, stolenWhileCut!.sn)) === STOLEN || undefined, 15000);
});

it("stolen remove --district clears the mark at every school", async () => {
  const r = await cli(0, ["stolen", "remove", stolenAtOne!.sn, "--district"]);
  assert.is(r.code, 0, r.stderr);
  for (const i of [0, 1]) await waitFor(`school ${i + 1} serves a lease again`, async () => /^act01: /.test(await answer(i, stolenAtOne!.sn)) || undefined, 2000);
});

it("a school the hub does not let publish district marks is told so, and no school marks the machine", async () => {
  const r = await cli(1, ["stolen", "add", notAllowed!.sn, "--district"]);
  assert.is.not(r.code, 0);
  assert.match(r.stderr, /not allowed/i);
  for (const i of [0, 1]) assert.match(await answer(i, notAllowed!.sn), /^act01: /);
  // And it cannot speak for school 1 either: the hub gives it no route to school 1's subject.
  await onSchoolBus(1, async (bus) => {
    try {
      await districtFromClient(bus, "school1", { timeoutMs: 1500 }).call("stolen", { machineSn: notAllowed!.sn, stolen: true });
      assert.unreachable("school 2 published a mark as school 1");
    } catch (err) {
      assert.instance(err, SugarError);
      assert.ok(["unavailable", "timeout"].includes((err as SugarError).code), (err as SugarError).code);
    }
  });
});

it("a malformed mark on the bus, or a mark a school publishes itself on the district's subject, changes nothing anywhere", async () => {
  const file = join(school(1).root, "share", "stolen-district");
  const before = readFileSync(file, "utf8");
  // The keyring host's own account: where the district's events are published.
  await onBus(state.keyring.nats, async (bus) => {
    bus.publish(subjects.districtEvent("stolen"), Buffer.from("not a protobuf \xff\xff"));
    bus.publish(subjects.districtEvent("stolen"), sugar.district.Mark.encode({ machineSn: "not a serial", stolen: true, at: new Date().toISOString(), by: "school1" }).finish());
  });
  await onSchoolBus(0, async (bus) => {
    bus.publish(subjects.districtEvent("stolen"), sugar.district.Mark.encode({ machineSn: notAllowed!.sn, stolen: true, at: new Date().toISOString(), by: "school1" }).finish());
  });
  // A real mark afterwards arrives: the bad ones before it were read and dropped.
  assert.is((await cli(0, ["stolen", "add", stolenAtOne!.sn, "--district"])).code, 0);
  await waitFor("the real mark at school 2", async () => (await answer(1, stolenAtOne!.sn)) === STOLEN || undefined, 2000);
  assert.match(await answer(1, notAllowed!.sn), /^act01: /, "school 1's own publication never reached school 2");
  assert.is(readFileSync(file, "utf8").replace(new RegExp(`.*${stolenAtOne!.sn}.*\n`), ""), before.replace(new RegExp(`.*${stolenAtOne!.sn}.*\n`), ""));
});

// --- leases ahead of need ------------------------------------------------------

withOpenssl("school 2 renews leases that expire inside 30 days, then serves them for 30 days cut off from the hub; openssl verifies them", async () => {
  const soon = [ahead1!, ahead2!, ahead3!];
  // Leases that expire in 10 days, signed by the district keyring and imported at school 2.
  const text = await onSchoolBus(1, async (bus) => {
    const lines = [];
    for (const m of soon) lines.push((await keyringClient(bus).call("sign", { machineSn: m.sn, days: 10 })).lease!);
    return lines.join("");
  });
  const file = join(dir.path, "soon.leases");
  writeFileSync(file, text);
  const imp = await cli(1, ["leases", "import", file]);
  assert.is(imp.code, 0, imp.stderr);
  const in30 = Date.now() + 30 * DAY_MS;
  await waitFor("the renewer renews them", async () => {
    const leases = await onSchoolBus(1, (bus) => Promise.all(soon.map((m) => leaseClient(bus, "school2").call("show", { machineSn: m.sn }))));
    return leases.every((l) => olpc.parseLeaseLine(l.lease!.split("\n")[0]!).expiresAt !== "never" && (olpc.parseLeaseLine(l.lease!.split("\n")[0]!).expiresAt as Date).getTime() > in30) || undefined;
  }, 15000);
  await district.cutLink(districtDir(), "school2");
  try {
    for (const m of soon) {
      const line = await answer(1, m.sn);
      assert.match(line, /^act01: /);
      // Thirty days on, with no link to the keyring, the XO still boots.
      assert.equal(xoVerifyLease({ line, ...m, trustedKey01Hex: [vectors.masterKey01], now: new Date(in30 + DAY_MS) }), { ok: true });
      const exp = (parseAct01(line) as { exp: string }).exp;
      assert.ok(await opensslVerifyPss({ key01Hex: vectors.serverKey01, signedBytes: leaseSignedBytes(m.sn, exp, m.uuid, "K", exp), signatureHex: line.trimEnd().split(" ").at(-1)! }));
    }
  } finally {
    await district.restoreLink(districtDir(), "school2");
  }
});

// --- a keyring that can die ----------------------------------------------------

it("one of two keyrings killed with SIGKILL mid-storm: every XO of the storm still gets its lease", async () => {
  let answered = 0;
  let killed = false;
  const results = await Promise.all(
    stormMachines.map(async (m) => {
      const r = await answer(0, m.sn);
      answered++;
      if (!killed && answered >= 5) {
        killed = true;
        await district.killKeyring(districtDir(), 0, "SIGKILL");
      }
      return { m, r };
    }),
  );
  assert.ok(killed, "the keyring was killed during the storm");
  const unanswered = results.filter(({ r }) => !/^act01: /.test(r));
  assert.is(unanswered.length, 0, `unanswered: ${unanswered.map(({ m, r }) => `${m.sn} ${JSON.stringify(r)}`).join(", ")}`);
  for (const { m, r } of results) assert.equal(xoVerifyLease({ line: r, ...m, trustedKey01Hex: [vectors.masterKey01], now: new Date() }), { ok: true });
});

// --- roaming -----------------------------------------------------------------

withKeysAndPython("a laptop registered at school 1 turns up at school 2: status and register() answer its uid at home at school 1; school 2 stores nothing", async () => {
  const key = makeKey(dir.path);
  const res = await fetch(`${rest(0)}/client/register`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ nickname: "Ana", pubkey: key.line }) });
  const reg = (await res.json()) as Record<string, string>;
  assert.is(reg.success, "OK", JSON.stringify(reg));
  const home = (await (await fetch(`${rest(0)}/client/status?uid=${key.uid}`)).json()) as Record<string, unknown>;
  const s2 = await waitFor("school 2 knows the roamer", async () => {
    const s = (await (await fetch(`${rest(1)}/client/status?uid=${key.uid}`)).json()) as Record<string, unknown>;
    return s.registered ? s : undefined;
  }, 5000);
  assert.is(s2.home, "school1");
  assert.is(s2["backup-url"], home["backup-url"], "backups stay at home");
  const r = (await pythonRegister(`http://127.0.0.1:${school(1).ports.xmlrpc}/`, "SHC00000001", "Ana", "11111111-2222-3333-4444-555555555555", key.body)) as Record<string, string>;
  assert.is(r.success, "OK");
  assert.is(r.uid, key.uid);
  assert.is(r.backupurl, home["backup-url"]);
  assert.not.ok(existsSync(join(school(1).root, "home", "registry", "users", key.uid)), "nothing stored at school 2");
  // Cut off from the hub, school 2 answers from what it knows.
  await district.cutLink(districtDir(), "school2");
  try {
    const off = (await (await fetch(`${rest(1)}/client/status?uid=${key.uid}`)).json()) as Record<string, unknown>;
    assert.is(off.registered, true);
    assert.is(off.home, "school1");
  } finally {
    await district.restoreLink(districtDir(), "school2");
  }
});

withKeys("a school feeding the directory with another school's uid is refused; the directory keeps the home school's entry", async () => {
  const key = makeKey(dir.path);
  const res = await fetch(`${rest(0)}/client/register`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ nickname: "Bo", pubkey: key.line }) });
  assert.is(((await res.json()) as Record<string, string>).success, "OK");
  await waitFor("school 2 sees Bo at home at school 1", async () => ((await (await fetch(`${rest(1)}/client/status?uid=${key.uid}`)).json()) as Record<string, unknown>).home === "school1" || undefined, 5000);
  const r = await onSchoolBus(1, (bus) =>
    districtFromClient(bus, "school2").call("directory", { entries: [{ uid: key.uid, site: "school2", nickname: "Mallory", pubkey: `${key.type} ${key.body}`, backupUrl: "mallory@evil:datastore-current" }] }),
  );
  assert.is(r.refused?.length, 1, JSON.stringify(r));
  assert.match(r.refused![0]!.reason!, /school1/);
  const again = (await (await fetch(`${rest(1)}/client/status?uid=${key.uid}`)).json()) as Record<string, unknown>;
  assert.is(again.home, "school1");
});

t.run();
