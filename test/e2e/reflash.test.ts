/**
 * The takeover the sugar-server seed documents, tried end to end with a
 * real sshd and rsync: key F registers with a serial number and backs up a
 * private file; key G registers with the same serial number (and, under
 * identity-model = hardware, with or without the machine's UUID). Under
 * every `reflash` value but `allow`, G gets nothing of F's; an admin's
 * `users approve` then hands G F's Journal and retires F.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { startAuth } from "../../actors/auth/index.js";
import { startBackup } from "../../actors/backup/index.js";
import { clientDir } from "../../actors/backup/paths.js";
import { startRegistry } from "../../actors/registry/index.js";
import { MemoryBus } from "../../src/bus/memory.js";
import { authClient, backupClient, registryClient, type AuthClient, type BackupClient, type RegistryClient } from "../../src/codec.js";
import type { Component } from "../../src/component.js";
import { configWith, type OptionName } from "../../src/config.js";
import { SugarError } from "../../src/errors.js";
import { silentLogger } from "../../src/log.js";
import type { Uid } from "../../src/validate.js";
import { makeKey, type TestKey } from "../support/keys.js";
import { requires, testsNeeding, toolBin, TOOLS } from "../support/requires.js";
import { rsyncAs, SSHD_TOOLS, startSshd, type Sshd } from "../support/sshd.js";
import { tempDir } from "../support/tmp.js";
import { waitFor } from "../support/wait.js";
import { expectError } from "../support/bus-errors.js";

const SN = "SHF72500A06";
const UUID = "8BF9AC40-26F8-4BCC-A699-BE51FD366419";
const requirement = requires(...SSHD_TOOLS, TOOLS.rrsync, TOOLS.sshKeygen);

interface School {
  tmp: ReturnType<typeof tempDir>;
  root: string;
  bus: MemoryBus;
  actors: Component[];
  registry: RegistryClient;
  backups: BackupClient;
  auth: AuthClient;
  sshd: Sshd;
  stop(): Promise<void>;
}

async function school(overrides: Partial<Record<OptionName, string>>): Promise<School> {
  const tmp = tempDir("sugar-reflash-");
  const root = join(tmp.path, "root");
  const config = configWith({
    root,
    site: "school",
    "backup-user": "sugar",
    "backup-host": "xs.example",
    "backup-max-load": 1000,
    "backup-min-free": 0,
    "bus-timeout": 5000,
    "rrsync-path": toolBin(TOOLS.rrsync),
    ...overrides,
  });
  const bus = new MemoryBus({ timeoutMs: 5000 });
  const actors: Component[] = [];
  for (const start of [startRegistry, startAuth, startBackup]) actors.push(await start({ bus, config, log: silentLogger }));
  const sshd = await startSshd({ authorizedKeysFiles: [join(root, ".ssh", "authorized_keys")] });
  return {
    tmp,
    root,
    bus,
    actors,
    sshd,
    registry: registryClient(bus, "school", { timeoutMs: 5000 }),
    backups: backupClient(bus, "school", { timeoutMs: 30000 }),
    auth: authClient(bus, "school", { timeoutMs: 5000 }),
    async stop() {
      await sshd.stop();
      for (const a of actors.reverse()) await a.stop();
      await bus.close();
      tmp.remove();
    },
  };
}

const keysFile = (s: School) => readFileSync(join(s.root, ".ssh", "authorized_keys"), "utf8");
const hasLine = (s: School, uid: string) => keysFile(s).includes(` ${uid}" `);

/** F registers, backs up a private file and waits for its snapshot. */
async function childF(s: School): Promise<TestKey> {
  await s.registry.call("machine", { machineSn: SN, machineUuid: UUID, source: "admin" });
  const f = makeKey(s.tmp.path);
  await s.registry.call("register", { nickname: "Ana", pubkey: f.line, machineSn: SN, machineUuid: UUID });
  await waitFor("F's key line", () => hasLine(s, f.uid));
  const src = join(s.tmp.path, "journal-f");
  mkdirSync(src);
  writeFileSync(join(src, "diario.txt"), "F's private diary\n");
  const r = await rsyncAs(s.sshd, f.privatePath, ["-rlt", `${src}/`, s.sshd.remote("datastore-current")]);
  assert.is(r.code, 0, r.stderr);
  await waitFor("F's snapshot", () => readdirSync(clientDir(s.root, f.uid)).some((n) => n.startsWith("datastore-2")));
  return f;
}

/** What G's own rsync can read on the server: its whole tree, listed. */
async function whatGSees(s: School, g: TestKey): Promise<string[]> {
  const out = join(s.tmp.path, `seen-${g.uid.slice(0, 8)}-${Date.now()}`);
  mkdirSync(out);
  const r = await rsyncAs(s.sshd, g.privatePath, ["-rlt", s.sshd.remote("./"), `${out}/`]);
  assert.is(r.code, 0, r.stderr);
  const files: string[] = [];
  const walk = (d: string, rel: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name), `${rel}${e.name}/`);
      else files.push(`${rel}${e.name}`);
    }
  };
  walk(out, "");
  return files;
}


const t = suite("reflash e2e");
const test = testsNeeding(t, requirement);

for (const model of ["sshkey", "hardware"] as const) {
  test(`reflash: approve (${model}): G registers as its own user with an empty directory, F stays; after users approve G restores F's Journal and F is retired`, async () => {
    const s = await school({ "identity-model": model, reflash: "approve" });
    try {
      const f = await childF(s);
      const g = makeKey(s.tmp.path);
      const r = await s.registry.call("register", { nickname: "Ana (new)", pubkey: g.line, machineSn: SN, machineUuid: UUID });
      assert.is(r.user?.uid, g.uid);
      assert.is(r.created, true);
      assert.is(r.claimedUid, f.uid);
      assert.is(r.approved, false);
      assert.ok(r.credential, "G's first registration gets a credential");
      await waitFor("G's key line", () => hasLine(s, g.uid));
      assert.ok(hasLine(s, f.uid), "F's line stays");
      assert.is((await s.registry.call("status", { uid: f.uid })).registered, true);
      assert.equal(await whatGSees(s, g), [], "G's own directory is empty: nothing of F's");
      assert.is(readFileSync(join(clientDir(s.root, f.uid), "datastore-current", "diario.txt"), "utf8"), "F's private diary\n", "F's backups untouched");

      const pending = (await s.registry.call("claims", {})).claims ?? [];
      assert.equal(pending.map((c) => [c.newUid, c.oldUid, c.machineSn]), [[g.uid, f.uid, SN]]);
      await s.registry.call("approve", { newUid: g.uid });
      await waitFor("F's line to go", () => !hasLine(s, f.uid));
      assert.is((await s.registry.call("status", { uid: f.uid })).registered, false, "F is retired");
      await waitFor("G's pending restore", async () => !!(await s.backups.call("status", { uid: g.uid })).pendingRestore);
      const out = join(s.tmp.path, "restored");
      mkdirSync(out);
      const restore = await rsyncAs(s.sshd, g.privatePath, ["-rlt", s.sshd.remote("datastore-latest/"), `${out}/`]);
      assert.is(restore.code, 0, restore.stderr);
      assert.is(readFileSync(join(out, "diario.txt"), "utf8"), "F's private diary\n", "G restores F's Journal");
      assert.equal((await s.registry.call("claims", {})).claims ?? [], []);
      assert.is((await s.registry.call("lookup", { machineSn: SN })).user?.uid, g.uid, "the serial number is G's now");
    } finally {
      await s.stop();
    }
  });
}

test("reflash: approve: a claim that comes with a login the OLD key proved (ssh-keygen -Y sign) is approved at once; one bought with a credential is not", async () => {
  const s = await school({ reflash: "approve" });
  try {
    const f = await childF(s);
    const asProof = (h: Record<string, string>) => ({ uid: h["X-Sugar-Uid"], time: h["X-Sugar-Auth-Time"], lifetime: h["X-Sugar-Auth-Expires"], auth: h["X-Sugar-Auth"] });
    // A credential proves nothing about the key: whoever first registered F's public key holds one.
    const fCred = (await s.auth.call("issue", { uid: f.uid as Uid, machineSn: SN })).credential ?? "";
    const byCredential = (await s.auth.call("login", { credential: fCred, source: "127.0.0.1" })).headers ?? {};
    const stranger = makeKey(s.tmp.path);
    const held = await s.registry.call("register", { nickname: "Ana", pubkey: stranger.line, machineSn: SN, proof: asProof(byCredential) });
    assert.equal([held.claimedUid, held.approved], [f.uid, false], "a credential's token leaves the claim to an admin");
    assert.ok(hasLine(s, f.uid));
    await s.registry.call("reject", { newUid: stranger.uid });
    // The child kept owner.key: it signs a challenge, and that login settles the claim.
    const ch = await s.auth.call("challenge", { uid: f.uid as Uid });
    const nonceFile = join(s.tmp.path, "nonce");
    writeFileSync(nonceFile, ch.nonce ?? "");
    execFileSync(toolBin(TOOLS.sshKeygen), ["-Y", "sign", "-n", "sugar-server", "-f", f.privatePath, nonceFile], { stdio: "ignore" });
    const proved = await s.auth.call("prove", { uid: f.uid as Uid, nonce: ch.nonce, signature: readFileSync(`${nonceFile}.sig`, "utf8"), source: "127.0.0.1" });
    const g = makeKey(s.tmp.path);
    const r = await s.registry.call("register", { nickname: "Ana", pubkey: g.line, machineSn: SN, proof: asProof(proved.headers ?? {}) });
    assert.is(r.claimedUid, f.uid);
    assert.is(r.approved, true);
    await waitFor("F's line to go", () => !hasLine(s, f.uid));
    await waitFor("G's pending restore", async () => !!(await s.backups.call("status", { uid: g.uid })).pendingRestore);
    assert.equal((await s.registry.call("claims", {})).claims ?? [], []);
  } finally {
    await s.stop();
  }
});

test("reflash: users reject drops the claim; G stays its own user, F keeps the serial number; approve of a uid with no claim is not_found", async () => {
  const s = await school({ reflash: "approve" });
  try {
    const f = await childF(s);
    const g = makeKey(s.tmp.path);
    await s.registry.call("register", { nickname: "Stranger", pubkey: g.line, machineSn: SN });
    await s.registry.call("reject", { newUid: g.uid });
    assert.equal((await s.registry.call("claims", {})).claims ?? [], []);
    assert.is((await s.registry.call("status", { uid: g.uid })).registered, true);
    assert.is((await s.registry.call("status", { uid: f.uid })).registered, true);
    assert.is((await s.registry.call("lookup", { machineSn: SN })).user?.uid, f.uid);
    await expectError(s.registry.call("approve", { newUid: g.uid }), "not_found");
    await expectError(s.registry.call("approve", { newUid: "0".repeat(40) }), "not_found");
    await expectError(s.registry.call("approve", { newUid: "not-a-uid" }), "invalid_input");
  } finally {
    await s.stop();
  }
});

test("reflash: refuse: G's registration is refused with what the admin must do; nothing changes", async () => {
  const s = await school({ reflash: "refuse" });
  try {
    const f = await childF(s);
    const g = makeKey(s.tmp.path);
    try {
      await s.registry.call("register", { nickname: "Ana", pubkey: g.line, machineSn: SN });
      assert.unreachable("refused");
    } catch (err) {
      assert.is((err as SugarError).code, "conflict");
      assert.match((err as Error).message, /admin must remove/);
    }
    assert.is((await s.registry.call("status", { uid: g.uid })).registered, false);
    assert.ok(hasLine(s, f.uid));
  } finally {
    await s.stop();
  }
});

test("reflash: allow: the seed's takeover — G replaces F and inherits its backups", async () => {
  const s = await school({ reflash: "allow" });
  try {
    const f = await childF(s);
    const g = makeKey(s.tmp.path);
    const r = await s.registry.call("register", { nickname: "Ana", pubkey: g.line, machineSn: SN });
    assert.is(r.replacedUid, f.uid);
    await waitFor("F's line to go", () => !hasLine(s, f.uid));
    assert.is((await s.registry.call("status", { uid: f.uid })).registered, false);
    assert.ok((await whatGSees(s, g)).includes("datastore-current/diario.txt"), "allow hands F's Journal to G: what it costs");
  } finally {
    await s.stop();
  }
});

test("reflash: hardware: a re-flash with an empty, a different or a malformed UUID is refused, whatever reflash says", async () => {
  for (const reflash of ["approve", "allow", "refuse"]) {
    const s = await school({ "identity-model": "hardware", reflash });
    try {
      const f = await childF(s);
      const g = makeKey(s.tmp.path);
      await expectError(s.registry.call("register", { nickname: "Ana", pubkey: g.line, machineSn: SN }), "unknown_machine");
      await expectError(s.registry.call("register", { nickname: "Ana", pubkey: g.line, machineSn: SN, machineUuid: "00000000-0000-0000-0000-000000000000" }), "unknown_machine");
      await expectError(s.registry.call("register", { nickname: "Ana", pubkey: g.line, machineSn: SN, machineUuid: "not-a-uuid" }), "invalid_input");
      assert.is((await s.registry.call("status", { uid: g.uid })).registered, false, reflash);
      assert.ok(hasLine(s, f.uid), reflash);
      assert.equal((await s.registry.call("claims", {})).claims ?? [], [], reflash);
    } finally {
      await s.stop();
    }
  }
});

test("reflash: Sugar's fallback serial number SHF00000000 is never a claim: keys register side by side", async () => {
  const s = await school({ reflash: "approve" });
  try {
    const a = makeKey(s.tmp.path);
    const b = makeKey(s.tmp.path);
    await s.registry.call("register", { nickname: "A", pubkey: a.line, machineSn: "SHF00000000" });
    const r = await s.registry.call("register", { nickname: "B", pubkey: b.line, machineSn: "SHF00000000" });
    assert.is(r.claimedUid, "");
    assert.equal((await s.registry.call("claims", {})).claims ?? [], []);
    assert.is((await s.registry.call("status", { uid: a.uid })).registered, true);
    assert.is((await s.registry.call("status", { uid: b.uid })).registered, true);
  } finally {
    await s.stop();
  }
});

t.run();
