/**
 * The composition root: every actor and adapter by name, and the process
 * that runs a set of them on one bus. The only module that imports both
 * actors and adapters.
 */
import { join } from "node:path";
import { startAuth } from "../../actors/auth/index.js";
import { startBackup } from "../../actors/backup/index.js";
import { startDistrict } from "../../actors/district/index.js";
import { startKeyring } from "../../actors/keyring/index.js";
import { startLease } from "../../actors/lease/index.js";
import { startRegistry } from "../../actors/registry/index.js";
import { startActivation } from "../../adapters/activation/index.js";
import { createRest } from "../../adapters/http/index.js";
import { startListener } from "../../adapters/kit/listener.js";
import { loadTls } from "../../adapters/kit/tls.js";
import { createWeb } from "../../adapters/web/index.js";
import { createAdminConsole } from "../../adapters/web/admin/routes.js";
import type { HttpHandler } from "../../adapters/kit/handler.js";
import { createXmlrpc } from "../../adapters/xmlrpc/index.js";
import { startMetricsListener } from "../../adapters/metrics/index.js";
import { startAdminServer, type AdminServer } from "../bus/admin.js";
import type { Bus } from "../bus/types.js";
import { MemoryBus } from "../bus/memory.js";
import { keyringCaClient } from "../codec.js";
import { once, type Component, type Context } from "../component.js";
import { runDir, type Config } from "../config.js";
import { acquireLock, type Lock } from "../lock.js";
import type { Logger } from "../log.js";
import { ListenError, SugarError, describe } from "../errors.js";
import { createMetrics, meteredBus } from "../metrics.js";
import { renewIfDue } from "./tls.js";

const HOUR_MS = 3600 * 1000;
/** Signing a certificate can wait on a district keyring a while; the port opens either way. */
const RENEW_TIMEOUT_MS = 15_000;

const ACTORS = ["registry", "auth", "backup", "lease", "keyring", "district"] as const;
const ADAPTERS = ["http", "xmlrpc", "https", "activation"] as const;
export type ComponentName = (typeof ACTORS)[number] | (typeof ADAPTERS)[number];
export const COMPONENTS: readonly ComponentName[] = [...ACTORS, ...ADAPTERS];

/** One admin console per process, whichever ports mount it: one live feed, one set of gauges. */
const consoles = new WeakMap<Context, HttpHandler>();
const adminConsole = (ctx: Context): HttpHandler => {
  let c = consoles.get(ctx);
  if (!c) consoles.set(ctx, (c = createAdminConsole(ctx)));
  return c;
};

const STARTERS: Record<ComponentName, (ctx: Context) => Promise<Component>> = {
  registry: startRegistry,
  auth: startAuth,
  backup: startBackup,
  lease: startLease,
  keyring: startKeyring,
  district: startDistrict,
  // Each port mounts adapters' handlers; the TLS port serves every route of the two plain ones.
  http: (ctx) => {
    const rest = createRest(ctx);
    return startListener(ctx, { name: "http", option: "httpd-port", port: ctx.config["httpd-port"], handlers: [createWeb(ctx), adminConsole(ctx), rest], fallback: rest });
  },
  xmlrpc: (ctx) => {
    const xmlrpc = createXmlrpc(ctx);
    return startListener(ctx, { name: "xmlrpc", option: "xmlrpc-port", port: ctx.config["xmlrpc-port"], handlers: [xmlrpc], fallback: xmlrpc });
  },
  https: async (ctx) => {
    // The certificate is renewed before the port opens, and checked hourly while it is open.
    const ca = keyringCaClient(ctx.bus, ctx.config.site, { timeoutMs: RENEW_TIMEOUT_MS });
    const log = ctx.log.child("tls");
    await renewIfDue(ctx.config, ca, log);
    const rest = createRest(ctx);
    const port = Number(ctx.config["https-port"]);
    let served = loadTls(ctx.config);
    const listener = await startListener(ctx, { name: "https", option: "https-port", port, handlers: [createWeb(ctx), adminConsole(ctx), createXmlrpc(ctx), rest], fallback: rest, tls: served });
    // Hourly: renew when due, and serve whatever certificate is on disk now (this renewal's, or a `tls renew` run meanwhile).
    const hourly = setInterval(() => {
      renewIfDue(ctx.config, ca, log)
        .then(() => {
          const now = loadTls(ctx.config);
          if (now.cert.equals(served.cert) && now.key.equals(served.key)) return;
          listener.reloadTls(now);
          served = now;
        })
        .catch((err: unknown) => log.error(`TLS renewal: ${describe(err)}`));
    }, HOUR_MS);
    hourly.unref();
    return { ...listener, stop: once(async () => {
      clearInterval(hourly);
      await listener.stop();
    }) };
  },
  activation: startActivation,
};

/** Components that run only when configured (the TLS port only with https-port set): why not, when they are off. */
const OFF: Partial<Record<ComponentName, (config: Config) => string | undefined>> = {
  https: (config) => (config["https-port"] === "" ? "https-port is empty (the TLS port is off)" : undefined),
  // On a school's bus a district actor of its own would answer the school's district requests in the district's place.
  district: (config) => (config.district ? "this is a school of a district (option district): the district actor runs on the keyring host" : undefined),
};

/**
 * Components that own files under the root take the root's lock. The keyring
 * owns only keyring-dir (its writes are whole-file renames), so `run keyring`
 * takes none; `run keyring district` takes it once, for the district's files.
 */
const OWNS_ROOT: ReadonlySet<ComponentName> = new Set(["registry", "auth", "backup", "lease", "district"]);

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
export interface RunOptions {
  /** An existing bus to run on (it is not closed on stop). */
  bus?: Bus;
  /**
   * Components that may be left out when their privileged port cannot be
   * bound: `start` for a newcomer who is not root still serves REST and
   * XML-RPC, and says in one line how to get port 191.
   */
  optionalWhenUnprivileged?: readonly ComponentName[];
}

export async function runComponents(names: readonly ComponentName[], config: Config, log: Logger, opts: RunOptions = {}): Promise<RunningServer> {
  const bus = opts.bus;
  const ownBus = bus ?? (await createBus(config, log));
  const started: Component[] = [];
  let lock: Lock | undefined;
  let admin: AdminServer | undefined;
  const off = names.flatMap((n) => {
    const why = OFF[n]?.(config);
    return why ? [`${n} not started: ${why}`] : [];
  });
  // `start` names every component and leaves the unconfigured ones out quietly; `run https` alone must say why nothing runs.
  if (off.length > 0 && off.length === names.length) throw new SugarError("invalid_config", off.join("; "));
  for (const why of off) log.debug(why);
  const ordered = COMPONENTS.filter((n) => names.includes(n) && !OFF[n]?.(config));
  const stop = async () => {
    for (const c of [...started].reverse()) await c.stop().catch((err) => log.error(`stopping ${c.name}: ${describe(err)}`));
    await admin?.close();
    if (!bus) await ownBus.close();
    await lock?.release();
  };
  // A process that serves (any adapter) counts for /metrics; a CLI command's own actors do not.
  const serving = ordered.some((n) => (ADAPTERS as readonly string[]).includes(n));
  const metrics = serving ? createMetrics() : undefined;
  const ctx: Context = metrics ? { bus: meteredBus(ownBus, metrics), config, log, metrics } : { bus: ownBus, config, log };
  try {
    if (ordered.some((n) => OWNS_ROOT.has(n))) lock = await acquireLock(join(runDir(config), "lock"));
    for (const name of ordered) {
      try {
        started.push(await STARTERS[name](ctx));
      } catch (err) {
        if (!(err instanceof ListenError && err.privileged && opts.optionalWhenUnprivileged?.includes(name))) throw err;
        log.warn(`${name} not started: ${err.message}`);
      }
    }
    if (metrics && config["metrics-port"] !== "") started.push(await startMetricsListener(ctx, metrics));
    // Ready means other processes can reach what started here.
    await ownBus.flush();
    if (lock) admin = await startAdminServer(join(runDir(config), "admin.sock"), ownBus, log.child("admin"), { site: config.site });
  } catch (err) {
    await stop();
    throw err;
  }
  let stopping: Promise<void> | undefined;
  return { bus: ownBus, components: started, stop: () => (stopping ??= stop()) };
}
