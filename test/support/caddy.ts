/**
 * A real Caddy for tests: `caddy run --config FILE --adapter caddyfile` in
 * the foreground, as the current user, on loopback ports picked free, with
 * HOME and the XDG directories in its own temporary directory (so nothing
 * under ~/.config/caddy or ~/.local/share/caddy is read or written), no
 * admin endpoint and no automatic HTTPS. Ready when the promise resolves
 * (every port accepts connections).
 *
 * The test writes the site blocks (for the ports it is given); the global
 * options block is this file's. `forwardAuthSite` is the forward-auth sample.
 */
import { spawnSync, type ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { spawnDaemon, untilListening } from "./daemon.js";
import { freePorts } from "./ports.js";
import { feature, requires, toolBin, toolPath, TOOLS, type Requirement } from "./requires.js";
import { tempDir } from "./tmp.js";

export interface CaddyContext {
  /** The first (often only) port: each site is `:<port> { bind 127.0.0.1 ... }`. */
  readonly port: number;
  readonly ports: readonly number[];
  readonly dir: string;
}

export interface CaddyOptions {
  /** The Caddyfile's site blocks (no global options block: this file writes it). */
  caddyfile: (ctx: CaddyContext) => string;
  /** More lines for the global options block. */
  globals?: string;
  /** How many loopback ports to pick (default 1). */
  ports?: number;
  startTimeoutMs?: number;
}

export interface Caddy {
  readonly port: number;
  readonly ports: readonly number[];
  /** http://127.0.0.1:PORT (the first port). */
  readonly url: string;
  readonly dir: string;
  readonly pid: number;
  /** What Caddy logged (JSON lines on stderr), the last 256 KiB. */
  log(): string;
  /** Ends Caddy, waits for it, removes its directory. Idempotent. */
  stop(): Promise<void>;
}

let versionText: string | undefined;
/** "v2.6.2", for reports and the requirement below. */
export function caddyVersion(): string {
  if (versionText !== undefined) return versionText;
  const bin = toolPath(TOOLS.caddy);
  const out = bin ? spawnSync(bin, ["version"], { encoding: "utf8" }).stdout : "";
  return (versionText = /v?\d+\.\d+\.\d+\S*/.exec(out)?.[0] ?? "unknown");
}

/** Caddy installed, and new enough to know forward_auth (2.5.1). */
export function caddyRequirement(): Requirement {
  const tool = requires(TOOLS.caddy);
  if (!tool.ok) return tool;
  const [major = 0, minor = 0, patch = 0] = (/(\d+)\.(\d+)\.(\d+)/.exec(caddyVersion()) ?? []).slice(1).map(Number);
  const ok = major > 2 || (major === 2 && (minor > 5 || (minor === 5 && patch >= 1)));
  return feature(ok, `caddy ${caddyVersion()} has no forward_auth (2.5.1 or later)`);
}

const running = new Set<ChildProcess>();
const dirs = new Set<{ remove(): void }>();
process.on("exit", () => {
  for (const child of running) child.kill("SIGKILL");
  for (const dir of dirs) dir.remove();
});

function caddyfileText(globals: string | undefined, sites: string): string {
  return [
    "# Written by test/support/caddy.ts.",
    "{",
    // No admin endpoint: nothing listens on :2019, and no config is saved to autosave.json.
    "\tadmin off",
    "\tauto_https off",
    // Stop waits this long at most for requests in flight.
    "\tgrace_period 1s",
    ...(globals ? [globals.replace(/^/gm, "\t")] : []),
    "}",
    "",
    sites,
    "",
  ].join("\n");
}

export async function startCaddy(opts: CaddyOptions): Promise<Caddy> {
  const bin = toolBin(TOOLS.caddy);
  const dir = tempDir("sugar-caddy-");
  dirs.add(dir);
  const file = join(dir.path, "Caddyfile");
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: dir.path,
    XDG_CONFIG_HOME: join(dir.path, "config"),
    XDG_DATA_HOME: join(dir.path, "data"),
  };
  const deadline = Date.now() + (opts.startTimeoutMs ?? 10000);
  for (let attempt = 0; ; attempt++) {
    const ports = await freePorts(opts.ports ?? 1);
    writeFileSync(file, caddyfileText(opts.globals, opts.caddyfile({ port: ports[0]!, ports, dir: dir.path })));
    const d = spawnDaemon(bin, ["run", "--config", file, "--adapter", "caddyfile"], { cwd: dir.path, env }, running);
    const { child, exit } = d;
    const logText = d.output;
    try {
      await untilListening("caddy", d, ports, deadline, logText);
    } catch (err) {
      child.kill("SIGKILL");
      await exit;
      if (attempt < 3 && /address already in use/.test(logText()) && Date.now() < deadline) continue;
      dir.remove();
      dirs.delete(dir);
      throw err;
    }
    let stopped: Promise<void> | undefined;
    return {
      port: ports[0]!,
      ports,
      url: `http://127.0.0.1:${ports[0]}`,
      dir: dir.path,
      pid: child.pid!,
      log: logText,
      stop: () =>
        (stopped ??= (async () => {
          if (d.exited() === undefined) {
            child.kill("SIGTERM");
            const late = setTimeout(() => child.kill("SIGKILL"), 5000);
            await exit;
            clearTimeout(late);
          }
          dir.remove();
          dirs.delete(dir);
        })()),
    };
  }
}

export interface ForwardAuthSite {
  /** The port Caddy listens on (CaddyContext.port). */
  port: number;
  /** The protected app, e.g. "http://127.0.0.1:8081" (or host:port). */
  upstream: string;
  /** The forward-auth server, e.g. "http://127.0.0.1:8000" (or host:port; no path: that is `uri`). */
  auth: string;
  /** The path (and query) asked there, e.g. "/auth/verify". */
  uri: string;
  /** The headers copied from a 2xx auth answer to the app; any the client sent are dropped. */
  copyHeaders?: readonly string[];
}

/** `X-Sugar-Uid` -> `x_sugar_uid`, for a matcher's name. */
function matcherName(header: string): string {
  return header.toLowerCase().replace(/[^a-z0-9]/g, "_");
}

/**
 * One site: every request goes first (as a GET, with X-Forwarded-Method and
 * X-Forwarded-Uri, and the client's headers and cookies) to `auth` at `uri`;
 * a 2xx answer lets it on to `upstream` with the `copyHeaders` of that
 * answer, anything else is sent back to the client as it came.
 *
 * What the sample does on purpose (each seen with Debian's Caddy 2.6.2):
 * - It deletes every header the client sent whose name starts X-Sugar or
 *   X_sugar, before asking auth: copy_headers covers only the exact names
 *   it copies, Caddy passes names with underscores on, and CGI/PHP
 *   (php_fastcgi) reads `X_Sugar_Uid` as HTTP_X_SUGAR_UID. (Go spells such
 *   a name `X_sugar_uid` whatever the client wrote.)
 * - Caddy 2.6.2 sets every copied header whatever the answer: one a 2xx
 *   answer lacks becomes the literal text `{http.reverse_proxy.header.NAME}`.
 *   A header_regexp matcher deletes such a value (newer Caddy sets nothing).
 * - All of it inside `route`, which keeps the order as written: at the top
 *   level of a site Caddy sorts directives, and `request_header` would run
 *   after `forward_auth`, deleting what it copied.
 */
export function forwardAuthSite(o: ForwardAuthSite): string {
  const copy = o.copyHeaders ?? ["X-Sugar-Uid"];
  return [
    `:${o.port} {`,
    "\tbind 127.0.0.1",
    "\troute {",
    "\t\trequest_header -X-Sugar*",
    "\t\trequest_header -X_sugar*",
    ...copy.filter((h) => !/^x[-_]sugar/i.test(h)).map((h) => `\t\trequest_header -${h}`),
    `\t\tforward_auth ${o.auth} {`,
    `\t\t\turi ${o.uri}`,
    `\t\t\tcopy_headers ${copy.join(" ")}`,
    "\t\t}",
    ...copy.flatMap((h) => [
      `\t\t@unanswered_${matcherName(h)} header_regexp ${h} "^[{]http[.]reverse_proxy[.]header[.]"`,
      `\t\trequest_header @unanswered_${matcherName(h)} -${h}`,
    ]),
    `\t\treverse_proxy ${o.upstream}`,
    "\t}",
    "}",
  ].join("\n");
}
