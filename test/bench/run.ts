/**
 * sugar-server benchmarks: how fast, how far, against baselines measured in
 * the same run with the same load generator.
 *
 * Reproduce:
 *
 *   npm run build                                   # compiles to dist/
 *   npm run bench -- --quick                        # every scenario, under a minute on 2 cores
 *   npm run bench                                   # full sizes: a few minutes
 *   npm run bench -- --only status,register --out bench.json
 *   node dist/test/bench/run.js --smoke --out /tmp/bench.json   # tiny sizes (the smoke test)
 *
 * Options: --quick | --smoke (default: full), --only ID[,ID...], --out FILE
 * (a JSON array: one object per scenario or scenario part with scenario,
 * unit, value, baseline, ratio, p50_ms, p99_ms, errors, target, met, notes),
 * --profile DIR (every sugar-server child runs with `node --cpu-prof` and
 * writes its profile to DIR when it exits; servers are then given a minute
 * to exit instead of being killed, so the figures of such a run are not
 * comparable with others), --district-size SITES,XOS[,LEAVES] (the district
 * scenario's size instead of the mode's: 10 x 20 on 2 leaves quick, 100 x
 * 100 on 10 full).
 * The table goes to stdout, progress to stderr.
 *
 * What runs: the subject is `sugar-server start` (bin/sugar-server.js) as a
 * child process, with a temporary --root, every port 0 on 127.0.0.1, and the
 * machine's config files kept out (SUGAR_SERVER_SYSTEM_CONFIG and
 * SUGAR_SERVER_USER_CONFIG point to /nonexistent). Baselines are small
 * servers written for the bench (test/bench/baselines/), also child
 * processes, so both pay the same process and loopback costs; in-process
 * scenarios (bus-roundtrip, keyring) compare with in-process baselines. One
 * generator (test/bench/load.ts) drives both: a fixed number of requests in
 * flight, node:http with a keep-alive Agent, per-request latency. nats-server
 * (from $PATH, /usr/sbin or $NATS_SERVER_BIN) is started on an ephemeral
 * loopback port when installed; scenarios that need it are reported as
 * skipped when it is not. The backup scenario runs its own sshd
 * (test/support/sshd.ts) on a loopback port, and its rows are skipped
 * without sshd, ssh, rsync, rrsync or ssh-keygen. The district scenario
 * starts a district of its own (test/bench/district-net.ts: a hub and leaf
 * nats-servers, keyrings, up to a hundred sites). Everything started is
 * stopped at the end, and the temporary directory removed.
 *
 * Reading the table: ratio = subject / baseline (for activation-storm, wall
 * time, so lower is better); "met" says whether the issue's target holds in
 * this run, and a run with errors never meets its target. Figures depend on
 * the machine printed at the top: compare ratios, not absolute numbers,
 * across machines. The notes say, per row, how the baseline was measured
 * (alternating rounds, or one after the other when a load leaves work
 * behind), the CPU the server and the generator used (of one core: a
 * generator near 100% means the figure is partly the generator's limit, on
 * a small machine both share the cores), and how long a server stayed busy
 * after a load had ended (work queued behind its replies). Each HTTP
 * scenario starts its own servers and stops them before the next scenario.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { cpus, loadavg, release, tmpdir, totalmem } from "node:os";
import { join, resolve } from "node:path";
import { natsServerPath } from "../support/nats-server.js";
import { Bench, type Mode, type Sizes } from "./context.js";
import { killAll, setSubjectNodeFlags, startedProcs } from "./procs.js";
import { failedRow, formatTable } from "./report.js";
import { SCENARIOS } from "./scenarios/index.js";

interface Options {
  mode: Mode;
  district?: Sizes["district"];
  only?: string[];
  out?: string;
  profile?: string;
}

function usage(): string {
  return `usage: node dist/test/bench/run.js [--quick | --smoke] [--only ${SCENARIOS.map((s) => s.id).join(",")}] [--out FILE] [--profile DIR] [--district-size SITES,XOS[,LEAVES]]\n`;
}

function parseOptions(argv: readonly string[]): Options {
  const opts: Options = { mode: "full" };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === "--quick") opts.mode = "quick";
    else if (a === "--smoke") opts.mode = "smoke";
    else if (a === "--full") opts.mode = "full";
    else if (a === "--only") opts.only = value().split(",").map((s) => s.trim()).filter(Boolean);
    else if (a === "--out") opts.out = resolve(value());
    else if (a === "--profile") opts.profile = resolve(value());
    else if (a === "--district-size") opts.district = districtSize(value());
    else if (a === "--help" || a === "-h") {
      process.stdout.write(usage());
      process.exit(0);
    } else throw new Error(`unknown option ${a}`);
  }
  const unknown = (opts.only ?? []).filter((id) => !SCENARIOS.some((s) => s.id === id));
  if (unknown.length) throw new Error(`unknown scenario(s): ${unknown.join(", ")}`);
  return opts;
}

/** `SITES,XOS[,LEAVES]` for the district scenario (default leaves: one per 10 sites). */
function districtSize(text: string): Sizes["district"] {
  const m = /^(\d+),(\d+)(?:,(\d+))?$/.exec(text);
  const [sites, xos] = [Number(m?.[1]), Number(m?.[2])];
  const leaves = m?.[3] ? Number(m[3]) : Math.ceil(sites / 10);
  if (!m || sites < 1 || xos < 1 || leaves < 1 || leaves > sites) throw new Error(`--district-size wants SITES,XOS[,LEAVES] (leaves at most the sites), not ${text}`);
  return { sites, xos, leaves };
}

function machine(loadAtStart: number[]): string {
  const cpu = cpus();
  let nats = "not installed";
  const bin = natsServerPath();
  if (bin) {
    try {
      nats = execFileSync(bin, ["--version"], { encoding: "utf8", timeout: 5000 }).trim();
    } catch {
      nats = bin;
    }
  }
  return [
    `machine: ${cpu[0]?.model.trim() ?? "unknown cpu"}, ${cpu.length} cores, ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM`,
    `system:  ${process.platform} ${release()}, node ${process.version}, nats-server: ${nats}`,
    `load:    ${loadAtStart.map((l) => l.toFixed(2)).join(" ")} at start, ${loadavg().map((l) => l.toFixed(2)).join(" ")} at end (1/5/15-minute averages; other work on the machine skews every figure)`,
  ].join("\n");
}

async function main(): Promise<number> {
  let opts: Options;
  try {
    opts = parseOptions(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`bench: ${(err as Error).message}\n${usage()}`);
    return 2;
  }
  const loadAtStart = loadavg();
  const bench = new Bench(opts.mode, mkdtempSync(join(tmpdir(), "sugar-bench-")));
  if (opts.district) bench.sizes = { ...bench.sizes, district: opts.district };
  if (opts.profile) {
    setSubjectNodeFlags(["--cpu-prof", `--cpu-prof-dir=${opts.profile}`]);
    bench.sizes = { ...bench.sizes, settleMs: 60_000 };
  }
  const interrupted = (sig: NodeJS.Signals) => {
    process.stderr.write(`bench: ${sig}: stopping children, removing ${bench.tmp}\n`);
    killAll();
    bench.removeFiles();
    process.exit(130);
  };
  process.once("SIGINT", interrupted);
  process.once("SIGTERM", interrupted);

  const chosen = SCENARIOS.filter((s) => !opts.only || opts.only.includes(s.id));
  const rows = bench.rows;
  const started = performance.now();
  try {
    for (const s of chosen) {
      const t0 = performance.now();
      bench.progress(`${s.id}: ${s.what}`);
      try {
        rows.push(...(await s.run(bench)));
      } catch (err) {
        bench.progress(`${s.id} FAILED: ${(err as Error).stack ?? String(err)}`);
        rows.push(failedRow(s.id, (err as Error).message.split("\n")[0]!));
      }
      bench.progress(`${s.id}: done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    }
  } finally {
    await bench.cleanup();
  }
  const total = (performance.now() - started) / 1000;
  const procs = startedProcs().map((p) => `  ${p.name}: ready in ${(p.readyMs / 1000).toFixed(2)} s, stopped in ${p.stopMs === undefined ? "-" : `${(p.stopMs / 1000).toFixed(2)} s${p.killed ? " (SIGKILL)" : ""}`}`);
  process.stdout.write(
    `${machine(loadAtStart)}\nmode:    ${opts.mode}, ${total.toFixed(1)} s${opts.only ? `, only ${opts.only.join(",")}` : ""}\n\n${formatTable(rows)}` +
      (procs.length ? `\nchild processes (spawn to ready; SIGTERM to exit):\n${procs.join("\n")}\n` : ""),
  );
  if (opts.out) writeFileSync(opts.out, JSON.stringify(rows, null, 2) + "\n");
  bench.progress(`removing ${bench.tmp}`);
  bench.removeFiles();
  return rows.some((r) => r.failed) ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`);
    killAll();
    process.exit(1);
  },
);
