/**
 * A real nats-server for tests: on 127.0.0.1, a free port, its own temporary
 * directory (config, JetStream store, nothing shared), ready when the promise
 * resolves (it has accepted a connection and sent its INFO line). `restart()`
 * comes back on the same port, for reconnection tests. Servers still running
 * when the test process exits are killed.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { connect as tcpConnect } from "node:net";
import { join } from "node:path";
import { toolBin, toolPath, TOOLS } from "./requires.js";
import { tempDir } from "./tmp.js";

export interface NatsServerOptions {
  /** The contents of a nats-server config file (`-c`); host and port are set on the command line. */
  config?: string;
  /** More command-line arguments, e.g. ["--user", "u", "--pass", "p"] or ["-js"]. */
  args?: string[];
  /** A fixed port instead of a random free one. */
  port?: number;
  /** How long start (and restart) may take (ms). */
  startTimeoutMs?: number;
}

export interface NatsServer {
  /** nats://127.0.0.1:PORT */
  readonly url: string;
  readonly port: number;
  /** The server's temporary directory (config, store). */
  readonly dir: string;
  /** Everything the server logged so far (the last 256 KiB). */
  log(): string;
  /** Kills the server and removes its directory. Idempotent. */
  stop(): Promise<void>;
  /** Kills the server (keeping its directory) and starts it again on the same port. */
  restart(): Promise<void>;
}

/** The nats-server binary ($NATS_SERVER_BIN, then $PATH, then /usr/sbin), or undefined (see requires.ts). */
export function natsServerPath(): string | undefined {
  return toolPath(TOOLS.natsServer);
}

const running = new Set<ChildProcess>();
const dirs = new Set<{ remove(): void }>();
// A test that crashes or exits early must not leave servers or directories behind.
process.on("exit", () => {
  for (const child of running) child.kill("SIGKILL");
  for (const dir of dirs) dir.remove();
});

export async function startNatsServer(opts: NatsServerOptions = {}): Promise<NatsServer> {
  const bin = toolBin(TOOLS.natsServer);
  const dir = tempDir("sugar-nats-");
  dirs.add(dir);
  const startTimeoutMs = opts.startTimeoutMs ?? 10000;
  const baseArgs = ["-a", "127.0.0.1", "-sd", join(dir.path, "store")];
  if (opts.config !== undefined) {
    const file = join(dir.path, "nats-server.conf");
    writeFileSync(file, opts.config);
    baseArgs.push("-c", file);
  }
  let logText = "";
  let child: ChildProcess | undefined;
  let stopped = false;

  const launch = async (port: number): Promise<number> => {
    const proc = spawn(bin, [...baseArgs, "-p", String(port), ...(opts.args ?? [])], { stdio: ["ignore", "pipe", "pipe"] });
    child = proc;
    running.add(proc);
    let exited: string | undefined;
    let listening: number | undefined;
    const onData = (d: Buffer) => {
      logText = (logText + d.toString("utf8")).slice(-256 * 1024);
      const m = /Listening for client connections on [^\s]*:(\d+)/.exec(logText);
      if (m && listening === undefined) listening = Number(m[1]);
    };
    proc.stdout?.on("data", onData);
    proc.stderr?.on("data", onData);
    proc.on("error", (err) => {
      exited = `cannot run ${bin}: ${err.message}`;
    });
    proc.on("exit", (code, signal) => {
      running.delete(proc);
      exited ??= `exited with ${signal ?? `code ${code}`}`;
    });
    const deadline = Date.now() + startTimeoutMs;
    for (;;) {
      if (exited !== undefined) throw new Error(`nats-server ${exited} before it was ready:\n${logText}`);
      if (listening !== undefined && (await acceptsClients(listening))) return listening;
      if (Date.now() > deadline) {
        proc.kill("SIGKILL");
        throw new Error(`nats-server not ready after ${startTimeoutMs} ms:\n${logText}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  };

  const kill = async (): Promise<void> => {
    const proc = child;
    child = undefined;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const gone = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
    proc.kill("SIGKILL");
    await gone;
  };

  let port: number;
  try {
    port = await launch(opts.port ?? -1);
  } catch (err) {
    await kill();
    dir.remove();
    dirs.delete(dir);
    throw err;
  }
  const url = `nats://127.0.0.1:${port}`;
  return {
    url,
    port,
    dir: dir.path,
    log: () => logText,
    async stop() {
      if (stopped) return;
      stopped = true;
      await kill();
      dir.remove();
      dirs.delete(dir);
    },
    async restart() {
      if (stopped) throw new Error("restart() after stop()");
      await kill();
      await launch(port);
    },
  };
}

/** True when something on the port answers like a NATS server (sends an INFO line). */
function acceptsClients(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = tcpConnect({ host: "127.0.0.1", port });
    let seen = "";
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(1000, () => done(false));
    sock.on("data", (d) => {
      seen += d.toString("latin1");
      if (seen.startsWith("INFO ")) done(true);
    });
    sock.on("error", () => done(false));
    sock.on("close", () => done(seen.startsWith("INFO ")));
  });
}
