/**
 * The first admin's claim URL from the CLI's side: `admin claim-url` and the
 * line `start` logs while no user is an admin. The auth actor's claim codes
 * are its own tests' business: here a stub answers `claim_code` on a
 * MemoryBus, beside the real registry (its `admins` op decides).
 */
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { sugar } from "../../schemas/gen/messages.js";
import { startRegistry } from "../../actors/registry/index.js";
import { MemoryBus } from "../../src/bus/memory.js";
import { subjects } from "../../src/bus/subjects.js";
import { adminCommand, announceClaimUrl, claimUrl } from "../../src/cli/claim.js";
import { authClient, encodeReply, registryClient } from "../../src/codec.js";
import type { Component } from "../../src/component.js";
import { configWith, type Config } from "../../src/config.js";
import { SugarError } from "../../src/errors.js";
import { createLogger, silentLogger, type Logger } from "../../src/log.js";
import { tempDir } from "../support/tmp.js";

interface Ctx {
  dir: ReturnType<typeof tempDir>;
  bus: MemoryBus;
  registry: Component;
  /** How many claim codes the stub has made. */
  codes: number;
  /** When set, the stub fails every request with it. */
  failWith?: SugarError;
}

const t = suite<Ctx>("claim");
const CODE = "Zm9vYmFy-_x+/="; // base64url never has + / =, but the URL must carry any code safely

function configFor(c: Ctx, overrides: Record<string, string | number> = {}): Config {
  return configWith({ root: c.dir.path, site: "school", "backup-host": "xs.example", "httpd-port": 8000, ...overrides });
}

t.before.each(async (c) => {
  c.dir = tempDir("sugar-claim-");
  c.bus = new MemoryBus({ timeoutMs: 3000 });
  c.codes = 0;
  c.failWith = undefined;
  c.registry = await startRegistry({ bus: c.bus, config: configFor(c), log: silentLogger });
  // Answers the way an actor does: an envelope with the reply, or with the error's code and message.
  const fail = (e: SugarError) => sugar.common.Envelope.encode({ error: { code: e.code, message: e.message } }).finish();
  c.bus.serve(subjects.actorAll("school", "auth"), async (data) => {
    const req = sugar.auth.Request.decode(data);
    if (c.failWith) return fail(c.failWith);
    if (req.op !== "claimCode") return fail(new SugarError("invalid_input", `the stub answers claim_code only, not ${req.op}`));
    c.codes++;
    return encodeReply(sugar.auth.Reply.encode({ claimCode: { code: CODE, expires: "2030-01-02T03:04:05.000Z" } }).finish());
  });
});
t.after.each(async (c) => {
  await c.registry.stop();
  await c.bus.close();
  c.dir.remove();
});

function capture(): { io: { out(x: string): void; err(x: string): void }; out: () => string; err: () => string } {
  let out = "";
  let err = "";
  return { io: { out: (x) => void (out += x), err: (x) => void (err += x) }, out: () => out, err: () => err };
}

function captureLog(): { log: Logger; text: () => string } {
  let text = "";
  const stream = { write: (chunk: string) => ((text += chunk), true) } as unknown as NodeJS.WritableStream;
  return { log: createLogger({ level: "debug", stream, prefix: "sugar-server" }), text: () => text };
}

t("claim: admin claim-url prints http://<backup-host>:<httpd-port>/auth/claim?code=<code>, the code URL-encoded", async (c) => {
  const cap = capture();
  const code = await adminCommand(["claim-url"], authClient(c.bus, "school", { timeoutMs: 3000 }), configFor(c), cap.io);
  assert.is(code, 0);
  assert.is(cap.out(), `http://xs.example:8000/auth/claim?code=${encodeURIComponent(CODE)}\n`);
  assert.is(new URL(cap.out().trim()).searchParams.get("code"), CODE);
  assert.is(c.codes, 1);
  assert.is(claimUrl(configFor(c, { "httpd-port": 8000 }), "abc", 41234), "http://xs.example:41234/auth/claim?code=abc", "the port a listener really got wins");
});

t("claim: admin with anything but claim-url is a usage error that asks the auth actor nothing", async (c) => {
  for (const args of [[], ["claim"], ["claim-url", "x"], ["frobnicate"]]) {
    const cap = capture();
    assert.is(await adminCommand(args, authClient(c.bus, "school", { timeoutMs: 3000 }), configFor(c), cap.io), 2);
    assert.match(cap.err(), /usage: sugar-server admin claim-url/);
    assert.is(cap.out(), "");
  }
  assert.is(c.codes, 0);
});

t("claim: admin claim-url fails with the auth actor's error", async (c) => {
  c.failWith = new SugarError("rate_limited", "slow down");
  try {
    await adminCommand(["claim-url"], authClient(c.bus, "school", { timeoutMs: 3000 }), configFor(c), capture().io);
    assert.unreachable("no error");
  } catch (err) {
    assert.instance(err, SugarError);
    assert.is((err as SugarError).code, "rate_limited");
  }
});

t("claim: at start, with no admin, one info line carries a new claim URL on the port the listener got", async (c) => {
  const { log, text } = captureLog();
  await announceClaimUrl(c.bus, configFor(c, { "httpd-port": 0 }), log, 41234);
  const lines = text().split("\n").filter((l) => l.includes("/auth/claim?code="));
  assert.is(lines.length, 1, text());
  assert.match(lines[0]!, / INFO sugar-server: no admin yet: open http:\/\/xs\.example:41234\/auth\/claim\?code=/);
  assert.ok(lines[0]!.includes(`code=${encodeURIComponent(CODE)} `));
  assert.is(c.codes, 1);
});

t("claim: at start, nothing when a user is an admin, or under first-admin = first-registrant", async (c) => {
  const registry = registryClient(c.bus, "school", { timeoutMs: 3000 });
  const first = captureLog();
  await announceClaimUrl(c.bus, configFor(c, { "first-admin": "first-registrant" }), first.log);
  assert.is(first.text(), "");
  const phone = await registry.call("registerDevice", { nickname: "Profe" });
  await registry.call("admin", { uid: phone.user!.uid!, admin: true });
  const later = captureLog();
  await announceClaimUrl(c.bus, configFor(c), later.log);
  assert.is(later.text(), "");
  assert.is(c.codes, 0, "no code was made");
});

t("claim: at start, an auth actor that cannot make a code is a warning, not a failed start", async (c) => {
  c.failWith = new SugarError("unavailable", "auth is down");
  const { log, text } = captureLog();
  await announceClaimUrl(c.bus, configFor(c), log);
  assert.match(text(), / WARN sugar-server: no admin yet, and no claim URL: .*auth is down.*sugar-server admin claim-url/);
});

t.run();
