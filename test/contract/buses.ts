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
import { silentLogger } from "../../src/log.js";
import { startNatsServer } from "../support/nats-server.js";
import { requires, TOOLS, type Requirement } from "../support/requires.js";

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
