/**
 * A real nginx for tests: the Debian binary in the foreground, as the
 * current user (root in CI), on loopback ports picked free, with its own
 * directory for config, pid, logs and temp files (nothing under /etc/nginx
 * or /var/lib/nginx is read or written). Ready when the promise resolves
 * (every port accepts connections). `stop()` ends the master and its
 * workers and removes the directory.
 *
 * The test writes only what goes inside `http { }` (its servers, for the
 * ports it is given); `authRequestSite` is the forward-auth sample.
 */
import { spawnSync, type ChildProcess } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { spawnDaemon, untilListening } from "./daemon.js";
import { freePorts } from "./ports.js";
import { feature, requires, toolBin, toolPath, TOOLS, type Requirement } from "./requires.js";
import { tempDir } from "./tmp.js";

export interface NginxContext {
  /** The first (often only) port: every server must `listen 127.0.0.1:<port>`. */
  readonly port: number;
  readonly ports: readonly number[];
  /** nginx's directory (its -p prefix): relative paths in the config resolve here. */
  readonly dir: string;
}

export interface NginxOptions {
  /** What goes inside `http { }`: server blocks listening on the context's ports. */
  conf: (ctx: NginxContext) => string;
  /** How many loopback ports to pick (default 1). */
  ports?: number;
  startTimeoutMs?: number;
}

export interface Nginx {
  readonly port: number;
  readonly ports: readonly number[];
  /** http://127.0.0.1:PORT (the first port). */
  readonly url: string;
  readonly dir: string;
  /** The master's pid, also its process group (workers are in it). */
  readonly pid: number;
  /** The error log (level info) and anything nginx wrote to stderr. */
  log(): string;
  /** The access log (nginx's "combined" format). */
  accessLog(): string;
  /** Ends nginx (master and workers), waits for it, removes its directory. Idempotent. */
  stop(): Promise<void>;
}

/** nginx installed, with the auth_request module (Debian's nginx has it; a custom build may not). */
export function nginxRequirement(): Requirement {
  const tool = requires(TOOLS.nginx);
  if (!tool.ok) return tool;
  return feature(nginxModules().includes("http_auth_request_module"), "this nginx is built without http_auth_request_module (nginx -V)");
}

let modules: string | undefined;
/** `nginx -V`'s configure arguments (it prints them on stderr). */
function nginxModules(): string {
  if (modules !== undefined) return modules;
  const bin = toolPath(TOOLS.nginx);
  if (!bin) return (modules = "");
  const r = spawnSync(bin, ["-V"], { encoding: "utf8" });
  return (modules = `${r.stdout}${r.stderr}`);
}

/** "nginx/1.22.1", for reports. */
export function nginxVersion(): string {
  return /nginx version: (\S+)/.exec(nginxModules())?.[1] ?? "unknown";
}

const running = new Set<ChildProcess>();
const dirs = new Set<{ remove(): void }>();
// A test that crashes must not leave nginx behind: the whole group, so the workers too.
process.on("exit", () => {
  for (const child of running) killGroup(child, "SIGKILL");
  for (const dir of dirs) dir.remove();
});

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ESRCH") throw err; // ESRCH: the group is gone already
  }
}

/** The whole nginx.conf: the test's http block inside a frame that keeps every file in `dir`. */
function nginxConf(dir: string, http: string): string {
  const tmp = (name: string) => join(dir, "tmp", name);
  return [
    "# Written by test/support/nginx.ts.",
    // As root the master would switch its workers to nobody, who cannot read a 0700 temp dir.
    ...(process.getuid?.() === 0 ? ["user root;"] : []),
    "worker_processes 1;",
    "events {",
    "  worker_connections 256;",
    "}",
    "http {",
    `  access_log ${join(dir, "access.log")};`,
    `  client_body_temp_path ${tmp("client_body")};`,
    `  proxy_temp_path ${tmp("proxy")};`,
    `  fastcgi_temp_path ${tmp("fastcgi")};`,
    `  uwsgi_temp_path ${tmp("uwsgi")};`,
    `  scgi_temp_path ${tmp("scgi")};`,
    "  default_type text/plain;",
    http.replace(/^/gm, "  "),
    "}",
    "",
  ].join("\n");
}

export async function startNginx(opts: NginxOptions): Promise<Nginx> {
  const bin = toolBin(TOOLS.nginx);
  const dir = tempDir("sugar-nginx-");
  dirs.add(dir);
  mkdirSync(join(dir.path, "tmp"));
  const confFile = join(dir.path, "nginx.conf");
  const errorLog = join(dir.path, "error.log");
  const deadline = Date.now() + (opts.startTimeoutMs ?? 10000);
  const readLog = (file: string) => {
    try {
      return readFileSync(file, "utf8");
    } catch {
      return ""; // not written yet
    }
  };
  for (let attempt = 0; ; attempt++) {
    const ports = await freePorts(opts.ports ?? 1);
    writeFileSync(confFile, nginxConf(dir.path, opts.conf({ port: ports[0]!, ports, dir: dir.path })));
    const args = [
      // -e: the log for what happens before the config is read (else /var/log/nginx/error.log).
      "-e", errorLog,
      "-p", `${dir.path}/`,
      "-c", confFile,
      "-g", `daemon off; pid ${join(dir.path, "nginx.pid")}; error_log ${errorLog} info;`,
    ];
    // Its own process group, so stop() and the exit hook reach the workers as well.
    const d = spawnDaemon(bin, args, { detached: true }, running);
    const { child, exit } = d;
    const log = () => `${readLog(errorLog)}${d.output()}`;
    try {
      await untilListening("nginx", d, ports, deadline, log);
    } catch (err) {
      killGroup(child, "SIGKILL");
      await exit;
      // Another process took a port between freePorts and nginx's bind: again, on new ones.
      if (attempt < 3 && /Address already in use/.test(log()) && Date.now() < deadline) continue;
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
      log,
      accessLog: () => readLog(join(dir.path, "access.log")),
      stop: () =>
        (stopped ??= (async () => {
          if (d.exited() === undefined) {
            // TERM is nginx's fast shutdown: the master ends its workers, reaps them, then exits.
            killGroup(child, "SIGTERM");
            const late = setTimeout(() => killGroup(child, "SIGKILL"), 5000);
            await exit;
            clearTimeout(late);
          }
          // A worker that outlived its master (only after a KILL) goes with the group.
          killGroup(child, "SIGKILL");
          dir.remove();
          dirs.delete(dir);
        })()),
    };
  }
}

export interface AuthRequestSite {
  /** The port nginx listens on (NginxContext.port). */
  port: number;
  /** The protected app, e.g. the echo upstream's url. */
  upstream: string;
  /** The forward-auth endpoint: base URL and path, e.g. "http://127.0.0.1:8000/auth/verify". */
  auth: string;
  /** The headers copied from the auth answer to the app; any the client sent are dropped. */
  copyHeaders?: readonly string[];
}

/** `X-Sugar-Uid` -> `x_sugar_uid`: how nginx names a header inside a variable. */
function varName(header: string): string {
  return header.toLowerCase().replace(/-/g, "_");
}

/**
 * One server: `/` proxied to `upstream` behind `auth_request`, whose
 * subrequest goes to `auth` with the original URI and method (and, as nginx
 * does for subrequests, the client's headers and cookies, no body). 2xx lets
 * the request through, 401/403 are the client's answer, anything else is a
 * 500. `auth_request_set` keeps each copied header of the auth answer, and
 * `proxy_set_header` sends it on: that replaces the client's header of that
 * name, and an empty value (the auth answer had none) sends no header at all.
 * nginx has no wildcard for this, so `copyHeaders` must name every X-Sugar-*
 * header an app may read; names with underscores (`X_Sugar_Uid`, which PHP
 * reads as X-Sugar-Uid) nginx drops by itself (ignore_invalid_headers).
 */
export function authRequestSite(o: AuthRequestSite): string {
  const copy = o.copyHeaders ?? ["X-Sugar-Uid"];
  return [
    "server {",
    `  listen 127.0.0.1:${o.port};`,
    "  server_name localhost;",
    "  location = /_auth {",
    "    internal;",
    `    proxy_pass ${o.auth};`,
    "    proxy_pass_request_body off;",
    '    proxy_set_header Content-Length "";',
    "    proxy_set_header Host $http_host;",
    "    proxy_set_header X-Original-URI $request_uri;",
    "    proxy_set_header X-Original-Method $request_method;",
    // The auth server must not be told who the client claims to be either.
    ...copy.map((h) => `    proxy_set_header ${h} "";`),
    "  }",
    "  location / {",
    "    auth_request /_auth;",
    ...copy.map((h) => `    auth_request_set $auth_${varName(h)} $upstream_http_${varName(h)};`),
    `    proxy_pass ${o.upstream};`,
    "    proxy_set_header Host $http_host;",
    "    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
    "    proxy_set_header X-Forwarded-Proto $scheme;",
    ...copy.map((h) => `    proxy_set_header ${h} $auth_${varName(h)};`),
    "  }",
    "}",
  ].join("\n");
}
