/**
 * A real server program a test starts (nginx, Caddy): spawned with its
 * output kept, its exit watched, and ready once every port it should listen
 * on accepts a connection. A server a failed test forgot to stop never keeps
 * the test process alive, and the exit hook of the caller kills it.
 */
import { spawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import type { Socket } from "node:net";
import { acceptsTcp } from "./ports.js";
import { waitFor } from "./wait.js";

const OUTPUT_LIMIT = 256 * 1024;

export interface Daemon {
  readonly child: ChildProcess;
  /** How it ended ("code 1", "SIGKILL", "cannot run ..."), or undefined while it runs. */
  exited(): string | undefined;
  /** Settles when the process has exited. */
  readonly exit: Promise<void>;
  /** What it wrote to stdout and stderr (the last 256 KiB). */
  output(): string;
}

/** Spawns `bin`; `running` is the caller's set of children for its exit hook. */
export function spawnDaemon(bin: string, args: readonly string[], opts: SpawnOptions, running: Set<ChildProcess>): Daemon {
  const child = spawn(bin, [...args], { ...opts, stdio: ["ignore", "pipe", "pipe"] });
  running.add(child);
  child.unref();
  for (const pipe of [child.stdout, child.stderr]) (pipe as Socket | null)?.unref();
  let output = "";
  let exited: string | undefined;
  const exit = new Promise<void>((resolve) =>
    child.on("exit", (code, signal) => {
      exited = signal ?? `code ${code}`;
      running.delete(child);
      resolve();
    }),
  );
  child.on("error", (err) => {
    exited ??= `cannot run ${bin}: ${err.message}`;
  });
  const onData = (d: Buffer) => (output = (output + d.toString()).slice(-OUTPUT_LIMIT));
  child.stdout!.on("data", onData);
  child.stderr!.on("data", onData);
  return { child, exited: () => exited, exit, output: () => output };
}

/** Resolves once every port accepts; throws (with `log()`) if the daemon exits first or the deadline passes. */
export async function untilListening(name: string, d: Daemon, ports: readonly number[], deadline: number, log: () => string): Promise<void> {
  // waitFor retries a check that throws, so an exit is an answer, not an exception.
  const outcome = await waitFor(
    `${name} on 127.0.0.1:${ports.join(",")}`,
    async () => {
      if (d.exited() !== undefined) return "exited";
      for (const p of ports) if (!(await acceptsTcp(p))) return false;
      return "ready";
    },
    Math.max(1000, deadline - Date.now()),
    20,
  );
  if (outcome === "exited") throw new Error(`${name} exited (${d.exited()}) before it was ready:\n${log()}`);
}
