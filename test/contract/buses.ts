/**
 * The one bus factory of the contract suites: every actor's contract runs
 * unchanged on each Bus implementation listed here. A suite asks
 * `forEachBus` for its buses; the NATS one starts one real nats-server per
 * suite file and gives each test new connections to it. Without nats-server
 * the NATS half is registered as skipped (test/support/requires.ts), and
 * fails under CI=true.
 */
import { MemoryBus } from "../../src/bus/memory.js";
import { NatsBus } from "../../src/bus/nats.js";
import type { Bus } from "../../src/bus/types.js";
import { suite, type uvu } from "uvu";
import type { Component } from "../../src/component.js";
import { silentLogger } from "../../src/log.js";
import { tempDir } from "../support/tmp.js";
import { startNatsServer } from "../support/nats-server.js";
import { allOf, requires, testsNeeding, TOOLS, type Requirement } from "../support/requires.js";

export interface BusFactory {
  /** A bus for one test (on NATS: a new connection to the suite's server). */
  bus(): Promise<Bus>;
  /** Closes every bus it made and stops what it started. */
  cleanup(): Promise<void>;
}

export interface BusKind {
  readonly name: "memory" | "nats";
  /** What must be installed for this kind; `ok` for the embedded bus. */
  readonly requirement: Requirement;
  /** Starts what the kind needs (a nats-server) and returns a factory. */
  start(opts?: { timeoutMs?: number }): Promise<BusFactory>;
}

const memory: BusKind = {
  name: "memory",
  requirement: { ok: true, why: "" },
  async start(opts) {
    const buses: MemoryBus[] = [];
    return {
      async bus() {
        const bus = new MemoryBus({ timeoutMs: opts?.timeoutMs ?? 3000 });
        buses.push(bus);
        return bus;
      },
      async cleanup() {
        await Promise.all(buses.map((b) => b.close()));
      },
    };
  },
};

const nats: BusKind = {
  name: "nats",
  requirement: requires(TOOLS.natsServer),
  async start(opts) {
    const server = await startNatsServer();
    const buses: NatsBus[] = [];
    return {
      async bus() {
        const bus = await NatsBus.connect({ servers: server.url, timeoutMs: opts?.timeoutMs ?? 3000, reconnectTimeWaitMs: 100, log: silentLogger });
        buses.push(bus);
        return bus;
      },
      async cleanup() {
        await Promise.all(buses.map((b) => b.close()));
        await server.stop();
      },
    };
  },
};

/** Every bus implementation, embedded first. */
export const BUS_KINDS: readonly BusKind[] = [memory, nats];

/** Calls `register` once per bus kind: one contract, every implementation. */
export function forEachBus(register: (kind: BusKind) => void): void {
  for (const kind of BUS_KINDS) register(kind);
}

/** What every test of a contractSuite gets: a temp dir, a bus, and the components it started. */
export interface ContractCtx {
  dir: { path: string; remove(): void };
  bus: Bus;
  /** Stopped in reverse after the test, before its bus closes. */
  running: Component[];
}

/** What a contractSuite may add to the shared scaffold. */
export interface ContractSuiteOptions<Ctx> {
  /** Tools the suite needs besides the bus kind's (e.g. openssl): without them its tests are counted skips. */
  requirement?: Requirement;
  /** The bus's request timeout (ms). */
  timeoutMs?: number;
  /** Per test, after the dir, bus and `running` are set up (e.g. a site of its own). */
  setUp?: (c: Ctx) => void;
  /** Per test, before its components stop (e.g. drain its own subscriptions). */
  tearDown?: (c: Ctx) => Promise<void>;
}

/**
 * One actor's contract suite on one bus kind: the kind's server for the
 * whole suite, and for each test a temp dir, a new bus and a `running` list
 * whose components are stopped (in reverse) before the bus closes and the
 * dir goes. `test` registers a test that is a counted skip without the
 * kind's tool (or `requirement`'s).
 */
export function contractSuite<Ctx extends ContractCtx>(
  name: string,
  kind: BusKind,
  opts: ContractSuiteOptions<Ctx> = {},
): { t: uvu.Test<Ctx>; test: (name: string, fn: (c: Ctx) => Promise<void>) => void } {
  const t = suite<Ctx>(`${name}[${kind.name}]`);
  const test = testsNeeding(t, opts.requirement ? allOf(kind.requirement, opts.requirement) : kind.requirement);
  let factory: BusFactory | undefined;
  t.before(async () => {
    if (kind.requirement.ok) factory = await kind.start(opts.timeoutMs ? { timeoutMs: opts.timeoutMs } : {});
  });
  t.after(async () => {
    await factory?.cleanup();
  });
  t.before.each(async (c) => {
    if (!factory) return;
    c.dir = tempDir();
    c.bus = await factory.bus();
    c.running = [];
    opts.setUp?.(c);
  });
  t.after.each(async (c) => {
    if (!factory) return;
    await opts.tearDown?.(c);
    // Subjects repeat from test to test: what one test started must be gone before the next starts.
    for (const component of c.running.reverse()) await component.stop();
    await c.bus.close();
    c.dir.remove();
  });
  return { t, test };
}
