/**
 * registry-scale: N users written straight into the registry's directory
 * (the format actors/registry/store.ts writes), then `sugar-server start`
 * twice: of the restart, the time from spawn to its "ready:" line (the
 * first start's is in the notes), its resident memory, and REST
 * status at 64 in flight over the N users (half known, half unknown uids).
 * The full run does it again with a district directory's 1,000,000 users
 * (start and memory only; `--quick` skips it). No baseline: the start and
 * memory targets are absolute; status p99 is judged against the bare
 * baseline's p99 of the status row when that row ran.
 */
import type { Bench, Scenario } from "../context.js";
import { unknownUid, writeRegistryUsers } from "../fixtures.js";
import { HttpClient, measure } from "../load.js";
import { startSubject, waitIdle, type Proc } from "../procs.js";
import { judge, round, throughputRow, type Row } from "../report.js";
import { subjectArgs } from "./rest.js";

const REGISTERED = Buffer.from('"registered":true');
const NOT_REGISTERED = Buffer.from('"registered":false');

/** For scale: what the bare baseline of the status row did at the same concurrency, when that row ran. */
function reference(rows: readonly Row[]): string {
  const s = rows.find((r) => r.scenario === "status");
  if (s?.baseline_p99_ms === undefined || s.baseline === null) return "";
  return `; for reference, the bare node:http baseline of the status row: ${s.baseline.toFixed(0)} req/s, p99 ${s.baseline_p99_ms} ms at the same concurrency`;
}

interface Restarted {
  proc: Proc;
  uids: string[];
  loaded: boolean;
  rssReady: number | undefined;
  firstMs: number;
  busyMs: number;
  idle: boolean;
}

/** Writes n users, starts a server on them (which writes the index), stops it, and starts it again: the restart is measured. */
async function restarted(bench: Bench, n: number, label: string): Promise<Restarted> {
  const root = bench.dir(label);
  bench.progress(`${label}: writing ${n} user files`);
  const uids = writeRegistryUsers(root, n);
  // The first start meets users written behind its back: it reads every
  // file and writes the registry's index (and authorized_keys); the
  // measured start is the restart of a server whose users registered
  // through it.
  const first = await startSubject(`${label} (first start)`, ["start", ...subjectArgs(root)], ["http"], { timeoutMs: 30 * 60_000 });
  bench.onCleanup(() => first.stop());
  await waitIdle(first, bench.sizes.settleMs);
  await first.stop(10 * 60_000);
  const proc = await startSubject(label, ["start", ...subjectArgs(root)], ["http"], { timeoutMs: 10 * 60_000 });
  bench.onCleanup(() => proc.stop());
  const loaded = new RegExp(`registry: ready: ${n} users`).test(proc.output());
  const rssReady = proc.rssMb();
  const busy = await waitIdle(proc, bench.sizes.settleMs);
  return { proc, uids, loaded, rssReady, firstMs: first.readyMs, busyMs: busy.busyMs, idle: busy.idle };
}

function startRow(scenario: string, n: number, r: Restarted, maxS: number): Row {
  return judge(
    {
      scenario,
      unit: "s",
      value: round(r.proc.readyMs / 1000),
      baseline: null,
      ratio: null,
      p50_ms: null,
      p99_ms: null,
      errors: r.loaded ? 0 : 1,
      notes: `${n} users on disk; spawn to "ready:" of a restart (the first start, which read ${n} files and wrote the registry's index and ${n} authorized_keys lines, took ${(r.firstMs / 1000).toFixed(2)} s)${r.busyMs >= 300 ? `, then busy ${(r.busyMs / 1000).toFixed(1)} s more${r.idle ? "" : " (gave up waiting)"}` : ""}${r.proc.output().includes("reading every registry file") ? "; the restart did not find a current index" : ""}${r.loaded ? "" : "; the registry did not report loading them all"}`,
    },
    { text: `<= ${maxS} s`, ok: (row) => row.value !== null && row.value <= maxS },
  );
}

function rssRow(scenario: string, rssReady: number | undefined, rssLater: number | undefined, maxMb: number, later: string): Row {
  return judge(
    {
      scenario,
      unit: "MB",
      value: rssLater === undefined && rssReady === undefined ? null : round(Math.max(rssLater ?? 0, rssReady ?? 0), 1),
      baseline: null,
      ratio: null,
      p50_ms: null,
      p99_ms: null,
      errors: 0,
      notes: rssReady === undefined ? "no /proc: RSS not measured" : `VmRSS ${rssReady.toFixed(1)} MB when ready, ${rssLater?.toFixed(1)} MB ${later} (the larger is reported)`,
    },
    { text: `<= ${maxMb} MB`, ok: (row) => row.value !== null && row.value <= maxMb },
  );
}

export const registryScale: Scenario = {
  id: "registry-scale",
  what: "start time, RSS and status p99 with N users on disk",
  async run(bench) {
    const n = bench.sizes.scaleUsers;
    const { concurrency, warmupMs, measureMs } = bench.sizes;
    const r = await restarted(bench, n, "registry-scale");
    const { proc, uids } = r;
    const client = new HttpClient("127.0.0.1", proc.ports.http!, concurrency);
    bench.onCleanup(() => client.close());
    const unknown = Array.from({ length: 1024 }, unknownUid);
    bench.progress(`registry-scale: status over ${n} users, ${concurrency} in flight for ${measureMs} ms`);
    const [status] = await measure({ warmupMs, durationMs: measureMs }, [
      {
        concurrency,
        serverCpu: proc.cpuSeconds,
        op: async (i) => {
      const isKnown = (i & 1) === 0;
      const uid = isKnown ? uids[(Math.random() * uids.length) | 0]! : unknown[i & 1023]!;
      const r = await client.get(`/client/status?uid=${uid}`);
      if (r.status !== 200 || r.body.indexOf(isKnown ? REGISTERED : NOT_REGISTERED) < 0) throw new Error(`status: HTTP ${r.status} ${r.body.toString().slice(0, 200)}`);
        },
      },
    ]);
    const rssLoaded = proc.rssMb();
    client.close();
    await proc.stop();
    const statusBaseline = bench.rows.find((row) => row.scenario === "status")?.baseline_p99_ms;
    const rows: Row[] = [
      startRow("registry-scale/start", n, r, 1),
      rssRow("registry-scale/rss", r.rssReady, rssLoaded, 300, "after the status load"),
      throughputRow(
        "registry-scale/status",
        status!,
        undefined,
        statusBaseline === undefined
          ? { text: "p99 <= 5 ms", ok: (row) => row.p99_ms !== null && row.p99_ms <= 5 }
          : { text: `p99 <= 1.2 x status baseline's (${round(1.2 * statusBaseline, 2)} ms)`, ok: (row) => row.p99_ms !== null && row.p99_ms <= 1.2 * statusBaseline },
        `${n} users; ${concurrency} in flight${reference(bench.rows)}`,
      ),
    ];
    const big = bench.sizes.districtUsers;
    if (big > 0) {
      const d = await restarted(bench, big, "registry-scale-district");
      const rssIdle = d.proc.rssMb();
      await d.proc.stop();
      rows.push(startRow("registry-scale/district-start", big, d, 10), rssRow("registry-scale/district-rss", d.rssReady, rssIdle, 1536, "once idle"));
    }
    return rows;
  },
};
