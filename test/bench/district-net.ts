/**
 * A district for the bench, on loopback: one hub nats-server with an account
 * per site and the keyring's (KEYRING exports sugar.keyring.sign and
 * sugar.keyring.rtc; every site's account imports them), leaf nodes that
 * each carry several sites (one local account per site, bound by its own
 * leafnodes remote to that site's account on the hub), the keyring
 * process(es) (`sugar-server run keyring`) on the hub, and one sugar-server
 * per site on its leaf (`run registry lease activation --delegation`).
 * Keyring roots are made the way an admin makes them: the vector server key,
 * `keyring init`, `keyring trust` the vector master key, `keyring
 * import-delegations`; a second keyring gets a copy of the first's root.
 * stop() stops whatever was started, also after a start that failed half-way.
 */
import { randomBytes } from "node:crypto";
import { chmodSync, cpSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as olpc from "../../lib/olpc/index.js";
import { startNatsServer, type NatsServer } from "../support/nats-server.js";
import { vectors } from "../support/olpc-fixtures.js";
import { olpcVectorsDir } from "../support/paths.js";
import { runCli } from "../support/server.js";
import type { Bench } from "./context.js";
import { masterKey, serverKey } from "./fixtures.js";
import { renice, startSubject, type Proc } from "./procs.js";

/** Sites started at once: enough to overlap their start-up waits, few enough for two cores. */
export const START_PARALLEL = 8;
const START_TIMEOUT_MS = 120_000;
/**
 * The sites' niceness. In a district each school has its own machine, and
 * so has the keyring; here a hundred sites share two cores with the keyring,
 * the NATS servers and the load generator, and at the same priority they
 * starve those few (a storm's figures would be the generator's wait for a
 * core, and the keyring's signing a hundredth of a core). So each site,
 * once ready, is moved to the lowest priority (every thread of it); the
 * keyring, the NATS servers and the generator stay at 0.
 */
export const SITE_NICE = 19;

/** What the sites' logs say about the XOs they left unanswered, counted per storm (Proc.counts, in this order). */
export const SITE_LOG = [
  { what: "leases signed", re: / INFO sugar-server\/lease: signed / },
  { what: "keyring exchanges timed out (lease actor)", re: / WARN sugar-server\/lease: no lease for \S+: keyring: timeout: / },
  { what: "other keyring failures (lease actor)", re: / WARN sugar-server\/lease: no lease for \S+: keyring: (?!timeout:)/ },
  { what: "waits for the lease actor timed out (activation adapter, bus-timeout)", re: / WARN sugar-server\/activation: \S+: timeout: / },
] as const;

export interface Machine {
  sn: string;
  uuid: string;
}

export interface Site {
  name: string;
  root: string;
  /** Index of the leaf node it is on. */
  leaf: number;
  proc: Proc;
  /** Its port-191 listener. */
  port: number;
}

export interface DistrictSpec {
  sites: number;
  leaves: number;
  /** Every machine a keyring holds a delegation for. */
  machines: readonly Machine[];
}

export interface District {
  readonly hub: NatsServer;
  readonly leaves: readonly NatsServer[];
  readonly sites: readonly Site[];
  /** The site names in site order. */
  readonly names: readonly string[];
  /** Keyring process i, if running. */
  keyring(i: number): Proc | undefined;
  /** Starts keyring i (0 or 1) on its own root (the same keys and delegations); returns once it is ready. */
  startKeyring(i: number): Promise<Proc>;
  /** From the first site spawned until the last was ready (ms). */
  readonly sitesReadyMs: number;
  stop(graceMs: number): Promise<void>;
}

const pw = () => randomBytes(12).toString("hex");
const siteName = (i: number) => `site${i + 1}`;
const account = (name: string) => name.toUpperCase();

function hubConfig(names: readonly string[], passwords: ReadonlyMap<string, string>): string {
  const imports = `imports: [ { service: { account: KEYRING, subject: "sugar.keyring.sign" } }, { service: { account: KEYRING, subject: "sugar.keyring.rtc" } } ]`;
  return `server_name: bench-hub
max_payload: 1MB
leafnodes { host: 127.0.0.1, port: -1 }
accounts {
  KEYRING: {
    users: [ { user: keyring, password: "${passwords.get("keyring")}" } ]
    exports: [ { service: "sugar.keyring.sign" }, { service: "sugar.keyring.rtc" } ]
  }
${names.map((n) => `  ${account(n)}: { users: [ { user: ${n}, password: "${passwords.get(n)}" } ], ${imports} }`).join("\n")}
}
`;
}

/** A leaf node carrying `names`: one local account per site, each with its own remote to that site's account on the hub. */
function leafConfig(leaf: number, names: readonly string[], hubLeafPort: number, hubPasswords: ReadonlyMap<string, string>, localPasswords: ReadonlyMap<string, string>): string {
  return `server_name: bench-leaf${leaf + 1}
max_payload: 1MB
accounts {
${names.map((n) => `  ${account(n)}: { users: [ { user: ${n}, password: "${localPasswords.get(n)}" } ] }`).join("\n")}
}
leafnodes {
  remotes: [
${names.map((n) => `    { url: "nats-leaf://${n}:${hubPasswords.get(n)}@127.0.0.1:${hubLeafPort}", account: ${account(n)} }`).join("\n")}
  ]
}
`;
}

async function cli(args: string[]): Promise<string> {
  const r = await runCli(args);
  if (r.code !== 0) throw new Error(`sugar-server ${args.slice(0, 2).join(" ")}: exit ${r.code}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** Delegations from the vector master key to the vector server key, one per machine. */
export function delegationText(machines: readonly Machine[]): string {
  const rootKey = masterKey();
  const server = serverKey();
  return machines.map((m) => olpc.signDelegation({ ...m, delegationExpiry: "20991231T000000Z", rootKey, serverPublicKey: server })).join("");
}

/** A keyring root as an admin makes one: the vector server key, init, trust the master key, import the delegations. */
async function makeKeyringRoot(root: string, delegations: string, count: number): Promise<void> {
  const dir = join(root, "keyring");
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileSync(join(dir, "server.pem"), vectors.serverPem, { mode: 0o600 });
  chmodSync(join(dir, "server.pem"), 0o600);
  await cli(["keyring", "init", "--root", root]);
  await cli(["keyring", "trust", join(olpcVectorsDir, "master.key01"), "--root", root]);
  const file = join(root, "delegations.txt");
  writeFileSync(file, delegations);
  const out = await cli(["keyring", "import-delegations", file, "--root", root]);
  const shown = await cli(["keyring", "show", "--root", root]);
  if (!new RegExp(`^delegations: ${count}$`, "m").test(shown)) throw new Error(`keyring import-delegations: ${count} expected: ${out}${shown}`);
}

/** Runs `make` over items, `parallel` at a time; stops starting new ones after a failure, and throws it once the started ones are done. */
async function pool<T, R>(items: readonly T[], parallel: number, make: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  let failure: unknown;
  const worker = async () => {
    while (next < items.length && failure === undefined) {
      const i = next++;
      try {
        out[i] = await make(items[i]!, i);
      } catch (err) {
        failure ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, items.length) }, worker));
  if (failure !== undefined) throw failure;
  return out;
}

export async function startDistrict(bench: Bench, spec: DistrictSpec): Promise<District> {
  const dir = bench.dir("district");
  const names = Array.from({ length: spec.sites }, (_, i) => siteName(i));
  const hubPw = new Map<string, string>([["keyring", pw()], ...names.map((n): [string, string] => [n, pw()])]);
  const localPw = new Map(names.map((n): [string, string] => [n, pw()]));
  const leafOf = (i: number) => i % spec.leaves;

  const leaves: NatsServer[] = [];
  const sites: Site[] = [];
  const starting = new Set<Promise<Proc>>();
  const keyrings: Array<Proc | undefined> = [undefined, undefined];
  let hub: NatsServer | undefined;
  let stopped = false;
  const stop = async (graceMs: number) => {
    stopped = true;
    // A site still starting is stopped too: wait for its start to end (ready or failed) first.
    const late = await Promise.allSettled([...starting]);
    const procs = [...sites.filter(Boolean).map((s) => s.proc), ...late.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []))];
    await Promise.all(procs.map((p) => p.stop(graceMs)));
    await Promise.all(keyrings.map((k) => k?.stop(graceMs)));
    await Promise.all(leaves.map((l) => l.stop()));
    await hub?.stop();
  };
  bench.onCleanup(() => stop(5000));

  bench.progress(`district: ${spec.machines.length} delegations signed with the vector master key, imported into the keyring`);
  const keyringRoots = [join(dir, "keyring-1"), join(dir, "keyring-2")];
  await makeKeyringRoot(keyringRoots[0]!, delegationText(spec.machines), spec.machines.length);
  // The second keyring host: the same keyring directory, copied.
  cpSync(keyringRoots[0]!, keyringRoots[1]!, { recursive: true });

  hub = await startNatsServer({ config: hubConfig(names, hubPw) });
  const hubLeafPort = Number(/Listening for leafnode connections on [^\s]*:(\d+)/.exec(hub.log())?.[1]);
  if (!hubLeafPort) throw new Error(`the hub did not say its leafnode port:\n${hub.log()}`);
  for (let l = 0; l < spec.leaves; l++) {
    const on = names.filter((_, i) => leafOf(i) === l);
    const leaf = await startNatsServer({ config: leafConfig(l, on, hubLeafPort, hubPw, localPw) });
    leaves.push(leaf);
  }
  // Every remote of every leaf connected to the hub (one log line per site account).
  const deadline = performance.now() + 30_000;
  for (const [l, leaf] of leaves.entries()) {
    const want = names.filter((_, i) => leafOf(i) === l).length;
    while ((leaf.log().match(/Leafnode connection created for account/g) ?? []).length < want) {
      if (performance.now() > deadline) throw new Error(`leaf ${l + 1}: its ${want} remotes did not all connect to the hub within 30 s:\n${leaf.log().slice(-4000)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  const startKeyring = async (i: number): Promise<Proc> => {
    if (stopped) throw new Error("the district is stopped");
    const url = `nats://keyring:${hubPw.get("keyring")}@127.0.0.1:${hub!.port}`;
    const proc = await startSubject(`keyring ${i + 1}`, ["run", "keyring", "--nats", url, "--root", keyringRoots[i]!], [], { timeoutMs: START_TIMEOUT_MS });
    keyrings[i] = proc;
    return proc;
  };
  await startKeyring(0);

  bench.progress(`district: starting ${spec.sites} sites on ${spec.leaves} leaf node(s), ${START_PARALLEL} at a time`);
  const t0 = performance.now();
  await pool(names, START_PARALLEL, async (name, i) => {
    if (stopped) throw new Error("the district is stopped");
    const leaf = leaves[leafOf(i)]!;
    const root = join(dir, name);
    const args = ["run", "registry", "lease", "activation", "--nats", `nats://${name}:${localPw.get(name)}@127.0.0.1:${leaf.port}`, "--site", name, "--root", root, "--host", "127.0.0.1", "--activation-port", "0", "--delegation"];
    const started = startSubject(`site ${name}`, args, ["activation"], { timeoutMs: START_TIMEOUT_MS, unlisted: true, watch: SITE_LOG.map((l) => l.re) });
    starting.add(started);
    try {
      const proc = await started;
      renice(proc.pid, SITE_NICE);
      sites[i] = { name, root, leaf: leafOf(i), proc, port: proc.ports.activation! };
    } finally {
      starting.delete(started);
    }
    if ((i + 1) % 20 === 0) bench.progress(`district: ${sites.filter(Boolean).length} of ${spec.sites} sites ready`);
  });
  const sitesReadyMs = performance.now() - t0;

  return {
    hub,
    leaves,
    sites,
    names,
    keyring: (i) => keyrings[i],
    startKeyring,
    sitesReadyMs,
    stop,
  };
}

/** Whether a site has a lease stored for a serial number (the lease store's layout: `<root>/share/leases/<SN[-2:]>/<SN>`). */
export const leaseStored = (site: Site, sn: string): boolean => existsSync(join(site.root, "share", "leases", sn.slice(-2), sn));
