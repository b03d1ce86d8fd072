/** What every actor and adapter receives and returns. */
import type { Bus } from "./bus/types.js";
import type { Config } from "./config.js";
import type { Logger } from "./log.js";
import type { Metrics } from "./metrics.js";

export interface Context {
  bus: Bus;
  config: Config;
  log: Logger;
  /** Where components count what /metrics shows; absent (a CLI command's actors, most tests) = not counted. */
  metrics?: Metrics;
}

export interface Component {
  readonly name: string;
  /** Stops taking new work, finishes what is in flight, releases its resources. Idempotent. */
  stop(): Promise<void>;
  /** Start-up work that goes on after the component is ready (the backup actor's first reconcile); settles when it is done, never rejects. */
  readonly afterReady?: Promise<void>;
}

/** A network listener's component also says where it listens (port 0 → the real port). */
export interface Listener extends Component {
  readonly address: { host: string; port: number };
}

/** `host:port`, with an IPv6 host in brackets (`[::]:8000`). */
export function formatAddress(a: { host: string; port: number }): string {
  return `${a.host.includes(":") ? `[${a.host}]` : a.host}:${a.port}`;
}

/** Makes `stop` idempotent: every call after the first returns the first call's promise. */
export function once(fn: () => Promise<void>): () => Promise<void> {
  let p: Promise<void> | undefined;
  return () => (p ??= fn());
}
