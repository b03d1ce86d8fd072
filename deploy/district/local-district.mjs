#!/usr/bin/env node
// A whole district on one machine, on loopback: a NATS hub with one account
// per school and the keyring's account, two school leaf nodes, each school's
// sugar-server processes (with --district), and the central keyring process
// (`run keyring district`: the keyring, the district CA and the district
// actor; keyring init --ca; its certificate is DIR/keyring-host/keyring/ca.crt).
//
//   node deploy/district/local-district.mjs start DIR [--server-key PEM] [--trust KEY01] [--delegations FILE] [--lease-key]
//        [--district-marks SITE,SITE|none] [--school-args "ARGS"]
//   node deploy/district/local-district.mjs restart-keyring|start-second-keyring|stop DIR
//   node deploy/district/local-district.mjs kill-keyring DIR INDEX [SIGNAL]
//   node deploy/district/local-district.mjs stop-leaf|start-leaf|cut-link|restore-link DIR SITE
//
// `--district-marks`: the schools the hub lets publish district stolen marks
// (default: every school). `--school-args`: extra options for every school's
// sugar-server (e.g. "--district-sync-seconds 1"). `cut-link`/`restore-link`
// cut and mend a school's link to the hub as a broken line would (each leaf
// reaches the hub through its own forwarder, link.mjs, which stops and starts
// again; the school's own bus keeps running). `stop-leaf`/`start-leaf` stop
// and start the school's leaf nats-server itself (its bus is gone meanwhile). `start-second-keyring` runs a second
// keyring host: a copy of the first's keyring dir, its own root, the same
// KEYRING account. `kill-keyring` signals keyring INDEX (0 = the first,
// 1 = the second; SIGTERM unless SIGNAL, e.g. SIGKILL).
//
// `start` writes DIR/district.json (ports, pids, roots) and the configs and
// logs under DIR, and returns once everything is ready. The same functions
// are exported for the end-to-end test (startDistrict's options: serverKey,
// trust, delegations, leaseKey, districtMarks: sites, schoolArgs: args for
// every school, schoolArgsBySite: { site: args }).
import { spawn, execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, copyFileSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { createServer, connect } from "node:net";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const sugarServer = join(repo, "bin", "sugar-server.js");
const SCHOOL_COMPONENTS = ["registry", "auth", "backup", "lease", "http", "xmlrpc", "activation"];
const SITES = ["school1", "school2"];

function natsServerBin() {
  for (const p of [process.env.NATS_SERVER_BIN, "/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"]) {
    if (p && existsSync(p)) return p;
  }
  throw new Error("nats-server not installed (apt-get install nats-server)");
}

function freePort() {
  return new Promise((resolvePort, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolvePort(port));
    });
  });
}

async function waitFor(what, check, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const portOpen = (port) =>
  new Promise((r) => {
    const s = connect(port, "127.0.0.1");
    s.once("connect", () => (s.destroy(), r(true)));
    s.once("error", () => r(false));
  });

/** Starts a detached process logging to DIR/logs/NAME.log; returns its pid. */
function launch(dir, name, cmd, args, env = {}) {
  mkdirSync(join(dir, "logs"), { recursive: true });
  const log = openSync(join(dir, "logs", `${name}.log`), "a");
  const child = spawn(cmd, args, { detached: true, stdio: ["ignore", log, log], env: { ...process.env, ...env } });
  child.unref();
  return child.pid;
}

const logOf = (dir, name) => {
  try {
    return readFileSync(join(dir, "logs", `${name}.log`), "utf8");
  } catch {
    return "";
  }
};

const alive = (pid) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

const sugarEnv = { SUGAR_SERVER_SYSTEM_CONFIG: "/nonexistent/sugar-server.conf", SUGAR_SERVER_USER_CONFIG: "/nonexistent/config" };

// As deploy/nats/hub.conf: lease and rtc signing to every school (never the
// keyring's admin ops: init, trust, import, show), each school's
// district-CA subjects to that school alone, and each school's registry
// lookup to the keyring alone (it checks a uid before a client certificate).
// The district: stolen_list and lookup to every school, the district's events
// as a stream to every school, each school's directory feed to it alone, and
// its district marks only to the schools in `marks`.
function hubConfig(port, leafPort, pw, marks) {
  const mayMark = (site) => marks.includes(site);
  const school = (site) => `  ${site.toUpperCase()}: {
    users: [ { user: ${site}, password: "${pw[site]}" } ]
    exports: [ { service: "sugar.${site}.registry.lookup", accounts: [KEYRING] } ]
    imports: [
      { service: { account: KEYRING, subject: "sugar.keyring.sign" } }
      { service: { account: KEYRING, subject: "sugar.keyring.rtc" } }
      { service: { account: KEYRING, subject: "sugar.keyring.${site}.*" } }
      { service: { account: KEYRING, subject: "sugar.district.stolen_list" } }
      { service: { account: KEYRING, subject: "sugar.district.lookup" } }
      { service: { account: KEYRING, subject: "sugar.district.from.${site}.directory" } }
${mayMark(site) ? `      { service: { account: KEYRING, subject: "sugar.district.from.${site}.stolen" } }
` : ""}      { stream: { account: KEYRING, subject: "sugar.district.events.>" } }
    ]
  }`;
  return `listen: 127.0.0.1:${port}
server_name: district-hub
# no_advertise: a leaf node reconnects through its link (link.mjs) only, never straight to the port the hub would advertise.
leafnodes { listen: 127.0.0.1:${leafPort}, no_advertise: true, advertise: "127.0.0.1:1" }
accounts {
  KEYRING: {
    users: [ { user: keyring, password: "${pw.keyring}" } ]
    exports: [
      { service: "sugar.keyring.sign" }
      { service: "sugar.keyring.rtc" }
${SITES.map((site) => `      { service: "sugar.keyring.${site}.*", accounts: [${site.toUpperCase()}] }`).join("\n")}
      { service: "sugar.district.stolen_list" }
      { service: "sugar.district.lookup" }
      { stream: "sugar.district.events.>" }
${SITES.map((site) => `      { service: "sugar.district.from.${site}.directory", accounts: [${site.toUpperCase()}] }`).join("\n")}
${SITES.filter(mayMark).map((site) => `      { service: "sugar.district.from.${site}.stolen", accounts: [${site.toUpperCase()}] }`).join("\n")}
    ]
    imports: [
${SITES.map((site) => `      { service: { account: ${site.toUpperCase()}, subject: "sugar.${site}.registry.lookup" } }`).join("\n")}
    ]
  }
${SITES.map(school).join("\n")}
}
`;
}

function leafConfig(name, port, leafPort, user, pw) {
  return `listen: 127.0.0.1:${port}
server_name: ${name}
leafnodes { remotes: [ { url: "nats-leaf://${user}:${pw}@127.0.0.1:${leafPort}" } ] }
`;
}

/** How many times a log says `re` (logs are appended to across restarts). */
const countIn = (dir, name, re) => (logOf(dir, name).match(new RegExp(re.source, "gi")) ?? []).length;

/** The keyring host's process: the keyring, the district CA and the district actor, on the hub as the KEYRING account. */
async function startKeyring(dir, k) {
  const before = countIn(dir, k.log, / ready: keyring, district /);
  k.pid = launch(dir, k.log, process.execPath, [sugarServer, "run", "keyring", "district", "--nats", k.nats, "--root", k.root, "--nats-wait"], sugarEnv);
  await waitFor(`${k.log} ready`, () => countIn(dir, k.log, / ready: keyring, district /) > before || (!alive(k.pid) && Promise.reject(new Error(logOf(dir, k.log)))));
}

/** A school's leaf nats-server, on its port; resolves once it has joined the hub. */
async function startLeafServer(dir, leaf) {
  const before = countIn(dir, `leaf-${leaf.name}`, /Leafnode connection created/);
  leaf.pid = launch(dir, `leaf-${leaf.name}`, natsServerBin(), ["-c", join(dir, `leaf-${leaf.name}.conf`)]);
  await waitFor(`leaf ${leaf.name}`, () => portOpen(leaf.port) || (!alive(leaf.pid) && Promise.reject(new Error(logOf(dir, `leaf-${leaf.name}`)))));
  await waitFor(`leaf ${leaf.name} joined the hub`, () => countIn(dir, `leaf-${leaf.name}`, /Leafnode connection created/) > before);
}

/** A school's link to the hub: a TCP forwarder from leaf.link.port to the hub's leaf port. */
async function startLink(dir, leaf, hubLeafPort) {
  leaf.link.hub = hubLeafPort;
  leaf.link.pid = launch(dir, `link-${leaf.name}`, process.execPath, [join(repo, "deploy", "district", "link.mjs"), String(leaf.link.port), `127.0.0.1:${hubLeafPort}`]);
  await waitFor(`link ${leaf.name}`, () => portOpen(leaf.link.port) || (!alive(leaf.link.pid) && Promise.reject(new Error(logOf(dir, `link-${leaf.name}`)))));
}

export async function startDistrict(dir, opts = {}) {
  dir = resolve(dir);
  mkdirSync(dir, { recursive: true });
  const bin = natsServerBin();
  const pw = { keyring: randomBytes(9).toString("hex"), school1: randomBytes(9).toString("hex"), school2: randomBytes(9).toString("hex") };
  const hubPort = await freePort();
  const leafPort = await freePort();
  const districtMarks = opts.districtMarks ?? SITES;
  const state = { dir, hub: { port: hubPort, leafPort }, districtMarks, leaves: [], schools: [], keyring: {} };
  writeFileSync(join(dir, "hub.conf"), hubConfig(hubPort, leafPort, pw, districtMarks));
  state.hub.pid = launch(dir, "hub", bin, ["-c", join(dir, "hub.conf")]);
  await waitFor("hub", () => portOpen(hubPort));

  for (const name of SITES) {
    // The leaf reaches the hub through its own link (link.mjs), which cutLink breaks and restoreLink mends.
    const leaf = { name, port: await freePort(), link: { port: await freePort() } };
    await startLink(dir, leaf, leafPort);
    writeFileSync(join(dir, `leaf-${name}.conf`), leafConfig(name, leaf.port, leaf.link.port, name, pw[name]));
    state.leaves.push(leaf);
    await startLeafServer(dir, leaf);
  }

  // The keyring: its own root and keyring dir, on the hub as the KEYRING account.
  const keyringRoot = join(dir, "keyring-host");
  state.keyring = { root: keyringRoot, nats: `nats://keyring:${pw.keyring}@127.0.0.1:${hubPort}`, log: "keyring" };
  const cli = (args) => execFileSync(process.execPath, [sugarServer, ...args, "--root", keyringRoot], { env: { ...process.env, ...sugarEnv }, encoding: "utf8" });
  if (opts.serverKey) {
    mkdirSync(join(keyringRoot, "keyring"), { recursive: true, mode: 0o700 });
    copyFileSync(opts.serverKey, join(keyringRoot, "keyring", "server.pem"));
    chmodSync(join(keyringRoot, "keyring", "server.pem"), 0o600);
  }
  // The keyring is the district CA too: schools get their certificates from it.
  cli(["keyring", "init", "--ca", ...(opts.leaseKey ? ["--lease-key"] : [])]);
  if (opts.trust) cli(["keyring", "trust", opts.trust]);
  if (opts.delegations) cli(["keyring", "import-delegations", opts.delegations]);
  await startKeyring(dir, state.keyring);

  for (const [i, leaf] of state.leaves.entries()) {
    const site = leaf.name;
    const root = join(dir, site);
    const name = `sugar-${site}`;
    const args = ["run", ...SCHOOL_COMPONENTS, "--nats", `nats://127.0.0.1:${leaf.port}`, "--site", site, "--root", root, "--host", "127.0.0.1", "--httpd-port", "0", "--xmlrpc-port", "0", "--activation-port", "0", "--delegation", "--district", "--nats-wait", ...(opts.schoolArgs ?? []), ...(opts.schoolArgsBySite?.[site] ?? [])];
    const pid = launch(dir, name, process.execPath, [sugarServer, ...args], sugarEnv);
    const ports = await waitFor(`${name} ready`, () => {
      const log = logOf(dir, name);
      if (!alive(pid)) throw new Error(`${name} exited: ${log}`);
      if (!/sugar-server: ready: /.test(log)) return undefined;
      const p = {};
      for (const m of log.matchAll(/(\w+): listening on \[?[^\]\s]*\]?:(\d+)/g)) p[m[1]] = Number(m[2]);
      return p;
    });
    state.schools.push({ site, root, pid, nats: `nats://127.0.0.1:${leaf.port}`, ports, index: i + 1 });
  }
  writeFileSync(join(dir, "district.json"), JSON.stringify(state, null, 2));
  return state;
}

function readState(dir) {
  return JSON.parse(readFileSync(join(resolve(dir), "district.json"), "utf8"));
}
const writeState = (state) => writeFileSync(join(state.dir, "district.json"), JSON.stringify(state, null, 2));

async function kill(pid, signal = "SIGTERM") {
  if (!pid || !alive(pid)) return;
  process.kill(pid, signal);
  await waitFor(`pid ${pid} to exit`, () => !alive(pid), 10000).catch(() => process.kill(pid, "SIGKILL"));
}

/** The keyring hosts: index 0 the first, 1 the second (startSecondKeyring). */
function keyringAt(state, index) {
  const k = index === 0 ? state.keyring : index === 1 ? state.keyring2 : undefined;
  if (!k) throw new Error(`no keyring ${index} in ${state.dir} (0 = the first, 1 = the second, after start-second-keyring)`);
  return k;
}

export async function stopKeyring(dir) {
  const state = readState(dir);
  await kill(state.keyring.pid);
}

/** Signals keyring `index` (0 the first, 1 the second) and waits until it is gone: SIGKILL is a kill -9. */
export async function killKeyring(dir, index = 0, signal = "SIGTERM") {
  const state = readState(dir);
  await kill(keyringAt(state, index).pid, signal);
}

/** Stops keyring `index` if it runs and starts it again on its own root (nothing else restarts). */
export async function restartKeyring(dir, index = 0) {
  const state = readState(dir);
  const k = keyringAt(state, index);
  await kill(k.pid);
  await startKeyring(state.dir, k);
  writeState(state);
  return state;
}

/** Copies a directory tree keeping each file's and directory's mode (a keyring dir: 0700, keys 0600). */
function copyTree(from, to) {
  mkdirSync(to, { recursive: true });
  for (const name of readdirSync(from)) {
    const src = join(from, name);
    const dst = join(to, name);
    if (statSync(src).isDirectory()) copyTree(src, dst);
    else {
      copyFileSync(src, dst);
      chmodSync(dst, statSync(src).mode & 0o7777);
    }
  }
  chmodSync(to, statSync(from).mode & 0o7777);
}

/**
 * A second keyring host: a copy of the first's keyring dir (made once, modes
 * kept), its own root (its own district files, which its district actor
 * fills from the first's at start), on the hub as the same KEYRING account.
 */
export async function startSecondKeyring(dir) {
  const state = readState(dir);
  if (state.keyring2 && alive(state.keyring2.pid)) return state;
  const root = join(state.dir, "keyring-host2");
  mkdirSync(root, { recursive: true, mode: 0o700 });
  if (!existsSync(join(root, "keyring"))) copyTree(join(state.keyring.root, "keyring"), join(root, "keyring"));
  state.keyring2 = { root, nats: state.keyring.nats, log: "keyring2" };
  await startKeyring(state.dir, state.keyring2);
  writeState(state);
  return state;
}

function leafOf(state, site) {
  const leaf = state.leaves.find((l) => l.name === site);
  if (!leaf) throw new Error(`no school ${site} in ${state.dir}`);
  return leaf;
}

/** Cuts a school's link to the hub: its leaf nats-server stops (its sugar-server processes stay up, reconnecting). */
export async function stopLeaf(dir, site) {
  const state = readState(dir);
  await kill(leafOf(state, site).pid);
}

/** Restores a school's link: its leaf nats-server starts again on the same port and joins the hub. */
export async function startLeaf(dir, site) {
  const state = readState(dir);
  const leaf = leafOf(state, site);
  if (!alive(leaf.pid)) await startLeafServer(state.dir, leaf);
  writeState(state);
  return state;
}

/**
 * Cuts a school's link to the hub as a broken line would: the forwarder
 * between its leaf node and the hub stops. The school's leaf nats-server and
 * sugar-server keep running on their own bus; resolves once the leaf node
 * has noticed the link is gone.
 */
export async function cutLink(dir, site) {
  const state = readState(dir);
  const leaf = leafOf(state, site);
  const before = countIn(state.dir, `leaf-${leaf.name}`, /Leafnode connection closed/);
  await kill(leaf.link.pid);
  await waitFor(`leaf ${site} to lose the hub`, () => countIn(state.dir, `leaf-${leaf.name}`, /Leafnode connection closed/) > before);
}

/** Mends the link: the forwarder starts again on the same port; resolves once the leaf node has joined the hub again. */
export async function restoreLink(dir, site) {
  const state = readState(dir);
  const leaf = leafOf(state, site);
  if (alive(leaf.link.pid)) return state;
  const before = countIn(state.dir, `leaf-${leaf.name}`, /Leafnode connection created/);
  await startLink(state.dir, leaf, leaf.link.hub);
  writeState(state);
  await waitFor(`leaf ${site} to join the hub again`, () => countIn(state.dir, `leaf-${leaf.name}`, /Leafnode connection created/) > before, 30000);
  return state;
}

export async function stopDistrict(dir) {
  let state;
  try {
    state = readState(dir);
  } catch {
    return;
  }
  for (const s of state.schools) await kill(s.pid);
  await kill(state.keyring.pid);
  if (state.keyring2) await kill(state.keyring2.pid);
  for (const l of state.leaves) await kill(l.pid);
  for (const l of state.leaves) await kill(l.link?.pid);
  await kill(state.hub.pid);
}

const USAGE = `usage: local-district.mjs start DIR [--server-key PEM] [--trust KEY01] [--delegations FILE] [--lease-key] [--district-marks SITE,SITE|none] [--school-args "ARGS"]
       local-district.mjs restart-keyring|start-second-keyring|stop DIR
       local-district.mjs kill-keyring DIR INDEX [SIGNAL]
       local-district.mjs stop-leaf|start-leaf|cut-link|restore-link DIR SITE`;

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [cmd, dir, ...rest] = process.argv.slice(2);
  const flag = (name) => {
    const i = rest.indexOf(`--${name}`);
    return i >= 0 ? rest[i + 1] : undefined;
  };
  const commands = ["start", "stop", "restart-keyring", "start-second-keyring", "kill-keyring", "stop-leaf", "start-leaf", "cut-link", "restore-link"];
  const needsArg = ["kill-keyring", "stop-leaf", "start-leaf", "cut-link", "restore-link"].includes(cmd);
  if (!dir || !commands.includes(cmd) || (needsArg && !rest[0])) {
    console.error(USAGE);
    process.exit(2);
  }
  try {
    if (cmd === "start") {
      const marks = flag("district-marks");
      const s = await startDistrict(dir, {
        serverKey: flag("server-key"),
        trust: flag("trust"),
        delegations: flag("delegations"),
        leaseKey: rest.includes("--lease-key"),
        districtMarks: marks === undefined ? undefined : marks === "none" ? [] : marks.split(","),
        schoolArgs: flag("school-args")?.split(/\s+/).filter(Boolean),
      });
      console.log(`hub nats://127.0.0.1:${s.hub.port} (leaf port ${s.hub.leafPort}); keyring pid ${s.keyring.pid}; district marks from: ${s.districtMarks.join(", ") || "no school"}`);
      for (const sc of s.schools) console.log(`${sc.site}: REST http://127.0.0.1:${sc.ports.http}  XML-RPC :${sc.ports.xmlrpc}  activation :${sc.ports.activation}  root ${sc.root}`);
      console.log(`state: ${join(resolve(dir), "district.json")}; stop with: node ${fileURLToPath(import.meta.url)} stop ${dir}`);
    } else if (cmd === "stop") await stopDistrict(dir);
    else if (cmd === "restart-keyring") await restartKeyring(dir);
    else if (cmd === "start-second-keyring") console.log(`second keyring pid ${(await startSecondKeyring(dir)).keyring2.pid}`);
    else if (cmd === "kill-keyring") await killKeyring(dir, Number(rest[0]), rest[1] ?? "SIGTERM");
    else if (cmd === "stop-leaf") await stopLeaf(dir, rest[0]);
    else if (cmd === "cut-link") await cutLink(dir, rest[0]);
    else if (cmd === "restore-link") await restoreLink(dir, rest[0]);
    else await startLeaf(dir, rest[0]);
  } catch (err) {
    console.error(`local-district: ${err.message}`);
    // A failed start leaves nothing running; a failed step on a running district leaves it as it is.
    if (cmd === "start") await stopDistrict(dir).catch(() => undefined);
    process.exit(1);
  }
}
