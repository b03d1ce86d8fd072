/**
 * For the admin console's tests: a running `sugar-server start`, an admin
 * browser session got the way a person gets one (register this device, open
 * the claim URL), a plain registered browser, and Prometheus text parsing.
 */
import { execFile } from "node:child_process";
import { join } from "node:path";
import { Jar } from "./cookie-jar.js";
import { toolBin, TOOLS } from "./requires.js";
import { runCli, startServer, type ServerProcess } from "./server.js";

export interface ConsoleServer {
  server: ServerProcess;
  root: string;
  base: string;
  xmlrpc: string;
  activationPort: number;
}

export async function startConsoleServer(dir: string, extra: string[] = []): Promise<ConsoleServer> {
  const root = join(dir, "root");
  const server = await startServer(
    ["start", "--root", root, "--host", "127.0.0.1", "--httpd-port", "0", "--xmlrpc-port", "0", "--activation-port", "0", "--backup-host", "127.0.0.1", "--jabber-url", "school.example", ...extra],
    { expect: ["http", "xmlrpc", "activation"] },
  );
  return { server, root, base: `http://127.0.0.1:${server.ports.http}`, xmlrpc: `http://127.0.0.1:${server.ports.xmlrpc}`, activationPort: server.ports.activation! };
}

/** A new claim URL's path and query (`/auth/claim?code=…`, or `/admin/claim?code=…` before it moved). */
export async function claimPath(root: string): Promise<string> {
  const r = await runCli(["admin", "claim-url", "--root", root]);
  const url = /https?:\/\/\S+\/(?:auth|admin)\/claim\?code=\S+/.exec(r.stdout)?.[0];
  if (!url) throw new Error(`no claim URL: ${r.stdout}${r.stderr}`);
  const u = new URL(url);
  return `${u.pathname}${u.search}`;
}

async function get(base: string, path: string, jar: Jar): Promise<Response> {
  const res = await fetch(`${base}${path}`, { redirect: "manual", headers: { cookie: jar.header() } });
  jar.take(res);
  return res;
}

/** Registers a browser (the /register form) and returns its cookies. */
export async function registeredBrowser(base: string, nickname: string): Promise<Jar> {
  const jar = new Jar();
  const page = await (await get(base, "/register", jar)).text();
  const csrf = /name="csrf" value="([^"]+)"/.exec(page)?.[1] ?? "";
  const res = await fetch(`${base}/register`, {
    method: "POST",
    redirect: "manual",
    headers: { "content-type": "application/x-www-form-urlencoded", cookie: jar.header(), origin: base },
    body: new URLSearchParams({ nickname, csrf, rd: "" }).toString(),
  });
  jar.take(res);
  if (res.status !== 303) throw new Error(`registering ${nickname}: ${res.status}`);
  return jar;
}

/** A registered browser that opened the claim URL: an admin. */
export async function adminBrowser(c: ConsoleServer, nickname = "Admin"): Promise<Jar> {
  const jar = await registeredBrowser(c.base, nickname);
  const res = await get(c.base, await claimPath(c.root), jar);
  if (res.status !== 200) throw new Error(`claim: ${res.status} ${await res.text()}`);
  return jar;
}

/** The CSRF token of a console page (and the jar gets its cookie). */
export async function csrfOf(base: string, path: string, jar: Jar): Promise<string> {
  const res = await get(base, path, jar);
  const m = /name="csrf" value="([^"]+)"/.exec(await res.text());
  if (!m) throw new Error(`${path}: no CSRF token (status ${res.status})`);
  return m[1]!;
}

/** Every sample of Prometheus text: `name{labels}` → value. Throws on a line that is not the format. */
export function parseProm(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? (-?[0-9.e+-]+|NaN|[+-]Inf)( \d+)?$/.exec(line);
    if (!m) throw new Error(`not Prometheus text: ${JSON.stringify(line)}`);
    out.set(`${m[1]}${m[2] ?? ""}`, Number(m[3]));
  }
  return out;
}

/** Python's xmlrpc.client register(), as Sugar's shell calls it. */
export function pythonRegister(url: string, sn: string, nickname: string, uuid: string, pubkey: string): Promise<unknown> {
  const script = ["import json, sys, xmlrpc.client", "p = xmlrpc.client.ServerProxy(sys.argv[1])", "print(json.dumps(p.register(*sys.argv[2:])))"].join("\n");
  return new Promise((resolve, reject) =>
    execFile(toolBin(TOOLS.python3), ["-c", script, url, sn, nickname, uuid, pubkey], { encoding: "utf8" }, (err, stdout, stderr) => (err ? reject(new Error(`${err.message}: ${stderr}`)) : resolve(JSON.parse(stdout)))),
  );
}
