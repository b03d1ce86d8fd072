/**
 * What every scenario shares: the sizes of this mode, a temporary directory,
 * servers and measurements made once and reused (a baseline measured for one
 * scenario is the same figure another compares with), and the cleanups run
 * at the end whatever happened.
 */
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { natsServerPath, startNatsServer, type NatsServer } from "../support/nats-server.js";
import type { Row } from "./report.js";

export type Mode = "smoke" | "quick" | "full";

export interface Sizes {
  /** Requests in flight for the HTTP scenarios. */
  concurrency: number;
  /** Warm-up before every measured HTTP or bus run (ms). */
  warmupMs: number;
  /** Measured time per contender in an HTTP scenario (ms). */
  measureMs: number;
  /** Subject and baseline alternate in this many rounds. */
  rounds: number;
  /** Measured time per contender and level in bus-roundtrip (ms). */
  busMs: number;
  /** Users on disk before status is measured. */
  users: number;
  /** XO clients in one activation storm. */
  activationClients: number;
  /** Storms per server; the median wall time is reported. */
  storms: number;
  /** Leases go in through `sugar-server leases import` (timed); else written straight into the lease store's files. */
  importLeases: boolean;
  /** Serial numbers with a delegation in the keyring scenario. */
  delegations: number;
  /** Measured signing time per contender (ms). */
  keyringMs: number;
  /** Users on disk in the registry-scale scenario. */
  scaleUsers: number;
  /** A district directory's users on disk (registry-scale/district: start and RSS only); 0 skips it. */
  districtUsers: number;
  /** How long to wait for a server to go idle after a load, and for it to exit after SIGTERM, before going on (ms). */
  settleMs: number;
  /**
   * The district scenario: school sites (one sugar-server each), the leaf
   * nodes that carry them (several sites per leaf), and XOs per site in
   * every storm (all sites at once).
   */
  district: { sites: number; leaves: number; xos: number };
  /** The backup scenario: MiB of large files in the Journal, how many 1000-byte files beside them, runs per contender, and no-op rsyncs. */
  backup: { mb: number; smallFiles: number; runs: number; noops: number };
}

export const SIZES: Record<Mode, Sizes> = {
  smoke: { concurrency: 64, warmupMs: 100, measureMs: 300, rounds: 1, busMs: 200, users: 50, activationClients: 40, storms: 1, importLeases: false, delegations: 4, keyringMs: 300, scaleUsers: 200, districtUsers: 0, settleMs: 1500, district: { sites: 2, leaves: 1, xos: 4 }, backup: { mb: 3, smallFiles: 20, runs: 1, noops: 2 } },
  quick: { concurrency: 64, warmupMs: 300, measureMs: 1200, rounds: 2, busMs: 600, users: 1000, activationClients: 1000, storms: 3, importLeases: false, delegations: 32, keyringMs: 1200, scaleUsers: 10_000, districtUsers: 0, settleMs: 1000, district: { sites: 10, leaves: 2, xos: 20 }, backup: { mb: 20, smallFiles: 100, runs: 1, noops: 3 } },
  full: { concurrency: 64, warmupMs: 2000, measureMs: 10_000, rounds: 4, busMs: 5000, users: 10_000, activationClients: 1000, storms: 7, importLeases: true, delegations: 256, keyringMs: 10_000, scaleUsers: 100_000, districtUsers: 1_000_000, settleMs: 30_000, district: { sites: 100, leaves: 10, xos: 100 }, backup: { mb: 50, smallFiles: 200, runs: 3, noops: 5 } },
};

export interface Scenario {
  readonly id: string;
  /** One line: what is measured against what. */
  readonly what: string;
  run(bench: Bench): Promise<Row[]>;
}

export class Bench {
  sizes: Sizes;
  private readonly memos = new Map<string, Promise<unknown>>();
  private readonly cleanups: Array<() => Promise<void> | void> = [];
  private dirs = 0;
  /** Rows reported so far in this run, for notes that refer to another scenario's figures. */
  readonly rows: Row[] = [];

  constructor(
    readonly mode: Mode,
    readonly tmp: string,
    private readonly progressStream: NodeJS.WritableStream = process.stderr,
  ) {
    this.sizes = SIZES[mode];
  }

  /** Makes a thing once per run; every later caller gets the same promise. */
  memo<T>(key: string, make: () => Promise<T>): Promise<T> {
    let p = this.memos.get(key) as Promise<T> | undefined;
    if (!p) {
      p = make();
      this.memos.set(key, p);
    }
    return p;
  }

  /** Runs at the end of the bench, last registered first. */
  onCleanup(fn: () => Promise<void> | void): void {
    this.cleanups.push(fn);
  }

  /** Runs the cleanups: every server and connection stopped. */
  async cleanup(): Promise<void> {
    while (this.cleanups.length) {
      const fn = this.cleanups.pop()!;
      try {
        await fn();
      } catch (err) {
        this.progress(`cleanup failed: ${(err as Error).message}`);
      }
    }
  }

  /** Removes the temporary directory (after cleanup; a full run leaves a few hundred thousand files). */
  removeFiles(): void {
    rmSync(this.tmp, { recursive: true, force: true });
  }

  /** A new empty directory under the bench's temporary directory. */
  dir(name: string): string {
    const path = join(this.tmp, `${++this.dirs}-${name}`);
    mkdirSync(path, { recursive: true });
    return path;
  }

  progress(msg: string): void {
    this.progressStream.write(`bench: ${msg}\n`);
  }

  readonly natsAvailable = natsServerPath() !== undefined;

  /** One nats-server for the run (loopback, ephemeral port); undefined when it is not installed. */
  nats(): Promise<NatsServer | undefined> {
    if (!this.natsAvailable) return Promise.resolve(undefined);
    return this.memo("nats-server", async () => {
      const server = await startNatsServer();
      this.onCleanup(() => server.stop());
      return server;
    });
  }
}

export const NATS_ABSENT = "nats-server not installed (apt-get install nats-server)";
