/**
 * What `/metrics` shows, in Prometheus text format (prom-client). One
 * `Metrics` is made by the composition root and handed to every component
 * in its Context, like the bus, the config and the log: no module reaches
 * for a global registry, so two servers in one test process count apart.
 * Node's process metrics (prom-client's default collectors) are collected
 * into this same registry.
 *
 * Names follow Prometheus conventions: `sugar_` prefix, `_total` counters,
 * `_seconds` histograms. Labels are closed sets (adapter, op, result, error
 * code, answer kind): never a uid, serial number or path, which would make
 * one series per client.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import { sugar } from "../schemas/gen/messages.js";
import { SugarError } from "./errors.js";
import type { Bus } from "./bus/types.js";

/** Seconds: an XO on port 191 waits up to the bus timeout (2 s by default); a page up to a few seconds. */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5];

export type ActivationAnswer = "lease" | "stolen" | "empty" | "rtc" | "invalid" | "error";

export interface Metrics {
  readonly registry: Registry;
  /** Requests an adapter answered: adapter (http, xmlrpc, web, activation), op (a route or request kind), result (ok or an error code). */
  readonly requests: Counter<"adapter" | "op" | "result">;
  readonly latency: Histogram<"adapter">;
  /** What port 191 answered. */
  readonly activations: Counter<"answer">;
  /** One keyring signing exchange (lease or rtc), as the lease actor timed it. */
  readonly keyringSign: Histogram<"op">;
  readonly keyringErrors: Counter<"code">;
  /** Backup admissions: accepted, or the refusal's reason. */
  readonly backupAdmissions: Counter<"result">;
  /** Bus requests that failed, by error code. */
  readonly busErrors: Counter<"code">;
  /** Live-feed browsers connected now. */
  readonly liveClients: Gauge;
  /** Text for a scrape, and its Content-Type. */
  scrape(): Promise<{ body: string; contentType: string }>;
}

export interface MetricsOptions {
  /** Node's process metrics (CPU, memory, event loop, handles). Default true; tests that make many Metrics turn it off. */
  process?: boolean;
}

export function createMetrics(opts: MetricsOptions = {}): Metrics {
  const registry = new Registry();
  const registers = [registry];
  if (opts.process !== false) collectDefaultMetrics({ register: registry });
  return {
    registry,
    requests: new Counter({ name: "sugar_requests_total", help: "Requests answered, by adapter, operation and result (ok or an error code)", labelNames: ["adapter", "op", "result"], registers }),
    latency: new Histogram({ name: "sugar_request_duration_seconds", help: "Time to answer a request, by adapter", labelNames: ["adapter"], buckets: LATENCY_BUCKETS, registers }),
    activations: new Counter({ name: "sugar_activation_answers_total", help: "Port 191 answers by kind: lease, stolen, empty, rtc, invalid, error", labelNames: ["answer"], registers }),
    keyringSign: new Histogram({ name: "sugar_keyring_sign_duration_seconds", help: "Keyring signing exchanges (lease, rtc) as the lease actor timed them", labelNames: ["op"], buckets: LATENCY_BUCKETS, registers }),
    keyringErrors: new Counter({ name: "sugar_keyring_errors_total", help: "Keyring exchanges that failed, by error code", labelNames: ["code"], registers }),
    backupAdmissions: new Counter({ name: "sugar_backup_admissions_total", help: "Backup admissions: accepted, or the reason of a refusal", labelNames: ["result"], registers }),
    busErrors: new Counter({ name: "sugar_bus_request_errors_total", help: "Bus requests that failed, by error code", labelNames: ["code"], registers }),
    liveClients: new Gauge({ name: "sugar_admin_live_clients", help: "Browsers on the admin console's live feed now", registers }),
    async scrape() {
      return { body: await registry.metrics(), contentType: registry.contentType };
    },
  };
}

/** The error code an envelope carries, or undefined for a payload (or bytes that are no envelope). */
function envelopeError(reply: Uint8Array): string | undefined {
  try {
    const env = sugar.common.Envelope.decode(reply);
    return env.result === "error" ? env.error?.code || "internal" : undefined;
  } catch {
    return undefined; // not an envelope: the caller's decoder reports it
  }
}

/**
 * The bus, with every failed request counted by its error code: the
 * transport's own (unavailable, timeout) and the actors' (an Error
 * envelope). Everything else is the bus itself (a NatsBus keeps its own
 * methods): only `request` is wrapped.
 */
export function meteredBus<B extends Bus>(bus: B, metrics: Metrics): B {
  const request: Bus["request"] = async (subject, data, opts) => {
    let reply: Uint8Array;
    try {
      reply = await bus.request(subject, data, opts);
    } catch (err) {
      metrics.busErrors.inc({ code: err instanceof SugarError ? err.code : "internal" });
      throw err;
    }
    const code = envelopeError(reply);
    if (code !== undefined) metrics.busErrors.inc({ code });
    return reply;
  };
  return new Proxy(bus, {
    get(target, prop) {
      if (prop === "request") return request;
      const v: unknown = Reflect.get(target, prop, target);
      return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}
