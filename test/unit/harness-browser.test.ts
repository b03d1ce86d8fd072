/**
 * The real browser harness (test/support/browser.ts): Debian's Chromium,
 * headless, driven by puppeteer-core, against a page from a local node:http
 * server. Cookies survive a reload and a new tab, persistent ones survive a
 * relaunch on the same profile, screenshots are PNG files, and close()
 * leaves no Chromium process behind.
 */
import { existsSync, readFileSync } from "node:fs";
import { test as t } from "uvu";
import * as assert from "uvu/assert";
import { launchBrowser, screenshot } from "../support/browser.js";
import { startHttpServer, type TestHttpServer } from "../support/http-server.js";
import { livingInGroup, processGroup } from "../support/procs.js";
import { requires, testsNeeding, TOOLS } from "../support/requires.js";
import { tempDir } from "../support/tmp.js";

const req = requires(TOOLS.chromium);
const test = testsNeeding(t, req);

/**
 * `/` sets two cookies when the request has none (one HttpOnly, one
 * persistent for an hour) and shows the cookies it received; `/session` sets
 * one with no expiry.
 */
let site: TestHttpServer;
let temp: { path: string; remove(): void };

t.before(async () => {
  temp = tempDir("sugar-browser-test-");
  if (!req.ok) return;
  site = await startHttpServer((r, res) => {
    const cookie = r.headers.cookie ?? "";
    const set =
      r.url === "/session"
        ? ["only_session=1; Path=/; SameSite=Lax"]
        : cookie.includes("sid=")
          ? []
          : ["sid=s3cr3t; Path=/; HttpOnly; SameSite=Lax", "device=d1; Path=/; Max-Age=3600; SameSite=Lax"];
    res.writeHead(200, { "content-type": "text/html; charset=utf-8", "set-cookie": set });
    const shown = cookie.replace(/[<>&]/g, "");
    res.end(`<!doctype html><title>cookies</title><h1>Cookies the server got</h1><p id="got">${shown}</p>`);
  });
});

t.after(async () => {
  await site?.stop();
  temp?.remove();
});

test("browser harness: a cookie set by a local page comes back after a reload and in a new tab, and the page reads it", async () => {
  const b = await launchBrowser();
  try {
    const page = await b.newPage();
    const first = await page.goto(site.url, { waitUntil: "load" });
    assert.is(first?.status(), 200);
    assert.is(await page.$eval("#got", (e) => e.textContent), "", "no cookies on the first visit");
    await page.reload({ waitUntil: "load" });
    assert.is(await page.$eval("#got", (e) => e.textContent), "sid=s3cr3t; device=d1");
    // Script sees only the cookie that is not HttpOnly; the DevTools view sees both, with their flags.
    assert.is(await page.evaluate(() => document.cookie), "device=d1");
    const cookies = await b.browser.cookies();
    assert.equal(cookies.map((c) => [c.name, c.httpOnly, c.session]).sort(), [["device", false, false], ["sid", true, true]]);
    // A second tab of the same launch shares the cookie jar.
    const tab = await b.newPage();
    await tab.goto(`${site.url}/again`, { waitUntil: "load" });
    assert.is(await tab.$eval("#got", (e) => e.textContent), "sid=s3cr3t; device=d1");
    assert.is(site.requests.at(-1)!.headers.cookie, "sid=s3cr3t; device=d1");
  } finally {
    await b.close();
  }
});

test("browser harness: screenshot() writes a PNG of the page, the XO's 1200 pixels wide, under the test's directory", async () => {
  const b = await launchBrowser();
  try {
    const page = await b.newPage();
    await page.goto(site.url, { waitUntil: "load" });
    const file = await screenshot(page, `${temp.path}/shots`, "cookies-page");
    assert.is(file, `${temp.path}/shots/cookies-page.png`);
    const png = readFileSync(file);
    assert.equal([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], "the PNG signature");
    assert.is(png.subarray(12, 16).toString("latin1"), "IHDR");
    assert.is(png.readUInt32BE(16), 1200, "width");
    assert.ok(png.readUInt32BE(20) >= 900, "height: at least the window");
    try {
      await screenshot(page, temp.path, "../escape");
      assert.unreachable("a name with a slash was accepted");
    } catch (err) {
      assert.match((err as Error).message, /letters, digits/);
    }
  } finally {
    await b.close();
  }
});

test("browser harness: a relaunch on the same profile keeps the persistent cookie, not the session ones", async () => {
  const profile = `${temp.path}/profile`;
  const one = await launchBrowser({ profileDir: profile });
  try {
    const page = await one.newPage();
    await page.goto(site.url, { waitUntil: "load" });
    await page.goto(`${site.url}/session`, { waitUntil: "load" });
    assert.is(await page.$eval("#got", (e) => e.textContent), "sid=s3cr3t; device=d1");
  } finally {
    await one.close();
  }
  assert.ok(existsSync(profile), "a profile the caller gave is kept");
  const two = await launchBrowser({ profileDir: profile });
  try {
    const page = await two.newPage();
    await page.goto(`${site.url}/again`, { waitUntil: "load" });
    // Chromium writes session cookies nowhere: what a later issue's device cookie must not be.
    assert.is(await page.$eval("#got", (e) => e.textContent), "device=d1");
  } finally {
    await two.close();
  }
});

test("browser harness: close() leaves no Chromium process and removes the profile it made", async () => {
  const b = await launchBrowser();
  const page = await b.newPage();
  await page.goto(site.url, { waitUntil: "load" });
  const group = processGroup(b.pid);
  assert.ok(group.length > 1, `Chromium runs helper processes: ${JSON.stringify(group)}`);
  await b.close();
  assert.equal(livingInGroup(b.pid), []);
  // Chromium itself was reaped (no zombie of ours); helpers it left are init's to reap.
  assert.not.ok(processGroup(b.pid).some((p) => p.pid === b.pid || p.ppid === process.pid), JSON.stringify(processGroup(b.pid)));
  assert.not.ok(existsSync(b.profileDir));
  await b.close(); // idempotent
});

t.run();
