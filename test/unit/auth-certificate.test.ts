/**
 * The auth actor's side of client certificates (op `certificate`, and
 * `check`'s place for one): a verified certificate names a registered uid,
 * and one issued before the uid was removed or replaced stays refused — also
 * after the actor restarts, since it keeps that moment on disk.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { MemoryBus } from "../../src/bus/memory.js";
import { runComponents, type RunningServer } from "../../src/cli/components.js";
import { authClient, registryClient } from "../../src/codec.js";
import { configWith, type Config } from "../../src/config.js";
import { SugarError } from "../../src/errors.js";
import { silentLogger } from "../../src/log.js";
import { tempDir } from "../support/tmp.js";
import { waitFor } from "../support/wait.js";

interface Ctx {
  dir: ReturnType<typeof tempDir>;
  config: Config;
  bus: MemoryBus;
  server: RunningServer;
}

const t = suite<Ctx>("auth-certificate");

t.before.each(async (c) => {
  c.dir = tempDir();
  c.config = configWith({ root: c.dir.path });
  c.bus = new MemoryBus();
  c.server = await runComponents(["registry", "auth"], c.config, silentLogger, { bus: c.bus });
});
t.after.each(async (c) => {
  await c.server.stop();
  await c.bus.close();
  c.dir.remove();
});

const auth = (c: Ctx) => authClient(c.bus, "school", { timeoutMs: 3000 });
const registry = (c: Ctx) => registryClient(c.bus, "school", { timeoutMs: 3000 });
const iso = (ms: number) => new Date(Math.floor(ms / 1000) * 1000).toISOString();

async function refused(p: Promise<unknown>, why: RegExp): Promise<void> {
  try {
    await p;
  } catch (err) {
    assert.instance(err, SugarError);
    assert.is((err as SugarError).code, "auth_invalid");
    assert.match((err as Error).message, why);
    return;
  }
  assert.unreachable("accepted");
}

const newUser = async (c: Ctx, mac = "02:00:00:04:00:01") => (await registry(c).call("registerDevice", { nickname: "Ana", deviceId: mac })).user!.uid!;

t("auth-certificate: a certificate naming a registered uid logs in at level token, by op certificate and in check", async (c) => {
  const uid = await newUser(c);
  const cert = { site: "school", uid, serial: "1A", notBefore: iso(Date.now()) };
  const a = await auth(c).call("certificate", cert);
  assert.equal([a.uid, a.level], [uid, "token"]);
  const r = await auth(c).call("check", { certificate: cert });
  assert.equal([r.uid, r.level], [uid, "token"]);
});

t("auth-certificate: a CN that is no uid, a uid not registered here, no notBefore, or another school's (or no school's) O is refused", async (c) => {
  await refused(auth(c).call("certificate", { site: "school", uid: "Ana", notBefore: iso(Date.now()) }), /subject CN is not a uid/);
  await refused(auth(c).call("certificate", { site: "school", uid: "a".repeat(40), notBefore: iso(Date.now()) }), /is not registered at this school/);
  await refused(auth(c).call("certificate", { site: "school", uid: await newUser(c), notBefore: "" }), /no readable notBefore/);
  await refused(auth(c).call("certificate", { site: "north", uid: await newUser(c), notBefore: iso(Date.now()) }), /issued for school "north", not this one/);
  await refused(auth(c).call("certificate", { uid: await newUser(c), notBefore: iso(Date.now()) }), /issued for no school/);
  await refused(auth(c).call("check", { certificate: { site: "school", uid: "a".repeat(40), notBefore: iso(Date.now()) } }), /not registered/);
});

t("auth-certificate: after a removal, a certificate issued before it is refused even once the uid registers again and the actor restarts; one issued after passes", async (c) => {
  const uid = await newUser(c);
  const old = { site: "school", uid, notBefore: iso(Date.now() - 60_000) };
  await registry(c).call("remove", { uid });
  const file = join(c.dir.path, "auth", "revoked", uid);
  await waitFor("the removal to reach auth", () => existsSync(file));
  await newUser(c);
  await refused(auth(c).call("certificate", old), /issued before .* was removed or replaced/);
  await c.server.stop();
  c.server = await runComponents(["registry", "auth"], c.config, silentLogger, { bus: c.bus });
  await refused(auth(c).call("certificate", old), /issued before/);
  const fresh = await auth(c).call("certificate", { site: "school", uid, notBefore: iso(Date.now() + 1000) });
  assert.equal([fresh.uid, fresh.level], [uid, "token"]);
});

t("auth-certificate: in check, token headers and cookies come first; a refused certificate falls through to an xoid", async (c) => {
  const uid = await newUser(c);
  const other = await newUser(c, "02:00:00:04:00:02");
  const d = await auth(c).call("device", { uid: other });
  const r = await auth(c).call("check", { session: d.session, certificate: { site: "school", uid, notBefore: iso(Date.now()) } });
  assert.equal([r.uid, r.level], [other, "device"], "the session is checked first");
  const x = await auth(c).call("check", { certificate: { site: "school", uid: "b".repeat(40), notBefore: iso(Date.now()) }, xoid: JSON.stringify({ pkey_hash: uid }) });
  assert.equal([x.uid, x.level], [uid, "xoid"]);
});

t.run();
