/**
 * What the overview shows, asked of the owning actors over the bus, each
 * part on its own: a part whose actor does not answer (another host is down,
 * or it does not run) is "not answering", and the rest still shows. The same
 * answers feed the gauges of /metrics (registry size, leases, disk, keyring).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Gauge } from "prom-client";
import { backupClient, leaseClient, registryClient } from "../../../src/codec.js";
import type { Context } from "../../../src/component.js";
import type { Bus } from "../../../src/bus/types.js";
import { describe } from "../../../src/errors.js";
import type { Overview } from "./pages.js";

/** How long the overview waits for any one actor: the page must come back even when one is down. */
const PART_TIMEOUT_MS = 1500;

function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(join(fileURLToPath(import.meta.url), "..", "..", "..", "..", "..", "package.json"), "utf8")) as { version?: string };
    return pkg.version ?? "?";
  } catch {
    return "?"; // a packaging that moved package.json: the version is not worth failing a page for
  }
}
const VERSION = version();
const STARTED = Date.now();

const connected = (bus: Bus): boolean => {
  const b = bus as Bus & { isConnected?: () => boolean };
  return typeof b.isConnected === "function" ? b.isConnected() : true;
};

export interface OverviewSource {
  overview(): Promise<Overview>;
}

export function overviewSource(ctx: Context): OverviewSource {
  const { bus, config } = ctx;
  const log = ctx.log.child("admin");
  const opts = { timeoutMs: Math.min(PART_TIMEOUT_MS, config["bus-timeout"]) };
  const registry = registryClient(bus, config.site, opts);
  const lease = leaseClient(bus, config.site, opts);
  const backup = backupClient(bus, config.site, opts);
  const part = async <T>(what: string, fn: () => Promise<T>): Promise<T | undefined> => {
    try {
      return await fn();
    } catch (err) {
      log.debug(`overview: ${what}: ${describe(err)}`);
      return undefined;
    }
  };
  return {
    async overview() {
      const [counts, leases, backups, claims] = await Promise.all([
        part("registry", () => registry.call("admins", {})),
        part("lease", () => lease.call("status", {})),
        part("backup", () => backup.call("summary", {})),
        part("claims", async () => (await registry.call("claims", {})).claims ?? []),
      ]);
      return {
        counts,
        leases,
        backups,
        claims,
        bus: { kind: bus.kind, embedded: !config.nats, connected: connected(bus) },
        version: VERSION,
        uptimeSeconds: (Date.now() - STARTED) / 1000,
        renewDays: config["lease-renew-days"],
      };
    },
  };
}

/** The overview's numbers as gauges, read at each scrape. */
export function registerGauges(ctx: Context, source: OverviewSource): void {
  const m = ctx.metrics;
  if (!m) return;
  const registers = [m.registry];
  let latest: Promise<Overview> | undefined;
  // One overview per scrape, whichever gauge asks first.
  const get = () => (latest ??= source.overview().finally(() => setTimeout(() => (latest = undefined), 1000).unref()));
  const gauge = (name: string, help: string, labelNames: string[], set: (g: Gauge<string>, o: Overview) => void) =>
    new Gauge({
      name,
      help,
      labelNames,
      registers,
      async collect() {
        set(this, await get());
      },
    });
  gauge("sugar_registry_users", "Registered users (absent when the registry does not answer)", [], (g, o) => (o.counts ? g.set(o.counts.users ?? 0) : g.reset()));
  gauge("sugar_registry_machines", "Serial numbers known to the registry", [], (g, o) => (o.counts ? g.set(o.counts.machines ?? 0) : g.reset()));
  gauge("sugar_leases_stored", "Leases stored", [], (g, o) => (o.leases ? g.set(o.leases.leases ?? 0) : g.reset()));
  gauge("sugar_leases_expiring", "Stored leases expiring within lease-renew-days", [], (g, o) => (o.leases ? g.set(o.leases.expiring ?? 0) : g.reset()));
  gauge("sugar_stolen", "Serial numbers on the stolen list", [], (g, o) => (o.leases ? g.set(o.leases.stolen ?? 0) : g.reset()));
  gauge("sugar_keyring_up", "1 when the lease actor answers and its last keyring exchange succeeded", [], (g, o) => g.set(o.leases?.keyringOk ? 1 : 0));
  gauge("sugar_disk_free_percent", "Percent free on the backups file system", ["of"], (g, o) => {
    g.reset();
    if (!o.backups) return;
    g.set({ of: "blocks" }, o.backups.diskFree ?? 0);
    if ((o.backups.inodesFree ?? -1) >= 0) g.set({ of: "inodes" }, o.backups.inodesFree ?? 0);
  });
  gauge("sugar_backups_running", "Backups holding an admission slot now", [], (g, o) => (o.backups ? g.set(o.backups.running ?? 0) : g.reset()));
  gauge("sugar_bus_connected", "1 when this process's bus is connected", [], (g, o) => g.set(o.bus.connected ? 1 : 0));
}
