#!/usr/bin/env node
// A whole district on one machine, on loopback: a NATS hub with one account
// per school and the keyring's account, two school leaf nodes, each school's
// sugar-server processes, and the central keyring process, which is also the
// district CA (keyring init --ca; its certificate is DIR/keyring-host/keyring/ca.crt).
//
//   node deploy/district/local-district.mjs start DIR [--server-key PEM] [--trust KEY01] [--delegations FILE] [--lease-key]
//   node deploy/district/local-district.mjs restart-keyring DIR
//   node deploy/district/local-district.mjs stop DIR
//
// `start` writes DIR/district.json (ports, pids, roots) and the configs and
// logs under DIR, and returns once everything is ready. The same functions
// are exported for the end-to-end test.
import { spawn, execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, copyFileSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, connect } from "node:net";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const sugarServer = join(repo, "bin", "sugar-server.js");
const SCHOOL_COMPONENTS = ["registry", "auth", "backup", "lease", "http", "xmlrpc", "activation"];

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
function hubConfig(port, leafPort, pw) {
  const schools = [1, 2];
  const school = (n) => `  SCHOOL${n}: {
    users: [ { user: school${n}, password: "${pw[`school${n}`]}" } ]
    exports: [ { service: "sugar.school${n}.registry.lookup", accounts: [KEYRING] } ]
    imports: [
      { service: { account: KEYRING, subject: "sugar.keyring.sign" } }
      { service: { account: KEYRING, subject: "sugar.keyring.rtc" } }
      { service: { account: KEYRING, subject: "sugar.keyring.school${n}.*" } }
    ]
  }`;
  return `listen: 127.0.0.1:${port}
server_name: district-hub
leafnodes { listen: 127.0.0.1:${leafPort} }
accounts {
  KEYRING: {
    users: [ { user: keyring, password: "${pw.keyring}" } ]
    exports: [
      { service: "sugar.keyring.sign" }
      { service: "sugar.keyring.rtc" }
${schools.map((n) => `      { service: "sugar.keyring.school${n}.*", accounts: [SCHOOL${n}] }`).join("\n")}
    ]
    imports: [
${schools.map((n) => `      { service: { account: SCHOOL${n}, subject: "sugar.school${n}.registry.lookup" } }`).join("\n")}
    ]
  }
${schools.map(school).join("\n")}
}
`;
}

function leafConfig(name, port, leafPort, user, pw) {
  return `listen: 127.0.0.1:${port}
server_name: ${name}
leafnodes { remotes: [ { url: "nats-leaf://${user}:${pw}@127.0.0.1:${leafPort}" } ] }
`;
}

async function startKeyring(dir, state) {
  state.keyring.pid = launch(dir, "keyring", process.execPath, [sugarServer, "run", "keyring", "--nats", state.keyring.nats, "--root", state.keyring.root, "--nats-wait"], sugarEnv);
  await waitFor("keyring ready", () => / ready: keyring /.test(logOf(dir, "keyring")) || (!alive(state.keyring.pid) && Promise.reject(new Error(logOf(dir, "keyring")))));
}

export async function startDistrict(dir, opts = {}) {
  dir = resolve(dir);
  mkdirSync(dir, { recursive: true });
  const bin = natsServerBin();
  const pw = { keyring: randomBytes(9).toString("hex"), school1: randomBytes(9).toString("hex"), school2: randomBytes(9).toString("hex") };
  const hubPort = await freePort();
  const leafPort = await freePort();
  const state = { dir, hub: { port: hubPort, leafPort }, leaves: [], schools: [], keyring: {} };
  writeFileSync(join(dir, "hub.conf"), hubConfig(hubPort, leafPort, pw));
  state.hub.pid = launch(dir, "hub", bin, ["-c", join(dir, "hub.conf")]);
  await waitFor("hub", () => portOpen(hubPort));

  for (const n of [1, 2]) {
    const port = await freePort();
    const name = `school${n}`;
    writeFileSync(join(dir, `leaf-${name}.conf`), leafConfig(name, port, leafPort, name, pw[name]));
    const pid = launch(dir, `leaf-${name}`, bin, ["-c", join(dir, `leaf-${name}.conf`)]);
    state.leaves.push({ name, port, pid });
    await waitFor(`leaf ${name}`, () => portOpen(port));
    await waitFor(`leaf ${name} joined the hub`, () => /Leafnode connection created/i.test(logOf(dir, `leaf-${name}`)));
  }

  // The keyring: its own root and keyring dir, on the hub as the KEYRING account.
  const keyringRoot = join(dir, "keyring-host");
  state.keyring = { root: keyringRoot, nats: `nats://keyring:${pw.keyring}@127.0.0.1:${hubPort}` };
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
  await startKeyring(dir, state);

  for (const [i, leaf] of state.leaves.entries()) {
    const site = leaf.name;
    const root = join(dir, site);
    const name = `sugar-${site}`;
    const args = ["run", ...SCHOOL_COMPONENTS, "--nats", `nats://127.0.0.1:${leaf.port}`, "--site", site, "--root", root, "--host", "127.0.0.1", "--httpd-port", "0", "--xmlrpc-port", "0", "--activation-port", "0", "--delegation", "--nats-wait"];
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

async function kill(pid) {
  if (!pid || !alive(pid)) return;
  process.kill(pid, "SIGTERM");
  await waitFor(`pid ${pid} to exit`, () => !alive(pid), 10000).catch(() => process.kill(pid, "SIGKILL"));
}

export async function stopKeyring(dir) {
  const state = readState(dir);
  await kill(state.keyring.pid);
}

export async function restartKeyring(dir) {
  const state = readState(dir);
  await kill(state.keyring.pid);
  await startKeyring(state.dir, state);
  writeFileSync(join(state.dir, "district.json"), JSON.stringify(state, null, 2));
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
  for (const l of state.leaves) await kill(l.pid);
  await kill(state.hub.pid);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [cmd, dir, ...rest] = process.argv.slice(2);
  const flag = (name) => {
    const i = rest.indexOf(`--${name}`);
    return i >= 0 ? rest[i + 1] : undefined;
  };
  if (!dir || !["start", "stop", "restart-keyring"].includes(cmd)) {
    console.error("usage: local-district.mjs start|stop|restart-keyring DIR [--server-key PEM] [--trust KEY01] [--delegations FILE] [--lease-key]");
    process.exit(2);
  }
  try {
    if (cmd === "start") {
      const s = await startDistrict(dir, { serverKey: flag("server-key"), trust: flag("trust"), delegations: flag("delegations"), leaseKey: rest.includes("--lease-key") });
      console.log(`hub nats://127.0.0.1:${s.hub.port} (leaf port ${s.hub.leafPort}); keyring pid ${s.keyring.pid}`);
      for (const sc of s.schools) console.log(`${sc.site}: REST http://127.0.0.1:${sc.ports.http}  XML-RPC :${sc.ports.xmlrpc}  activation :${sc.ports.activation}  root ${sc.root}`);
      console.log(`state: ${join(resolve(dir), "district.json")}; stop with: node ${fileURLToPath(import.meta.url)} stop ${dir}`);
    } else if (cmd === "stop") await stopDistrict(dir);
    else await restartKeyring(dir);
  } catch (err) {
    console.error(`local-district: ${err.message}`);
    await stopDistrict(dir).catch(() => undefined);
    process.exit(1);
  }
}
