/**
 * The one admin-path rule, walked for real: every route table of every
 * handler mounted on every port (REST, web, XML-RPC, the TLS port), plus
 * admin paths no handler serves, asked by nobody, a non-admin session, an
 * xoid (even an admin's), non-admin token headers, a non-admin client
 * certificate — all 403 — and by an admin's session, token headers and
 * certificate, which pass. A handler mounted with an admin route is never
 * even asked by a non-admin: the rule does not depend on the handler.
 */
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { SugarError } from "../../src/errors.js";
import { isAdminPath } from "../../adapters/kit/admin-rule.js";
import type { HttpHandler, Route } from "../../adapters/kit/handler.js";
import { startListener, type HttpListener } from "../../adapters/kit/listener.js";
import { createRest } from "../../adapters/http/index.js";
import { send } from "../../adapters/kit/http.js";
import { silentLogger } from "../../src/log.js";
import type { RequestOptions } from "../support/https-client.js";
import { requires, testsNeeding, TOOLS } from "../support/requires.js";
import { startTlsSchool, type TlsSchool } from "../support/tls-school.js";

interface Who {
  name: string;
  admin: boolean;
  headers: Record<string, string>;
  /** A client certificate: only the TLS port can carry it. */
  cert?: { cert: string; key: string };
}

interface Ctx {
  s: TlsSchool;
  who: Who[];
}

const t = suite<Ctx>("admin-rule");
const requirement = requires(TOOLS.openssl);
const test = testsNeeding(t, requirement);

/** Admin paths no handler serves: the rule must hold for them too, however they are spelled. */
const UNROUTED = ["/admin", "/admin/", "/admin/users", "/metrics", "/metrics/x", "/api/admin", "/api/admin/users", "/ADMIN/x", "/%61dmin/x", "/admin;x", "/admin?x=1"];
/** Targets two path readers could disagree on (the router's URL parser, the rule, a proxy): refused before routing. */
const NONCANONICAL = ["//admin", "/x/../admin", "/admin/..%2f..%2fx/../probe", "/metrics/..%2f", "/admin//../probe", "/admin\\../probe", "http://x/admin//../probe", "/metrics/.x/../..", "/%2e%2e/admin", "/./admin/probe"];

t.before(async (c) => {
  if (!requirement.ok) return;
  c.s = await startTlsSchool({ "client-auth": "token", "tls-client-auth": "optional" });
  const person = async (nickname: string, admin: boolean, n: number) => {
    const d = await c.s.registerDevice(`02:00:00:02:00:0${n}`, nickname);
    if (admin) await c.s.registry.call("admin", { uid: d.uid, admin: true });
    const browser = await c.s.auth.call("device", { uid: d.uid, source: "test" });
    return { uid: d.uid, session: browser.session ?? "", headers: await c.s.login(d.credential), cert: c.s.tls.client(d.uid) };
  };
  const user = await person("Pupil", false, 1);
  const boss = await person("Directora", true, 2);
  c.who = [
    { name: "nobody", admin: false, headers: {} },
    { name: "a non-admin session", admin: false, headers: { cookie: `sugar_session=${user.session}` } },
    { name: "an admin's xoid", admin: false, headers: { cookie: `xoid=${JSON.stringify({ color: "#000000,#FFFFFF", pkey_hash: boss.uid })}` } },
    { name: "non-admin token headers", admin: false, headers: user.headers },
    { name: "a non-admin client certificate", admin: false, headers: {}, cert: user.cert },
    { name: "an admin session", admin: true, headers: { cookie: `sugar_session=${boss.session}` } },
    { name: "admin token headers", admin: true, headers: boss.headers },
    { name: "an admin client certificate", admin: true, headers: {}, cert: boss.cert },
  ];
});
t.after(async (c) => {
  await c.s?.stop();
});

const listeners = (c: Ctx) => c.s.server.components.filter((x): x is HttpListener => "routes" in x);

/** A path a route serves: itself, or for a prefix route one under it. */
const pathFor = (r: Route) => (r.prefix ? `${r.path}x` : r.path);

function ask(c: Ctx, l: HttpListener, target: string, method: string, who: Who) {
  const o: RequestOptions = { method, headers: who.headers, ...(method === "POST" ? { body: "{}", headers: { ...who.headers, "content-type": "application/json" } } : {}) };
  return l.name === "https" ? c.s.https(target, { ...o, ...(who.cert ?? {}) }) : c.s.plain(l.address.port, target, o);
}

test("admin-rule: every admin route of every mounted handler, and every admin path no handler has, is 403 to non-admins and reachable by an admin, on every port", async (c) => {
  const ls = listeners(c);
  assert.equal(ls.map((l) => l.name).sort(), ["http", "https", "xmlrpc"]);
  let walked = 0;
  let checked = 0;
  for (const l of ls) {
    assert.ok(l.routes.length >= (l.name === "xmlrpc" ? 2 : 10), `${l.name} has its route table (${l.routes.length} routes)`);
    walked += l.routes.length;
    const routed = l.routes.filter((r) => isAdminPath(pathFor(r))).map((r) => ({ target: pathFor(r), methods: [r.method] }));
    const targets = [...routed, ...UNROUTED.map((target) => ({ target, methods: ["GET", "POST"] }))];
    for (const { target, methods } of targets) {
      for (const method of methods) {
        for (const who of c.who) {
          if (who.cert && l.name !== "https") continue;
          const r = await ask(c, l, target, method, who);
          checked++;
          if (who.admin) assert.is.not(r.status, 403, `${l.name} ${method} ${target} refused ${who.name}: ${r.text}`);
          else assert.is(r.status, 403, `${l.name} ${method} ${target} answered ${who.name} with ${r.status}: ${r.text}`);
        }
      }
    }
  }
  assert.ok(walked >= 25, `walked ${walked} routes`);
  assert.ok(checked > 0);
});

test("admin-rule: the first-admin claim link is not an admin path (a non-admin must reach it), and no plain route is one", async (c) => {
  const all = listeners(c).flatMap((l) => l.routes.map(pathFor));
  assert.ok(all.includes("/auth/claim"));
  // The admin console's routes (adapters/web/admin) are the only admin paths a table has; the walk above checks each.
  const admin = all.filter((p) => isAdminPath(p));
  assert.ok(admin.length > 0, "the console's routes are mounted");
  assert.ok(admin.every((p) => p === "/metrics" || p === "/admin" || p.startsWith("/admin/")), admin.join(" "));
  const claim = await c.s.plain(c.s.ports.http, "/auth/claim?code=x");
  assert.is(claim.status, 200, "nobody is shown the register page, not a 403");
});

/** A handler serving /admin/probe and /metrics/…, recording what reached it; its refusals carry `status(err)`. */
function probeHandler(status: (err: unknown) => number): { asked: string[]; probe: HttpHandler } {
  const asked: string[] = [];
  const probe: HttpHandler = {
    name: "probe",
    routes: [
      { method: "GET", path: "/admin/probe" },
      { method: "GET", path: "/metrics/", prefix: true },
    ],
    async handle(req, res) {
      asked.push(req.url ?? "");
      send(res, 200, "text/plain", "probe\n");
    },
    fail: (_req, res, err) => send(res, status(err), "text/plain", "probe refuses\n"),
  };
  return { asked, probe };
}

test("admin-rule: a handler mounted with /admin and /metrics/ routes is never asked by a non-admin (403 in the fallback's protocol); an admin reaches it", async (c) => {
  const { asked, probe } = probeHandler(() => 418);
  const rest = createRest({ bus: c.s.bus, config: c.s.config, log: silentLogger });
  const l = await startListener({ bus: c.s.bus, config: c.s.config, log: silentLogger }, { name: "probe", option: "httpd-port", port: 0, handlers: [probe], fallback: rest });
  try {
    for (const target of ["/admin/probe", "/metrics/anything"]) {
      for (const who of c.who.filter((w) => !w.cert)) {
        const r = await c.s.plain(l.address.port, target, { headers: who.headers });
        if (who.admin) assert.equal([r.status, r.text], [200, "probe\n"], `${target} for ${who.name}`);
        else assert.equal([r.status, r.text.includes("probe")], [418, true], `${target} for ${who.name}: refused by the rule, in the handler's own protocol`);
      }
    }
    assert.equal(asked.sort(), ["/admin/probe", "/admin/probe", "/metrics/anything", "/metrics/anything"], "only the admins' requests reached the handler");
  } finally {
    await l.stop();
  }
});

test("admin-rule: a target that is not canonical is refused with 400 before any routing, for admins too, and no handler is asked", async (c) => {
  const { asked, probe } = probeHandler((err) => (err instanceof SugarError && err.code === "invalid_input" ? 400 : 403));
  const l = await startListener({ bus: c.s.bus, config: c.s.config, log: silentLogger }, { name: "probe", option: "httpd-port", port: 0, handlers: [probe], fallback: probe });
  try {
    for (const target of NONCANONICAL) {
      for (const who of c.who.filter((w) => !w.cert)) {
        const r = await c.s.plain(l.address.port, target, { headers: who.headers });
        assert.is(r.status, 400, `${target} for ${who.name}: ${r.status} ${r.text}`);
      }
    }
    for (const target of NONCANONICAL.slice(0, 2)) {
      const r = await c.s.plain(c.s.ports.http, target);
      assert.equal([r.status, r.json?.code], [400, "invalid_input"], `REST port: ${target}`);
    }
    assert.equal(asked, [], "no handler saw any of them");
  } finally {
    await l.stop();
  }
});

test("admin-rule: the path is read strictly: escapes, case, repeated slashes, dot segments and absolute-form targets", () => {
  for (const p of ["/admin", "/admin/", "/Admin/x", "/%61dmin", "//admin/x", "/x/../admin", "/admin;jsessionid=1", "\\admin", "/metrics", "/api/admin/x", "http://host/admin/x", "/%zz"]) assert.ok(isAdminPath(p), p);
  for (const p of ["/", "/auth/claim", "/administrator", "/client/register", "/metrics.json", "/api/users", "/register?next=/admin"]) assert.not.ok(isAdminPath(p), p);
});

t.run();
