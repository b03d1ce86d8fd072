/**
 * Configuration: one table of options drives the command-line parser, the
 * config files, `--help` and `sugar-server config`. Layers, later wins:
 * defaults → /etc/sugar-server.conf → ~/.config/sugar-server/config →
 * --config FILE → command-line options. Every value is validated once;
 * unknown keys and bad values are errors naming the key and where it came
 * from; the result is frozen.
 */
import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import { homedir, hostname, userInfo } from "node:os";
import { isAbsolute, join, resolve } from "node:path";
import { SugarError } from "./errors.js";
import { RESERVED_SITES } from "./bus/subjects.js";

/** Every configuration failure names the key and where it came from. */
const configError = (message: string, options?: { cause?: unknown }) => new SugarError("invalid_config", message, options);

type Kind = "string" | "int" | "port" | "bool" | "enum" | "path";
type ValueOfKind = { string: string; int: number; port: number; bool: boolean; enum: string; path: string };

interface Spec<N extends string, K extends Kind, V = ValueOfKind[K]> {
  name: N;
  kind: K;
  help: string;
  /** The built-in default, computed from the environment the process runs in. */
  default: (env: ConfigEnv) => V;
  choices?: readonly string[];
  min?: number;
  max?: number;
  /** Extra check on the parsed value; returns a reason when it is bad. */
  check?: (v: V) => string | undefined;
  /** A default that depends on other options' final values (e.g. under the root). */
  derive?: (values: Readonly<Record<string, unknown>>) => V;
}

export interface ConfigEnv {
  home: string;
  user: string;
  hostname: string;
  /** Where the system and user config files are looked for (tests point these elsewhere). */
  systemFile: string;
  userFile: string;
  cwd: string;
}

const opt = {
  string: <N extends string>(name: N, def: string | ((e: ConfigEnv) => string), help: string, check?: (v: string) => string | undefined): Spec<N, "string"> => ({
    name, kind: "string", help, default: typeof def === "function" ? def : () => def, check,
  }),
  path: <N extends string>(name: N, def: (e: ConfigEnv) => string, help: string): Spec<N, "path"> => ({ name, kind: "path", help, default: def }),
  /** A path whose default lies under another option's path (`<root>/keyring`). */
  pathUnder: <N extends string>(name: N, parent: string, sub: string, help: string): Spec<N, "path"> => ({
    name, kind: "path", help, default: () => "", derive: (values) => join(String(values[parent]), sub),
  }),
  int: <N extends string>(name: N, def: number, help: string, min: number, max: number): Spec<N, "int"> => ({ name, kind: "int", help, default: () => def, min, max }),
  port: <N extends string>(name: N, def: number, help: string): Spec<N, "port"> => ({ name, kind: "port", help, default: () => def, min: 0, max: 65535 }),
  bool: <N extends string>(name: N, def: boolean, help: string): Spec<N, "bool"> => ({ name, kind: "bool", help, default: () => def }),
  enum: <N extends string, C extends string>(name: N, choices: readonly C[], def: C, help: string): Spec<N, "enum", C> => ({
    name, kind: "enum", help, default: () => def, choices,
  }),
};

const hostLike = (v: string) => (/^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/.test(v) ? undefined : "must be a bare host name (no scheme, no port)");

/**
 * An IPv6 link-local address (fe80::/10), with or without brackets and a
 * zone (`fe80::1%eth0`). It means something only on one network link and,
 * without the zone, not even there: the server may listen on one, but never
 * hands one to a client (backup URL, Jabber server, claim URL, redirects).
 */
export function isLinkLocal(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, "").replace(/%.*$/, "");
  if (isIP(bare) !== 6) return false;
  const first = bare.split(":")[0] ?? "";
  return first !== "" && (parseInt(first, 16) & 0xffc0) === 0xfe80;
}

/** A host a client is told to reach this server by: a host name, never a link-local address. */
const clientHost = (v: string) =>
  isLinkLocal(v) ? "is an IPv6 link-local address (fe80::/10): it reaches this server only on one network link, so no client can be given it; use a host name" : hostLike(v);

/** What the listeners bind: an IPv4 or IPv6 address (a zone, `%eth0`, only on a link-local one) or a host name. */
const listenHost = (v: string): string | undefined => {
  const zone = v.indexOf("%");
  if (zone >= 0) return isLinkLocal(v) && /^%[A-Za-z0-9_.-]{1,15}$/.test(v.slice(zone)) ? undefined : "only an IPv6 link-local address (fe80::/10) takes a zone, and it names an interface: fe80::1%eth0";
  return isIP(v) || hostLike(v) === undefined ? undefined : "must be an IP address (:: = every address) or a host name";
};
const siteToken = (v: string) =>
  !/^[a-z0-9][a-z0-9_-]{0,62}$/.test(v) ? "must be lower-case letters, digits, _ or - (it is part of bus subjects)"
  : RESERVED_SITES.has(v) ? `"${v}" is reserved: the ${v}'s own bus subjects begin sugar.${v}.` : undefined;
const word = (v: string) => (/^\w+$/.test(v) ? undefined : "must be letters, digits and _ only (ds-backup parses it with \\w+)");
const relPath = (v: string) => (/^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/.test(v) && !v.split("/").includes("..") ? undefined : "must be a relative path of plain names");

/** Every option sugar-server knows. Order is the order of `--help` and `config`. */
export const OPTIONS = [
  opt.path("root", (e) => join(e.home, ".local", "share", "sugar-server"), "data root: registry, backups, leases; the home of the backup user in production"),
  opt.string("host", "::", "address the listeners bind (:: = every IPv6 and IPv4 address)", listenHost),
  opt.port("httpd-port", 8000, "REST API port (/client/*, /healthz); 0 = any free port"),
  opt.port("xmlrpc-port", 8080, "XML-RPC register() port that Sugar desktops call; 0 = any free port"),
  opt.string("https-port", "", "the one TLS port serving every route of the plain ports (REST, XML-RPC, web); empty = off; 0 = any free port; needs `sugar-server tls init` first", (v) =>
    v === "" || (/^\d{1,5}$/.test(v) && Number(v) <= 65535) ? undefined : "must be empty (off) or a port number 0-65535"),
  opt.enum("tls-client-auth", ["off", "optional", "required"] as const, "optional", "client certificates on the TLS port: optional = a valid one is a login; required = a client without one does not complete the handshake; off = not asked for"),
  opt.port("activation-port", 191, "XO activation TCP port (privileged: needs CAP_NET_BIND_SERVICE or root); 0 = any free port"),
  opt.string("metrics-host", "127.0.0.1", "address of the metrics-port listener: keep it loopback (the metrics there need no login)"),
  opt.string("metrics-port", "", "a port serving /metrics with no login, for a Prometheus on this machine (deploy/prometheus); empty = off (an admin still reads /metrics on the web ports); 0 = any free port", (v) =>
    v === "" || (/^\d{1,5}$/.test(v) && Number(v) <= 65535) ? undefined : "must be empty (off) or a port number 0-65535"),
  opt.string("site", "school", "this school's name in bus subjects", siteToken),
  opt.string("nats", "", "NATS server URL(s), comma-separated; empty = the embedded in-process bus"),
  opt.string("nats-user", "", "NATS user name"),
  opt.string("nats-password", "", "NATS password"),
  opt.string("nats-creds", "", "NATS credentials file (JWT + nkey seed)"),
  opt.string("nats-tls-ca", "", "CA certificate file that signs the NATS server's certificate"),
  opt.string("nats-tls-cert", "", "client certificate file for NATS (mutual TLS)"),
  opt.string("nats-tls-key", "", "client key file for NATS (mutual TLS)"),
  opt.string("nats-inbox-prefix", "", "reply-subject prefix (must match the account's permissions in a district)"),
  opt.bool("nats-wait", false, "at start, wait for the NATS server instead of failing when it is not up"),
  opt.int("bus-timeout", 2000, "how long a request on the bus may take (ms)", 50, 120000),
  opt.enum("identity-model", ["sshkey", "hardware"] as const, "sshkey", "sshkey: any valid key registers; hardware: the serial number must be known to the server"),
  opt.enum("reflash", ["approve", "allow", "refuse"] as const, "approve", "a new key registering with a registered user's serial number: approve = its own user and a claim an admin settles; allow = it takes that user over, backups too; refuse = refused"),
  opt.enum("first-admin", ["claim", "first-registrant"] as const, "claim", "who becomes the first admin: claim = whoever opens the one-time URL that start prints (and admin claim-url); first-registrant = the first user ever registered (anyone who reaches the server first)"),
  opt.string("jabber-url", (e) => e.hostname, "the Jabber (collaboration) server host given to clients; Sugar also sends its next register() there", clientHost),
  opt.string("backup-user", (e) => e.user, "system user clients rsync to (the user running sugar-server)", word),
  opt.string("backup-host", (e) => e.hostname, "host name clients reach this server by: rsync, and the first admin's claim URL", clientHost),
  opt.string("backup-path", "datastore-current", "path inside a client's own backup directory that the backup URL names", relPath),
  opt.path("rrsync-path", () => "/usr/bin/rrsync", "Debian rsync's restricted rsync, the forced command's last step for every client key"),
  opt.int("backup-slots", 10, "backups accepted at once; beyond that /client/backup says accepted: false (ds-backup gets 503)", 1, 10000),
  opt.int("backup-slot-seconds", 900, "how long an accepted backup holds its slot if the client never reports back", 10, 86400),
  opt.int("backup-min-free", 10, "percent of disk blocks and of inodes that must stay free for a backup to be accepted", 0, 99),
  opt.int("backup-max-load", 5, "1-minute load average above which backups are refused (busy)", 1, 1000),
  opt.int("backup-keep", 7, "hard-link snapshots (datastore-<UTC time>) kept per client", 1, 1000),
  opt.pathUnder("keyring-dir", "root", "keyring", "the keyring's keys and delegations (default <root>/keyring); private keys mode 0600"),
  opt.string("ca-server-names", "{site}.schoolserver.lan", "on the keyring host: the names (comma-separated) a school may have in its certificates; {site} is the asking school's site, * one DNS label; a name without {site} (e.g. schoolserver) any school may get", (v) =>
    v.split(",").every((p) => /^(\*|\{site\}|[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.(\*|\{site\}|[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?))*$/.test(p.trim())) ? undefined : "must be host-name patterns separated by commas ({site} and * stand for one label each)"),
  opt.int("lease-days", 90, "lifetime of a lease the keyring signs (days); keep it above the schools' lease-ahead-days", 1, 3650),
  opt.int("lease-renew-days", 7, "with delegation: an XO whose stored lease expires within this many days waits while the keyring signs a new one (the background renewer, lease-ahead-days, should have done it already)", 0, 3650),
  opt.int("lease-ahead-days", 30, "with delegation: a background renewer keeps every stored lease valid at least this many days ahead, so a school cut off from the keyring keeps activating its XOs that long; 0 = off", 0, 3650),
  opt.int("lease-renew-seconds", 3600, "how often the background renewer looks for stored leases expiring within lease-ahead-days (after a keyring failure it backs off up to this long)", 1, 86400),
  opt.bool("delegation", false, "no stored lease for a serial number: ask the keyring to sign one (delegated, or v1 with a lease key)"),
  opt.bool("district", false, "this school belongs to a district (deploy/README.md): follow the district's stolen list, feed its directory, and answer laptops registered at another school with their home"),
  opt.int("district-sync-seconds", 30, "with district: how often the school checks its stolen list and directory feed against the district's; a school whose link was down catches up within this long", 1, 86400),
  opt.enum("unknown-reply", ["empty", "UNKNOWN"] as const, "empty", "port 191 reply for a serial number with no lease: empty (what an XO expects) or UNKNOWN"),
  opt.int("activation-max-connections", 1000, "open port-191 connections at once; more are closed at once", 1, 100000),
  opt.int("activation-per-source", 5, "open port-191 connections from one address (xinetd per_source)", 1, 10000),
  opt.int("activation-concurrency", 25, "port-191 requests answered at once (xinetd instances); the rest wait their turn", 1, 10000),
  opt.int("activation-timeout", 5, "seconds a port-191 client has to send its serial number", 1, 300),
  opt.bool("trust-proxy", false, "a proxy on this machine (deploy/nginx, deploy/caddy) sets X-Forwarded-For: count failed logins and browser registrations per client, not per proxy"),
  opt.string("auth-redirect-hosts", "", "host names (comma-separated) besides this server's own that /auth/login may send a browser back to: the school's web services", (v) =>
    v.split(",").every((h) => h.trim() === "" || /^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/.test(h.trim())) ? undefined : "must be host names separated by commas (no scheme, no port)"),
  opt.int("max-connections", 512, "open connections each HTTP listener accepts at once", 1, 100000),
  opt.enum("client-auth", ["open", "token"] as const, "open", "token: /client/status, /client/backup and /client/lease need X-Sugar-* headers from /client/login"),
  opt.int("token-seconds", 3600, "lifetime of the X-Sugar-* token headers a login gives (seconds); also how long a rotated token key is kept", 1, 3600),
  opt.int("login-failures", 20, "failed logins per source address per minute before 429", 1, 100000),
  opt.int("session-hours", 12, "lifetime of a browser's sugar_session cookie (hours); a browser renews it from its device cookie", 1, 720),
  opt.enum("xoid-login", ["on", "off"] as const, "on", "on: an XO's xoid cookie naming a registered uid logs it in to school web services at level xoid (it identifies, it proves nothing: never admin)"),
  opt.enum("log-level", ["debug", "info", "warn", "error"] as const, "info", "least important log lines shown"),
] as const;

type AnySpec = (typeof OPTIONS)[number];
export type OptionName = AnySpec["name"];
type ValueOf<S> = S extends Spec<string, Kind, infer V> ? V : never;
/** The effective configuration: option name → validated value. Frozen. */
export type Config = { readonly [S in AnySpec as S["name"]]: ValueOf<S> };
export type Sources = Record<OptionName, string>;

const SPECS = new Map<string, AnySpec>(OPTIONS.map((s) => [s.name, s]));
export const isOptionName = (n: string): n is OptionName => SPECS.has(n);
export const optionKind = (n: OptionName): Kind => SPECS.get(n)!.kind;

export function defaultEnv(): ConfigEnv {
  const home = process.env.HOME || homedir();
  return {
    home,
    user: safeUser(),
    hostname: hostname().split(".")[0] || "schoolserver",
    systemFile: process.env.SUGAR_SERVER_SYSTEM_CONFIG ?? "/etc/sugar-server.conf",
    userFile: process.env.SUGAR_SERVER_USER_CONFIG ?? join(process.env.XDG_CONFIG_HOME || join(home, ".config"), "sugar-server", "config"),
    cwd: process.cwd(),
  };
}

function safeUser(): string {
  try {
    return userInfo().username;
  } catch {
    return process.env.USER || "sugar";
  }
}

/** Parses one value of an option from text; `where` names the file or flag for the error. */
function parseValue(spec: AnySpec, text: string, where: string, env: ConfigEnv): unknown {
  const fail = (why: string) => configError(`${where}: ${spec.name} = ${JSON.stringify(text)}: ${why}`);
  switch (spec.kind as Kind) {
    case "int":
    case "port": {
      if (!/^\d+$/.test(text)) throw fail("must be a whole number");
      const n = Number(text);
      if (n < spec.min! || n > spec.max!) throw fail(`must be between ${spec.min} and ${spec.max}`);
      return n;
    }
    case "bool":
      if (/^(true|yes|on|1)$/i.test(text)) return true;
      if (/^(false|no|off|0)$/i.test(text)) return false;
      throw fail("must be true or false");
    case "enum":
      if (!spec.choices!.includes(text)) throw fail(`must be one of ${spec.choices!.join(", ")}`);
      return text;
    case "path": {
      if (text === "") throw fail("must not be empty");
      const expanded = text === "~" ? env.home : text.startsWith("~/") ? join(env.home, text.slice(2)) : text;
      return isAbsolute(expanded) ? expanded : resolve(env.cwd, expanded);
    }
    case "string": {
      const why = (spec as Spec<string, "string">).check?.(text);
      if (why) throw fail(why);
      return text;
    }
  }
}

/** Reads `key = value` lines; `#` starts a comment line. */
function parseConfigText(text: string, file: string): Array<{ key: string; value: string; where: string }> {
  const out: Array<{ key: string; value: string; where: string }> = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const where = `${file}:${i + 1}`;
    const eq = line.indexOf("=");
    if (eq < 0) throw configError(`${where}: expected "key = value", got ${JSON.stringify(line)}`);
    out.push({ key: line.slice(0, eq).trim(), value: line.slice(eq + 1).trim(), where });
  });
  return out;
}

function readConfigFile(file: string, required: boolean): string | undefined {
  try {
    return readFileSync(file, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (!required && (code === "ENOENT" || code === "ENOTDIR")) return undefined;
    throw configError(`${file}: cannot read config file: ${(err as Error).message}`, { cause: err });
  }
}

export interface LoadedConfig {
  config: Config;
  sources: Sources;
}

/**
 * Builds the effective configuration. `cli` holds options given on the
 * command line (name → text); `configFile` is --config.
 */
export function loadConfig(cli: ReadonlyMap<string, string>, configFile?: string, env: ConfigEnv = defaultEnv()): LoadedConfig {
  const values: Record<string, unknown> = {};
  const sources: Record<string, string> = {};
  for (const spec of OPTIONS) {
    values[spec.name] = spec.default(env);
    sources[spec.name] = "default";
  }
  const apply = (key: string, text: string, where: string, source: string) => {
    const spec = SPECS.get(key);
    if (!spec) throw configError(`${where}: unknown option "${key}" (see sugar-server --help)`);
    values[key] = parseValue(spec, text, where, env);
    sources[key] = source;
  };
  const files: Array<[string, boolean]> = [[env.systemFile, false], [env.userFile, false]];
  if (configFile) files.push([isAbsolute(configFile) ? configFile : resolve(env.cwd, configFile), true]);
  for (const [file, required] of files) {
    const text = readConfigFile(file, required);
    if (text === undefined) continue;
    for (const { key, value, where } of parseConfigText(text, file)) apply(key, value, where, file);
  }
  for (const [key, value] of cli) apply(key, value, `--${key}`, "command line");
  for (const spec of OPTIONS) {
    const derive = (spec as { derive?: (v: Record<string, unknown>) => unknown }).derive;
    if (derive && sources[spec.name] === "default") values[spec.name] = derive(values);
  }
  return { config: Object.freeze(values) as Config, sources: Object.freeze(sources) as Sources };
}

/** A configuration for tests and embedding: defaults plus overrides, validated the same way. */
export function configWith(overrides: Partial<Record<OptionName, string | number | boolean>>, env?: Partial<ConfigEnv>): Config {
  const base = defaultEnv();
  const e: ConfigEnv = { ...base, systemFile: "/nonexistent/sugar-server.conf", userFile: "/nonexistent/config", ...env };
  const cli = new Map(Object.entries(overrides).map(([k, v]) => [k, String(v)]));
  return loadConfig(cli, undefined, e).config;
}

export function formatValue(v: unknown): string {
  return typeof v === "boolean" ? (v ? "true" : "false") : String(v);
}

/** Paths under the root that several modules agree on. */
export function runDir(config: Config): string {
  return join(config.root, "run");
}

/**
 * The backup URL a client is given (registration, status, admission):
 * `<backup-user>@<backup-host>:<backup-path>`, used by rsync as-is. The one
 * place it is built; ds-backup parses it with `(\w+@)?(\w|.+?):`, which the
 * options' checks keep true.
 */
export function backupUrl(config: Config): string {
  return `${config["backup-user"]}@${config["backup-host"]}:${config["backup-path"]}`;
}

/**
 * Whether text is a backup URL as backupUrl builds one (`user@host:path`,
 * each part passing its option's check): what a school accepts as another
 * school's (a district directory entry) before handing it to a client.
 */
export function isBackupUrl(text: string): boolean {
  const m = /^([^@:]+)@([^@:]+):([^:]+)$/.exec(text);
  return !!m && word(m[1]!) === undefined && clientHost(m[2]!) === undefined && relPath(m[3]!) === undefined;
}
