/**
 * A real OpenSSH sshd for tests, run as the current user (root in CI): its
 * own temporary directory, host key, config and pid file, on 127.0.0.1 and a
 * free port, `sshd -D -e -f CONFIG`. Ready when the promise resolves (the
 * port has sent an SSH banner). `rsyncAs` and `sshAs` run the real clients
 * with a given key. Servers still running when the test process exits are
 * killed.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { connect as tcpConnect, createServer } from "node:net";
import { userInfo } from "node:os";
import { join } from "node:path";
import { requires, toolBin, toolPath, TOOLS, type Tool } from "./requires.js";
import { tempDir } from "./tmp.js";
import { waitFor } from "./wait.js";

/** What startSshd and the clients need: a test asks `requires(...SSHD_TOOLS)` (add TOOLS.rrsync for the forced command). */
export const SSHD_TOOLS: readonly Tool[] = [TOOLS.sshd, TOOLS.ssh, TOOLS.sshKeygen, TOOLS.rsync];

/** The sshd binary, or undefined when sshd, ssh, ssh-keygen or rsync is missing. */
export function sshdPath(): string | undefined {
  return requires(...SSHD_TOOLS).ok ? toolPath(TOOLS.sshd) : undefined;
}

/** sshd's config lines; ssh-dss only where this sshd still knows it (OpenSSH < 10, built with DSA). */
function sshdConfig(o: { port: number; hostKey: string; hostCertificate?: string; pidFile: string; authorizedKeysFiles: string[]; dsa: boolean }): string {
  return [
    "ListenAddress 127.0.0.1",
    `Port ${o.port}`,
    `HostKey ${o.hostKey}`,
    ...(o.hostCertificate ? [`HostCertificate ${o.hostCertificate}`] : []),
    `PidFile ${o.pidFile}`,
    `AuthorizedKeysFile ${o.authorizedKeysFiles.join(" ")}`,
    "StrictModes no",
    "PasswordAuthentication no",
    "KbdInteractiveAuthentication no",
    "UsePAM no",
    "PermitRootLogin prohibit-password",
    "LogLevel VERBOSE",
    ...(o.dsa ? ["PubkeyAcceptedAlgorithms +ssh-dss"] : []),
    "",
  ].join("\n");
}

/** A host key, and the privilege-separation directory sshd insists on when it runs as root. */
function makeHostKey(dir: string): string {
  if (process.getuid?.() === 0) mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
  const hostKey = join(dir, "host_ed25519");
  execFileSync(toolBin(TOOLS.sshKeygen), ["-q", "-t", "ed25519", "-N", "", "-f", hostKey], { stdio: "ignore" });
  return hostKey;
}

let dsaAnswer: boolean | undefined;
/**
 * Does this sshd accept ssh-dss user keys? Asked once, without starting a
 * server (`sshd -T`), so a test can be registered as skipped up front when
 * the answer is no.
 */
export function sshdAcceptsDsa(): boolean {
  if (dsaAnswer !== undefined) return dsaAnswer;
  if (!sshdPath()) return (dsaAnswer = false);
  const dir = tempDir("sugar-sshd-probe-");
  try {
    const config = join(dir.path, "sshd_config");
    writeFileSync(config, sshdConfig({ port: 22, hostKey: makeHostKey(dir.path), pidFile: join(dir.path, "sshd.pid"), authorizedKeysFiles: ["/dev/null"], dsa: true }));
    const probe = spawnSync(toolBin(TOOLS.sshd), ["-T", "-f", config], { encoding: "utf8" });
    dsaAnswer = probe.status === 0 && /^pubkeyacceptedalgorithms .*ssh-dss/m.test(probe.stdout);
    return dsaAnswer;
  } finally {
    dir.remove();
  }
}

export interface SshdOptions {
  /** Files sshd reads keys from (AuthorizedKeysFile), absolute. */
  authorizedKeysFiles: string[];
  startTimeoutMs?: number;
  /**
   * Called with the new host key's public file before sshd starts; returns
   * the host certificate sshd presents beside it (HostCertificate).
   */
  hostCertificate?: (hostKeyPub: string) => Promise<string>;
}

export interface Sshd {
  readonly port: number;
  readonly host: "127.0.0.1";
  /** The user every client logs in as (the one running the tests). */
  readonly user: string;
  readonly dir: string;
  /** Does this sshd accept ssh-dss user keys? */
  readonly dsa: boolean;
  log(): string;
  /** `user@127.0.0.1:path`, for rsync. */
  remote(path: string): string;
  stop(): Promise<void>;
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

const running = new Set<ChildProcess>();
process.on("exit", () => {
  for (const child of running) child.kill("SIGKILL");
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Resolves true once something on the port sends an SSH banner. */
function bannerOn(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = tcpConnect({ host: "127.0.0.1", port });
    let data = "";
    const finish = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(1000, () => finish(false));
    sock.on("data", (d) => {
      data += d.toString("latin1");
      if (data.includes("\n")) finish(data.startsWith("SSH-2.0-"));
    });
    sock.on("error", () => finish(false));
    sock.on("close", () => finish(false));
  });
}

export async function startSshd(opts: SshdOptions): Promise<Sshd> {
  const sshd = toolBin(TOOLS.sshd);
  const dsa = sshdAcceptsDsa();
  const dir = tempDir("sugar-sshd-");
  const hostKey = makeHostKey(dir.path);
  const hostCertificate = opts.hostCertificate ? await opts.hostCertificate(`${hostKey}.pub`) : undefined;
  const config = join(dir.path, "sshd_config");
  const base = (port: number) => sshdConfig({ port, hostKey, hostCertificate, pidFile: join(dir.path, "sshd.pid"), authorizedKeysFiles: opts.authorizedKeysFiles, dsa });
  let log = "";
  const deadline = Date.now() + (opts.startTimeoutMs ?? 10000);
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    writeFileSync(config, base(port));
    const child = spawn(sshd, ["-D", "-e", "-f", config], { stdio: ["ignore", "ignore", "pipe"] });
    running.add(child);
    let exited: number | null | undefined;
    const exit = new Promise<void>((resolve) =>
      child.on("exit", (code) => {
        exited = code;
        running.delete(child);
        resolve();
      }),
    );
    child.stderr!.on("data", (d) => {
      log += d.toString();
      if (log.length > 512 * 1024) log = log.slice(-256 * 1024);
    });
    try {
      await waitFor(
        `sshd on 127.0.0.1:${port}`,
        async () => {
          if (exited !== undefined) throw new Error(`sshd exited with ${exited}: ${log}`);
          return bannerOn(port);
        },
        Math.max(1000, deadline - Date.now()),
        50,
      );
    } catch (err) {
      child.kill("SIGKILL");
      await exit;
      // Another process took the port between freePort and sshd's bind: try another one.
      if (attempt < 3 && /Bind to port|Address already in use/.test(log) && Date.now() < deadline) continue;
      dir.remove();
      throw err;
    }
    const user = userInfo().username;
    let stopped: Promise<void> | undefined;
    return {
      port,
      host: "127.0.0.1",
      user,
      dir: dir.path,
      dsa,
      log: () => log,
      remote: (path) => `${user}@127.0.0.1:${path}`,
      stop: () =>
        (stopped ??= (async () => {
          if (exited === undefined) {
            child.kill("SIGTERM");
            await exit;
          }
          dir.remove();
        })()),
    };
  }
}

/**
 * How a client checks the server's host key: by default not at all (no
 * known_hosts); or strictly, against `knownHosts` only, under the name
 * `hostName` (HostKeyAlias: what a client that dialled that name checks the
 * key and a host certificate's principals against, whatever the port).
 */
export interface HostCheck {
  knownHosts: string;
  hostName: string;
}

/** The ssh options every test client uses: this key only, never a prompt; known_hosts only with `check`. */
export function sshOptions(sshd: Sshd, keyPath: string, check?: HostCheck): string[] {
  const hostKeys = check
    ? ["-o", "StrictHostKeyChecking=yes", "-o", `UserKnownHostsFile=${check.knownHosts}`, "-o", "GlobalKnownHostsFile=/dev/null", "-o", `HostKeyAlias=${check.hostName}`]
    : ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"];
  return [
    "-F", "/dev/null",
    "-i", keyPath,
    "-p", String(sshd.port),
    ...hostKeys,
    "-o", "IdentitiesOnly=yes",
    "-o", "BatchMode=yes",
    "-o", "LogLevel=ERROR",
    "-o", "ConnectTimeout=10",
    ...(sshd.dsa ? ["-o", "PubkeyAcceptedAlgorithms=+ssh-dss"] : []),
  ];
}

function run(cmd: string, args: string[], timeoutMs: number, input?: string): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ["pipe", "pipe", "pipe"] });
    running.add(child);
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => {
      stderr += `\n[test] ${cmd} killed after ${timeoutMs} ms`;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.on("close", (code) => {
      clearTimeout(timer);
      running.delete(child);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(input ?? "");
  });
}

/**
 * The real rsync client over ssh with `key`; `args` are rsync's (use
 * `sshd.remote(path)` for the server side).
 */
export function rsyncAs(sshd: Sshd, keyPath: string, args: string[], timeoutMs = 120000, check?: HostCheck): Promise<RunResult> {
  const e = [toolBin(TOOLS.ssh), ...sshOptions(sshd, keyPath, check)].map((w) => (/^[\w@%+=:,./-]+$/.test(w) ? w : `'${w}'`)).join(" ");
  return run(toolBin(TOOLS.rsync), ["-e", e, ...args], timeoutMs);
}

/** `ssh [extraArgs] user@127.0.0.1 [command]` with `key`. */
export function sshAs(sshd: Sshd, keyPath: string, command: string | undefined, extraArgs: string[] = [], timeoutMs = 30000): Promise<RunResult> {
  return run(toolBin(TOOLS.ssh), [...sshOptions(sshd, keyPath), ...extraArgs, `${sshd.user}@127.0.0.1`, ...(command === undefined ? [] : [command])], timeoutMs);
}

/** Starts ssh in the background (port forwards with -N); the caller kills it. */
export function spawnSsh(sshd: Sshd, keyPath: string, extraArgs: string[]): ChildProcess {
  const child = spawn(toolBin(TOOLS.ssh), [...sshOptions(sshd, keyPath), ...extraArgs, `${sshd.user}@127.0.0.1`], { stdio: ["ignore", "pipe", "pipe"] });
  running.add(child);
  child.on("exit", () => running.delete(child));
  return child;
}
