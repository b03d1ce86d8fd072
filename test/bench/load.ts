/**
 * The one load generator every scenario uses, for the subject and its
 * baseline alike: a fixed number of requests in flight, until a count is
 * reached or a duration has passed (always bounded), each request timed on
 * its own. Latency percentiles come from the sorted samples of the requests
 * that succeeded; a request that throws counts as an error.
 *
 * HTTP goes through `node:http` with one keep-alive Agent per target (not
 * fetch): cheap on the generator's side and identical for both servers.
 */
import { Agent, request as httpRequest } from "node:http";

export interface LoadSpec {
  /** Requests in flight at once. */
  concurrency: number;
  /** CPU seconds the server under load has used so far, to report its CPU share during the run. */
  serverCpu?: () => number | undefined;
  /** Stop after this many requests have been started. */
  count?: number;
  /** Stop starting requests after this long (ms); the ones in flight finish. */
  durationMs?: number;
}

export interface LoadResult {
  concurrency: number;
  /** Requests that succeeded. */
  ok: number;
  /** Requests that threw (wrong status, wrong answer, timeout, socket error). */
  errors: number;
  /** The first error's message, to say what went wrong. */
  firstError?: string;
  /** From the first request's start to the last one's end. */
  elapsedMs: number;
  /** Successful requests per second. */
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Every successful request's latency (ms), ascending. */
  samplesMs: Float64Array;
  /** CPU used by this process (the generator) during the run, in CPUs (1 = one core busy all the time). */
  generatorCpu: number;
  /** CPU used by the server during the run, in CPUs; undefined when not known. */
  serverCpu?: number;
}

/** A hard bound on one run, whatever the duration says. */
const MAX_REQUESTS = 20_000_000;

/** Nearest-rank percentile of ascending samples (q in 0..1); 0 when there are none. */
export function percentile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length)));
  return sorted[rank - 1]!;
}

/** Latencies, growing without per-sample allocation. */
class Samples {
  private buf = new Float64Array(4096);
  length = 0;
  add(ms: number): void {
    if (this.length === this.buf.length) {
      const bigger = new Float64Array(this.buf.length * 2);
      bigger.set(this.buf);
      this.buf = bigger;
    }
    this.buf[this.length++] = ms;
  }
  sorted(): Float64Array {
    return this.buf.slice(0, this.length).sort();
  }
}

/**
 * Runs `op(i)` for i = 0, 1, 2, ... with `concurrency` calls in flight. Every
 * worker starts in the same tick, so `{concurrency: n, count: n}` is a storm
 * of n at once.
 */
export async function runLoad(spec: LoadSpec, op: (i: number) => Promise<void>): Promise<LoadResult> {
  if (spec.count === undefined && spec.durationMs === undefined) throw new Error("runLoad needs a count or a duration");
  const limit = Math.min(spec.count ?? MAX_REQUESTS, MAX_REQUESTS);
  const samples = new Samples();
  let next = 0;
  let errors = 0;
  let firstError: string | undefined;
  const cpu0 = process.cpuUsage();
  const server0 = spec.serverCpu?.();
  const started = performance.now();
  const deadline = spec.durationMs === undefined ? Infinity : started + spec.durationMs;
  const worker = async (): Promise<void> => {
    while (next < limit) {
      const t0 = performance.now();
      if (t0 >= deadline) return;
      const i = next++;
      try {
        await op(i);
        samples.add(performance.now() - t0);
      } catch (err) {
        errors++;
        firstError ??= err instanceof Error ? err.message : String(err);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, spec.concurrency) }, worker));
  const elapsedMs = performance.now() - started;
  const cpu = process.cpuUsage(cpu0);
  const server1 = spec.serverCpu?.();
  const sorted = samples.sorted();
  const result: LoadResult = {
    concurrency: spec.concurrency,
    ok: sorted.length,
    errors,
    elapsedMs,
    perSecond: elapsedMs > 0 ? (sorted.length * 1000) / elapsedMs : 0,
    p50Ms: percentile(sorted, 0.5),
    p99Ms: percentile(sorted, 0.99),
    maxMs: sorted.length ? sorted[sorted.length - 1]! : 0,
    samplesMs: sorted,
    generatorCpu: elapsedMs > 0 ? (cpu.user + cpu.system) / 1000 / elapsedMs : 0,
  };
  if (server0 !== undefined && server1 !== undefined && elapsedMs > 0) result.serverCpu = ((server1 - server0) * 1000) / elapsedMs;
  if (firstError !== undefined) result.firstError = firstError;
  return result;
}

/** One of the things measured side by side: an operation, how many of it run in flight, and the server it loads. */
export interface Contender {
  concurrency: number;
  op: (i: number) => Promise<void>;
  serverCpu?: () => number | undefined;
}

export interface MeasureSpec {
  /** A warm-up run per contender before anything is measured (result discarded). */
  warmupMs: number;
  /** Measured time per contender, split evenly over the rounds. */
  durationMs: number;
  /** Rounds: every contender runs once per round, in turn, so a change in the machine's load hits all of them alike. */
  rounds?: number;
}

/**
 * Measures contenders (a subject and its baseline, or several) in alternating
 * rounds after a warm-up of each, and returns one combined result per
 * contender, in order. Each operation gets its own running index.
 */
export async function measure(spec: MeasureSpec, contenders: readonly Contender[]): Promise<LoadResult[]> {
  const rounds = Math.max(1, spec.rounds ?? 1);
  const counters = contenders.map(() => 0);
  const next = (k: number) => () => contenders[k]!.op(counters[k]!++);
  if (spec.warmupMs > 0) {
    for (const [k, c] of contenders.entries()) await runLoad({ concurrency: c.concurrency, durationMs: spec.warmupMs }, next(k));
  }
  const parts: LoadResult[][] = contenders.map(() => []);
  for (let r = 0; r < rounds; r++) {
    for (const [k, c] of contenders.entries()) {
      const load: LoadSpec = { concurrency: c.concurrency, durationMs: spec.durationMs / rounds };
      if (c.serverCpu) load.serverCpu = c.serverCpu;
      parts[k]!.push(await runLoad(load, next(k)));
    }
  }
  return parts.map(combine);
}

/** Several runs of one contender as one: samples pooled, time and counts summed. */
export function combine(parts: readonly LoadResult[]): LoadResult {
  if (parts.length === 1) return parts[0]!;
  const total = parts.reduce((n, p) => n + p.samplesMs.length, 0);
  const samples = new Float64Array(total);
  let at = 0;
  for (const p of parts) {
    samples.set(p.samplesMs, at);
    at += p.samplesMs.length;
  }
  samples.sort();
  const ok = parts.reduce((n, p) => n + p.ok, 0);
  const elapsedMs = parts.reduce((n, p) => n + p.elapsedMs, 0);
  const result: LoadResult = {
    concurrency: parts[0]!.concurrency,
    ok,
    errors: parts.reduce((n, p) => n + p.errors, 0),
    elapsedMs,
    perSecond: elapsedMs > 0 ? (ok * 1000) / elapsedMs : 0,
    p50Ms: percentile(samples, 0.5),
    p99Ms: percentile(samples, 0.99),
    maxMs: total ? samples[total - 1]! : 0,
    samplesMs: samples,
    generatorCpu: elapsedMs > 0 ? parts.reduce((n, p) => n + p.generatorCpu * p.elapsedMs, 0) / elapsedMs : 0,
  };
  if (parts.every((p) => p.serverCpu !== undefined) && elapsedMs > 0) result.serverCpu = parts.reduce((n, p) => n + p.serverCpu! * p.elapsedMs, 0) / elapsedMs;
  const firstError = parts.find((p) => p.firstError !== undefined)?.firstError;
  if (firstError !== undefined) result.firstError = firstError;
  return result;
}

export interface HttpReply {
  status: number;
  body: Buffer;
}

/** One HTTP target on loopback, with a keep-alive Agent sized to the concurrency. */
export class HttpClient {
  private readonly agent: Agent;

  constructor(
    readonly host: string,
    readonly port: number,
    maxSockets: number,
    private readonly timeoutMs = 30_000,
  ) {
    this.agent = new Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets });
  }

  get(path: string, extra: Record<string, string> = {}): Promise<HttpReply> {
    return this.request("GET", path, undefined, undefined, extra);
  }

  post(path: string, body: string, contentType: string): Promise<HttpReply> {
    return this.request("POST", path, Buffer.from(body), contentType);
  }

  request(method: "GET" | "POST", path: string, body?: Buffer, contentType?: string, extra: Record<string, string> = {}): Promise<HttpReply> {
    return new Promise((resolve, reject) => {
      const headers: Record<string, string> = { ...extra };
      if (body !== undefined) {
        headers["Content-Type"] = contentType ?? "application/octet-stream";
        headers["Content-Length"] = String(body.length);
      }
      const req = httpRequest({ host: this.host, port: this.port, method, path, headers, agent: this.agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks) }));
        res.on("error", reject);
      });
      req.setTimeout(this.timeoutMs, () => req.destroy(new Error(`${method} ${path}: no answer within ${this.timeoutMs} ms`)));
      req.on("error", reject);
      req.end(body);
    });
  }

  /** Closes every kept-alive socket. */
  close(): void {
    this.agent.destroy();
  }
}
