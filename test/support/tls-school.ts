/**
 * A school with its TLS port, in process: the registry, auth and backup
 * actors and the http, xmlrpc and https listeners on one MemoryBus, `<root>/tls/`
 * from test/support/tls-fixture.ts, and a stub keyring that signs client
 * certificates with the fixture's CA (the real keyring's CA ops land later).
 * Tests register it with `requires(TOOLS.openssl)`.
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { sugar } from "../../schemas/gen/messages.js";
import { MemoryBus } from "../../src/bus/memory.js";
import { subjects } from "../../src/bus/subjects.js";
import { runComponents, type ComponentName, type RunningServer } from "../../src/cli/components.js";
import { authClient, registryClient, serveOps, type AuthClient, type RegistryClient } from "../../src/codec.js";
import { configWith, type Config, type OptionName } from "../../src/config.js";
import { SugarError } from "../../src/errors.js";
import { captureLogger } from "./log.js";
import { call, type Reply, type RequestOptions } from "./https-client.js";
import { makeTlsFixture, type TlsFixture } from "./tls-fixture.js";
import { tempDir } from "./tmp.js";

export interface TlsSchool {
  dir: ReturnType<typeof tempDir>;
  root: string;
  config: Config;
  bus: MemoryBus;
  server: RunningServer;
  tls: TlsFixture;
  ports: { http: number; xmlrpc: number; https: number };
  registry: RegistryClient;
  auth: AuthClient;
  /** The stub keyring's client_cert requests, as received. */
  keyringCalls: Array<{ csr: string; uid: string }>;
  log(): string;
  /** A request to the TLS port, trusting the district CA. */
  https(path: string, o?: RequestOptions): Promise<Reply>;
  /** A request to a plain port. */
  plain(port: number, path: string, o?: RequestOptions): Promise<Reply>;
  /** Registers a keyless device over REST: its uid and the credential. */
  registerDevice(deviceId: string, nickname?: string): Promise<{ uid: string; credential: string }>;
  /** The token headers of a login with the credential. */
  login(credential: string): Promise<Record<string, string>>;
  stop(): Promise<void>;
}

export async function startTlsSchool(options: Partial<Record<OptionName, string | number | boolean>> = {}, components: ComponentName[] = ["registry", "auth", "backup", "http", "xmlrpc", "https"]): Promise<TlsSchool> {
  const dir = tempDir("sugar-tls-");
  const root = join(dir.path, "root");
  const tls = makeTlsFixture(join(dir.path, "ca"), root);
  const config = configWith({
    root,
    host: "127.0.0.1",
    "httpd-port": 0,
    "xmlrpc-port": 0,
    "https-port": "0",
    "backup-host": "xs.example",
    "jabber-url": "xs.example",
    "backup-min-free": 0,
    "backup-max-load": 1000,
    ...options,
  });
  const bus = new MemoryBus({ timeoutMs: config["bus-timeout"] });
  const { log, text } = captureLogger();
  const keyringCalls: Array<{ csr: string; uid: string }> = [];
  const caPem = readFileSync(tls.caCert, "utf8");
  // The real keyring checks the CSR and that the uid is registered; the stub only refuses what openssl cannot sign.
  serveOps(
    bus,
    subjects.keyringFor(config.site, "clientCert"),
    sugar.keyring.Request,
    sugar.keyring.Reply,
    (req) => {
      const r = req.clientCert!;
      keyringCalls.push({ csr: r.csr ?? "", uid: r.uid ?? "" });
      if (!/^-----BEGIN CERTIFICATE REQUEST-----/.test(r.csr ?? "")) throw new SugarError("invalid_input", "csr is not a PEM certificate request");
      const c = tls.signClient(r.csr ?? "", r.uid ?? "");
      return { clientCert: { certificate: c.certificate, ca: caPem, notAfter: c.notAfter, names: [r.uid ?? ""], serial: c.serial } };
    },
    log.child("stub-keyring"),
  );
  const server = await runComponents(components, config, log, { bus });
  const port = (name: string) => (server.components.find((c) => c.name === name) as { address?: { port: number } } | undefined)?.address?.port ?? 0;
  const ports = { http: port("http"), xmlrpc: port("xmlrpc"), https: port("https") };
  const school: TlsSchool = {
    dir,
    root,
    config,
    bus,
    server,
    tls,
    ports,
    registry: registryClient(bus, config.site, { timeoutMs: 5000 }),
    auth: authClient(bus, config.site, { timeoutMs: 5000 }),
    keyringCalls,
    log: text,
    https: (path, o = {}) => call(ports.https, path, { ca: tls.caCert, ...o }),
    plain: (p, path, o = {}) => call(p, path, o),
    async registerDevice(deviceId, nickname = "Ana") {
      const r = await call(ports.http, "/client/register", { body: { nickname, device_id: deviceId } });
      if (r.status !== 200) throw new Error(`register: ${r.status} ${r.text}`);
      return { uid: String(r.json!.uid), credential: String(r.json!.credential ?? "") };
    },
    async login(credential) {
      const r = await call(ports.http, "/client/login", { body: { credential } });
      if (r.status !== 200) throw new Error(`login: ${r.status} ${r.text}`);
      return r.json!.headers as Record<string, string>;
    },
    async stop() {
      await server.stop();
      await bus.close();
      dir.remove();
    },
  };
  return school;
}

export interface ToolRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a tool without blocking this process (the server under test runs here). */
export function runTool(bin: string, args: readonly string[], input = "", timeoutMs = 20_000): Promise<ToolRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(input);
  });
}
