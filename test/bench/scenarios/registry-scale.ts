/**
 * registry-scale: N users written straight into the registry's directory
 * (the format actors/registry/store.ts writes), then `sugar-server start`
 * twice: of the restart, the time from spawn to its "ready:" line (the
 * first start's is in the notes), its resident memory, and REST
 * status at 64 in flight over the N users (half known, half unknown uids).
 * No baseline: the targets are absolute.
 */
import type { Scenario } from "../context.js";
import { unknownUid, writeRegistryUsers } from "../fixtures.js";
import { HttpClient, measure } from "../load.js";
import { startSubject, waitIdle } from "../procs.js";
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

export const registryScale: Scenario = {
  id: "registry-scale",
  what: "start time, RSS and status p99 with N users on disk",
  async run(bench) {
    const n = bench.sizes.scaleUsers;
    const { concurrency, warmupMs, measureMs } = bench.sizes;
    const root = bench.dir("scale");
    bench.progress(`registry-scale: writing ${n} user files`);
    const uids = writeRegistryUsers(root, n);
    // The first start meets users written behind its back and makes what
    // registration would have made (each one's backup directory, the
    // authorized_keys lines); the measured start is the restart of a server
    // whose users registered through it.
    const first = await startSubject("registry-scale (first start)", ["start", ...subjectArgs(root)], ["http"], { timeoutMs: 300_000 });
    bench.onCleanup(() => first.stop());
    await waitIdle(first, bench.sizes.settleMs);
    await first.stop();
    const proc = await startSubject("registry-scale", ["start", ...subjectArgs(root)], ["http"], { timeoutMs: 120_000 });
    bench.onCleanup(() => proc.stop());
    const loaded = new RegExp(`registry: ready: ${n} users`).test(proc.output());
    const rssReady = proc.rssMb();
    const busyAfterReady = await waitIdle(proc, bench.sizes.settleMs);
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

    const base = { baseline: null, ratio: null, p50_ms: null, p99_ms: null };
    const rows: Row[] = [
      judge(
        { scenario: "registry-scale/start", unit: "s", value: round(proc.readyMs / 1000), ...base, errors: loaded ? 0 : 1, notes: `${n} users on disk; spawn to "ready:" of a restart (the first start, which made ${n} backup directories and authorized_keys lines, took ${(first.readyMs / 1000).toFixed(2)} s)${busyAfterReady.busyMs >= 300 ? `, then busy ${(busyAfterReady.busyMs / 1000).toFixed(1)} s more${busyAfterReady.idle ? "" : " (gave up waiting)"}` : ""}${loaded ? "" : "; the registry did not report loading them all"}` },
        { text: "<= 3 s", ok: (r) => r.value !== null && r.value <= 3 },
      ),
      judge(
        {
          scenario: "registry-scale/rss",
          unit: "MB",
          value: rssLoaded === undefined ? null : round(Math.max(rssLoaded, rssReady ?? 0), 1),
          ...base,
          errors: 0,
          notes: rssLoaded === undefined ? "no /proc: RSS not measured" : `VmRSS ${rssReady?.toFixed(1)} MB when ready, ${rssLoaded.toFixed(1)} MB after the status load (the larger is reported)`,
        },
        { text: "<= 300 MB", ok: (r) => r.value !== null && r.value <= 300 },
      ),
      throughputRow("registry-scale/status", status!, undefined, { text: "p99 <= 5 ms", ok: (r) => r.p99_ms !== null && r.p99_ms <= 5 }, `${n} users; ${concurrency} in flight${reference(bench.rows)}`),
    ];
    return rows;
  },
};
