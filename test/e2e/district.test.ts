/**
 * A district on one machine (deploy/district/local-district.mjs): a NATS hub
 * with an account per school and the keyring's, two school leaf nodes with
 * their sugar-server processes, and the central keyring as its own process,
 * which is also the district CA: each school asks certificates only for
 * itself, through the subjects the hub exports to it alone.
 */
import { createPrivateKey } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { NatsBus } from "../../src/bus/nats.js";
import { keyringCaClient, keyringClient, registryClient } from "../../src/codec.js";
import { SugarError } from "../../src/errors.js";
import * as olpc from "../../lib/olpc/index.js";
import { makeKey } from "../support/keys.js";
import { vectors } from "../support/olpc-fixtures.js";
import { olpcVectorsDir } from "../support/paths.js";
import { localDistrict, onBus, type DistrictState, type LocalDistrict } from "../support/local-district.js";
import { makeCsr, opensslText, opensslVerify } from "../support/pki.js";
import { registryOnDisk } from "../support/registry-files.js";
import { requires, testsNeeding, TOOLS } from "../support/requires.js";
import { tempDir } from "../support/tmp.js";
import { waitFor } from "../support/wait.js";
import { xoActivate } from "../support/xo-client.js";
import { xoVerifyLease } from "../support/xo-verify.js";

const t = suite("district");
const requirement = requires(TOOLS.natsServer);
let district: LocalDistrict;
let state: DistrictState;
const dir = tempDir("sugar-district-");
// Test machines with delegations from the vector master key to the vector server key.
const machines = Array.from({ length: 4 }, (_, i) => ({ sn: `SHD0000000${i}`, uuid: `00000000-0000-4000-8000-00000000000${i}` }));

const needing = (...tools: Parameters<typeof requires>) => {
  const register = testsNeeding(t, requires(TOOLS.natsServer, ...tools));
  return (name: string, fn: () => Promise<void>) => register(`district: ${name}`, fn);
};
const it = needing();
const withKeys = needing(TOOLS.sshKeygen);
const withOpenssl = needing(TOOLS.openssl);
const withBoth = needing(TOOLS.openssl, TOOLS.sshKeygen);

// uvu runs hooks even when every test is skipped: start no district without nats-server.
t.before(async () => {
  if (!requirement.ok) return;
  const delegations = join(dir.path, "delegations.txt");
  const master = createPrivateKey(vectors.masterPem);
  const server = createPrivateKey(vectors.serverPem);
  writeFileSync(
    delegations,
    vectors.delegation + machines.map((m) => olpc.signDelegation({ ...m, delegationExpiry: "20991231T000000Z", rootKey: master, serverPublicKey: server })).join(""),
  );
  district = await localDistrict();
  state = await district.startDistrict(join(dir.path, "district"), {
    serverKey: join(olpcVectorsDir, "server.pem"),
    trust: join(olpcVectorsDir, "master.key01"),
    delegations,
  });
});
t.after(async () => {
  if (requirement.ok) await district.stopDistrict(join(dir.path, "district"));
  dir.remove();
});

const school = (i: number) => state.schools[i]!;
const rest = (i: number) => `http://127.0.0.1:${school(i).ports.http}`;
const xo = (i: number, sn: string) => xoActivate({ host: "127.0.0.1", port: school(i).ports.activation!, payload: sn, timeoutMs: 8000 });

withKeys("a registration at school 1 over REST is stored at school 1 only; school 2 answers it as a roamer at home at school 1", async () => {
  const key = makeKey(dir.path);
  const res = await fetch(`${rest(0)}/client/register`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ nickname: "Ana", pubkey: key.line }) });
  const body = (await res.json()) as Record<string, string>;
  assert.is(body.success, "OK", JSON.stringify(body));
  await registryOnDisk(school(0).root); // the file comes with the checkpoint, a moment after the reply
  assert.ok(existsSync(join(school(0).root, "home", "registry", "users", key.uid)));
  assert.not.ok(existsSync(join(school(1).root, "home", "registry", "users", key.uid)));
  // Through the district directory (school 1's registry feeds it, the district actor on the keyring host keeps it).
  const s2 = await waitFor("school 2 knows the roamer", async () => {
    const body = (await (await fetch(`${rest(1)}/client/status?uid=${key.uid}`)).json()) as Record<string, unknown>;
    return body.registered === true ? body : undefined;
  });
  assert.is(s2.home, "school1");
  assert.match(String(s2["backup-url"]), /:/);
  assert.not.ok(existsSync(join(school(1).root, "home", "registry", "users", key.uid)), "nothing stored at school 2");
});

it("school 1 cannot reach school 2's subjects", async () => {
  const bus = await NatsBus.connect({ servers: school(0).nats, timeoutMs: 2000 });
  try {
    assert.is((await registryClient(bus, "school1").call("status", { uid: "a".repeat(40) })).registered, false, "its own registry answers");
    try {
      await registryClient(bus, "school2").call("status", { uid: "a".repeat(40) });
      assert.unreachable("school 2's registry answered school 1");
    } catch (err) {
      assert.instance(err, SugarError);
      assert.ok(["unavailable", "timeout"].includes((err as SugarError).code), (err as SugarError).code);
    }
  } finally {
    await bus.close();
  }
});

it("the central keyring signs delegated leases for both schools; the XO accepts them with master as the only root", async () => {
  for (const i of [0, 1]) {
    const r = await xo(i, vectors.delegated.sn);
    const text = r.bytes.toString();
    assert.match(text, /^act01: SHC005007B7 K /, `school ${i + 1}: ${JSON.stringify(text)}`);
    assert.equal(xoVerifyLease({ line: text, ...vectors.delegated, trustedKey01Hex: [vectors.masterKey01], now: new Date() }), { ok: true });
  }
});

it("stopping and restarting the keyring needs no restart of anything else", async () => {
  const d = join(dir.path, "district");
  await district.stopKeyring(d);
  const started = Date.now();
  const down = await xo(0, machines[0]!.sn);
  assert.is(down.bytes.length, 0, "keyring down: an empty reply, the XO tries its next network");
  assert.ok(Date.now() - started < 2500, `answered in ${Date.now() - started} ms`);
  await district.restartKeyring(d);
  const text = await waitFor("a lease once the keyring is back", async () => {
    const r = (await xo(0, machines[0]!.sn)).bytes.toString();
    return r.startsWith("act01:") ? r : undefined;
  });
  assert.equal(xoVerifyLease({ line: text, ...machines[0]!, trustedKey01Hex: [vectors.masterKey01], now: new Date() }), { ok: true });
  const other = (await xo(1, machines[1]!.sn)).bytes.toString();
  assert.equal(xoVerifyLease({ line: other, ...machines[1]!, trustedKey01Hex: [vectors.masterKey01], now: new Date() }), { ok: true });
});

// --- the district CA ---------------------------------------------------------

const caPem = () => readFileSync(join(state.keyring.root, "keyring", "ca.crt"), "utf8");

/** A bus connected to school i's leaf node, as that school's servers are. */
const onSchoolBus = <T>(i: number, fn: (bus: NatsBus) => Promise<T>) => onBus(school(i).nats, fn);

withOpenssl("school 1 gets a server certificate for its own name from the district CA; openssl verifies it against ca.crt", async () => {
  const r = await onSchoolBus(0, async (bus) => keyringCaClient(bus, "school1").call("serverCert", { csr: await makeCsr(), names: [] }));
  assert.equal([...r.names!], ["school1.schoolserver.lan"]);
  assert.is(r.ca, caPem());
  const v = await opensslVerify(caPem(), r.certificate!, "sslserver");
  assert.ok(v.ok, v.out);
  assert.match(await opensslText(r.certificate!), /DNS:school1.schoolserver.lan\n/);
});

withOpenssl("school 1 cannot get a server certificate for school 2's name", async () => {
  await onSchoolBus(0, async (bus) => {
    try {
      await keyringCaClient(bus, "school1").call("serverCert", { csr: await makeCsr(), names: ["school2.schoolserver.lan"] });
      assert.unreachable("the CA signed school 2's name for school 1");
    } catch (err) {
      assert.instance(err, SugarError);
      assert.is((err as SugarError).code, "forbidden", (err as Error).message);
    }
  });
});

withOpenssl("school 1 cannot ask on school 2's CA subject: the hub gives it no route there", async () => {
  await onSchoolBus(0, async (bus) => {
    try {
      await keyringCaClient(bus, "school2", { timeoutMs: 2000 }).call("serverCert", { csr: await makeCsr() });
      assert.unreachable("sugar.keyring.school2.server_cert answered school 1");
    } catch (err) {
      assert.instance(err, SugarError);
      assert.ok(["unavailable", "timeout"].includes((err as SugarError).code), (err as SugarError).code);
    }
  });
});

it("a school reaches the keyring's signing, never its admin ops: it cannot make the district trust its own lease key", async () => {
  const trusted = join(state.keyring.root, "keyring", "trusted.key01");
  const before = existsSync(trusted) ? readFileSync(trusted, "utf8") : "";
  await onSchoolBus(0, async (bus) => {
    const keyring = keyringClient(bus, { timeoutMs: 2000 });
    for (const [op, body] of [["trust", { text: vectors.serverKey01 }], ["import", { text: "" }], ["init", { ca: true }], ["show", {}]] as const) {
      try {
        await keyring.call(op, body as never);
        assert.unreachable(`sugar.keyring.${op} answered a school`);
      } catch (err) {
        assert.instance(err, SugarError);
        assert.ok(["unavailable", "timeout"].includes((err as SugarError).code), `${op}: ${(err as SugarError).code}`);
      }
    }
  });
  assert.is(existsSync(trusted) ? readFileSync(trusted, "utf8") : "", before, "trusted.key01 unchanged");
});

withBoth("a client certificate only for a uid the asking school registered: school 2's user is refused to school 1, granted to school 2", async () => {
  const key = makeKey(dir.path);
  const res = await fetch(`${rest(1)}/client/register`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ nickname: "Bea", pubkey: key.line }) });
  assert.is(((await res.json()) as Record<string, string>).success, "OK");
  await onSchoolBus(0, async (bus) => {
    try {
      await keyringCaClient(bus, "school1").call("clientCert", { csr: await makeCsr(), uid: key.uid });
      assert.unreachable("school 1 got a certificate for school 2's user");
    } catch (err) {
      assert.instance(err, SugarError);
      assert.is((err as SugarError).code, "forbidden", (err as Error).message);
      assert.match((err as Error).message, /not registered at school1/);
    }
  });
  const r = await onSchoolBus(1, async (bus) => keyringCaClient(bus, "school2").call("clientCert", { csr: await makeCsr(), uid: key.uid }));
  const v = await opensslVerify(caPem(), r.certificate!, "sslclient");
  assert.ok(v.ok, v.out);
  assert.match(await opensslText(r.certificate!), new RegExp(`Subject: O ?= ?school2, CN ?= ?${key.uid}\n`));
});

t.run();
