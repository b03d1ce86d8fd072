/**
 * Following a site's events: the admin socket forwards the server's
 * publishes on `sugar.<site>.events.…` (and nothing else), and
 * `sugar-server events` prints each as one JSON line.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { sugar } from "../../schemas/gen/messages.js";
import { AdminClient, startAdminServer } from "../../src/bus/admin.js";
import { MemoryBus } from "../../src/bus/memory.js";
import { subjects } from "../../src/bus/subjects.js";
import type { MessageHandler, Subscription } from "../../src/bus/types.js";
import { followEvents, formatEvent, type EventSource } from "../../src/cli/events.js";
import { silentLogger } from "../../src/log.js";
import { expectError } from "../support/bus-errors.js";
import { tempDir } from "../support/tmp.js";
import { waitFor } from "../support/wait.js";

const UID = "0123456789abcdef0123456789abcdef01234567";

async function withSocket(fn: (bus: MemoryBus, path: string) => Promise<void>, opts: { site?: string } = { site: "school" }): Promise<void> {
  const dir = tempDir("sugar-events-");
  const run = join(dir.path, "run");
  mkdirSync(run, { mode: 0o700 });
  const bus = new MemoryBus();
  const server = await startAdminServer(join(run, "admin.sock"), bus, silentLogger, opts);
  try {
    await fn(bus, join(run, "admin.sock"));
  } finally {
    await server.close();
    await bus.close();
    dir.remove();
  }
}

test("events: the admin socket forwards the site's events once subscribed, and only those", async () => {
  await withSocket(async (bus, path) => {
    const client = await AdminClient.connect(path);
    const seen: Array<[string, number[]]> = [];
    await client.subscribe("sugar.school.events.>", (data, subject) => void seen.push([subject, [...data]]));
    bus.publish("sugar.school.registry.register", new Uint8Array([9]));
    bus.publish("sugar.other.events.registered", new Uint8Array([8]));
    bus.publish("sugar.school.events.registered", new Uint8Array([1, 2]));
    bus.publish("sugar.school.events.login", new Uint8Array([]));
    await waitFor("two events", () => seen.length >= 2);
    assert.equal(seen, [["sugar.school.events.registered", [1, 2]], ["sugar.school.events.login", []]]);
    // Requests still work on the same connection.
    bus.serve("sugar.school.echo.x", async (d) => d);
    assert.equal([...(await client.request("sugar.school.echo.x", new Uint8Array([7])))], [7]);
    client.close();
    await client.closed;
  });
});

test("events: the admin socket refuses to follow anything but its site's events subjects", async () => {
  await withSocket(async (_bus, path) => {
    const client = await AdminClient.connect(path);
    for (const pattern of ["sugar.school.registry.*", "sugar.other.events.>", "sugar.>", ">", "sugar.school.events", "sugar.school.events.a.b", "sugar.school.events.A"]) {
      await expectError(client.subscribe(pattern, () => undefined), "invalid_input", /only this server's events/);
    }
    await client.subscribe("sugar.school.events.registered", () => undefined); // one kind is fine
    client.close();
  });
  // A server that was given no site forwards no events at all.
  await withSocket(async (_bus, path) => {
    const client = await AdminClient.connect(path);
    await expectError(client.subscribe("sugar.school.events.>", () => undefined), "invalid_input");
    client.close();
  }, {});
});

test("events: a follower that goes away is unsubscribed", async () => {
  const dir = tempDir("sugar-events-");
  const run = join(dir.path, "run");
  mkdirSync(run, { mode: 0o700 });
  const bus = new MemoryBus();
  let live = 0;
  // The server's bus, counting the subscriptions it holds.
  const counting = {
    request: bus.request.bind(bus),
    flush: bus.flush.bind(bus),
    subscribe: (subject: string, handler: MessageHandler): Subscription => {
      const sub = bus.subscribe(subject, handler);
      live++;
      return { subject, unsubscribe: () => (live--, sub.unsubscribe()), drain: () => (live--, sub.drain()) };
    },
  };
  const server = await startAdminServer(join(run, "admin.sock"), counting, silentLogger, { site: "school" });
  try {
    const client = await AdminClient.connect(join(run, "admin.sock"));
    await client.subscribe("sugar.school.events.>", () => undefined);
    await client.subscribe("sugar.school.events.login", () => undefined);
    assert.is(live, 2);
    client.close();
    await waitFor("the follows to go", () => live === 0);
  } finally {
    await server.close();
    await bus.close();
    dir.remove();
  }
});

test("events: each event is one JSON line: time, kind, then the decoded fields with the .proto's names", () => {
  const time = new Date("2030-01-02T03:04:05.000Z");
  const registered = sugar.registry.Event.encode({
    registered: { user: { uid: UID, nickname: "Ana", kind: "browser", deviceId: "3c:5a:b4:01:02:03", admin: false }, replacedUid: "", created: true },
  }).finish();
  const line = JSON.parse(formatEvent(subjects.event("school", "registered"), registered, time)) as Record<string, unknown>;
  assert.equal(Object.keys(line).slice(0, 2), ["time", "kind"]);
  assert.is(line.time, "2030-01-02T03:04:05.000Z");
  assert.is(line.kind, "registered");
  assert.is(line.created, true);
  assert.is(line.replaced_uid, "");
  const user = line.user as Record<string, unknown>;
  assert.equal([user.uid, user.nickname, user.kind, user.device_id, user.machine_sn, user.admin], [UID, "Ana", "browser", "3c:5a:b4:01:02:03", "", false]);

  const removed = JSON.parse(formatEvent("sugar.school.events.removed", sugar.registry.Event.encode({ removed: { user: { uid: UID } } }).finish(), time));
  assert.equal([removed.kind, removed.user.uid], ["removed", UID]);
  const claim = { newUid: UID, oldUid: "f".repeat(40), machineSn: "SHF706002A7", newNickname: "B", oldNickname: "A", created: "x" };
  const pending = JSON.parse(formatEvent("sugar.school.events.reflash_pending", sugar.registry.Event.encode({ reflashPending: claim }).finish(), time));
  assert.equal([pending.kind, pending.new_uid, pending.old_uid, pending.machine_sn], ["reflash_pending", UID, "f".repeat(40), "SHF706002A7"]);
  const login = JSON.parse(formatEvent("sugar.school.events.login", sugar.auth.LoginEvent.encode({ uid: UID, how: "device", source: "10.0.0.7" }).finish(), time));
  assert.equal(login, { time: "2030-01-02T03:04:05.000Z", kind: "login", uid: UID, how: "device", source: "10.0.0.7" });
  const stolen = JSON.parse(formatEvent("sugar.school.events.stolen", sugar.lease.StolenEvent.encode({ machineSn: "SHF706002A7", stolen: true }).finish(), time));
  assert.equal(stolen, { time: "2030-01-02T03:04:05.000Z", kind: "stolen", machine_sn: "SHF706002A7", stolen: true });
  const renewal = JSON.parse(formatEvent("sugar.school.events.renewal", sugar.lease.Renewal.encode({ enabled: true, aheadDays: 30, renewed: 4, passRenewed: 2, passFailed: 1, remaining: 3, error: "timeout: slow" }).finish(), time));
  assert.equal([renewal.kind, renewal.ahead_days, renewal.pass_renewed, renewal.pass_failed, renewal.remaining, renewal.error], ["renewal", 30, 2, 1, 3, "timeout: slow"]);
  // A kind this version does not know: its bytes, so nothing is silently dropped.
  assert.equal(JSON.parse(formatEvent("sugar.school.events.newkind", new Uint8Array([1, 2, 3]), time)), { time: "2030-01-02T03:04:05.000Z", kind: "newkind", data: "AQID" });
  assert.throws(() => formatEvent("sugar.school.events.registered", new Uint8Array([0xff, 0xff, 0xff]), time));
});

test("events: following prints a line per event and a note on stderr for bytes that are no event; ends when told (0) or when the server goes (1)", async () => {
  let handler: ((data: Uint8Array, subject: string) => void) | undefined;
  let gone!: () => void;
  const closed = new Promise<void>((r) => (gone = r));
  let closes = 0;
  const source: EventSource = {
    follow: async (pattern, h) => {
      assert.is(pattern, "sugar.school.events.>");
      handler = h;
    },
    closed,
    close: async () => void closes++,
  };
  let out = "";
  let err = "";
  const io = { out: (x: string) => void (out += x), err: (x: string) => void (err += x) };
  let stop!: () => void;
  const running = followEvents(source, "school", io, new Promise<void>((r) => (stop = r)));
  await waitFor("the follow", () => handler);
  handler!(sugar.auth.LoginEvent.encode({ uid: UID, how: "key" }).finish(), "sugar.school.events.login");
  handler!(new Uint8Array([0xff, 0xff, 0xff]), "sugar.school.events.removed");
  handler!(sugar.registry.Event.encode({ removed: { user: { uid: UID } } }).finish(), "sugar.school.events.removed");
  stop();
  assert.is(await running, 0);
  const lines = out.trimEnd().split("\n").map((l) => JSON.parse(l) as { kind: string });
  assert.equal(lines.map((l) => l.kind), ["login", "removed"]);
  assert.match(err, /following sugar\.school\.events\.>/);
  assert.match(err, /sugar\.school\.events\.removed: not a valid event/);
  assert.is(closes, 1);

  const again = followEvents({ ...source, closed: Promise.resolve() }, "school", io, new Promise<void>(() => undefined));
  gone();
  assert.is(await again, 1);
  assert.match(err, /the server stopped/);
});

test.run();
