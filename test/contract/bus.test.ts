/**
 * The bus contract: one suite, run unchanged on MemoryBus and on NatsBus
 * against a real nats-server, so code that passes on one passes on the other.
 * Then what only NatsBus has: a server that is down, goes away, comes back.
 */
import { createServer } from "node:net";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { MemoryBus } from "../../src/bus/memory.js";
import { NatsBus, type NatsBusOptions } from "../../src/bus/nats.js";
import type { Bus } from "../../src/bus/types.js";
import { SugarError, type ErrorCode } from "../../src/errors.js";
import { silentLogger } from "../../src/log.js";
import { startNatsServer, type NatsServer } from "../support/nats-server.js";
import { requires, testsNeeding, TOOLS, type Requirement } from "../support/requires.js";
import { waitFor } from "../support/wait.js";

/** Buses that see each other (one MemoryBus, or connections to one server); cleanup closes them. */
export interface BusEnv {
  bus(): Promise<Bus>;
  cleanup(): Promise<void>;
}
export type BusFactory = () => Promise<BusEnv>;

const te = new TextEncoder();
const td = new TextDecoder();
const bytes = (s: string) => te.encode(s);
const text = (b: Uint8Array) => td.decode(b);

let counter = 0;
/** A subject prefix no other test uses, so tests sharing a server never see each other's messages. */
const fresh = () => `t${process.pid}x${++counter}`;

/** A promise to release later: handlers wait on it instead of sleeping. */
function gate(): { wait: Promise<void>; open(): void } {
  let open!: () => void;
  const wait = new Promise<void>((r) => (open = r));
  return { wait, open };
}

/**
 * Holds a promise's outcome so that a rejection before the test awaits it is
 * not an unhandled rejection; calling the result returns or throws it.
 */
async function outcome<T>(p: Promise<T>): Promise<() => Promise<T>> {
  try {
    const v = await p;
    return async () => v;
  } catch (err) {
    return async () => {
      throw err;
    };
  }
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error("expected a rejection, got a value");
}

function assertCode(err: unknown, code: ErrorCode): void {
  assert.ok(err instanceof SugarError, `expected a SugarError, got ${String(err)}`);
  assert.is((err as SugarError).code, code, `code (message: ${(err as SugarError).message})`);
}

const echo = async (data: Uint8Array, subject: string) => bytes(`${subject}|${text(data)}`);

type Body = (env: BusEnv) => Promise<void>;

/**
 * Registers the contract for one implementation; when `requirement` does not
 * hold, every test is counted as skipped (a failure under CI=true).
 */
export function busContract(name: string, factory: BusFactory, opts: { requirement?: Requirement; teardown?: () => Promise<void> } = {}): void {
  const s = suite(`bus[${name}]`);
  const register = testsNeeding(s, opts.requirement ?? { ok: true, why: "" });
  const t = (title: string, body: Body) => {
    const full = `bus[${name}]: ${title}`;
    register(full, async () => {
      const env = await factory();
      try {
        await body(env);
      } finally {
        await env.cleanup();
      }
    });
  };
  if (opts.teardown) s.after(opts.teardown);

  t("request/reply round-trips bytes", async (env) => {
    const a = await env.bus();
    const b = await env.bus();
    const p = fresh();
    b.serve(`${p}.echo`, async (data) => {
      const out = new Uint8Array(data.length + 1);
      out.set(data, 1);
      out[0] = 0xff;
      return out;
    });
    await settle(b);
    const sent = new Uint8Array([0, 1, 2, 254, 255, 10, 13]);
    const reply = await a.request(`${p}.echo`, sent);
    assert.ok(reply instanceof Uint8Array);
    assert.equal([...reply], [0xff, ...sent]);
    const empty = await a.request(`${p}.echo`, new Uint8Array());
    assert.equal([...empty], [0xff]);
  });

  t("serve with `*` matches exactly one token and passes the subject", async (env) => {
    const a = await env.bus();
    const b = await env.bus();
    const p = fresh();
    b.serve(`${p}.svc.*`, echo);
    await settle(b);
    assert.is(text(await a.request(`${p}.svc.alpha`, bytes("1"))), `${p}.svc.alpha|1`);
    assert.is(text(await a.request(`${p}.svc.beta`, bytes("2"))), `${p}.svc.beta|2`);
    assertCode(await rejection(a.request(`${p}.svc.alpha.deeper`, bytes("3"), { timeoutMs: 3000 })), "unavailable");
    assertCode(await rejection(a.request(`${p}.svc`, bytes("4"), { timeoutMs: 3000 })), "unavailable");
  });

  t("who answers follows subscribe and unsubscribe, for a subject asked before", async (env) => {
    const a = await env.bus();
    const b = await env.bus();
    const p = fresh();
    // Asked with nobody serving, then served, then unserved: each answer reflects the subscriptions of the moment.
    assertCode(await rejection(a.request(`${p}.late.x`, bytes("0"), { timeoutMs: 3000 })), "unavailable");
    const sub = b.serve(`${p}.late.*`, echo);
    await settle(b);
    assert.is(text(await a.request(`${p}.late.x`, bytes("1"))), `${p}.late.x|1`);
    // A listener that arrives later hears the next request on the same subject.
    const heard: string[] = [];
    const listener = b.subscribe(`${p}.late.>`, (data) => void heard.push(text(data)));
    await settle(b);
    assert.is(text(await a.request(`${p}.late.x`, bytes("2"))), `${p}.late.x|2`);
    await waitFor("the late listener", () => heard.includes("2"));
    listener.unsubscribe();
    sub.unsubscribe();
    await settle(b);
    assertCode(await rejection(a.request(`${p}.late.x`, bytes("3"), { timeoutMs: 3000 })), "unavailable");
  });

  t("serve with `>` matches one or more tokens", async (env) => {
    const a = await env.bus();
    const b = await env.bus();
    const p = fresh();
    b.serve(`${p}.tree.>`, echo);
    await settle(b);
    assert.is(text(await a.request(`${p}.tree.x`, bytes("1"))), `${p}.tree.x|1`);
    assert.is(text(await a.request(`${p}.tree.x.y.z`, bytes("2"))), `${p}.tree.x.y.z|2`);
    assertCode(await rejection(a.request(`${p}.tree`, bytes("3"), { timeoutMs: 3000 })), "unavailable");
  });

  t("subscribe with `*` and `>` wildcards", async (env) => {
    const a = await env.bus();
    const b = await env.bus();
    const p = fresh();
    const star: string[] = [];
    const rest: string[] = [];
    b.subscribe(`${p}.ev.*`, (data, subject) => void star.push(`${subject}|${text(data)}`));
    b.subscribe(`${p}.ev.>`, (data, subject) => void rest.push(`${subject}|${text(data)}`));
    await settle(b);
    a.publish(`${p}.ev.one`, bytes("1"));
    a.publish(`${p}.ev.one.two`, bytes("2"));
    a.publish(`${p}.other.one`, bytes("3"));
    a.publish(`${p}.ev.end`, bytes("end"));
    await waitFor("both subscribers to see the last event", () => star.includes(`${p}.ev.end|end`) && rest.includes(`${p}.ev.end|end`));
    assert.equal(star, [`${p}.ev.one|1`, `${p}.ev.end|end`]);
    assert.equal(rest, [`${p}.ev.one|1`, `${p}.ev.one.two|2`, `${p}.ev.end|end`]);
  });

  t("queue group delivers each request to one member", async (env) => {
    const caller = await env.bus();
    const p = fresh();
    const seen: number[][] = [[], [], []];
    for (let m = 0; m < 3; m++) {
      const bus = await env.bus();
      bus.serve(`${p}.q`, async (data) => {
        seen[m]!.push(Number(text(data)));
        return bytes(String(m));
      }, { queue: "workers" });
      await settle(bus);
    }
    const n = 30;
    const replies = await Promise.all(Array.from({ length: n }, (_, i) => caller.request(`${p}.q`, bytes(String(i)), { timeoutMs: 5000 })));
    assert.is(replies.length, n);
    const all = seen.flat().sort((x, y) => x - y);
    assert.equal(all, Array.from({ length: n }, (_, i) => i), "every request handled exactly once");
    for (let i = 0; i < n; i++) {
      const member = Number(text(replies[i]!));
      assert.ok(seen[member]!.includes(i), `request ${i} answered by member ${member}, which handled it`);
    }
  });

  t("queue group spreads the load over its members", async (env) => {
    const caller = await env.bus();
    const p = fresh();
    const counts = [0, 0, 0];
    for (let m = 0; m < 3; m++) {
      const bus = await env.bus();
      bus.serve(`${p}.q`, async () => {
        counts[m]!++;
        return bytes("ok");
      }, { queue: "workers" });
      await settle(bus);
    }
    for (let i = 0; i < 60; i++) await caller.request(`${p}.q`, bytes(String(i)), { timeoutMs: 5000 });
    assert.is(counts.reduce((x, y) => x + y, 0), 60);
    for (const [m, c] of counts.entries()) assert.ok(c > 0, `member ${m} got no request: ${counts.join(",")}`);
  });

  t("subscribe with a queue group delivers each message to one member", async (env) => {
    const a = await env.bus();
    const b = await env.bus();
    const c = await env.bus();
    const p = fresh();
    const got: string[][] = [[], []];
    b.subscribe(`${p}.work`, (d) => void got[0]!.push(text(d)), { queue: "g" });
    c.subscribe(`${p}.work`, (d) => void got[1]!.push(text(d)), { queue: "g" });
    await settle(b);
    await settle(c);
    for (let i = 0; i < 20; i++) a.publish(`${p}.work`, bytes(String(i)));
    await waitFor("20 messages", () => got[0]!.length + got[1]!.length >= 20);
    const all = [...got[0]!, ...got[1]!].map(Number).sort((x, y) => x - y);
    assert.equal(all, Array.from({ length: 20 }, (_, i) => i));
  });

  t("no responders → unavailable at once, well under the timeout", async (env) => {
    const a = await env.bus();
    const p = fresh();
    const started = performance.now();
    const err = await rejection(a.request(`${p}.nobody`, bytes("x"), { timeoutMs: 5000 }));
    const elapsed = performance.now() - started;
    assertCode(err, "unavailable");
    assert.ok(elapsed < 1000, `took ${elapsed.toFixed(0)} ms`);
  });

  t("slow handler → timeout at the requested timeoutMs", async (env) => {
    const a = await env.bus();
    const b = await env.bus();
    const p = fresh();
    const g = gate();
    b.serve(`${p}.slow`, async () => {
      await g.wait;
      return bytes("late");
    });
    await settle(b);
    try {
      const timeoutMs = 300;
      const started = performance.now();
      const err = await rejection(a.request(`${p}.slow`, bytes("x"), { timeoutMs }));
      const elapsed = performance.now() - started;
      assertCode(err, "timeout");
      assert.ok(elapsed >= timeoutMs - 5, `timed out after ${elapsed.toFixed(0)} ms, before ${timeoutMs}`);
      assert.ok(elapsed < timeoutMs + 1000, `timed out after ${elapsed.toFixed(0)} ms`);
    } finally {
      g.open();
    }
  });

  for (const how of ["throwing", "rejecting"] as const) {
    t(`a ${how} handler fails the request with internal, keeps its message, and keeps serving`, async (env) => {
      const a = await env.bus();
      const b = await env.bus();
      const p = fresh();
      let calls = 0;
      const fail = () => new Error("boom: /srv/secret/path");
      const handler =
        how === "throwing"
          ? (data: Uint8Array): Promise<Uint8Array> => {
              if (calls++ === 0) throw fail();
              return Promise.resolve(data);
            }
          : async (data: Uint8Array): Promise<Uint8Array> => {
              if (calls++ === 0) throw fail();
              return data;
            };
      b.serve(`${p}.flaky`, handler);
      await settle(b);
      const first = await rejection(a.request(`${p}.flaky`, bytes("one"), { timeoutMs: 3000 }));
      assertCode(first, "internal");
      assert.not.match((first as Error).message, /boom|secret/, "the handler's message stays on the serving side");
      const second = await a.request(`${p}.flaky`, bytes("two"), { timeoutMs: 3000 });
      assert.is(text(second), "two");
      assert.is(calls, 2);
    });
  }

  t("a failing subscriber keeps receiving", async (env) => {
    const a = await env.bus();
    const b = await env.bus();
    const p = fresh();
    const got: string[] = [];
    b.subscribe(`${p}.ev`, (d) => {
      got.push(text(d));
      if (got.length === 1) throw new Error("sync boom");
      if (got.length === 2) return Promise.reject(new Error("async boom"));
      return undefined;
    });
    await settle(b);
    for (const m of ["1", "2", "3"]) a.publish(`${p}.ev`, bytes(m));
    await waitFor("three messages", () => got.length >= 3);
    assert.equal(got, ["1", "2", "3"]);
  });

  t("large messages (512 KiB) round-trip", async (env) => {
    const a = await env.bus();
    const b = await env.bus();
    const p = fresh();
    const big = new Uint8Array(512 * 1024);
    for (let i = 0; i < big.length; i++) big[i] = (i * 31 + 7) & 0xff;
    b.serve(`${p}.big`, async (data) => data.map((x) => x ^ 0x5a));
    await settle(b);
    const reply = await a.request(`${p}.big`, big, { timeoutMs: 5000 });
    assert.is(reply.length, big.length);
    let diff = -1;
    for (let i = 0; i < big.length; i++) {
      if (reply[i] !== (big[i]! ^ 0x5a)) {
        diff = i;
        break;
      }
    }
    assert.is(diff, -1, "first differing byte");
  });

  t("publish fans out to every plain subscriber, once each", async (env) => {
    const a = await env.bus();
    const b = await env.bus();
    const c = await env.bus();
    const p = fresh();
    const got: string[][] = [[], [], []];
    b.subscribe(`${p}.news`, (d) => void got[0]!.push(text(d)));
    b.subscribe(`${p}.news`, (d) => void got[1]!.push(text(d)));
    c.subscribe(`${p}.news`, (d) => void got[2]!.push(text(d)));
    await settle(b);
    await settle(c);
    a.publish(`${p}.news`, bytes("hello"));
    a.publish(`${p}.news`, bytes("marker"));
    // Messages from one publisher arrive in order: once the marker is there, so is everything before it.
    await waitFor("every subscriber to see the marker", () => got.every((g) => g.includes("marker")));
    assert.equal(got, [["hello", "marker"], ["hello", "marker"], ["hello", "marker"]]);
  });

  t("drain() waits for an in-flight handler", async (env) => {
    const a = await env.bus();
    const b = await env.bus();
    const p = fresh();
    const g = gate();
    const events: string[] = [];
    const sub = b.serve(`${p}.work`, async (data) => {
      events.push("handler started");
      await g.wait;
      events.push("handler done");
      return data;
    });
    b.serve(`${p}.ping`, async () => bytes("pong"));
    await settle(b);
    try {
      const reply = outcome(a.request(`${p}.work`, bytes("job"), { timeoutMs: 10000 }));
      await waitFor("the handler to start", () => events.includes("handler started"));
      const drained = sub.drain().then(() => events.push("drained"));
      // A round trip through the bus after drain() began: had drain() not waited, it would be done by now.
      assert.is(text(await a.request(`${p}.ping`, bytes(""), { timeoutMs: 5000 })), "pong");
      assert.not.ok(events.includes("drained"), "drain() resolved while the handler was still running");
      g.open();
      await drained;
      assert.equal(events, ["handler started", "handler done", "drained"]);
      assert.is(text(await (await reply)()), "job", "the in-flight request still gets its reply");
      assertCode(await rejection(a.request(`${p}.work`, bytes("again"), { timeoutMs: 3000 })), "unavailable");
    } finally {
      g.open();
    }
  });

  t("close() waits for in-flight handlers, which still reply", async (env) => {
    const a = await env.bus();
    const b = await env.bus();
    const p = fresh();
    const g = gate();
    let started = false;
    b.serve(`${p}.work`, async (data) => {
      started = true;
      await g.wait;
      return data;
    });
    await settle(b);
    try {
      const reply = outcome(a.request(`${p}.work`, bytes("job"), { timeoutMs: 10000 }));
      await waitFor("the handler to start", () => started);
      let closed = false;
      const closing = b.close().then(() => (closed = true));
      assert.not.ok(closed);
      g.open();
      await closing;
      assert.is(text(await (await reply)()), "job");
    } finally {
      g.open();
    }
  });

  t("close() is idempotent and the closed bus refuses work", async (env) => {
    const a = await env.bus();
    const p = fresh();
    a.serve(`${p}.x`, echo);
    await Promise.all([a.close(), a.close()]);
    await a.close();
    assertCode(await rejection(a.request(`${p}.x`, bytes("x"))), "unavailable");
    assertCode(captureSync(() => a.publish(`${p}.x`, bytes("x"))), "unavailable");
    assertCode(captureSync(() => a.serve(`${p}.y`, echo)), "unavailable");
  });

  t("bytes are copied: a handler mutating its input does not touch the sender's buffer", async (env) => {
    const a = await env.bus();
    const b = await env.bus();
    const p = fresh();
    b.serve(`${p}.mut`, async (data) => {
      data.fill(0);
      return data;
    });
    await settle(b);
    const sent = bytes("precious");
    await a.request(`${p}.mut`, sent);
    assert.is(text(sent), "precious");
  });

  t("bytes are copied: a requester mutating its reply does not touch the handler's buffer", async (env) => {
    const a = await env.bus();
    const b = await env.bus();
    const p = fresh();
    const kept = bytes("kept reply");
    b.serve(`${p}.kept`, async () => kept);
    await settle(b);
    const r1 = await a.request(`${p}.kept`, bytes(""));
    r1.fill(0);
    assert.is(text(kept), "kept reply");
    assert.is(text(await a.request(`${p}.kept`, bytes(""))), "kept reply");
  });

  t("bytes are copied: a sender reusing its buffer right after request() does not change what was sent", async (env) => {
    const a = await env.bus();
    const b = await env.bus();
    const p = fresh();
    b.serve(`${p}.echo`, async (data) => data);
    await settle(b);
    const buf = bytes("original");
    const pending = a.request(`${p}.echo`, buf);
    buf.fill(0x21);
    assert.is(text(await pending), "original");
  });

  t("bytes are copied: a sender reusing its buffer right after publish(), and subscribers mutating theirs", async (env) => {
    const a = await env.bus();
    const b = await env.bus();
    const p = fresh();
    const got: string[][] = [[], []];
    for (const i of [0, 1]) {
      b.subscribe(`${p}.ev`, (d) => {
        got[i]!.push(text(d));
        d.fill(0x21);
      });
    }
    await settle(b);
    const buf = bytes("original");
    a.publish(`${p}.ev`, buf);
    buf.fill(0x3f);
    await waitFor("both subscribers", () => got[0]!.length > 0 && got[1]!.length > 0);
    assert.equal(got, [["original"], ["original"]]);
  });

  t("invalid subjects are refused with invalid_input", async (env) => {
    const a = await env.bus();
    assertCode(await rejection(a.request("a.*.c", bytes("x"))), "invalid_input");
    assertCode(await rejection(a.request("a..c", bytes("x"))), "invalid_input");
    assertCode(captureSync(() => a.publish("a.>", bytes("x"))), "invalid_input");
    assertCode(captureSync(() => a.serve("a b", echo)), "invalid_input");
  });

  s.run();
}

function captureSync(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error("expected a throw, got none");
}

/**
 * NATS applies a subscription when the server has read it, a round trip
 * after serve()/subscribe() return: a request from another connection sent
 * before that finds no responders. A bus that can flush (NatsBus) is flushed,
 * which orders its subscriptions before anything sent afterwards; MemoryBus
 * subscribes synchronously and has nothing to wait for.
 */
async function settle(...buses: Bus[]): Promise<void> {
  for (const bus of buses) if (canFlush(bus)) await bus.flush();
}

function canFlush(bus: Bus): bus is Bus & { flush(): Promise<void> } {
  return typeof (bus as { flush?: unknown }).flush === "function";
}

// ---- MemoryBus ------------------------------------------------------------

busContract("memory", async () => {
  const bus = new MemoryBus();
  return { bus: async () => bus, cleanup: () => bus.close() };
});

// ---- NatsBus against a real nats-server --------------------------------------

const natsRequirement = requires(TOOLS.natsServer);

let shared: Promise<NatsServer> | undefined;
const sharedServer = () => (shared ??= startNatsServer());

function natsEnv(server: NatsServer, extra: Partial<NatsBusOptions> = {}): { bus(): Promise<NatsBus>; cleanup(): Promise<void> } {
  const buses: NatsBus[] = [];
  return {
    async bus() {
      const bus = await NatsBus.connect({ servers: server.url, timeoutMs: 2000, reconnectTimeWaitMs: 100, log: silentLogger, ...extra });
      buses.push(bus);
      return bus;
    },
    async cleanup() {
      await Promise.all(buses.map((b) => b.close()));
    },
  };
}

busContract("nats", async () => natsEnv(await sharedServer()), {
  requirement: natsRequirement,
  teardown: async () => {
    if (shared) await (await shared).stop();
  },
});

// ---- NatsBus only ---------------------------------------------------------------

const n = suite("nats");
const natsTest = testsNeeding(n, natsRequirement);
const nt = (title: string, body: () => Promise<void>) => natsTest(`bus[nats]: ${title}`, body);

/** A port nobody listens on (bound, then released). */
async function unusedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve, reject) => {
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => resolve());
  });
  const addr = srv.address();
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  if (addr === null || typeof addr === "string") throw new Error("no port");
  return addr.port;
}

nt("connect with no server running → clear unavailable error, fast", async () => {
  const port = await unusedPort();
  const url = `nats://127.0.0.1:${port}`;
  const started = performance.now();
  const err = await rejection(NatsBus.connect({ servers: url, log: silentLogger }));
  const elapsed = performance.now() - started;
  assertCode(err, "unavailable");
  const msg = (err as Error).message;
  assert.ok(msg.startsWith(`cannot connect to NATS at ${url}: `), msg);
  assert.not.ok(msg.includes("\n"), "one line");
  assert.ok(elapsed < 3000, `took ${elapsed.toFixed(0)} ms`);
});

nt("waitOnFirstConnect waits for a server that starts later", async () => {
  const port = await unusedPort();
  const connecting = outcome(NatsBus.connect({ servers: `127.0.0.1:${port}`, waitOnFirstConnect: true, reconnectTimeWaitMs: 50, log: silentLogger }));
  const server = await startNatsServer({ port });
  try {
    const bus = await (await connecting)();
    const p = fresh();
    bus.serve(`${p}.x`, echo);
    assert.is(text(await bus.request(`${p}.x`, bytes("hi"))), `${p}.x|hi`);
    await bus.close();
  } finally {
    await server.stop();
  }
});

nt("user and password: right ones connect, a wrong one is a clear unavailable", async () => {
  const server = await startNatsServer({ config: 'authorization { user: "sugar", password: "s3cret" }\n' });
  try {
    const bus = await NatsBus.connect({ servers: server.url, user: "sugar", password: "s3cret", log: silentLogger });
    const p = fresh();
    bus.serve(`${p}.x`, echo);
    assert.is(text(await bus.request(`${p}.x`, bytes("ok"))), `${p}.x|ok`);
    await bus.close();
    const err = await rejection(NatsBus.connect({ servers: server.url, user: "sugar", password: "wrong", log: silentLogger }));
    assertCode(err, "unavailable");
    assert.match((err as Error).message, /^cannot connect to NATS at .*AUTHORIZATION/i);
  } finally {
    await server.stop();
  }
});

nt("replies come back on the inboxPrefix given", async () => {
  const server = await startNatsServer();
  const env = natsEnv(server, { inboxPrefix: "_SUGAR_INBOX", name: "contract-test" });
  try {
    const a = await env.bus();
    const b = await env.bus();
    const p = fresh();
    const inboxes: string[] = [];
    b.subscribe(`_SUGAR_INBOX.>`, (_d, subject) => void inboxes.push(subject));
    b.serve(`${p}.x`, echo);
    await settle(b);
    assert.is(text(await a.request(`${p}.x`, bytes("hi"))), `${p}.x|hi`);
    await waitFor("the reply seen on an _SUGAR_INBOX subject", () => inboxes.length > 0);
    assert.is(a.kind, server.url);
  } finally {
    await env.cleanup();
    await server.stop();
  }
});

nt("server stopped while a request is in flight → the request fails within its timeout, new ones at once", async () => {
  const server = await startNatsServer();
  const env = natsEnv(server);
  const g = gate();
  try {
    const a = await env.bus();
    const b = await env.bus();
    const p = fresh();
    let started = false;
    b.serve(`${p}.slow`, async (data) => {
      started = true;
      await g.wait;
      return data;
    });
    await settle(b);
    const timeoutMs = 5000;
    const t0 = performance.now();
    const pending = rejection(a.request(`${p}.slow`, bytes("x"), { timeoutMs }));
    await waitFor("the handler to start", () => started);
    await server.stop();
    const err = await pending;
    const elapsed = performance.now() - t0;
    assertCode(err, "unavailable");
    assert.ok(elapsed < timeoutMs, `failed after ${elapsed.toFixed(0)} ms`);
    await waitFor("the bus to notice", () => !a.isConnected());
    const t1 = performance.now();
    assertCode(await rejection(a.request(`${p}.slow`, bytes("y"), { timeoutMs })), "unavailable");
    assert.ok(performance.now() - t1 < 1000, "a request while disconnected fails at once");
    a.publish(`${p}.ev`, bytes("dropped, not thrown"));
  } finally {
    g.open();
    await env.cleanup();
    await server.stop();
  }
});

nt("after the server restarts, the same bus serves, requests and receives again", async () => {
  const server = await startNatsServer();
  const env = natsEnv(server);
  try {
    const a = await env.bus();
    const b = await env.bus();
    const p = fresh();
    b.serve(`${p}.svc`, echo);
    const events: string[] = [];
    b.subscribe(`${p}.ev.>`, (d) => void events.push(text(d)));
    await settle(b);
    assert.is(text(await a.request(`${p}.svc`, bytes("before"))), `${p}.svc|before`);
    await server.restart();
    const reply = await waitFor(
      "a request through the restarted server",
      async () => text(await a.request(`${p}.svc`, bytes("after"), { timeoutMs: 1000 })),
      15000,
    );
    assert.is(reply, `${p}.svc|after`);
    await waitFor("b to be reconnected", () => b.isConnected(), 15000);
    await waitFor(
      "an event through the restarted server",
      () => {
        a.publish(`${p}.ev.x`, bytes("again"));
        return events.includes("again");
      },
      15000,
      100,
    );
  } finally {
    await env.cleanup();
    await server.stop();
  }
});

n.run();
