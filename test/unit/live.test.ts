/**
 * The live feed hub (adapters/web/live.ts) on a real HTTP server and real
 * WebSocket clients: every event reaches every browser, 100 at once; a
 * browser that never reads is dropped and the server's memory stays
 * bounded; a cross-origin upgrade is refused.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "uvu";
import * as assert from "uvu/assert";
import WebSocket from "ws";
import { sugar } from "../../schemas/gen/messages.js";
import { describeEvent, MAX_BUFFERED, startLiveHub, type LiveHub } from "../../adapters/web/live.js";
import { sameOriginStrict } from "../../adapters/web/admin/forms.js";
import { MemoryBus } from "../../src/bus/memory.js";
import { subjects } from "../../src/bus/subjects.js";
import { silentLogger } from "../../src/log.js";
import { waitFor } from "../support/wait.js";

async function hubServer(): Promise<{ bus: MemoryBus; hub: LiveHub; server: Server; url: string; origin: string; close(): Promise<void> }> {
  const bus = new MemoryBus();
  const hub = startLiveHub(bus, "school", silentLogger);
  const server = createServer((_req, res) => res.end());
  server.on("upgrade", (req, socket, head) => hub.upgrade(req, socket, head, async () => sameOriginStrict(req)));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const port = (server.address() as AddressInfo).port;
  return {
    bus,
    hub,
    server,
    url: `ws://127.0.0.1:${port}/admin/live`,
    origin: `http://127.0.0.1:${port}`,
    async close() {
      await hub.close();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await bus.close();
    },
  };
}

const activation = (sn: string) => sugar.lease.Activation.encode({ machineSn: sn, answer: "lease", latencyMs: 3.2, origin: "stored" }).finish();

function connect(url: string, origin: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers: { origin } });
    ws.once("open", () => resolve(ws));
    ws.once("unexpected-response", (_q, res) => reject(new Error(`status ${res.statusCode}`)));
    ws.once("error", reject);
  });
}

test("live: an activation event reaches the browser as one line of text", () => {
  assert.is(describeEvent("activation", activation("SHF706002A7")), "SHF706002A7: lease (stored), 3 ms");
  assert.is(describeEvent("stolen", sugar.lease.StolenEvent.encode({ machineSn: "SHF706002A7", stolen: true }).finish()), "SHF706002A7 marked stolen");
});

test("live: a renewer pass is one line: renewed, failed, what is left, and the keyring's error", () => {
  assert.is(describeEvent("renewal", sugar.lease.Renewal.encode({ enabled: true, passRenewed: 3, remaining: 0 }).finish()), "renewed 3, failed 0, 0 left to renew");
  assert.is(describeEvent("renewal", sugar.lease.Renewal.encode({ enabled: true, passFailed: 1, remaining: 7, error: "unavailable: no responders" }).finish()), "renewed 0, failed 1, 7 left to renew (keyring: unavailable: no responders)");
});

test("live: 100 browsers on the feed at once each get every event within a second", async () => {
  const h = await hubServer();
  try {
    const clients = await Promise.all(Array.from({ length: 100 }, () => connect(h.url, h.origin)));
    const got = clients.map(() => [] as string[]);
    clients.forEach((ws, i) => ws.on("message", (d) => got[i]!.push(String(d))));
    assert.is(h.hub.clients, 100);
    const started = Date.now();
    for (let i = 0; i < 10; i++) h.bus.publish(subjects.event("school", "activation"), activation(`SHF0000000${i}`));
    await waitFor("every browser to get all 10 events", () => got.every((g) => g.length === 10), 1000);
    assert.ok(Date.now() - started < 1000);
    const line = JSON.parse(got[99]![9]!) as { kind: string; text: string; time: string };
    assert.is(line.kind, "activation");
    assert.match(line.text, /^SHF00000009: lease/);
    for (const ws of clients) ws.close();
    await waitFor("the hub to see them go", () => h.hub.clients === 0);
  } finally {
    await h.close();
  }
});

test("live: a browser that never reads is dropped, the server's memory stays bounded, and the others keep getting events", async () => {
  const h = await hubServer();
  try {
    const stuck = await connect(h.url, h.origin);
    // Never read: the socket is paused, so the kernel's buffers fill and the server's own queue grows.
    (stuck as unknown as { _socket: { pause(): void } })._socket.pause();
    const reader = await connect(h.url, h.origin);
    let read = 0;
    reader.on("message", () => read++);
    let closed = false;
    stuck.on("close", () => (closed = true));
    const heapBefore = process.memoryUsage().heapUsed;
    const big = sugar.lease.Activation.encode({ machineSn: "SHF706002A7", answer: "lease", latencyMs: 1, origin: "x".repeat(2000) }).finish();
    let sent = 0;
    // Publish until the hub lets the stuck browser go (bounded: a hub that never drops it fails here).
    await waitFor(
      "the stuck browser to be dropped",
      async () => {
        for (let i = 0; i < 200; i++) h.bus.publish(subjects.event("school", "activation"), big);
        sent += 200;
        await new Promise((r) => setImmediate(r));
        return h.hub.clients === 1 || sent > 200_000 ? true : undefined;
      },
      20_000,
      1,
    );
    assert.is(h.hub.clients, 1, `still ${h.hub.clients} clients after ${sent} events`);
    const grown = process.memoryUsage().heapUsed - heapBefore;
    // The drop happens once MAX_BUFFERED is queued; the heap must not hold the whole stream (sent × 2 KB).
    assert.ok(grown < 64 * 1024 * 1024, `heap grew ${grown} bytes for ${sent} events (bound ${MAX_BUFFERED} per browser)`);
    await waitFor("the reader to keep up", () => read > 0);
    (stuck as unknown as { _socket: { resume(): void } })._socket.resume();
    await waitFor("the stuck browser to see its close", () => closed, 5000);
    reader.close();
  } finally {
    await h.close();
  }
});

test("live: an upgrade from another site's page, or with no Origin, is refused with 403", async () => {
  const h = await hubServer();
  try {
    await connect(h.url, "http://evil.example").then(
      () => assert.unreachable("a cross-origin upgrade was taken"),
      (err: Error) => assert.match(err.message, /status 403/),
    );
    const none = await new Promise<number>((resolve) => {
      const ws = new WebSocket(h.url);
      ws.once("unexpected-response", (_q, res) => resolve(res.statusCode ?? 0));
      ws.once("open", () => resolve(101));
      ws.once("error", () => resolve(-1));
    });
    assert.is(none, 403);
    assert.is(h.hub.clients, 0);
  } finally {
    await h.close();
  }
});

test.run();
