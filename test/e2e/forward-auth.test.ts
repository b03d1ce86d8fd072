/**
 * Forward auth with the real parts, the way a school admin sets it up: the
 * shipped deploy/nginx/forward-auth.conf and deploy/caddy/Caddyfile (only
 * their ports and host names changed, so the snippets themselves are what
 * is tested) in front of an app that echoes the headers it receives,
 * `sugar-server start` behind them, and a headless Chromium that registers
 * the way a phone does. The web routes alone, over plain HTTP, are in
 * test/e2e/web.test.ts.
 *
 * The tests of the nginx part run in order and share one browser: it
 * registers, survives a sugar-server restart, then claims the first admin.
 */
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { Cookie } from "puppeteer-core";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { launchBrowser, screenshot, type LaunchedBrowser } from "../support/browser.js";
import { caddyRequirement, startCaddy } from "../support/caddy.js";
import { echoOf, startEchoUpstream, type Echo, type EchoUpstream } from "../support/echo-upstream.js";
import { httpGet, type HttpAnswer } from "../support/http-server.js";
import { makeKey } from "../support/keys.js";
import { nginxRequirement, startNginx, type Nginx } from "../support/nginx.js";
import { repoRoot } from "../support/paths.js";
import { freePort } from "../support/ports.js";
import { allOf, requires, testsNeeding, TOOLS } from "../support/requires.js";
import { runCli, startServer, type ServerProcess } from "../support/server.js";
import { tempDir } from "../support/tmp.js";
import { Jar } from "../support/cookie-jar.js";

/** The service's host name, as the browser asks for it (Chromium resolves it to 127.0.0.1). */
const HOST = "library.school.test";
const BROWSER_ARGS = [`--host-resolver-rules=MAP ${HOST} 127.0.0.1`];

interface Ctx {
  dir: ReturnType<typeof tempDir>;
  root: string;
  /** sugar-server's REST port, fixed so a restart comes back where nginx expects it. */
  httpPort: number;
  server?: ServerProcess;
  app?: EchoUpstream;
  nginx?: Nginx;
  profile: string;
  browser?: LaunchedBrowser;
  /** The uid the browser registered as. */
  uid: string;
  /** Every uid sugar-server gave an identity to here: the only ones the app may see. */
  known: Set<string>;
}

const t = suite<Ctx>("forward-auth");
const nginxReq = allOf(requires(TOOLS.nginx, TOOLS.chromium, TOOLS.sshKeygen), nginxRequirement());
const withNginx = testsNeeding(t, nginxReq);
const withCaddy = testsNeeding(t, caddyRequirement());

/** `from` replaced by `to`, where `from` must occur exactly `times` times: a changed snippet fails here, loudly. */
function edit(text: string, from: string, to: string, times = 1): string {
  const n = text.split(from).length - 1;
  if (n !== times) throw new Error(`expected ${times} of ${JSON.stringify(from)} in the shipped snippet, found ${n}`);
  return text.split(from).join(to);
}

/** A `location ... { ... }` block of the nginx snippet (blocks there hold no nested braces). */
function block(conf: string, head: string): string {
  const start = conf.indexOf(`    ${head} {\n`);
  const end = conf.indexOf("\n    }\n", start);
  if (start < 0 || end < 0) throw new Error(`no "${head}" block in deploy/nginx/forward-auth.conf`);
  return conf.slice(start, end + "\n    }\n".length);
}

/**
 * deploy/nginx/forward-auth.conf on the test's ports and host name, plus a
 * second protected location, /staff/, whose check asks /auth/verify?admin=1
 * (a copy of the snippet's own two blocks, as its comment tells an admin to do).
 */
function nginxSite(port: number, sugarPort: number, appPort: number): string {
  let conf = readFileSync(join(repoRoot, "deploy", "nginx", "forward-auth.conf"), "utf8");
  conf = edit(conf, "    listen 80;\n", `    listen 127.0.0.1:${port};\n`);
  conf = edit(conf, "    listen [::]:80;\n", "");
  conf = edit(conf, "server_name library.school.example;", `server_name ${HOST};`);
  conf = edit(conf, "http://127.0.0.1:8000", `http://127.0.0.1:${sugarPort}`, 3);
  conf = edit(conf, "http://127.0.0.1:8081", `http://127.0.0.1:${appPort}`);
  const verify = edit(edit(block(conf, "location = /_sugar_verify"), "/_sugar_verify", "/_sugar_verify_admin"), "/auth/verify;", "/auth/verify?admin=1;");
  const staff = edit(edit(block(conf, "location /"), "location / {", "location /staff/ {"), "auth_request /_sugar_verify;", "auth_request /_sugar_verify_admin;");
  const close = conf.lastIndexOf("}");
  return `${conf.slice(0, close)}\n    # Added by the test: for admins only.\n${verify}${staff}${conf.slice(close)}`;
}

/** deploy/caddy/Caddyfile on the test's port (any host name, loopback only) and upstreams. */
function caddySite(port: number, sugarPort: number, appPort: number): string {
  let file = readFileSync(join(repoRoot, "deploy", "caddy", "Caddyfile"), "utf8");
  file = edit(file, "library.school.example {\n", `:${port} {\n\tbind 127.0.0.1\n`);
  file = edit(file, "reverse_proxy 127.0.0.1:8000", `reverse_proxy 127.0.0.1:${sugarPort}`);
  file = edit(file, "forward_auth 127.0.0.1:8000", `forward_auth 127.0.0.1:${sugarPort}`);
  file = edit(file, "reverse_proxy 127.0.0.1:8081", `reverse_proxy 127.0.0.1:${appPort}`);
  return file;
}

const serverArgs = (c: Ctx) => [
  "start",
  ...["--root", c.root, "--host", "127.0.0.1", "--httpd-port", String(c.httpPort), "--xmlrpc-port", "0", "--activation-port", "0"],
  // nginx and Caddy run on this machine and set X-Forwarded-For: registrations count per client.
  "--trust-proxy",
];

t.before(async (c) => {
  c.dir = tempDir("sugar-forward-auth-");
  c.root = join(c.dir.path, "root");
  c.profile = join(c.dir.path, "chromium-profile");
  c.known = new Set();
  c.uid = "";
  c.httpPort = await freePort();
  c.server = await startServer(serverArgs(c));
  c.app = await startEchoUpstream();
  if (nginxReq.ok) c.nginx = await startNginx({ conf: ({ port }) => nginxSite(port, c.httpPort, c.app!.port) });
});

t.after(async (c) => {
  await c.browser?.close();
  await c.nginx?.stop();
  await c.app?.stop();
  await c.server?.stop();
  if (!c.dir) return;
  // Everything goes but the screenshots, whose path the test printed.
  if (!existsSync(join(c.dir.path, "shots"))) return c.dir.remove();
  for (const name of readdirSync(c.dir.path)) if (name !== "shots") rmSync(join(c.dir.path, name), { recursive: true, force: true });
});

/** A URL of the service behind nginx, as the browser names it. */
const site = (c: Ctx, path: string) => `http://${HOST}:${c.nginx!.port}${path}`;

/** GET through nginx with exactly these header lines (and the service's Host). */
const viaNginx = (c: Ctx, path: string, headers: [string, string][] = [], method = "GET") =>
  httpGet(`${c.nginx!.url}${path}`, [["Host", `${HOST}:${c.nginx!.port}`], ...headers], method);

/** Every header line the app received whose name, any case, starts X-Sugar or X_Sugar, sorted. */
function sugarHeaders(echo: Echo): [string, string][] {
  return echo.rawHeaders
    .filter(([n]) => /^x[-_]sugar/i.test(n))
    .map(([n, v]): [string, string] => [n, v])
    .sort();
}

/** What a client may send to pass for someone else: identity headers, a name with underscores, token headers. */
const FORGED: [string, string][] = [
  ["X-Sugar-Uid", "f".repeat(40)],
  ["X_sugar_uid", "e".repeat(40)],
  ["X-Sugar-Admin", "true"],
  ["X-Sugar-Auth-Level", "device"],
  ["X-Sugar-Nick", "root"],
  ["X-Sugar-Sn", "SHC00000001"],
  ["X-Sugar-Auth", "forged"],
  ["X-Sugar-Auth-Time", "2030-01-01T00:00:00Z"],
  ["X-Sugar-Auth-Expires", "2030-01-02T00:00:00Z"],
];

/** The browser's cookies for the service, as a Cookie header. */
async function cookieHeader(b: LaunchedBrowser): Promise<string> {
  return (await b.browser.cookies())
    .filter((k) => k.domain === HOST)
    .map((k) => `${k.name}=${k.value}`)
    .join("; ");
}

const cookieNamed = async (b: LaunchedBrowser, name: string): Promise<Cookie | undefined> => (await b.browser.cookies()).find((k) => k.domain === HOST && k.name === name);

/*
 * Each test asks for paths of its own, and what reached the app is looked up
 * by path: the browser asks for more than the test does (/favicon.ico, in
 * its own time), so counting requests would race with it.
 */

/** The app's last request for `path`. */
function seenAt(c: Ctx, path: string): Echo {
  const r = c.app!.requests.filter((q) => q.path === path).at(-1);
  assert.ok(r, `the app saw no request for ${path}`);
  return r;
}

/** Nothing for `path` reached the app. */
function notSeen(c: Ctx, path: string, what: string): void {
  assert.not.ok(c.app!.requests.some((q) => q.path === path), `${what}: ${path} reached the app`);
}

/** A 302 through the proxy to the login page, and the app saw nothing of the request. */
function assertSentToLogin(c: Ctx, r: HttpAnswer, path: string, what: string): void {
  assert.is(r.status, 302, `${what}: ${r.status} ${r.body.slice(0, 200)}`);
  assert.is(String(r.headers.location ?? ""), site(c, `/auth/login?rd=${path}`), what);
  notSeen(c, path, what);
}


withNginx("forward auth: behind nginx, a new browser asking for a protected page registers on the page it is sent to and lands where it asked; the app sees its uid", async (c) => {
  c.browser = await launchBrowser({ profileDir: c.profile, args: BROWSER_ARGS });
  const page = await c.browser.newPage();
  // A query with two parameters: the way back must keep both.
  const wanted = site(c, "/shelf/book?id=3&page=2");
  const first = await page.goto(wanted, { waitUntil: "load" });
  assert.is(first?.status(), 200);
  assert.is(new URL(page.url()).pathname, "/auth/login", page.url());
  assert.is(await page.$eval("h1", (e) => e.textContent), "Register this device");
  assert.is(c.app!.requests.length, 0, "nothing reached the app before the browser registered");
  const shot = await screenshot(page, join(c.dir.path, "shots"), "registration-page");
  console.log(`forward auth: the registration page as Chromium showed it: ${shot}`);

  await page.type("#nickname", "Lucía");
  const [landed] = await Promise.all([page.waitForNavigation({ waitUntil: "load" }), page.click("button[type=submit]")]);
  assert.is(page.url(), wanted);
  assert.is(landed?.status(), 200);
  const seen = seenAt(c, "/shelf/book?id=3&page=2");
  c.uid = seen.headers["x-sugar-uid"] as string;
  assert.match(c.uid, /^[0-9a-f]{40}$/);
  c.known.add(c.uid);
  assert.equal(sugarHeaders(seen), [
    ["X-Sugar-Admin", "false"],
    ["X-Sugar-Auth-Level", "device"],
    ["X-Sugar-Nick", "Luc%C3%ADa"],
    ["X-Sugar-Uid", c.uid],
  ]);
  assert.match((await runCli(["users", "list", "--root", c.root])).stdout, new RegExp(`${c.uid}\\s+Lucía`));
  // The device cookie: HttpOnly, Lax, and persistent (Chromium keeps only cookies with an expiry across a relaunch).
  const device = await cookieNamed(c.browser, "sugar_device");
  assert.ok(device, "a sugar_device cookie");
  assert.equal([device.httpOnly, device.sameSite, device.session], [true, "Lax", false]);
  assert.ok(await cookieNamed(c.browser, "sugar_session"), "a sugar_session cookie");
});

withNginx("forward auth: after sugar-server restarts (and the browser too), its device cookie alone logs it in again, and nginx hands it the renewed session", async (c) => {
  assert.ok(c.browser && c.uid, "the browser registered in the test before");
  await c.browser.close();
  assert.is(await c.server!.stop(), 0, c.server!.output());
  c.server = await startServer(serverArgs(c));
  c.browser = await launchBrowser({ profileDir: c.profile, args: BROWSER_ARGS });
  // As if the session had expired: only the device cookie is left to say who this is.
  const session = await cookieNamed(c.browser, "sugar_session");
  assert.ok(session, "the session cookie outlived the relaunch (it has a Max-Age)");
  await c.browser.browser.deleteCookie(session);
  assert.is(await cookieNamed(c.browser, "sugar_session"), undefined);
  assert.ok(await cookieNamed(c.browser, "sugar_device"));

  const page = await c.browser.newPage();
  const r = await page.goto(site(c, "/shelf/next"), { waitUntil: "load" });
  assert.is(page.url(), site(c, "/shelf/next"), "not sent to register again");
  assert.is(r?.status(), 200);
  const seen = seenAt(c, "/shelf/next");
  assert.is(seen.headers["x-sugar-uid"], c.uid);
  assert.is(seen.headers["x-sugar-auth-level"], "device");
  const renewed = await cookieNamed(c.browser, "sugar_session");
  assert.ok(renewed, "the session renewed from the device cookie came back through nginx (add_header Set-Cookie)");
  assert.is.not(renewed.value, session.value);
});

withNginx("forward auth: the claim URL, opened through the service's host, makes that browser admin; the ?admin=1 location then lets it in", async (c) => {
  assert.ok(c.browser && c.uid, "the browser registered in the tests before");
  const page = await c.browser.newPage();
  const refused = await page.goto(site(c, "/staff/grades"), { waitUntil: "load" });
  assert.is(refused?.status(), 403, "not an admin yet");
  notSeen(c, "/staff/grades", "a 403");

  const printed = await runCli(["admin", "claim-url", "--root", c.root]);
  assert.is(printed.code, 0, printed.stderr);
  const url = /https?:\/\/\S+\/auth\/claim\?code=\S+/.exec(printed.stdout)?.[0];
  assert.ok(url, `a claim URL: ${printed.stdout}`);
  const { pathname, search } = new URL(url);
  const claimed = await page.goto(site(c, `${pathname}${search}`), { waitUntil: "load" });
  assert.is(claimed?.status(), 200);
  assert.match(await page.$eval("main", (e) => e.textContent ?? ""), /You are now an administrator/);
  assert.not.ok(c.app!.requests.some((r) => r.path.startsWith("/auth/claim")), "the claim went to sugar-server, not to the app");

  const admitted = await page.goto(site(c, "/staff/grades"), { waitUntil: "load" });
  assert.is(admitted?.status(), 200);
  const seen = seenAt(c, "/staff/grades");
  assert.equal([seen.headers["x-sugar-uid"], seen.headers["x-sugar-admin"], seen.headers["x-sugar-auth-level"]], [c.uid, "true", "device"]);
});

withNginx("forward auth: behind nginx a client's own X-Sugar-Uid, X_sugar_uid and token headers never reach the app; without an identity they reach nothing", async (c) => {
  assert.ok(c.browser && c.uid, "the browser registered in the tests before");
  assertSentToLogin(c, await viaNginx(c, "/shelf/forged-get", FORGED), "/shelf/forged-get", "GET with forged headers");
  assertSentToLogin(c, await viaNginx(c, "/shelf/forged-post", FORGED, "POST"), "/shelf/forged-post", "POST with forged headers");
  const cookies = "sugar_session=s1.0000000000000000.ffffffffffffffffffffffffffffffffffffffff.9999999999.AAAA; sugar_device=forged";
  assertSentToLogin(c, await viaNginx(c, "/staff/forged-cookies", [["Cookie", cookies]]), "/staff/forged-cookies", "forged cookies");

  const r = await viaNginx(c, "/shelf/forged-with-cookies", [["Cookie", await cookieHeader(c.browser)], ...FORGED]);
  assert.is(r.status, 200, r.body);
  assert.equal(sugarHeaders(echoOf(r.body)), [
    ["X-Sugar-Admin", "true"],
    ["X-Sugar-Auth-Level", "device"],
    ["X-Sugar-Nick", "Luc%C3%ADa"],
    ["X-Sugar-Uid", c.uid],
  ]);
});

withNginx("forward auth: an XO's Browse with only its xoid cookie reaches the app behind nginx as that child at level xoid; the ?admin=1 location refuses it", async (c) => {
  const key = makeKey(c.dir.path);
  const reg = await fetch(`http://127.0.0.1:${c.httpPort}/client/register`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ nickname: "Pepe", pubkey: key.line }) });
  assert.is(reg.status, 200, await reg.text());
  c.known.add(key.uid);
  // Even an admin's XO: the cookie proves nothing, so it is never admin.
  const admin = await runCli(["users", "admin", key.uid, "on", "--root", c.root]);
  assert.is(admin.code, 0, admin.stderr);
  // As Browse writes it: Python's json.dumps, spaces and quotes, not RFC 6265-clean.
  const xoid = (hash: string) => ["Cookie", `xoid={"color": "#FF8F00,#00A0FF", "pkey_hash": "${hash}"}`] as [string, string];

  const r = await viaNginx(c, "/library/", [xoid(key.uid)]);
  assert.is(r.status, 200, r.body);
  assert.equal(sugarHeaders(echoOf(r.body)), [
    ["X-Sugar-Admin", "false"],
    ["X-Sugar-Auth-Level", "xoid"],
    ["X-Sugar-Nick", "Pepe"],
    ["X-Sugar-Uid", key.uid],
  ]);
  const staff = await viaNginx(c, "/staff/xo", [xoid(key.uid)]);
  assert.is(staff.status, 403);
  notSeen(c, "/staff/xo", "the ?admin=1 location");
  assertSentToLogin(c, await viaNginx(c, "/library/unknown-xo", [xoid("0".repeat(40))]), "/library/unknown-xo", "an xoid of no registered XO");
});

withNginx("forward auth: behind a proxy that ends TLS (the browser's Origin says https) and drops the port from Host (nginx's $host), the registration form is still ours", async (c) => {
  const jar = new Jar();
  const form = await fetch(`${c.nginx!.url}/register`, { redirect: "manual" });
  jar.take(form);
  const csrf = /name="csrf" value="([^"]+)"/.exec(await form.text())?.[1] ?? "";
  const post = (origin: string) =>
    fetch(`${c.nginx!.url}/register`, {
      method: "POST",
      redirect: "manual",
      headers: { "content-type": "application/x-www-form-urlencoded", cookie: jar.header(), origin },
      body: new URLSearchParams({ nickname: "Ana", csrf, rd: "/shelf/tls" }).toString(),
    });
  assert.is((await post("https://evil.example")).status, 403, "another site's Origin");
  const r = await post("https://127.0.0.1");
  assert.is(r.status, 303, await r.text());
  assert.is(r.headers.get("location"), "/shelf/tls");
});

withCaddy("forward auth: behind Caddy (deploy/caddy/Caddyfile) nobody is sent to /auth/login and reaches nothing; a browser registered there passes with its headers, never a client's own", async (c) => {
  const caddy = await startCaddy({ caddyfile: ({ port }) => caddySite(port, c.httpPort, c.app!.port) });
  try {
    const wanted = `${caddy.url}/wiki/page?id=7&rev=2`;
    const nobody = await httpGet(wanted, FORGED);
    assert.is(nobody.status, 302, nobody.body);
    const login = String(nobody.headers.location ?? "");
    assert.is(login, `/auth/login?rd=${encodeURIComponent(wanted)}`);
    notSeen(c, "/wiki/page?id=7&rev=2", "nobody");

    // The registration, as a browser without JavaScript does it, through Caddy.
    const jar = new Jar();
    const get = async (url: string) => {
      const res = await fetch(url, { redirect: "manual", headers: { cookie: jar.header() } });
      jar.take(res);
      return res;
    };
    const page = await get(new URL(login, caddy.url).href);
    assert.is(page.status, 200);
    const form = await page.text();
    const csrf = /name="csrf" value="([^"]+)"/.exec(form)?.[1] ?? "";
    const rd = /name="rd" value="([^"]*)"/.exec(form)?.[1]?.replace(/&amp;/g, "&") ?? "";
    assert.is(rd, wanted);
    const registered = await fetch(`${caddy.url}/register`, {
      method: "POST",
      redirect: "manual",
      headers: { "content-type": "application/x-www-form-urlencoded", cookie: jar.header(), origin: caddy.url },
      body: new URLSearchParams({ nickname: "Tomás", csrf, rd }).toString(),
    });
    jar.take(registered);
    assert.is(registered.status, 303, await registered.text());
    assert.is(registered.headers.get("location"), wanted);
    assert.ok(jar.cookies.has("sugar_device") && jar.cookies.has("sugar_session"), jar.header());
    notSeen(c, "/wiki/page?id=7&rev=2", "registering (sugar-server's, not the app's)");

    const r = await httpGet(wanted, [["Cookie", jar.header()], ...FORGED]);
    assert.is(r.status, 200, r.body);
    const seen = echoOf(r.body);
    assert.is(seen.path, "/wiki/page?id=7&rev=2");
    const uid = seen.headers["x-sugar-uid"] as string;
    assert.match(uid, /^[0-9a-f]{40}$/);
    c.known.add(uid);
    // A browser has no serial number: an empty X-Sugar-Sn, or none, is the same to an app.
    assert.equal(
      sugarHeaders(seen).filter(([, v]) => v !== ""),
      [
        ["X-Sugar-Admin", "false"],
        ["X-Sugar-Auth-Level", "device"],
        ["X-Sugar-Nick", "Tom%C3%A1s"],
        ["X-Sugar-Uid", uid],
      ],
    );
  } finally {
    await caddy.stop();
  }
});

// Last: over everything the tests above sent through nginx and Caddy.
withNginx("forward auth: every request that reached the app carried an identity sugar-server gave; nothing got there unauthenticated", (c) => {
  assert.ok(c.app!.requests.length > 0);
  for (const r of c.app!.requests) {
    const uids = sugarHeaders(r).filter(([n]) => n === "X-Sugar-Uid");
    assert.is(uids.length, 1, `${r.method} ${r.path}: ${JSON.stringify(sugarHeaders(r))}`);
    assert.ok(c.known.has(uids[0]![1]), `${r.method} ${r.path} as ${uids[0]![1]}, whom sugar-server never logged in`);
  }
});

t.run();
