/**
 * `sugar-server`: one command runs and manages everything.
 *   start                 every actor and adapter in one process
 *   run COMPONENT...      only the named ones (with --nats, on separate hosts)
 *   config                the effective configuration
 *   users list|show UID|remove UID|admin UID on|off|pending|approve UID|reject UID
 *   machines list|add SN [UUID]
 *   admin claim-url       a one-time URL that makes its opener the first admin
 *   events --follow       this site's bus events as JSON lines
 * Admin commands reach a running server (admin socket, or NATS with --nats),
 * or, with none running, start the one actor they need in this process.
 */
import { join } from "node:path";
import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { sugar } from "../../schemas/gen/messages.js";
import { AdminClient } from "../bus/admin.js";
import { MemoryBus } from "../bus/memory.js";
import type { Requester } from "../bus/types.js";
import {
  authClient,
  type AuthClient,
  backupClient,
  type BackupClient,
  districtClient,
  districtFromClient,
  keyringCaClient,
  keyringClient,
  leaseClient,
  registryClient,
  type KeyringClient,
  type LeaseClient,
  type RegistryClient,
} from "../codec.js";
import { formatAddress, type Listener } from "../component.js";
import { OPTIONS, formatValue, loadConfig, runDir, type Config, type LoadedConfig } from "../config.js";
import { SugarError, describe } from "../errors.js";
import { createLogger, type LogLevel, type Logger } from "../log.js";
import { collectStartupGarbage } from "./memory.js";
import * as validate from "../validate.js";
import { parseArgs, type ParsedArgs } from "./args.js";
import { backupsCommand } from "./backups.js";
import { adminCommand, announceClaimUrl } from "./claim.js";
import { eventsCommand } from "./events.js";
import { stolenCommand } from "./stolen.js";
import { tlsCommand, tlsShow } from "./tls.js";
import { importDelegationFile, importLeaseFile } from "./imports.js";
import type { ProgressSink } from "./progress.js";
import { COMPONENTS, createBus, isComponentName, runComponents, type ComponentName } from "./components.js";

const COMMAND_FLAGS = new Set<string>(["lease-key", "ca", "follow"]);
/** `stolen ... --district` is the district's list, not the option `district` (this school belongs to one). */
const STOLEN_FLAGS = new Set<string>([...COMMAND_FLAGS, "district"]);
/** A district mark crosses the hub to the keyring host: more than a local request may take. */
const DISTRICT_TIMEOUT = 10_000;
/** Command options with values: `tls init --name HOST`. */
const COMMAND_VALUES = new Set<string>(["name"]);

export interface Io {
  out: (text: string) => void;
  err: (text: string) => void;
  /** Where long imports draw their progress; none = no progress shown. */
  progress?: ProgressSink;
}
const stdio: Io = { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t), progress: process.stderr };

function version(): string {
  const pkg = JSON.parse(readFileSync(join(fileURLToPath(import.meta.url), "..", "..", "..", "..", "package.json"), "utf8")) as { version: string };
  return pkg.version;
}

export function usage(): string {
  const width = Math.max(...OPTIONS.map((o) => o.name.length)) + 8;
  const rows = OPTIONS.map((o) => `  --${(o.name + ((o.kind as string) === "bool" ? "" : " X")).padEnd(width)} ${o.help}`);
  return [
    "usage: sugar-server COMMAND [options]",
    "",
    "commands:",
    "  start                     run every actor and adapter in this process (all but district)",
    `  run COMPONENT...          run only these (${COMPONENTS.join(" ")}), usually with --nats URL`,
    "  config                    print the effective configuration (key = value)",
    "  users list|show UID|remove UID|admin UID on|off   registered users; admin: may administer this server",
    "  users pending|approve NEW_UID|reject NEW_UID      re-flash claims: a new key with a registered user's serial number",
    "  machines list|add SN [UUID]   serial numbers known to the server (identity-model = hardware)",
    "  leases import FILE|show SN     activation leases (act01 lines, or compact JSON [1,{\"SN\":...}])",
    "  stolen add SN|remove SN|list   the stolen list: port 191 answers STOLEN (list: each mark's source, local or district)",
    "  stolen add SN|remove SN|list --district   the district's stolen list: every school of the district answers STOLEN",
    "  auth rotate-key                 a new token key (tokens under the old one run out normally)",
    "  keyring init [--lease-key] [--ca]|show|trust FILE|import-delegations FILE",
    "  tls init|renew [--name HOST...]|show   this school's TLS certificate, signed by the district CA (the keyring)",
    "  tls ssh-host-cert [PUBKEY]|known-hosts  an OpenSSH host certificate from the district CA; the @cert-authority line for clients",
    "  backups list|show UID           Journal backups: sizes, snapshots, last backup and restore",
    "  admin claim-url                 a new one-time URL that makes the registered browser opening it an admin",
    "  events --follow                 this site's events (registered, removed, login, ...) as JSON lines",
    "",
    "options (also as `key = value` lines in /etc/sugar-server.conf, ~/.config/sugar-server/config, --config FILE):",
    "  --config FILE",
    ...rows,
    "",
  ].join("\n");
}

export async function main(argv: readonly string[], io: Io = stdio): Promise<number> {
  let args: ParsedArgs;
  let loaded: LoadedConfig;
  try {
    args = parseArgs(argv, COMMAND_FLAGS, COMMAND_VALUES);
    if (args.command === "stolen") args = parseArgs(argv, STOLEN_FLAGS, COMMAND_VALUES);
    if (args.version) {
      io.out(`sugar-server ${version()}\n`);
      return 0;
    }
    if (args.help || args.command === undefined || args.command === "help") {
      io.out(usage());
      return args.command === undefined && !args.help ? 2 : 0;
    }
    loaded = loadConfig(args.options, args.configFile);
  } catch (err) {
    io.err(`sugar-server: ${(err as Error).message}\n`);
    return 2;
  }
  const { config } = loaded;
  const log = createLogger({ level: config["log-level"] as LogLevel, stream: process.stderr, prefix: "sugar-server" });
  try {
    switch (args.command) {
      case "start":
        // A school on its own is its own keyring; the district actor runs only on a district's keyring host (run keyring district).
        return await serve(COMPONENTS.filter((n) => n !== "district"), config, log, ["activation", "https"]);
      case "run": {
        const bad = args.positionals.filter((c) => !isComponentName(c));
        if (args.positionals.length === 0 || bad.length > 0) {
          io.err(`sugar-server run: name components from: ${COMPONENTS.join(" ")}${bad.length ? ` (unknown: ${bad.join(" ")})` : ""}\n`);
          return 2;
        }
        return await serve(args.positionals as ComponentName[], config, log);
      }
      case "config":
        printConfig(loaded, io);
        return 0;
      case "users":
        // Settling a claim moves backups: with no server running, the backup actor runs here for it.
        return await withActors(["pending", "approve", "reject"].includes(args.positionals[0] ?? "") ? ["registry", "backup"] : ["registry"], config, log, (bus) =>
          usersCommand(args.positionals, registryClient(bus, config.site, { timeoutMs: config["bus-timeout"] }), backupClient(bus, config.site, { timeoutMs: ADMIN_TIMEOUT }), io),
        );
      case "machines":
        return await withActors(["registry"], config, log, (bus) => machinesCommand(args.positionals, registryClient(bus, config.site, { timeoutMs: config["bus-timeout"] }), io));
      case "leases":
        return await withActors(["registry", "lease"], config, log, (bus) => leasesCommand(args.positionals, leaseClient(bus, config.site, { timeoutMs: ADMIN_TIMEOUT }), io));
      case "stolen": {
        // The district's list needs no lease actor here (the keyring host has none): only the bus to the district.
        const district = args.flags.has("district");
        return await withActors(district ? [] : ["registry", "lease"], config, log, (bus) =>
          stolenCommand(
            args.positionals,
            args.flags,
            {
              lease: leaseClient(bus, config.site, { timeoutMs: ADMIN_TIMEOUT }),
              district: districtClient(bus, { timeoutMs: DISTRICT_TIMEOUT }),
              districtFrom: districtFromClient(bus, config.site, { timeoutMs: DISTRICT_TIMEOUT }),
              site: config.site,
            },
            io,
          ),
        );
      }
      case "backups":
        return await withActors(["registry", "backup"], config, log, (bus) => backupsCommand(args.positionals, backupClient(bus, config.site, { timeoutMs: ADMIN_TIMEOUT }), io));
      case "auth":
        return await withActors(["registry", "auth"], config, log, (bus) => authCommand(args.positionals, authClient(bus, config.site, { timeoutMs: ADMIN_TIMEOUT }), io));
      case "admin":
        return await withActors(["registry", "auth"], config, log, (bus) => adminCommand(args.positionals, authClient(bus, config.site, { timeoutMs: ADMIN_TIMEOUT }), config, io));
      case "events":
        return await eventsCommand(args.positionals, args.flags, config, log, io);
      case "tls": {
        const names = args.values.get("name") ?? [];
        const ca = (bus: Requester) => keyringCaClient(bus, config.site, { timeoutMs: ADMIN_TIMEOUT });
        // `tls show` reads the files alone; the rest ask the keyring (here, or the district's over NATS).
        if (args.positionals.length === 1 && args.positionals[0] === "show") return await tlsShow(config, io);
        return await withActors(["keyring"], config, log, (bus) => tlsCommand(args.positionals, names, config, ca(bus), io));
      }
      case "keyring":
        return await withActors(["keyring"], config, log, (bus) => keyringCommand(args.positionals, args.flags, keyringClient(bus, { timeoutMs: ADMIN_TIMEOUT }), io));
      default:
        io.err(`sugar-server: unknown command "${args.command}"\n${usage()}`);
        return 2;
    }
  } catch (err) {
    if (err instanceof SugarError) io.err(`sugar-server: ${err.message}\n`);
    else io.err(`sugar-server: ${describe(err)}\n`);
    return 1;
  }
}

function printConfig({ config, sources }: LoadedConfig, io: Io): void {
  for (const o of OPTIONS) {
    if (sources[o.name] !== "default") io.out(`# from ${sources[o.name]}\n`);
    // A password is shown as set or not, never printed.
    const shown = o.name === "nats-password" && config[o.name] ? "********" : formatValue(config[o.name]);
    io.out(`${o.name} = ${shown}\n`);
  }
}

/** Runs components until SIGTERM or SIGINT, then stops them cleanly. */
async function serve(names: ComponentName[], config: Config, log: Logger, optional: ComponentName[] = []): Promise<number> {
  const server = await runComponents(names, config, log, { optionalWhenUnprivileged: optional });
  collectStartupGarbage();
  // Work a component goes on with after ready (authorized_keys for 100,000 users) leaves its own
  // garbage that an idle server would keep as resident memory: collected once it is all done.
  const afterReady = server.components.flatMap((c) => (c.afterReady ? [c.afterReady] : []));
  if (afterReady.length) void Promise.all(afterReady).then(() => collectStartupGarbage());
  const listeners = server.components.flatMap((c) => ("address" in c ? [`${c.name} ${formatAddress((c as { address: { host: string; port: number } }).address)}`] : []));
  const signalled = new Promise<void>((resolve) => {
    const onSignal = (sig: string) => {
      log.info(`${sig}: stopping`);
      process.off("SIGTERM", onSignal);
      process.off("SIGINT", onSignal);
      resolve();
    };
    process.on("SIGTERM", onSignal);
    process.on("SIGINT", onSignal);
  });
  // Only now: whoever waits for this line may signal at once (stderr to a pipe is written synchronously),
  // and a SIGTERM before the handler above would kill the process without a clean stop.
  log.info(`ready: ${server.components.map((c) => c.name).join(", ")} on ${server.bus.kind} bus${listeners.length ? `; ${listeners.join(", ")}` : ""}`);
  if (names.includes("registry") && names.includes("auth")) {
    const http = server.components.find((c): c is Listener => c.name === "http" && "address" in c);
    await announceClaimUrl(server.bus, config, log, http?.address.port);
  }
  await signalled;
  await server.stop();
  log.info("stopped");
  return 0;
}

/** Imports and key generation take longer than a routine request. */
const ADMIN_TIMEOUT = 60_000;

/**
 * Reaches the actors of a running server, or runs them here for the length
 * of one command: NATS when configured, else the admin socket of a server on
 * this root, else the named actors in this process (taking the root's lock).
 */
async function withActors(names: ComponentName[], config: Config, log: Logger, fn: (bus: Requester) => Promise<number>): Promise<number> {
  if (config.nats) {
    const bus = await createBus(config, log.child("admin"));
    try {
      return await fn(bus);
    } finally {
      await bus.close();
    }
  }
  // No server listening is the normal case (the actors then run here); a socket that is not ours is refused loudly.
  const client = await AdminClient.connect(join(runDir(config), "admin.sock")).catch((err: unknown) => {
    if (err instanceof SugarError && err.code === "unavailable") return undefined;
    throw err;
  });
  if (client) {
    try {
      return await fn(client);
    } finally {
      client.close();
    }
  }
  const bus = new MemoryBus({ timeoutMs: ADMIN_TIMEOUT });
  const local = await runComponents(names, config, createLogger({ level: "warn", prefix: "sugar-server" }), { bus });
  try {
    return await fn(bus);
  } finally {
    await local.stop();
    await bus.close();
  }
}

type User = sugar.registry.User.$Properties;

async function allUsers(registry: RegistryClient): Promise<User[]> {
  const users: User[] = [];
  for (let offset = 0; ; ) {
    const page = await registry.call("list", { offset, limit: 1000 });
    users.push(...(page.users ?? []));
    offset += page.users?.length ?? 0;
    if (!page.users?.length || offset >= (page.total ?? 0)) return users;
  }
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  ")).join("\n") + "\n";
}

function userJson(u: User): string {
  return JSON.stringify(
    { uid: u.uid, nickname: u.nickname, kind: u.kind ?? "", device_id: u.deviceId ?? "", machine_sn: u.machineSn, machine_uuid: u.machineUuid, pubkey: u.pubkey, admin: !!u.admin, created: u.created, updated: u.updated },
    null,
    2,
  );
}

const USERS_USAGE = "usage: sugar-server users list | show UID | remove UID | admin UID on|off | pending | approve NEW_UID | reject NEW_UID\n";

async function usersCommand(args: string[], registry: RegistryClient, backup: BackupClient, io: Io): Promise<number> {
  const [sub, uid, flag, ...rest] = args;
  const one = uid !== undefined && flag === undefined;
  switch (sub) {
    case "list": {
      if (uid !== undefined) break;
      const users = await allUsers(registry);
      io.out(table([["UID", "NICKNAME", "MACHINE_SN", "ADMIN", "REGISTERED"], ...users.map((u) => [u.uid ?? "", u.nickname ?? "", u.machineSn || "-", u.admin ? "yes" : "-", u.created ?? ""])]));
      io.out(`${users.length} user${users.length === 1 ? "" : "s"}\n`);
      return 0;
    }
    case "show":
      if (!one) break;
      io.out(userJson((await registry.call("lookup", { uid })).user ?? {}) + "\n");
      return 0;
    case "remove":
      if (!one) break;
      await registry.call("remove", { uid });
      io.out(`removed ${uid}\n`);
      return 0;
    case "admin": {
      if (uid === undefined || (flag !== "on" && flag !== "off") || rest.length > 0) break;
      const r = await registry.call("admin", { uid, admin: flag === "on" });
      io.out(`${uid} ${r.changed ? (flag === "on" ? "is now an admin" : "is no longer an admin") : flag === "on" ? "was already an admin" : "was not an admin"}\n`);
      return 0;
    }
    case "pending": {
      if (uid !== undefined) break;
      const claims = (await registry.call("claims", {})).claims ?? [];
      const lastBackup = async (old: string) => {
        try {
          return (await backup.call("show", { uid: old })).backup?.lastBackup || "never";
        } catch (err) {
          if (err instanceof SugarError && (err.code === "not_registered" || err.code === "unavailable")) return "-";
          throw err;
        }
      };
      const rows = [];
      for (const c of claims) rows.push([c.newUid ?? "", c.oldUid ?? "", c.machineSn ?? "", `${c.newNickname} (was ${c.oldNickname})`, c.created ?? "", await lastBackup(c.oldUid ?? "")]);
      io.out(table([["NEW_UID", "OLD_UID", "MACHINE_SN", "NICKNAMES", "CLAIMED", "OLD LAST BACKUP"], ...rows]));
      io.out(`${claims.length} re-flash claim${claims.length === 1 ? "" : "s"} pending${claims.length ? "; settle each with: sugar-server users approve|reject NEW_UID" : ""}\n`);
      return 0;
    }
    case "approve": {
      if (!one) break;
      const c = (await registry.call("approve", { newUid: uid })).claim ?? {};
      io.out(`approved: ${c.newUid} restores ${c.oldUid}'s backups; ${c.oldUid} is retired\n`);
      return 0;
    }
    case "reject": {
      if (!one) break;
      const c = (await registry.call("reject", { newUid: uid })).claim ?? {};
      io.out(`rejected: ${c.newUid} stays a user of its own; ${c.oldUid} keeps ${c.machineSn}\n`);
      return 0;
    }
  }
  io.err(USERS_USAGE);
  return 2;
}

async function authCommand(args: string[], auth: AuthClient, io: Io): Promise<number> {
  if (args.length === 1 && args[0] === "rotate-key") {
    const r = await auth.call("rotate", {});
    io.out(`new token key ${r.keyId}; tokens under the previous key stay valid until they expire\n`);
    return 0;
  }
  io.err("usage: sugar-server auth rotate-key\n");
  return 2;
}

async function machinesCommand(args: string[], registry: RegistryClient, io: Io): Promise<number> {
  const [sub, sn, uuid] = args;
  switch (sub) {
    case "list": {
      const machines = (await registry.call("machines", {})).machines ?? [];
      io.out(table([["MACHINE_SN", "MACHINE_UUID", "UID", "SOURCE"], ...machines.map((m) => [m.machineSn ?? "", m.machineUuid || "-", m.uid || "-", m.source ?? ""])]));
      return 0;
    }
    case "add": {
      if (!sn) break;
      const r = await registry.call("machine", { machineSn: validate.typedMachineSn(sn), machineUuid: uuid ?? "", source: "admin" });
      io.out(`${r.created ? "added" : "updated"} ${r.machine?.machineSn}\n`);
      return 0;
    }
  }
  io.err("usage: sugar-server machines list | add SN [UUID]\n");
  return 2;
}

const NO_PROGRESS: ProgressSink = { isTTY: false, write: () => undefined };

/** A file's text; `-` is standard input. */
async function readInput(file: string): Promise<string> {
  if (file !== "-") return readFile(file, "utf8");
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

function reportImport(r: { imported?: number | null; replaced?: number | null; refused?: Array<{ where?: string | null; reason?: string | null }> | null }, io: Io): number {
  const refused = r.refused ?? [];
  io.out(`${r.imported ?? 0} imported, ${r.replaced ?? 0} replaced, ${refused.length} refused\n`);
  for (const x of refused) io.out(`refused ${x.where}: ${x.reason}\n`);
  return refused.length > 0 ? 1 : 0;
}

async function leasesCommand(args: string[], lease: LeaseClient, io: Io): Promise<number> {
  const [sub, arg] = args;
  if (sub === "import" && arg) return reportImport(await importLeaseFile(await readInput(arg), lease, io.progress ?? NO_PROGRESS), io);
  if (sub === "show" && arg) {
    const r = await lease.call("show", { machineSn: validate.typedMachineSn(arg) });
    if (r.stolen) io.out("# on the stolen list: port 191 answers STOLEN\n");
    if (r.lease) io.out(`# ${r.kind} lease, expires ${r.expiry}\n${r.lease}`);
    return 0;
  }
  io.err("usage: sugar-server leases import FILE | show SN\n");
  return 2;
}

function showKeys(k: { key01?: string | null; keyId?: string | null; delegations?: number | null; leaseKey01?: string | null; leaseKeyId?: string | null; trustedKeyIds?: string[] | null; directory?: string | null; caFingerprint?: string | null }, io: Io): void {
  // The CA first: a district keyring may hold it without any lease key.
  if (k.caFingerprint) io.out(`district CA: SHA-256 ${k.caFingerprint}\n`);
  if (!k.key01) {
    io.out(`no server key in ${k.directory}: run sugar-server keyring init\n`);
    return;
  }
  io.out(`${k.key01.trimEnd()}\nkey id: ${k.keyId}\ndelegations: ${k.delegations}\n`);
  if (k.leaseKey01) io.out(`lease key: ${k.leaseKey01.trimEnd()}\nlease key id: ${k.leaseKeyId}\n`);
  for (const id of k.trustedKeyIds ?? []) io.out(`trusted: ${id}\n`);
  io.out(`directory: ${k.directory}\n`);
}

async function keyringCommand(args: string[], flags: ReadonlySet<string>, keyring: KeyringClient, io: Io): Promise<number> {
  const [sub, file] = args;
  switch (sub) {
    case "init": {
      const r = await keyring.call("init", { leaseKey: flags.has("lease-key"), ca: flags.has("ca") });
      io.out(r.created ? "created keys\n" : "keys already exist; nothing replaced\n");
      showKeys(r.keys ?? {}, io);
      return 0;
    }
    case "show":
      showKeys(await keyring.call("show", {}), io);
      return 0;
    case "trust":
      if (!file) break;
      for (const id of (await keyring.call("trust", { text: await readInput(file) })).trustedKeyIds ?? []) io.out(`trusted: ${id}\n`);
      return 0;
    case "import-delegations":
      if (!file) break;
      return reportImport(await importDelegationFile(await readInput(file), keyring, io.progress ?? NO_PROGRESS), io);
  }
  io.err("usage: sugar-server keyring init [--lease-key] [--ca] | show | trust FILE | import-delegations FILE\n");
  return 2;
}
