/**
 * The real Caddy harness (test/support/caddy.ts), proved with the
 * forward-auth setup the web adapter will sit behind: forward_auth to a stub
 * auth server that answers 200 or 401, copy_headers carrying X-Sugar-Uid and
 * X-Sugar-Admin from the auth answer to the app, and a client's own X-Sugar-*
 * headers (any spelling) never reaching the app.
 */
import { existsSync } from "node:fs";
import { test as t } from "uvu";
import * as assert from "uvu/assert";
import { caddyRequirement, forwardAuthSite, startCaddy, type Caddy } from "../support/caddy.js";
import { echoOf, headerValues, startEchoUpstream, type Echo, type EchoUpstream } from "../support/echo-upstream.js";
import { httpGet } from "../support/http-server.js";
import { acceptsTcp } from "../support/ports.js";
import { testsNeeding } from "../support/requires.js";
import { startStubAuth, type StubAuth } from "../support/stub-auth.js";

const req = caddyRequirement();
const test = testsNeeding(t, req);

let app: EchoUpstream;
let auth: StubAuth;
let caddy: Caddy;

t.before(async () => {
  if (!req.ok) return;
  app = await startEchoUpstream();
  auth = await startStubAuth();
  caddy = await startCaddy({
    caddyfile: ({ port }) => forwardAuthSite({ port, upstream: app.url, auth: auth.url, uri: "/auth/verify", copyHeaders: ["X-Sugar-Uid", "X-Sugar-Admin"] }),
  });
});

t.after(async () => {
  await caddy?.stop();
  await app?.stop();
  await auth?.stop();
});

/** The stub lets a request through as `uid` when it carries the cookie `s=<uid>`, and answers 401 otherwise. */
function cookieAuth(): void {
  auth.decide((r) => {
    const uid = /(?:^|;\s*)s=([^;]+)/.exec(String(r.headers.cookie ?? ""))?.[1];
    return uid ? { status: 200, headers: { "X-Sugar-Uid": uid, "X-Sugar-Admin": "false" } } : { status: 401, headers: { "WWW-Authenticate": 'Cookie realm="sugar"' } };
  });
}

/** Every header line received whose name, any case, starts X-Sugar or X_Sugar, sorted. */
function sugarHeaders(echo: Echo): [string, string][] {
  return echo.rawHeaders
    .filter(([n]) => /^x[-_]sugar/i.test(n))
    .map(([n, v]): [string, string] => [n, v])
    .sort();
}

test("caddy harness: runs the real binary on a loopback port, its files in its own directory, no admin endpoint", async () => {
  assert.match(caddy.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  assert.ok(existsSync(`${caddy.dir}/Caddyfile`));
  assert.match(caddy.log(), /admin endpoint disabled/, caddy.log());
  assert.not.ok(await acceptsTcp(2019), "nothing on Caddy's default admin port");
});

test("caddy harness: forward_auth 200 lets the request through, with the auth answer's copy_headers", async () => {
  cookieAuth();
  const before = auth.requests.length;
  const r = await httpGet(`${caddy.url}/course/view.php?id=3`, [["Host", "school.lan"], ["Cookie", "s=u-allowed"]], "POST");
  assert.is(r.status, 200, r.body);
  const seen = echoOf(r.body);
  assert.is(seen.method, "POST");
  assert.is(seen.path, "/course/view.php?id=3");
  assert.equal(sugarHeaders(seen), [["X-Sugar-Admin", "false"], ["X-Sugar-Uid", "u-allowed"]]);
  assert.is(seen.headers.host, "school.lan");
  // What the auth server was asked: a GET at `uri` (the query kept), with the original method and URI, and the cookies.
  const asked = auth.requests.slice(before);
  assert.is(asked.length, 1);
  assert.is(asked[0]!.method, "GET");
  assert.is(asked[0]!.path, "/auth/verify?id=3");
  assert.is(asked[0]!.headers["x-forwarded-method"], "POST");
  assert.is(asked[0]!.headers["x-forwarded-uri"], "/course/view.php?id=3");
  assert.is(asked[0]!.headers.cookie, "s=u-allowed");
});

test("caddy harness: forward_auth 401 is the client's answer, with WWW-Authenticate, and the app is never asked", async () => {
  cookieAuth();
  const before = app.requests.length;
  const r = await httpGet(`${caddy.url}/private`);
  assert.is(r.status, 401);
  assert.is(r.headers["www-authenticate"], 'Cookie realm="sugar"');
  assert.is(app.requests.length, before);
});

test("caddy harness: unlike nginx, a redirect from auth goes back to the client as it came", async () => {
  auth.decide(() => ({ status: 302, headers: { Location: "/auth/login?rd=x" } }));
  const before = app.requests.length;
  const r = await httpGet(`${caddy.url}/private`);
  assert.is(r.status, 302);
  assert.is(r.headers.location, "/auth/login?rd=x");
  assert.is(app.requests.length, before);
});

test("caddy harness: a client's own X-Sugar-* headers, any spelling, never reach the app nor the auth server", async () => {
  const spoof: [string, string][] = [["X-Sugar-Uid", "u-spoof"], ["x-sugar-uid", "u-spoof2"], ["X_Sugar_Uid", "u-spoof3"], ["x-sugar_uid", "u-spoof4"], ["X-Sugar-Admin", "true"]];
  cookieAuth();
  const before = auth.requests.length;
  const replaced = await httpGet(`${caddy.url}/`, [["Cookie", "s=u-real"], ...spoof]);
  assert.is(replaced.status, 200, replaced.body);
  assert.equal(sugarHeaders(echoOf(replaced.body)), [["X-Sugar-Admin", "false"], ["X-Sugar-Uid", "u-real"]]);
  assert.equal(sugarHeaders(auth.requests[before]!), []);

  auth.decide(() => ({ status: 200 })); // allowed, but no uid (a public page)
  const none = await httpGet(`${caddy.url}/`, spoof);
  assert.is(none.status, 200, none.body);
  // Neither the client's values nor Caddy 2.6.2's literal "{http.reverse_proxy.header.X-Sugar-Uid}".
  assert.equal(sugarHeaders(echoOf(none.body)), []);
  assert.equal(headerValues(echoOf(none.body), "X-Sugar-Uid"), []);
});

test("caddy harness: stop() ends Caddy and removes its directory", async () => {
  const own = await startCaddy({ caddyfile: ({ port }) => `:${port} {\n\tbind 127.0.0.1\n\trespond "hello" 200\n}` });
  try {
    const r = await httpGet(own.url);
    assert.equal([r.status, r.body], [200, "hello"]);
  } finally {
    await own.stop();
  }
  assert.not.ok(await acceptsTcp(own.port));
  assert.not.ok(existsSync(own.dir));
  await own.stop(); // idempotent
});

test("caddy harness: a Caddyfile Caddy refuses is an error that quotes Caddy", async () => {
  try {
    await startCaddy({ caddyfile: ({ port }) => `:${port} {\n\tno_such_directive\n}` });
    assert.unreachable("started");
  } catch (err) {
    assert.match((err as Error).message, /unrecognized directive: no_such_directive/);
  }
});

t.run();
