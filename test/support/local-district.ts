/**
 * The district end-to-end tests' view of deploy/district/local-district.mjs:
 * its exported functions and the state it returns, typed once, and a bus on a
 * school's leaf node or the keyring host's account, as their processes have.
 */
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { NatsBus } from "../../src/bus/nats.js";
import { repoRoot } from "./paths.js";
import { toolBin, TOOLS } from "./requires.js";

export interface SchoolState {
  site: string;
  root: string;
  nats: string;
  ports: Record<string, number>;
}
export interface KeyringHost {
  root: string;
  /** nats://keyring:PASSWORD@127.0.0.1:PORT: the KEYRING account on the hub. */
  nats: string;
}
export interface DistrictState {
  dir: string;
  schools: SchoolState[];
  keyring: KeyringHost;
  keyring2?: KeyringHost;
}
export interface LocalDistrict {
  startDistrict(dir: string, opts: Record<string, unknown>): Promise<DistrictState>;
  stopDistrict(dir: string): Promise<void>;
  stopKeyring(dir: string): Promise<void>;
  restartKeyring(dir: string, index?: number): Promise<DistrictState>;
  startSecondKeyring(dir: string): Promise<DistrictState>;
  killKeyring(dir: string, index: number, signal?: NodeJS.Signals): Promise<void>;
  /** Stops / starts the school's leaf nats-server itself (its own bus is gone meanwhile). */
  stopLeaf(dir: string, site: string): Promise<void>;
  startLeaf(dir: string, site: string): Promise<DistrictState>;
  /** Breaks / mends the school's link to the hub (its leaf node and sugar-server keep running). */
  cutLink(dir: string, site: string): Promise<void>;
  restoreLink(dir: string, site: string): Promise<DistrictState>;
}

/** The module, told which nats-server the requirement found. */
export async function localDistrict(): Promise<LocalDistrict> {
  process.env.NATS_SERVER_BIN = toolBin(TOOLS.natsServer);
  return (await import(pathToFileURL(join(repoRoot, "deploy", "district", "local-district.mjs")).href)) as LocalDistrict;
}

/** Runs fn with a bus on `url` (a school's leaf node, or a nats://user:password@host URL), closed afterwards. */
export async function onBus<T>(url: string, fn: (bus: NatsBus) => Promise<T>): Promise<T> {
  const u = new URL(url);
  const bus = await NatsBus.connect({
    servers: `nats://${u.host}`,
    ...(u.username ? { user: decodeURIComponent(u.username), password: decodeURIComponent(u.password) } : {}),
    timeoutMs: 5000,
  });
  try {
    return await fn(bus);
  } finally {
    await bus.close();
  }
}
