/**
 * The real nginx harness (test/support/nginx.ts), proved with the forward-auth
 * setup the web adapter will sit behind: auth_request to a stub auth server
 * that answers 200 or 401, auth_request_set + proxy_set_header carrying
 * X-Sugar-Uid and X-Sugar-Admin from the auth answer to the app, and a
 * client's own X-Sugar-* headers never reaching the app.
 */
import { existsSync } from "node:fs";
import { test as t } from "uvu";
import * as assert from "uvu/assert";
import { echoOf, headerValues, startEchoUpstream, type Echo, type EchoUpstream } from "../support/echo-upstream.js";
import { httpGet } from "../support/http-server.js";
import { authRequestSite, nginxRequirement, startNginx, type Nginx } from "../support/nginx.js";
import { processGroup } from "../support/procs.js";
import { testsNeeding } from "../support/requires.js";
import { startStubAuth, type StubAuth } from "../support/stub-auth.js";

const req = nginxRequirement();
const test = testsNeeding(t, req);

let app: EchoUpstream;
let auth: StubAuth;
let nginx: Nginx;

t.before(async () => {
  if (!req.ok) return;
  app = await startEchoUpstream();
  auth = await startStubAuth();
  nginx = await startNginx({ conf: ({ port }) => authRequestSite({ port, upstream: app.url, auth: `${auth.url}/auth/verify`, copyHeaders: ["X-Sugar-Uid", "X-Sugar-Admin"] }) });
});

t.after(async () => {
  await nginx?.stop();
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

test("nginx harness: runs the real binary on a loopback port with its own directory and logs", async () => {
  assert.match(nginx.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  assert.ok(existsSync(`${nginx.dir}/nginx.conf`));
  assert.match(nginx.log(), /start worker process/, nginx.log());
  assert.ok(processGroup(nginx.pid).length >= 2, "a master and a worker");
});

test("nginx harness: auth_request 200 lets the request through, with the auth answer's X-Sugar-Uid", async () => {
  cookieAuth();
  const before = auth.requests.length;
  const r = await httpGet(`${nginx.url}/course/view.php?id=3`, [["Host", "school.lan"], ["Cookie", "s=u-allowed"]], "POST");
  assert.is(r.status, 200, r.body);
  const seen = echoOf(r.body);
  assert.is(seen.method, "POST");
  assert.is(seen.path, "/course/view.php?id=3");
  assert.equal(sugarHeaders(seen), [["X-Sugar-Admin", "false"], ["X-Sugar-Uid", "u-allowed"]]);
  assert.is(seen.headers.host, "school.lan");
  // What the auth server was asked: a bodiless subrequest with the original URI, method and cookies.
  const asked = auth.requests.slice(before);
  assert.is(asked.length, 1);
  assert.is(asked[0]!.method, "GET"); // nginx's subrequests are GETs
  assert.is(asked[0]!.path, "/auth/verify");
  assert.is(asked[0]!.headers["x-original-uri"], "/course/view.php?id=3");
  assert.is(asked[0]!.headers["x-original-method"], "POST");
  assert.is(asked[0]!.headers.cookie, "s=u-allowed");
  assert.is(asked[0]!.headers["content-length"], undefined);
});

test("nginx harness: auth_request 401 is the client's answer, with WWW-Authenticate, and the app is never asked", async () => {
  cookieAuth();
  const before = app.requests.length;
  const r = await httpGet(`${nginx.url}/private`);
  assert.is(r.status, 401);
  assert.is(r.headers["www-authenticate"], 'Cookie realm="sugar"');
  assert.is(app.requests.length, before);
});

test("nginx harness: an auth answer other than 2xx/401/403 is a 500 (why /auth/verify never redirects)", async () => {
  auth.decide(() => ({ status: 302, headers: { Location: "/auth/login" } }));
  const before = app.requests.length;
  const r = await httpGet(`${nginx.url}/private`);
  assert.is(r.status, 500);
  assert.is(app.requests.length, before);
  assert.match(nginx.log(), /auth request unexpected status: 302/);
});

test("nginx harness: a client's own X-Sugar-* headers, any spelling, never reach the app nor the auth server", async () => {
  const spoof: [string, string][] = [["X-Sugar-Uid", "u-spoof"], ["x-sugar-uid", "u-spoof2"], ["X_Sugar_Uid", "u-spoof3"], ["x-sugar_uid", "u-spoof4"], ["X-Sugar-Admin", "true"]];
  cookieAuth();
  const before = auth.requests.length;
  const replaced = await httpGet(`${nginx.url}/`, [["Cookie", "s=u-real"], ...spoof]);
  assert.is(replaced.status, 200, replaced.body);
  // proxy_set_header replaces the client's header of that name; nginx drops names with underscores (ignore_invalid_headers),
  // so X_Sugar_Uid (which CGI and PHP would read as X-Sugar-Uid) never gets through.
  assert.equal(sugarHeaders(echoOf(replaced.body)), [["X-Sugar-Admin", "false"], ["X-Sugar-Uid", "u-real"]]);
  assert.equal(sugarHeaders(auth.requests[before]!), []);

  auth.decide(() => ({ status: 200 })); // allowed, but no uid (a public page)
  const none = await httpGet(`${nginx.url}/`, spoof);
  assert.is(none.status, 200, none.body);
  // An empty proxy_set_header value sends no header at all.
  assert.equal(sugarHeaders(echoOf(none.body)), []);
  assert.equal(headerValues(echoOf(none.body), "X-Sugar-Uid"), []);
});

test("nginx harness: stop() ends the master and its workers and removes the directory", async () => {
  const own = await startNginx({ conf: ({ port }) => `server {\n  listen 127.0.0.1:${port};\n  return 204;\n}` });
  try {
    assert.is((await httpGet(own.url)).status, 204);
    const group = processGroup(own.pid);
    assert.ok(group.some((p) => p.pid !== own.pid), `a worker besides the master: ${JSON.stringify(group)}`);
  } finally {
    await own.stop();
  }
  assert.equal(processGroup(own.pid), []);
  assert.not.ok(existsSync(own.dir));
  await own.stop(); // idempotent
});

test("nginx harness: a config nginx refuses is an error that quotes nginx", async () => {
  try {
    await startNginx({ conf: () => "no_such_directive on;" });
    assert.unreachable("started");
  } catch (err) {
    assert.match((err as Error).message, /unknown directive "no_such_directive"/);
  }
});

t.run();
