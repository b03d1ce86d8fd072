/**
 * The admin console in a real Chromium (puppeteer-core) against
 * `sugar-server start` as a child process: an admin claims the server with
 * the claim URL, watches the live feed while Python's xmlrpc.client
 * registers and an XO-faithful client asks port 191, approves a re-flashed
 * laptop by clicking, marks a serial number stolen (the next port-191 answer
 * is STOLEN), uploads a lease file and reads its counts; /metrics, read as
 * Prometheus text, moved with each of those. Screenshots of every page land
 * in the test's temp dir (SUGAR_CONSOLE_SCREENSHOT=FILE also writes the
 * overview there: how docs/admin-console.png is made).
 */
import { copyFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import WebSocket from "ws";
import type { Page } from "puppeteer-core";
import { launchBrowser, screenshot, type LaunchedBrowser } from "../support/browser.js";
import { claimPath, parseProm, pythonRegister, registeredBrowser, startConsoleServer, type ConsoleServer } from "../support/console.js";
import { makeKey } from "../support/keys.js";
import { vectors } from "../support/olpc-fixtures.js";
import { requires, testsNeeding, TOOLS } from "../support/requires.js";
import { tempDir } from "../support/tmp.js";
import { xoActivate } from "../support/xo-client.js";

interface Ctx {
  dir: ReturnType<typeof tempDir>;
  c: ConsoleServer;
  browser: LaunchedBrowser;
  page: Page;
  shots: string;
}

const t = suite<Ctx>("console");
const withBrowser = testsNeeding(t, requires(TOOLS.chromium, TOOLS.python3, TOOLS.sshKeygen));

t.before(async (ctx) => {
  if (!requires(TOOLS.chromium, TOOLS.python3, TOOLS.sshKeygen).ok) return;
  ctx.dir = tempDir("sugar-console-");
  ctx.shots = join(ctx.dir.path, "screenshots");
  ctx.c = await startConsoleServer(ctx.dir.path);
  ctx.browser = await launchBrowser();
  ctx.page = await ctx.browser.newPage();
});
t.after(async (ctx) => {
  await ctx.browser?.close();
  await ctx.c?.server.stop();
  ctx.dir?.remove();
});

const UUID = "8BF9AC40-26F8-4BCC-A699-BE51FD366419";

async function metrics(c: ConsoleServer, page: Page): Promise<Map<string, number>> {
  const cookie = (await page.cookies(c.base)).map((k) => `${k.name}=${k.value}`).join("; ");
  const res = await fetch(`${c.base}/metrics`, { headers: { cookie } });
  assert.is(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
  return parseProm(await res.text());
}

const at = (m: Map<string, number>, key: string) => m.get(key) ?? 0;

/** Waits until the live feed shows a line of `kind` containing `text`; resolves with the ms it took. */
async function liveShows(page: Page, kind: string, text: string, timeoutMs = 1000): Promise<number> {
  const started = Date.now();
  await page.waitForFunction(
    (k: string, s: string) => [...document.querySelectorAll(`#live li.ev-${k}`)].some((li) => (li.textContent ?? "").includes(s)),
    { timeout: timeoutMs, polling: 20 },
    kind,
    text,
  );
  return Date.now() - started;
}

withBrowser("console: the claim URL makes this browser an admin; the overview, the live feed and the actions work by clicking; /metrics moves", async (ctx) => {
  const { c, page } = ctx;
  // Claim: the link first asks to register this device, then comes back to itself.
  await page.goto(`${c.base}${await claimPath(c.root)}`, { waitUntil: "load" });
  await page.type('input[name="nickname"]', "Directora");
  await Promise.all([page.waitForNavigation({ waitUntil: "load" }), page.click('button[type="submit"]')]);
  assert.match(await page.content(), /administrator/i);

  const overview = await page.goto(`${c.base}/admin`, { waitUntil: "load" });
  assert.is(overview?.status(), 200);
  await page.waitForSelector("#live-state.good", { timeout: 5000 });
  const before = await metrics(c, page);
  assert.ok(before.has("process_cpu_user_seconds_total"), "Node's process metrics");

  // A Sugar desktop registers over XML-RPC with Python's xmlrpc.client: the feed shows it within 1 s.
  const key = makeKey(ctx.dir.path);
  await pythonRegister(c.xmlrpc, "SHF706002A7", "Lucía", UUID, key.line);
  await liveShows(page, "registered", "Lucía");

  // An XO asks port 191 (no lease yet: empty); the feed shows the activation within 1 s.
  const empty = await xoActivate({ host: "127.0.0.1", port: c.activationPort, payload: "SHF706002A7" });
  assert.is(empty.bytes.length, 0);
  await liveShows(page, "activation", "SHF706002A7: empty");
  await screenshot(page, ctx.shots, "overview");
  if (process.env.SUGAR_CONSOLE_SCREENSHOT) {
    await page.screenshot({ path: join(ctx.shots, "docs.png") as `${string}.png`, type: "png" });
    copyFileSync(join(ctx.shots, "docs.png"), process.env.SUGAR_CONSOLE_SCREENSHOT);
  }

  // The laptop is re-flashed: a new key with the same serial number is a claim the admin approves by clicking.
  const reflashed = makeKey(ctx.dir.path);
  await pythonRegister(c.xmlrpc, "SHF706002A7", "Lucía nueva", UUID, reflashed.line);
  await liveShows(page, "reflash_pending", "SHF706002A7");
  await page.goto(`${c.base}/admin/users`, { waitUntil: "load" });
  assert.match(await page.$eval("#claims", (e) => e.textContent ?? ""), /Lucía nueva/);
  await screenshot(page, ctx.shots, "users");
  await Promise.all([page.waitForNavigation({ waitUntil: "load" }), page.click('#claims form[action="/admin/claims/approve"] button')]);
  assert.match(await page.$eval(".msg", (e) => e.textContent ?? ""), /Approve: Lucía nueva → SHF706002A7/);
  assert.match(await page.content(), /No re-flash claims are waiting/);

  // A user's page.
  await page.goto(`${c.base}/admin/users?q=nueva`, { waitUntil: "load" });
  await Promise.all([page.waitForNavigation({ waitUntil: "load" }), page.click(`a[href="/admin/user?uid=${reflashed.uid}"]`)]);
  assert.match(await page.content(), new RegExp(reflashed.uid));
  await screenshot(page, ctx.shots, "user");

  // Mark the laptop stolen: the next port-191 answer is STOLEN.
  await page.goto(`${c.base}/admin/leases?sn=shf706002a7`, { waitUntil: "load" });
  assert.match(await page.content(), /Last activation/);
  await Promise.all([page.waitForNavigation({ waitUntil: "load" }), page.click('form[action="/admin/stolen"] button')]);
  assert.match(await page.content(), /On the stolen list/);
  const stolen = await xoActivate({ host: "127.0.0.1", port: c.activationPort, payload: "SHF706002A7" });
  assert.is(stolen.bytes.toString(), "STOLEN");
  await liveShows(page, "activation", "SHF706002A7: stolen").catch(() => undefined); // the feed is on the overview, not here
  await screenshot(page, ctx.shots, "leases");

  // A USB stick's lease file: two good leases and one filed under another serial number.
  const line = vectors.leaseV1.trim();
  const file = join(ctx.dir.path, "leases.cjson");
  const other = line.replace(vectors.v1.sn, "SHF00000002");
  writeFileSync(file, JSON.stringify([1, { SHF00000001: line.replace(vectors.v1.sn, "SHF00000001") + "\n", SHF00000002: other + "\n", SHF00000003: other + "\n" }]));
  const input = await page.$('#upload input[type="file"]');
  await input!.uploadFile(file);
  await page.click('#upload button[type="submit"]');
  await page.waitForSelector("#import-result", { timeout: 10_000 });
  const counts = await page.$eval("#import-result", (e) => e.textContent ?? "");
  assert.match(counts, /2 imported, 0 replaced, 1 refused/);
  assert.match(counts, /the lease is for SHF00000002, filed under SHF00000003/);
  await screenshot(page, ctx.shots, "lease-import");

  await page.goto(`${c.base}/admin/backups`, { waitUntil: "load" });
  await screenshot(page, ctx.shots, "backups");

  const after = await metrics(c, page);
  assert.is(at(after, 'sugar_activation_answers_total{answer="empty"}') - at(before, 'sugar_activation_answers_total{answer="empty"}'), 1);
  assert.is(at(after, 'sugar_activation_answers_total{answer="stolen"}') - at(before, 'sugar_activation_answers_total{answer="stolen"}'), 1);
  assert.is(at(after, 'sugar_requests_total{adapter="admin",op="POST /admin/stolen",result="303"}'), 1);
  assert.is(at(after, 'sugar_requests_total{adapter="admin",op="POST /admin/claims/approve",result="303"}'), 1);
  assert.is(at(after, 'sugar_requests_total{adapter="admin",op="POST /admin/leases/import",result="200"}'), 1);
  const xmlrpc = [...after].filter(([k]) => k.startsWith('sugar_requests_total{adapter="xmlrpc",')).reduce((n, [, v]) => n + v, 0);
  assert.ok(xmlrpc >= 2, "xmlrpc.client's registrations are counted");
  assert.ok(at(after, 'sugar_request_duration_seconds_count{adapter="admin"}') > at(before, 'sugar_request_duration_seconds_count{adapter="admin"}'));
  assert.ok(at(after, 'sugar_request_duration_seconds_count{adapter="activation"}') >= 2);
  assert.ok(at(after, "sugar_registry_users") >= 2, "registry size");
  assert.is(at(after, "sugar_stolen"), 1);
  assert.is(at(after, "sugar_leases_stored"), 2);
  assert.is(at(after, "sugar_admin_live_clients"), 0, "the overview's socket closed when the page left");
});

withBrowser("console: a cross-origin WebSocket upgrade and a non-admin's are refused; an admin's from our page is taken", async (ctx) => {
  const { c, page } = ctx;
  const cookie = (await page.cookies(c.base)).map((k) => `${k.name}=${k.value}`).join("; ");
  const wsUrl = `ws://127.0.0.1:${c.server.ports.http}/admin/live`;
  const open = (headers: Record<string, string>) =>
    new Promise<number>((resolve) => {
      const ws = new WebSocket(wsUrl, { headers });
      ws.on("open", () => {
        ws.close();
        resolve(101);
      });
      ws.on("unexpected-response", (_req, res) => resolve(res.statusCode ?? 0));
      ws.on("error", () => resolve(-1));
    });
  assert.is(await open({ cookie, origin: c.base }), 101);
  assert.is(await open({ cookie, origin: "http://evil.example" }), 403);
  assert.is(await open({ cookie }), 403, "no Origin: not from a browser's page of ours");
  const nobody = await registeredBrowser(c.base, "Alumno");
  assert.is(await open({ cookie: nobody.header(), origin: c.base }), 403);
  assert.is((await fetch(`${c.base}/admin`, { headers: { cookie: nobody.header() } })).status, 403);
  assert.is((await fetch(`${c.base}/metrics`, { headers: { cookie: nobody.header() } })).status, 403);
  assert.is((await fetch(`${c.base}/metrics`)).status, 403);
});

withBrowser("console: the overview reads on a phone's screen", async (ctx) => {
  const { c, page } = ctx;
  await page.setViewport({ width: 390, height: 844, isMobile: true });
  await page.goto(`${c.base}/admin`, { waitUntil: "load" });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page is ${overflow}px wider than the phone`);
  await screenshot(page, ctx.shots, "overview-phone");
  await page.setViewport({ width: 1200, height: 900 });
});

t.run();
