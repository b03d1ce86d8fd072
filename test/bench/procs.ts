/**
 * Child processes of the bench: the subject (`sugar-server` through
 * bin/sugar-server.js, as a user runs it) and the baselines
 * (dist/test/bench/baselines/*.js), both started the same way, both telling
 * their ports in "<name>: listening on HOST:PORT" lines and their readiness in
 * a "ready:" line. Every child is stopped by the bench; one still running when
 * the bench exits is killed.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { setPriority } from "node:os";
import { fileURLToPath } from "node:url";
import { binPath } from "../support/paths.js";
import { testEnv } from "../support/server.js";

export interface Proc {
  readonly name: string;
  readonly pid: number;
  /** Component name → port it listens on. */
  readonly ports: Readonly<Record<string, number>>;
  /** From spawn until the ready line was read (ms). */
  readonly readyMs: number;
  /** The first and the last lines it wrote (bounded). */
  output(): string;
  /** Resident set size now (MB), from /proc/<pid>/status; undefined where there is no /proc. */
  rssMb(): number | undefined;
  /** CPU time used so far (s), from /proc/<pid>/stat; undefined where there is no /proc. */
  cpuSeconds(): number | undefined;
  /** How many lines matched each of StartOptions.watch so far. */
  counts(): number[];
  /** How long stop() took (ms), once stopped. */
  readonly stopMs: number | undefined;
  /** Whether stop() had to SIGKILL it after the grace period. */
  readonly killed: boolean;
  /** SIGTERM, wait for exit; SIGKILL after `graceMs` (default 30 s). Idempotent. */
  stop(graceMs?: number): Promise<void>;
}

const live = new Set<ChildProcess>();
const everyProc: Proc[] = [];
process.on("exit", () => {
  for (const c of live) c.kill("SIGKILL");
});

/** Kills every child still running (for an interrupted bench). */
export function killAll(): void {
  for (const c of live) c.kill("SIGKILL");
}

const HEAD_LIMIT = 16 * 1024;
const TAIL_LIMIT = 64 * 1024;
const LISTENING = /(\w+): listening on \[?[^\]\s]*\]?:(\d+)/;

export interface StartOptions {
  args: string[];
  /** A line that says the process is ready. */
  ready: RegExp;
  /** Listener names that must have reported a port before ready counts. */
  expect: string[];
  env?: Record<string, string>;
  timeoutMs?: number;
  /** Left out of the run's list of child processes (the district's hundred sites: their scenario sums them up). */
  unlisted?: boolean;
  /** Lines to count over the process's life (whatever the output bounds keep): Proc.counts() */
  watch?: RegExp[];
}

export async function startProc(name: string, opts: StartOptions): Promise<Proc> {
  const started = performance.now();
  const child = spawn(process.execPath, opts.args, { env: testEnv(opts.env), stdio: ["ignore", "pipe", "pipe"] });
  live.add(child);
  let head = "";
  let tail = "";
  let total = 0;
  let partial = "";
  let readyAt: number | undefined;
  let exitText: string | undefined;
  const ports: Record<string, number> = {};
  const watch = opts.watch ?? [];
  const watched = watch.map(() => 0);
  const exited = new Promise<void>((resolve) =>
    child.on("exit", (code, signal) => {
      live.delete(child);
      exitText = signal ? `killed by ${signal}` : `exited with code ${code}`;
      resolve();
    }),
  );
  child.on("error", (err) => {
    exitText = `cannot start: ${err.message}`;
  });
  const onData = (d: Buffer) => {
    const text = d.toString("utf8");
    total += text.length;
    if (head.length < HEAD_LIMIT) head += text.slice(0, HEAD_LIMIT - head.length);
    tail = (tail + text).slice(-TAIL_LIMIT);
    if (readyAt !== undefined && !watch.length) return;
    const lines = (partial + text).split("\n");
    partial = lines.pop()!;
    for (const line of lines) {
      for (const [i, re] of watch.entries()) if (re.test(line)) watched[i]!++;
      if (readyAt !== undefined) continue;
      const m = LISTENING.exec(line);
      if (m) ports[m[1]!] = Number(m[2]);
      if (opts.ready.test(line) && opts.expect.every((e) => ports[e] !== undefined)) readyAt = performance.now();
    }
  };
  child.stdout!.on("data", onData);
  child.stderr!.on("data", onData);

  let stopping: Promise<void> | undefined;
  let stopMs: number | undefined;
  let killed = false;
  const stop = (graceMs = 30_000): Promise<void> =>
    (stopping ??= (async () => {
      if (exitText !== undefined) return;
      const t0 = performance.now();
      child.kill("SIGTERM");
      const killer = setTimeout(() => {
        killed = true;
        child.kill("SIGKILL");
      }, graceMs);
      await exited;
      clearTimeout(killer);
      stopMs = performance.now() - t0;
    })());

  const timeoutMs = opts.timeoutMs ?? 60_000;
  const deadline = started + timeoutMs;
  // Woken by every line written and by the exit; the timer only bounds the wait.
  while (readyAt === undefined) {
    if (exitText !== undefined) throw new Error(`${name} ${exitText} before it was ready:\n${head}${tail.slice(-4000)}`);
    if (performance.now() > deadline) {
      await stop(5000);
      throw new Error(`${name} not ready within ${timeoutMs} ms:\n${head}`);
    }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, 50);
      function done() {
        clearTimeout(timer);
        child.stdout!.off("data", done);
        child.stderr!.off("data", done);
        child.off("exit", done);
        resolve();
      }
      child.stdout!.once("data", done);
      child.stderr!.once("data", done);
      child.once("exit", done);
    });
  }
  const readyMs = readyAt - started;
  const proc: Proc = {
    name,
    pid: child.pid!,
    ports,
    readyMs,
    output: () => (total <= HEAD_LIMIT ? head : `${head}\n[...]\n${tail}`),
    rssMb: () => rssMb(child.pid!),
    counts: () => [...watched],
    cpuSeconds: () => cpuSeconds(child.pid!),
    get stopMs() {
      return stopMs;
    },
    get killed() {
      return killed;
    },
    stop,
  };
  if (!opts.unlisted) everyProc.push(proc);
  return proc;
}

/** Every child started in this run, in order. */
export const startedProcs = (): readonly Proc[] => everyProc;

/** utime + stime of a process (s); clock ticks are 100 a second on Linux. */
export function cpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return undefined;
  }
}

/**
 * Waits until a process is idle: under 5% of one CPU in two 200 ms windows
 * in a row (a server still working off the previous load would skew the next
 * measurement; one quiet window may only be a wait on the disk). Resolves
 * with the time it stayed busy (ms) and whether it went idle before the
 * deadline.
 */
export async function waitIdle(proc: Proc, timeoutMs: number): Promise<{ busyMs: number; idle: boolean }> {
  const started = performance.now();
  const windowMs = 200;
  let quietSince: number | undefined;
  for (;;) {
    const before = proc.cpuSeconds();
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, windowMs));
    const after = proc.cpuSeconds();
    if (before === undefined || after === undefined) return { busyMs: 0, idle: true };
    const share = ((after - before) * 1000) / (performance.now() - t0);
    if (share >= 0.05) quietSince = undefined;
    else if (quietSince === undefined) quietSince = t0;
    else return { busyMs: quietSince - started, idle: true };
    if (performance.now() - started > timeoutMs) return { busyMs: performance.now() - started, idle: false };
  }
}

/**
 * Sets the niceness of every thread of a process (Linux keeps one per
 * thread: setpriority on the pid alone moves only the main thread; threads
 * made later inherit it from the thread that makes them). Returns how many
 * threads were moved; 0 where there is no /proc.
 */
export function renice(pid: number, nice: number): number {
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    setPriority(pid, nice);
    return 0;
  }
  let moved = 0;
  for (const tid of tids) {
    try {
      setPriority(Number(tid), nice);
      moved++;
    } catch (err) {
      // A thread that ended since the listing; anything else is a real failure.
      if ((err as { info?: { code?: string } }).info?.code !== "ESRCH") throw err;
    }
  }
  return moved;
}

export function rssMb(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

let subjectNodeFlags: string[] = [];
/** Node options for every subject started from now on (the bench's --profile: --cpu-prof). */
export function setSubjectNodeFlags(flags: string[]): void {
  subjectNodeFlags = flags;
}

/** The subject: `sugar-server ARGS` through bin/sugar-server.js, the machine's config files kept out (testEnv). */
export function startSubject(label: string, args: string[], expect: string[], opts: { env?: Record<string, string>; timeoutMs?: number; unlisted?: boolean; watch?: RegExp[] } = {}): Promise<Proc> {
  return startProc(`sugar-server (${label})`, { args: [...subjectNodeFlags, binPath, ...args], ready: /^\S+ INFO sugar-server: ready: /, expect, ...opts });
}

/** A baseline server compiled beside this file: baselines/<file>.js. */
export function startBaseline(file: string, args: string[], expect: string[]): Promise<Proc> {
  const path = fileURLToPath(new URL(`./baselines/${file}.js`, import.meta.url));
  return startProc(`baseline ${file}`, { args: [path, ...args], ready: /^ready: /, expect });
}
