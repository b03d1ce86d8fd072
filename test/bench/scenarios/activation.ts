/**
 * activation-storm: n XO-faithful clients at once (connect, send the 11-byte
 * serial number, half-close, read to EOF), each from an address in
 * 127.0.0.2–127.0.0.201 so no address opens more than the per-source cap of
 * 5, every one asking for its own stored lease. The subject is `sugar-server
 * start --activation-port 0` with n v1 leases signed with the OLPC vector
 * master key, imported through the CLI (`leases import`) in full mode and
 * written straight into the lease store's files otherwise; the baseline is
 * baselines/activation.ts, a bare TCP server serving the same bytes. Several
 * storms per server, alternating; the median wall time is reported.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { runCli } from "../../support/server.js";
import { xoActivate } from "../../support/xo-client.js";
import type { Scenario } from "../context.js";
import { signLeases, writeLeaseFiles } from "../fixtures.js";
import { runLoad, type LoadResult } from "../load.js";
import { startBaseline, startSubject, waitIdle } from "../procs.js";
import { judge, round, type Row, type Target } from "../report.js";
import { subjectArgs } from "./rest.js";

const CLIENT_TIMEOUT_MS = 30_000;
const SOURCES = 200;

const target: Target = { text: "all leases; ratio <= 2", ok: (r) => r.ratio !== null && r.ratio <= 2 };

interface Client {
  sn: string;
  lease: Buffer;
}

/** TCP states of a server-side socket that node still holds: ESTABLISHED, SYN_RECV, CLOSE_WAIT. */
const OPEN_STATES = new Set(["01", "03", "08"]);

/** Connections to `port` the server has not closed yet, from /proc/net/tcp{,6}; undefined without /proc. */
function openConnections(port: number): number | undefined {
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0");
  let count = 0;
  let seen = false;
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch {
      continue;
    }
    seen = true;
    for (const line of text.split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length > 3 && f[1]!.endsWith(`:${hexPort}`) && OPEN_STATES.has(f[3]!)) count++;
    }
  }
  return seen ? count : undefined;
}

/** Waits (with a deadline) until the server has closed every connection of the previous storm, so caps start from zero. */
export async function quiet(port: number): Promise<void> {
  const deadline = performance.now() + 10_000;
  for (;;) {
    const open = openConnections(port);
    if (open === undefined || open === 0) return;
    if (performance.now() > deadline) throw new Error(`port ${port} still has ${open} open connections after 10 s`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function storm(port: number, clients: readonly Client[], source: (i: number) => string): Promise<LoadResult> {
  await quiet(port);
  return runLoad({ concurrency: clients.length, count: clients.length }, async (i) => {
    const c = clients[i]!;
    const r = await xoActivate({ host: "127.0.0.1", port, payload: c.sn, localAddress: source(i), timeoutMs: CLIENT_TIMEOUT_MS });
    if (r.closedBy !== "server") throw new Error(`${c.sn} from ${source(i)}: ${r.closedBy}${r.error ? ` (${r.error.message})` : ""}`);
    if (!r.bytes.equals(c.lease)) throw new Error(`${c.sn} from ${source(i)}: got ${r.bytes.length} bytes instead of its ${c.lease.length}-byte lease`);
  });
}

/** The kernel's count of connections dropped because a listen queue was full (TcpExt ListenOverflows); undefined without /proc. */
function listenOverflows(): number | undefined {
  try {
    const lines = readFileSync("/proc/net/netstat", "utf8").split("\n").filter((l) => l.startsWith("TcpExt:"));
    const names = lines[0]?.split(/\s+/) ?? [];
    const values = lines[1]?.split(/\s+/) ?? [];
    const i = names.indexOf("ListenOverflows");
    return i > 0 && values[i] !== undefined ? Number(values[i]) : undefined;
  } catch {
    return undefined;
  }
}

const median = (runs: LoadResult[]): LoadResult => [...runs].sort((a, b) => a.elapsedMs - b.elapsedMs)[Math.floor(runs.length / 2)]!;

export const activationStorm: Scenario = {
  id: "activation-storm",
  what: "n XO clients at once on the activation port, each asking for its stored lease, vs a bare TCP server sending the same bytes",
  async run(bench) {
    const n = bench.sizes.activationClients;
    const dir = bench.dir("activation");
    const root = join(dir, "root");
    bench.progress(`activation-storm: signing ${n} v1 leases with the vector master key`);
    const signed = signLeases(n);
    const file = join(dir, "leases.txt");
    writeFileSync(file, signed.map((l) => l.lease).join(""));
    let stored: string;
    if (bench.sizes.importLeases) {
      const importStarted = performance.now();
      const imported = await runCli(["leases", "import", file, "--root", root]);
      if (imported.code !== 0) throw new Error(`leases import: ${imported.stderr}${imported.stdout}`);
      stored = `leases import of ${n}: ${((performance.now() - importStarted) / 1000).toFixed(1)} s`;
      bench.progress(`activation-storm: ${imported.stdout.trim()}; ${stored}`);
    } else {
      writeLeaseFiles(root, signed);
      stored = `leases written straight into the lease store (full mode imports them with the CLI)`;
    }

    const subject = await startSubject("activation", ["start", ...subjectArgs(root)], ["activation"]);
    bench.onCleanup(() => subject.stop());
    const baseline = await startBaseline("activation", ["--leases", file], ["baseline"]);
    bench.onCleanup(() => baseline.stop());
    const ports = { subject: subject.ports.activation!, baseline: baseline.ports.baseline! };
    await waitIdle(subject, bench.sizes.settleMs);

    const clients: Client[] = signed.map((l) => ({ sn: l.sn, lease: Buffer.from(l.lease) }));
    const source = (i: number) => `127.0.0.${2 + (i % SOURCES)}`;
    // Warm-up: one full storm each, not counted (the first storms on a fresh process are the slowest).
    let warmErrors = 0;
    for (const which of ["baseline", "subject"] as const) warmErrors += (await storm(ports[which], clients, source)).errors;

    const runs: Record<"subject" | "baseline", LoadResult[]> = { subject: [], baseline: [] };
    // SYNs the kernel dropped because the server's accept queue was full (each costs that client a 1 s retransmission).
    const overflows: Record<"subject" | "baseline", number | undefined> = { subject: 0, baseline: 0 };
    for (let k = 0; k < bench.sizes.storms; k++) {
      for (const which of ["baseline", "subject"] as const) {
        bench.progress(`activation-storm: ${which}, storm ${k + 1} of ${bench.sizes.storms}: ${n} clients at once`);
        const before = listenOverflows();
        runs[which].push(await storm(ports[which], clients, source));
        const after = listenOverflows();
        const prev = overflows[which];
        overflows[which] = before === undefined || after === undefined || prev === undefined ? undefined : prev + after - before;
      }
    }
    const s = median(runs.subject);
    const b = median(runs.baseline);
    const errors = runs.subject.reduce((sum, r) => sum + r.errors, 0);
    const baselineErrors = runs.baseline.reduce((sum, r) => sum + r.errors, 0);
    const firstError = runs.subject.find((r) => r.firstError)?.firstError;
    const notes = [
      `${n} clients from ${Math.min(n, SOURCES)} addresses, median of ${bench.sizes.storms} storms`,
      `connections/s: subject ${Math.round((n * 1000) / s.elapsedMs)}, baseline ${Math.round((n * 1000) / b.elapsedMs)}`,
      `subject storms (s): ${runs.subject.map((r) => (r.elapsedMs / 1000).toFixed(3)).join(" ")}`,
      ...(overflows.subject === undefined ? [] : [`accept-queue overflows (kernel ListenOverflows, all storms): subject ${overflows.subject}, baseline ${overflows.baseline}`]),
      `${errors === 0 ? "every client got its lease byte for byte" : `${errors} clients without their lease (first: ${firstError})`}`,
      stored,
      ...(warmErrors ? [`${warmErrors} errors during warm-up`] : []),
    ];
    const row: Row = {
      scenario: "activation-storm",
      unit: "s",
      value: round(s.elapsedMs / 1000, 4),
      baseline: round(b.elapsedMs / 1000, 4),
      ratio: round(s.elapsedMs / b.elapsedMs),
      p50_ms: round(s.p50Ms),
      p99_ms: round(s.p99Ms),
      errors,
      baseline_p50_ms: round(b.p50Ms),
      baseline_p99_ms: round(b.p99Ms),
      baseline_errors: baselineErrors,
      notes: notes.join("; "),
    };
    await subject.stop();
    await baseline.stop();
    return [judge(row, target)];
  },
};
