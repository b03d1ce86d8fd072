/**
 * district: a whole district on loopback (district-net.ts: one hub, leaf
 * nodes carrying several school sites each, the central keyring, one
 * `sugar-server run registry lease activation --delegation` per site), and
 * every site in an activation storm of N XO-faithful clients at once, all
 * sites at the same time. Each client asks for its own machine's lease; a
 * client that gets no lease (an empty reply: the site's keyring exchange
 * failed, or a timeout, or a dropped connection) is unanswered, and every
 * lease answered is verified the firmware's way (master key as the only
 * root). In order, with fresh machines where a storm must sign:
 *
 *   on-demand           no lease stored: each activation asks the keyring;
 *   stored-ahead        the same machines again, their leases stored by the
 *                       on-demand storm (any it left unsigned topped up
 *                       first, a few at a time): the keyring is not asked;
 *   stored-ahead-killed two keyrings (a copy of the first's directory, queue
 *                       group `keyring`), keyring 1 SIGKILLed mid-storm (see
 *                       storm());
 *   on-demand-killed    keyring 1 restarted, fresh machines, keyring 1
 *                       SIGKILLed again mid-storm.
 *
 * The figure is the p99 lease latency (connect to EOF) of the answered
 * clients; errors = unanswered clients, exactly. Baselines are rows of the
 * same run: stored-ahead against on-demand, a killed row against the same
 * kind with one keyring and no kill. district/start reports the start of the
 * sites and their memory.
 */
import { loadavg } from "node:os";
import { xoActivate } from "../../support/xo-client.js";
import { vectors } from "../../support/olpc-fixtures.js";
import { xoVerifyLease } from "../../support/xo-verify.js";
import { NATS_ABSENT, type Bench, type Scenario } from "../context.js";
import { leaseStored, SITE_LOG, SITE_NICE, START_PARALLEL, startDistrict, type District, type Machine, type Site } from "../district-net.js";
import { nextSerial, uuid } from "../fixtures.js";
import { runLoad, type LoadResult } from "../load.js";
import { waitIdle, type Proc } from "../procs.js";
import { judge, round, skippedRow, type Row, type Target } from "../report.js";
import { quiet } from "./activation.js";

const CLIENT_TIMEOUT_MS = 30_000;
/** Source addresses 127.0.0.2 …: a site's N clients spread over them, at most 5 from one (the per-source cap). */
const SOURCES = 200;
/** Warm-up machines per site, one set per keyring start. */
const WARM_SETS = 3;
const ROWS = ["start", "on-demand", "stored-ahead", "stored-ahead-killed", "on-demand-killed"] as const;

const everyAnswered: Target = { text: "every XO answered", ok: () => true };

type Miss = "empty" | "timeout" | "error" | "wrong";

interface Xo extends Machine {
  site: Site;
  /** Its place among its site's clients: picks its source address. */
  k: number;
}

interface StormResult {
  load: LoadResult;
  miss: Record<Miss, number>;
  /** Leases answered that the firmware would refuse. */
  invalid: number;
  firstInvalid?: string;
  /** When a keyring was killed: ms into the storm, clients answered and done (answered or not) by then, and whether the storm was over already. */
  kill?: { atMs: number; answered: number; done: number; after: boolean };
  load1: [number, number];
  /** CPUs used during the storm (1 = one core all the time). */
  cpu: { sites: number; keyrings: Array<{ name: string; share: number }> };
  /** Leases stored before the storm, of the storm's machines. */
  storedBefore: number;
  /** The sites' log lines during the storm, per SITE_LOG entry. */
  logged: number[];
}

/** Machines for each site, `n` each. */
const machinesFor = (sites: number, n: number): Machine[][] => Array.from({ length: sites }, () => Array.from({ length: n }, () => ({ sn: nextSerial("SHD"), uuid: uuid() })));

/** One client per machine, interleaved across the sites so every site's storm starts in the same tick. */
function lay(district: District, perSite: readonly Machine[][]): Xo[] {
  const out: Xo[] = [];
  const n = Math.max(...perSite.map((m) => m.length));
  for (let k = 0; k < n; k++) for (const [s, machines] of perSite.entries()) if (machines[k]) out.push({ ...machines[k]!, site: district.sites[s]!, k });
  return out;
}

const sum = (xs: ReadonlyArray<number | undefined>) => xs.reduce<number>((a, x) => a + (x ?? 0), 0);

/**
 * One storm: every client at once. `kill`: a keyring to SIGKILL mid-storm,
 * once half the clients are done (answered or not) or half of `killAfterMs`
 * (the wall time of the same storm with no kill) has passed, whichever
 * comes first; a storm over before that kills it at its end, and says so.
 */
async function storm(bench: Bench, district: District, xos: readonly Xo[], kill?: { proc: Proc; killAfterMs: number }): Promise<StormResult> {
  await Promise.all(district.sites.map((s) => quiet(s.port)));
  const logCounts = () => SITE_LOG.map((_, i) => sum(district.sites.map((s) => s.proc.counts()[i])));
  const logged0 = logCounts();
  const storedBefore = xos.filter((x) => leaseStored(x.site, x.sn)).length;
  const miss: Record<Miss, number> = { empty: 0, timeout: 0, error: 0, wrong: 0 };
  const lines: string[] = new Array(xos.length);
  const half = Math.ceil(xos.length / 2);
  let answered = 0;
  let done = 0;
  let killed: StormResult["kill"];
  const load1: [number, number] = [loadavg()[0]!, 0];
  const sitesCpu0 = sum(district.sites.map((s) => s.proc.cpuSeconds()));
  // Keyring CPU per process, the killed one's read just before the kill.
  const running = [district.keyring(0), district.keyring(1)].filter((k): k is Proc => k !== undefined && k.cpuSeconds() !== undefined);
  const watched = running.map((k) => ({ k, c0: k.cpuSeconds() ?? 0, c1: undefined as number | undefined }));
  const started = performance.now();
  const killNow = (after = false) => {
    if (!kill || killed) return;
    for (const w of watched) if (w.k === kill.proc) w.c1 = kill.proc.cpuSeconds();
    process.kill(kill.proc.pid, "SIGKILL");
    killed = { atMs: performance.now() - started, answered, done, after };
  };
  const timer = kill ? setTimeout(killNow, kill.killAfterMs / 2) : undefined;
  const load = await runLoad({ concurrency: xos.length, count: xos.length }, async (i) => {
    const x = xos[i]!;
    const r = await xoActivate({ host: "127.0.0.1", port: x.site.port, payload: x.sn, localAddress: `127.0.0.${2 + (x.k % SOURCES)}`, timeoutMs: CLIENT_TIMEOUT_MS });
    done++;
    if (done >= half) killNow();
    const text = r.bytes.toString("latin1");
    const why: Miss | undefined = r.closedBy === "timeout" ? "timeout" : r.closedBy === "error" ? "error" : text === "" ? "empty" : !text.startsWith(`act01: ${x.sn} `) ? "wrong" : undefined;
    if (why) {
      miss[why]++;
      throw new Error(`${x.sn} at ${x.site.name}: ${why}${r.error ? ` (${r.error.message})` : ""}${why === "wrong" ? `: ${JSON.stringify(text.slice(0, 80))}` : ""}`);
    }
    lines[i] = text;
    answered++;
  });
  clearTimeout(timer);
  killNow(true);
  const elapsedS = load.elapsedMs / 1000;
  load1[1] = loadavg()[0]!;
  const cpu = { sites: (sum(district.sites.map((s) => s.proc.cpuSeconds())) - sitesCpu0) / elapsedS, keyrings: watched.map((w) => ({ name: /keyring \d+/.exec(w.k.name)?.[0] ?? w.k.name, share: ((w.c1 ?? w.k.cpuSeconds() ?? w.c0) - w.c0) / elapsedS })) };
  if (kill) await kill.proc.stop(5000); // already dead: reaps it
  // The firmware's check, after the storm (not to load the generator during it).
  let invalid = 0;
  let firstInvalid: string | undefined;
  const now = new Date();
  for (const [i, line] of lines.entries()) {
    if (line === undefined) continue;
    const x = xos[i]!;
    const v = xoVerifyLease({ line, sn: x.sn, uuid: x.uuid, trustedKey01Hex: [vectors.masterKey01], now });
    if (!v.ok) {
      invalid++;
      firstInvalid ??= `${x.sn}: ${v.reason}`;
    }
  }
  // Every site idle (work queued behind the replies done, its log written) before the next storm.
  await settle(bench, district);
  const logged = logCounts().map((n, i) => n - logged0[i]!);
  const result: StormResult = { load, miss, invalid, load1, cpu, storedBefore, logged };
  if (killed) result.kill = killed;
  if (firstInvalid !== undefined) result.firstInvalid = firstInvalid;
  return result;
}

/** Activates machines without a stored lease, a few at a time, until each has one (or tries run out): what "stored ahead" needs. */
async function topUp(district: District, xos: readonly Xo[]): Promise<{ topped: number; missing: number }> {
  let missing = xos.filter((x) => !leaseStored(x.site, x.sn));
  const before = missing.length;
  for (let pass = 0; pass < 5 && missing.length > 0; pass++) {
    const batch = missing;
    await runLoad({ concurrency: Math.min(batch.length, 2 * district.sites.length), count: batch.length }, async (i) => {
      const x = batch[i]!;
      await xoActivate({ host: "127.0.0.1", port: x.site.port, payload: x.sn, localAddress: `127.0.0.${2 + (x.k % SOURCES)}`, timeoutMs: CLIENT_TIMEOUT_MS });
    });
    missing = missing.filter((x) => !leaseStored(x.site, x.sn));
  }
  return { topped: before - missing.length, missing: missing.length };
}

/** Every site and keyring idle again (work queued behind the replies done). */
async function settle(bench: Bench, district: District): Promise<void> {
  const procs = [...district.sites.map((s) => s.proc), district.keyring(0), district.keyring(1)].filter((p): p is Proc => p !== undefined);
  await Promise.all(procs.map((p) => waitIdle(p, bench.sizes.settleMs)));
}

const pct = (x: number) => `${Math.round(x * 100)}%`;

function stormRow(name: string, r: StormResult, base: StormResult | undefined, what: string[], target?: Target, errorsMeasured = false): Row {
  const n = r.load.ok + r.load.errors;
  const unanswered = r.load.errors;
  const p99 = r.load.p99Ms;
  const row: Row = {
    scenario: `district/${name}`,
    unit: "ms",
    value: round(p99),
    baseline: base ? round(base.load.p99Ms) : null,
    ratio: base && base.load.p99Ms > 0 ? round(p99 / base.load.p99Ms) : null,
    p50_ms: round(r.load.p50Ms),
    p99_ms: round(p99),
    errors: unanswered + r.invalid,
  };
  if (errorsMeasured) row.errors_measured = true;
  if (base) {
    row.baseline_p50_ms = round(base.load.p50Ms);
    row.baseline_p99_ms = round(base.load.p99Ms);
    row.baseline_errors = base.load.errors + base.invalid;
  }
  const m = r.miss;
  row.notes = [
    ...what,
    `${n} clients at once, wall ${(r.load.elapsedMs / 1000).toFixed(2)} s, max ${round(r.load.maxMs / 1000, 2)} s`,
    `latencies (connect to EOF) of the answered clients only; unanswered: ${unanswered} of ${n}${unanswered ? ` (empty reply ${m.empty}, timeout ${m.timeout}, connection error ${m.error}, wrong reply ${m.wrong}; first: ${r.load.firstError})` : ""}`,
    r.invalid ? `${r.invalid} answered leases the firmware would refuse (first: ${r.firstInvalid})` : "every lease answered verifies the firmware's way (master key the only root)",
    ...(r.kill
      ? [
          r.kill.after
            ? `keyring 1 SIGKILLed only when the storm was over (${(r.kill.atMs / 1000).toFixed(2)} s): it ended before half its clients were done or half the baseline's wall time had passed`
            : `keyring 1 SIGKILLed ${(r.kill.atMs / 1000).toFixed(2)} s into the storm (half its clients done, or half the baseline's wall time), ${r.kill.answered} answered and ${r.kill.done} done of ${n} by then`,
        ]
      : []),
    `the sites logged: ${SITE_LOG.map((l, i) => `${l.what} ${r.logged[i]}`).join(", ")}`,
    `CPU during the storm (of one core): sites ${pct(r.cpu.sites)}, ${r.cpu.keyrings.map((k) => `${k.name} ${pct(k.share)}`).join(", ")}${r.kill ? " (keyring 1 until its kill)" : ""}, generator ${pct(r.load.generatorCpu)}`,
    `load average (1 min) ${r.load1[0].toFixed(2)} at start, ${r.load1[1].toFixed(2)} at end`,
  ].join("; ");
  return judge(row, target);
}

const mb = (x: number) => `${x.toFixed(0)} MB`;
function rssNote(label: string, procs: readonly Proc[]): string {
  const rss = procs.map((p) => p.rssMb()).filter((x): x is number => x !== undefined);
  if (!rss.length) return `${label}: RSS not known (no /proc)`;
  return `${label}: RSS mean ${mb(sum(rss) / rss.length)}, max ${mb(Math.max(...rss))}, all ${(sum(rss) / 1024).toFixed(2)} GB`;
}

export const district: Scenario = {
  id: "district",
  what: "S sites on leaf nodes, all in an activation storm of N XOs at once: p99 lease latency with leases stored ahead vs signed on demand by the central keyring; the same with two keyrings, one SIGKILLed mid-storm",
  async run(bench) {
    if (!bench.natsAvailable) return ROWS.map((r) => skippedRow(`district/${r}`, NATS_ABSENT));
    const { sites, leaves, xos } = bench.sizes.district;
    const warm = machinesFor(sites, WARM_SETS);
    const setA = machinesFor(sites, xos);
    const setB = machinesFor(sites, xos);
    const machines = [...warm, ...setA, ...setB].flat();
    const d = await startDistrict(bench, { sites, leaves, machines });
    const shape = `${sites} sites × ${xos} XOs on ${leaves} leaf node(s) (${Math.ceil(sites / leaves)} sites per leaf, one account and remote each), one hub`;
    const startRss = rssNote("sites after start", d.sites.map((s) => s.proc));
    const ready = d.sites.map((s) => s.proc.readyMs).sort((a, b) => a - b);
    bench.progress(`district: ${sites} sites ready in ${(d.sitesReadyMs / 1000).toFixed(1)} s; ${startRss}`);

    const warmUp = (set: number) => storm(bench, d, lay(d, warm.map((m) => [m[set]!])));
    await warmUp(0);
    const a = lay(d, setA);
    bench.progress(`district: on-demand: ${a.length} XOs at once, one keyring`);
    const onDemand = await storm(bench, d, a);
    const filled = await topUp(d, a);
    await settle(bench, d);
    bench.progress(`district: stored-ahead: the same ${a.length} XOs (${filled.topped} leases topped up first, ${filled.missing} still missing)`);
    const stored = await storm(bench, d, a);

    await d.startKeyring(1);
    await warmUp(1);
    bench.progress(`district: stored-ahead-killed: ${a.length} XOs, two keyrings, keyring 1 SIGKILLed mid-storm`);
    const storedKilled = await storm(bench, d, a, { proc: d.keyring(0)!, killAfterMs: stored.load.elapsedMs });
    await d.startKeyring(0);
    await warmUp(2);
    const b = lay(d, setB);
    bench.progress(`district: on-demand-killed: ${b.length} fresh XOs, two keyrings, keyring 1 SIGKILLed mid-storm`);
    const onDemandKilled = await storm(bench, d, b, { proc: d.keyring(0)!, killAfterMs: onDemand.load.elapsedMs });
    const endRss = rssNote("after the storms", d.sites.map((s) => s.proc));
    const keyringRss = rssNote("keyrings", [d.keyring(0), d.keyring(1)].filter((k): k is Proc => k !== undefined));
    await d.stop(bench.sizes.settleMs);

    const storedNote = (r: StormResult, how: string) => `leases stored before the storm: ${r.storedBefore} of ${r.load.ok + r.load.errors} (${how})`;
    const startRow: Row = judge({
      scenario: "district/start",
      unit: "s",
      value: round(d.sitesReadyMs / 1000, 2),
      baseline: null,
      ratio: null,
      p50_ms: null,
      p99_ms: null,
      errors: 0,
      notes: [
        `${shape}; ${machines.length} delegations in the keyring`,
        `${sites} sites (run registry lease activation --delegation; once ready, at nice ${SITE_NICE}: the keyring, the NATS servers and the generator at 0) started ${START_PARALLEL} at a time: all ready in ${(d.sitesReadyMs / 1000).toFixed(1)} s; one site from spawn to ready: median ${(ready[Math.floor(ready.length / 2)]! / 1000).toFixed(2)} s, max ${(ready[ready.length - 1]! / 1000).toFixed(2)} s`,
        startRss,
        endRss,
        keyringRss,
      ].join("; "),
    });
    return [
      startRow,
      stormRow("on-demand", onDemand, undefined, [shape, "one keyring", storedNote(onDemand, "fresh machines: each activation asks the keyring")], undefined, true),
      stormRow("stored-ahead", stored, onDemand, [shape, "one keyring; baseline: on-demand", storedNote(stored, `stored by the on-demand storm, ${filled.topped} topped up a few at a time after it${filled.missing ? `, ${filled.missing} still missing` : ""}`)], everyAnswered),
      stormRow("stored-ahead-killed", storedKilled, stored, [shape, "two keyrings (queue group keyring); baseline: stored-ahead, one keyring, none killed", storedNote(storedKilled, "the stored-ahead storm's machines")], everyAnswered),
      stormRow("on-demand-killed", onDemandKilled, onDemand, [shape, "two keyrings (queue group keyring), keyring 1 restarted before; baseline: on-demand, one keyring, none killed", storedNote(onDemandKilled, "fresh machines: each activation asks a keyring")], undefined, true),
    ];
  },
};
