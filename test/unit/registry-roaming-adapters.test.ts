/**
 * What REST and XML-RPC tell a roaming laptop (option district): school b's
 * REST and XML-RPC listeners, its registry, a backup stub that counts what
 * it is asked, and the district test double holding a user at home at a.
 */
import { createHash, generateKeyPairSync } from "node:crypto";
import { Readable } from "node:stream";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import Deserializer from "xmlrpc/lib/deserializer.js";
import serializer from "xmlrpc/lib/serializer.js";
import { sugar } from "../../schemas/gen/messages.js";
import { startRegistry } from "../../actors/registry/index.js";
import { createRest } from "../../adapters/http/index.js";
import { startListener, type HttpListener } from "../../adapters/kit/listener.js";
import { createXmlrpc } from "../../adapters/xmlrpc/index.js";
import { MemoryBus } from "../../src/bus/memory.js";
import { subjects } from "../../src/bus/subjects.js";
import { encodeReply } from "../../src/codec.js";
import type { Component, Context } from "../../src/component.js";
import { configWith } from "../../src/config.js";
import { silentLogger } from "../../src/log.js";
import { DistrictDouble } from "../support/district-double.js";
import { tempDir } from "../support/tmp.js";

interface Ctx {
  bus: MemoryBus;
  dir: ReturnType<typeof tempDir>;
  district: DistrictDouble;
  parts: Array<Component | HttpListener>;
  rest: string;
  xmlrpc: string;
  backupAsked: string[];
}

const HOME_URL = "sugar@xs-a.example:datastore-current";

function edKey(): { line: string; body: string; uid: string } {
  const jwk = generateKeyPairSync("ed25519").publicKey.export({ format: "jwk" });
  const str = (b: Buffer) => Buffer.concat([Buffer.from([0, 0, 0, b.length]), b]);
  const body = Buffer.concat([str(Buffer.from("ssh-ed25519")), str(Buffer.from(jwk.x!, "base64url"))]).toString("base64");
  return { line: `ssh-ed25519 ${body}`, body, uid: createHash("sha1").update(body).digest("hex") };
}

const t = suite<Ctx>("registry-roaming-adapters");

t.before.each(async (c) => {
  c.bus = new MemoryBus({ timeoutMs: 3000 });
  c.dir = tempDir("sugar-roam-rest-");
  c.backupAsked = [];
  c.district = new DistrictDouble(c.bus);
  const config = configWith({ root: c.dir.path, site: "b", district: true, "httpd-port": 0, "xmlrpc-port": 0, host: "127.0.0.1", "jabber-url": "b.example", "backup-user": "sugar", "backup-host": "xs-b.example" });
  const ctx: Context = { bus: c.bus, config, log: silentLogger };
  c.bus.serve(subjects.actorAll("b", "backup"), async (data) => {
    const req = sugar.backup.Request.decode(data);
    c.backupAsked.push(`${req.op}:${req.status?.uid}`);
    return encodeReply(sugar.backup.Reply.encode({ status: { backupUrl: "sugar@xs-b.example:datastore-current", pendingRestore: true } }).finish());
  });
  c.bus.serve(subjects.actorAll("b", "auth"), async () => encodeReply(sugar.auth.Reply.encode({ issue: { credential: "cred-b" } }).finish()));
  const registry = await startRegistry(ctx);
  const rest = createRest(ctx);
  const http = await startListener(ctx, { name: "http", option: "httpd-port", port: 0, handlers: [rest], fallback: rest });
  const x = createXmlrpc(ctx);
  const xml = await startListener(ctx, { name: "xmlrpc", option: "xmlrpc-port", port: 0, handlers: [x], fallback: x });
  c.parts = [xml, http, registry];
  c.rest = `http://127.0.0.1:${http.address.port}`;
  c.xmlrpc = `http://127.0.0.1:${xml.address.port}/`;
});
t.after.each(async (c) => {
  for (const p of c.parts) await p.stop();
  await c.bus.close();
  c.dir.remove();
});

/** A user at home at a, as the district holds it. */
function atA(c: Ctx): ReturnType<typeof edKey> {
  const key = edKey();
  c.district.entries.set(key.uid, { uid: key.uid, site: "a", nickname: "Ana at a", pubkey: key.line, backupUrl: HOME_URL, machineSn: "", updated: "2024-05-06T07:08:09.000Z" });
  return key;
}

async function xmlrpcCall(url: string, method: string, params: string[]): Promise<Record<string, unknown>> {
  const res = await fetch(url, { method: "POST", headers: { "content-type": "text/xml" }, body: serializer.serializeMethodCall(method, params) });
  const text = await res.text();
  return new Promise((resolve, reject) => {
    new Deserializer().deserializeMethodResponse(Readable.from([Buffer.from(text)]), (err: unknown, value: unknown) => (err ? reject(err) : resolve(value as Record<string, unknown>)));
  });
}

async function postJson(url: string, body: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  return (await res.json()) as Record<string, unknown>;
}

t("rest: /client/status of a roamer names its home and the home's backup URL, and does not ask the backup actor here", async (c) => {
  const key = atA(c);
  const s = await (await fetch(`${c.rest}/client/status?uid=${key.uid}`)).json();
  assert.equal(s, { success: "OK", registered: true, home: "a", "jabber-url": "b.example", "backup-url": HOME_URL, "pending-restore": false });
  assert.equal(c.backupAsked, []);
});

t("rest: /client/status of a local user names this school as its home", async (c) => {
  const key = edKey();
  await postJson(`${c.rest}/client/register`, { nickname: "Bo", pubkey: key.line });
  const s = await (await fetch(`${c.rest}/client/status?uid=${key.uid}`)).json();
  assert.equal(s, { success: "OK", registered: true, home: "b", "jabber-url": "b.example", "backup-url": "sugar@xs-b.example:datastore-current", "pending-restore": true });
  assert.equal(c.backupAsked, [`status:${key.uid}`]);
});

t("rest: /client/register of a roamer's key answers the home's uid, backup URL and home, with no credential", async (c) => {
  const key = atA(c);
  const r = await postJson(`${c.rest}/client/register`, { nickname: "Ana at b", pubkey: key.line });
  assert.is(r.uid, key.uid);
  assert.is(r.home, "a");
  assert.is(r.backupurl, HOME_URL);
  assert.is(r.jabberserver, "b.example");
  assert.is(r.created, false);
  assert.not.ok("credential" in r);
});

t("xmlrpc: register() of a roamer's key answers the home's uid, backupurl and home", async (c) => {
  const key = atA(c);
  const r = await xmlrpcCall(c.xmlrpc, "register", ["SHF706002A7", "Ana at b", "", key.body]);
  assert.is(r.success, "OK");
  assert.is(r.uid, key.uid);
  assert.is(r.backupurl, HOME_URL);
  assert.is(r.home, "a");
  assert.is(r.jabberserver, "b.example");
  assert.not.ok("credential" in r);
});

t("xmlrpc: register() of a new key here answers this school's backup URL, home and credential", async (c) => {
  const key = edKey();
  const r = await xmlrpcCall(c.xmlrpc, "register", ["SHF706002A7", "Bo", "", key.body]);
  assert.is(r.uid, key.uid);
  assert.is(r.backupurl, "sugar@xs-b.example:datastore-current");
  assert.is(r.home, "b");
  assert.is(r.credential, "cred-b");
});

t.run();
