/**
 * Runs `sugar-server` as a child process, the way a user does, on ephemeral
 * ports, and reads the real ports back from its "listening on" log lines.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { binPath } from "./paths.js";
import { waitFor } from "./wait.js";

/** Environment that keeps the machine's own config files out of a test. */
export function testEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { ...process.env, SUGAR_SERVER_SYSTEM_CONFIG: "/nonexistent/sugar-server.conf", SUGAR_SERVER_USER_CONFIG: "/nonexistent/config", ...extra };
}

export interface ServerProcess {
  child: ChildProcess;
  /** Component name → port it listens on. */
  ports: Record<string, number>;
  output(): string;
  /** SIGTERM, then wait for exit; resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export async function startServer(args: string[], opts: { env?: Record<string, string>; expect?: string[]; timeoutMs?: number } = {}): Promise<ServerProcess> {
  const child = spawn(process.execPath, [binPath, ...args], { env: testEnv(opts.env), stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (out += d));
  let exit: number | null | undefined;
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve((exit = code))));
  const ports: Record<string, number> = {};
  const expect = opts.expect ?? ["http", "xmlrpc"];
  try {
    await waitFor(
      `sugar-server ${args.join(" ")} to be ready`,
      () => {
        if (exit !== undefined) throw new Error(`exited with ${exit}: ${out}`);
        for (const m of out.matchAll(/(\w+): listening on \[?[^\]\s]*\]?:(\d+)/g)) ports[m[1]!] = Number(m[2]);
        // The process's own ready line (after its signal handlers are set), not a component's.
        return /sugar-server: ready: /.test(out) && expect.every((e) => ports[e] !== undefined);
      },
      opts.timeoutMs ?? 20000,
    );
  } catch (err) {
    child.kill("SIGKILL");
    throw err;
  }
  return {
    child,
    ports,
    output: () => out,
    async stop(signal = "SIGTERM") {
      if (exit !== undefined) return exit;
      child.kill(signal);
      return exited;
    },
  };
}

/** Runs a sugar-server command to completion. */
export function runCli(args: string[], opts: { env?: Record<string, string>; input?: string } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [binPath, ...args], { env: testEnv(opts.env) });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("close", (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(opts.input ?? "");
  });
}
