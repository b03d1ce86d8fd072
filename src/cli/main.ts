/**
 * `sugar-server`: one command runs and manages everything.
 *   start                 every actor and adapter in one process
 *   run COMPONENT...      only the named ones (with --nats, on separate hosts)
 *   config                the effective configuration
 *   users list|show UID|remove UID
 *   machines list|add SN [UUID]
 * Admin commands reach a running server (admin socket, or NATS with --nats),
 * or, with none running, start the one actor they need in this process.
 */
import { join } from "node:path";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { sugar } from "../../schemas/gen/messages.js";
import { AdminClient } from "../admin.js";
import { MemoryBus } from "../bus/memory.js";
import type { Requester } from "../bus/types.js";
import { RegistryClient } from "../clients.js";
import { describe } from "../codec.js";
import { OPTIONS, formatValue, loadConfig, runDir, type Config, type LoadedConfig } from "../config.js";
import { ConfigError, SugarError } from "../errors.js";
import { createLogger, type LogLevel, type Logger } from "../log.js";
import { ListenError, formatAddress } from "../net.js";
import { parseArgs, type ParsedArgs } from "./args.js";
import { ACTORS, COMPONENTS, createBus, isComponentName, runComponents, type ComponentName } from "./components.js";

const COMMAND_FLAGS = new Set<string>([]);

export interface Io {
  out: (text: string) => void;
  err: (text: string) => void;
}
const stdio: Io = { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) };

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
    "  start                     run every actor and adapter in this process",
    `  run COMPONENT...          run only these (${COMPONENTS.join(" ")}), usually with --nats URL`,
    "  config                    print the effective configuration (key = value)",
    "  users list|show UID|remove UID",
    "  machines list|add SN [UUID]   serial numbers known to the server (identity-model = hardware)",
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
    args = parseArgs(argv, COMMAND_FLAGS);
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
        return await serve([...COMPONENTS], config, log, io);
      case "run": {
        const bad = args.positionals.filter((c) => !isComponentName(c));
        if (args.positionals.length === 0 || bad.length > 0) {
          io.err(`sugar-server run: name components from: ${COMPONENTS.join(" ")}${bad.length ? ` (unknown: ${bad.join(" ")})` : ""}\n`);
          return 2;
        }
        return await serve(args.positionals as ComponentName[], config, log, io);
      }
      case "config":
        printConfig(loaded, io);
        return 0;
      case "users":
        return await withRegistry(config, log, (bus) => usersCommand(args.positionals, new RegistryClient(bus, config.site, { timeoutMs: config["bus-timeout"] }), io));
      case "machines":
        return await withRegistry(config, log, (bus) => machinesCommand(args.positionals, new RegistryClient(bus, config.site, { timeoutMs: config["bus-timeout"] }), io));
      default:
        io.err(`sugar-server: unknown command "${args.command}"\n${usage()}`);
        return 2;
    }
  } catch (err) {
    if (err instanceof SugarError || err instanceof ConfigError || err instanceof ListenError) io.err(`sugar-server: ${err.message}\n`);
    else io.err(`sugar-server: ${describe(err)}\n`);
    return 1;
  }
}

function printConfig({ config, sources }: LoadedConfig, io: Io): void {
  for (const o of OPTIONS) {
    if (sources[o.name] !== "default") io.out(`# from ${sources[o.name]}\n`);
    io.out(`${o.name} = ${formatValue(config[o.name])}\n`);
  }
}

/** Runs components until SIGTERM or SIGINT, then stops them cleanly. */
async function serve(names: ComponentName[], config: Config, log: Logger, io: Io): Promise<number> {
  const server = await runComponents(names, config, log);
  const listeners = server.components.flatMap((c) => ("address" in c ? [`${c.name} ${formatAddress((c as { address: { host: string; port: number } }).address)}`] : []));
  log.info(`ready: ${server.components.map((c) => c.name).join(", ")} on ${server.bus.kind} bus (root ${config.root})${listeners.length ? `; ${listeners.join(", ")}` : ""}`);
  await new Promise<void>((resolve) => {
    const onSignal = (sig: string) => {
      log.info(`${sig}: stopping`);
      process.off("SIGTERM", onSignal);
      process.off("SIGINT", onSignal);
      resolve();
    };
    process.on("SIGTERM", onSignal);
    process.on("SIGINT", onSignal);
  });
  await server.stop();
  log.info("stopped");
  void io;
  return 0;
}

/**
 * Reaches the registry of a running server, or runs it here for the length
 * of one command: NATS when configured, else the admin socket of a server on
 * this root, else an in-process registry (taking the root's lock).
 */
async function withRegistry(config: Config, log: Logger, fn: (bus: Requester) => Promise<number>): Promise<number> {
  const quiet = log.child("admin");
  if (config.nats) {
    const bus = await createBus(config, quiet);
    try {
      return await fn(bus);
    } finally {
      await bus.close();
    }
  }
  const client = await AdminClient.connect(join(runDir(config), "admin.sock")).catch(() => undefined);
  if (client) {
    try {
      return await fn(client);
    } finally {
      client.close();
    }
  }
  const bus = new MemoryBus({ timeoutMs: config["bus-timeout"] });
  const local = await runComponents(ACTORS.filter((a) => a === "registry"), config, createLogger({ level: "warn", prefix: "sugar-server" }), bus);
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
    { uid: u.uid, nickname: u.nickname, machine_sn: u.machineSn, machine_uuid: u.machineUuid, pubkey: u.pubkey, pending_restore: u.pendingRestore, created: u.created, updated: u.updated },
    null,
    2,
  );
}

async function usersCommand(args: string[], registry: RegistryClient, io: Io): Promise<number> {
  const [sub, uid] = args;
  switch (sub) {
    case "list": {
      const users = await allUsers(registry);
      io.out(table([["UID", "NICKNAME", "MACHINE_SN", "REGISTERED"], ...users.map((u) => [u.uid ?? "", u.nickname ?? "", u.machineSn || "-", u.created ?? ""])]));
      io.out(`${users.length} user${users.length === 1 ? "" : "s"}\n`);
      return 0;
    }
    case "show":
      if (!uid) break;
      io.out(userJson((await registry.call("lookup", { uid })).user ?? {}) + "\n");
      return 0;
    case "remove":
      if (!uid) break;
      await registry.call("remove", { uid });
      io.out(`removed ${uid}\n`);
      return 0;
  }
  io.err("usage: sugar-server users list | show UID | remove UID\n");
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
      const r = await registry.call("machine", { machineSn: sn.trim().toUpperCase(), machineUuid: uuid ?? "", source: "admin" });
      io.out(`${r.created ? "added" : "updated"} ${r.machine?.machineSn}\n`);
      return 0;
    }
  }
  io.err("usage: sugar-server machines list | add SN [UUID]\n");
  return 2;
}
