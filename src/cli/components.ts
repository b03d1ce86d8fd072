/**
 * The composition root: every actor and adapter by name, and the process
 * that runs a set of them on one bus. The only module that imports both
 * actors and adapters.
 */
import { join } from "node:path";
import { startRegistry } from "../../actors/registry/index.js";
import { startHttp } from "../../adapters/http/index.js";
import { startXmlrpc } from "../../adapters/xmlrpc/index.js";
import { startAdminServer, type AdminServer } from "../admin.js";
import type { Bus } from "../bus/types.js";
import { MemoryBus } from "../bus/memory.js";
import type { Component, Context } from "../component.js";
import { runDir, type Config } from "../config.js";
import { acquireLock, type Lock } from "../lock.js";
import type { Logger } from "../log.js";
import { describe } from "../codec.js";

export const ACTORS = ["registry"] as const;
export const ADAPTERS = ["http", "xmlrpc"] as const;
export type ComponentName = (typeof ACTORS)[number] | (typeof ADAPTERS)[number];
export const COMPONENTS: readonly ComponentName[] = [...ACTORS, ...ADAPTERS];

const STARTERS: Record<ComponentName, (ctx: Context) => Promise<Component>> = {
  registry: startRegistry,
  http: (ctx) => startHttp(ctx),
  xmlrpc: startXmlrpc,
};

/** Components that own files under the root take the root's lock. */
const OWNS_ROOT: ReadonlySet<ComponentName> = new Set(["registry"]);

export function isComponentName(name: string): name is ComponentName {
  return (COMPONENTS as readonly string[]).includes(name);
}

export async function createBus(config: Config, log: Logger): Promise<Bus> {
  if (!config.nats) return new MemoryBus({ timeoutMs: config["bus-timeout"] });
  const { connectNatsFromConfig } = await import("../bus/nats-config.js");
  return connectNatsFromConfig(config, log);
}

export interface RunningServer {
  readonly bus: Bus;
  readonly components: readonly Component[];
  stop(): Promise<void>;
}

/**
 * Starts the named components (actors first, then adapters) on one bus.
 * When anything fails to start, whatever started is stopped again and the
 * error is thrown.
 */
export async function runComponents(names: readonly ComponentName[], config: Config, log: Logger, bus?: Bus): Promise<RunningServer> {
  const ownBus = bus ?? (await createBus(config, log));
  const started: Component[] = [];
  let lock: Lock | undefined;
  let admin: AdminServer | undefined;
  const ordered = COMPONENTS.filter((n) => names.includes(n));
  const stop = async () => {
    for (const c of [...started].reverse()) await c.stop().catch((err) => log.error(`stopping ${c.name}: ${describe(err)}`));
    await admin?.close();
    if (!bus) await ownBus.close();
    await lock?.release();
  };
  try {
    if (ordered.some((n) => OWNS_ROOT.has(n))) lock = await acquireLock(join(runDir(config), "lock"));
    for (const name of ordered) started.push(await STARTERS[name]({ bus: ownBus, config, log }));
    if (lock) admin = await startAdminServer(join(runDir(config), "admin.sock"), ownBus, log.child("admin"));
  } catch (err) {
    await stop();
    throw err;
  }
  let stopping: Promise<void> | undefined;
  return { bus: ownBus, components: started, stop: () => (stopping ??= stop()) };
}
