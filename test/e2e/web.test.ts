/**
 * The web routes over HTTP, as a proxy and a browser use them, against
 * `sugar-server start` as a child process: forward auth (/auth/verify), the
 * login redirect, browser registration with its cookies, logout, the first
 * admin's claim link, and every bad input the issue lists on this side.
 * (The same flows behind real nginx and Caddy, and in a real Chromium, are
 * in test/e2e/forward-auth.test.ts.)
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { runCli, startServer, type ServerProcess } from "../support/server.js";
import { makeKey } from "../support/keys.js";
import { requires, testsNeeding, TOOLS } from "../support/requires.js";
import { tempDir } from "../support/tmp.js";
import { Jar } from "../support/cookie-jar.js";

interface Ctx {
  dir: ReturnType<typeof tempDir>;
  root: string;
  server: ServerProcess;
  base: string;
}

const t = suite<Ctx>("web");
const withKeys = testsNeeding(t, requires(TOOLS.sshKeygen));

t.before(async (ctx) => {
  ctx.dir = tempDir("sugar-web-");
  ctx.root = join(ctx.dir.path, "root");
  ctx.server = await startServer([
    "start",
    ...["--root", ctx.root, "--host", "127.0.0.1", "--httpd-port", "0", "--xmlrpc-port", "0", "--activation-port", "0"],
    ...["--backup-host", "school.example", "--jabber-url", "school.example", "--auth-redirect-hosts", "library.school.example"],
  ]);
  ctx.base = `http://127.0.0.1:${ctx.server.ports.http}`;
});
t.after(async (ctx) => {
  await ctx.server?.stop();
  ctx.dir?.remove();
});


async function get(c: Ctx, path: string, jar?: Jar, headers: Record<string, string> = {}): Promise<Response> {
  const res = await fetch(`${c.base}${path}`, { redirect: "manual", headers: { ...(jar ? { cookie: jar.header() } : {}), ...headers } });
  jar?.take(res);
  return res;
}

async function postForm(c: Ctx, path: string, form: Record<string, string>, jar?: Jar, headers: Record<string, string> = {}): Promise<Response> {
  const res = await fetch(`${c.base}${path}`, {
    method: "POST",
    redirect: "manual",
    headers: { "content-type": "application/x-www-form-urlencoded", ...(jar ? { cookie: jar.header() } : {}), ...headers },
    body: new URLSearchParams(form).toString(),
  });
  jar?.take(res);
  return res;
}

/** Registers a browser the way a person does: the page, then the form it shows. */
async function registerBrowser(c: Ctx, nickname: string, rd = ""): Promise<{ jar: Jar; res: Response }> {
  const jar = new Jar();
  const page = await (await get(c, `/register${rd ? `?rd=${encodeURIComponent(rd)}` : ""}`, jar)).text();
  const csrf = /name="csrf" value="([^"]+)"/.exec(page)?.[1] ?? "";
  const res = await postForm(c, "/register", { nickname, csrf, rd }, jar, { origin: c.base });
  return { jar, res };
}

t("web: a browser registers with a nickname, gets its two cookies, and /auth/verify then names it", async (c) => {
  const { jar, res } = await registerBrowser(c, "Lucía", "http://library.school.example/shelf?x=1");
  assert.is(res.status, 303);
  assert.is(res.headers.get("location"), "http://library.school.example/shelf?x=1");
  const set = res.headers.getSetCookie().join("\n");
  assert.match(set, /sugar_device=[A-Za-z0-9_-]{43}; Path=\/; Max-Age=\d+; SameSite=Lax; HttpOnly/);
  assert.match(set, /sugar_session=s1\./);
  const v = await get(c, "/auth/verify", jar, { "x-original-uri": "/shelf?x=1" });
  assert.is(v.status, 200);
  assert.match(v.headers.get("x-sugar-uid") ?? "", /^[0-9a-f]{40}$/);
  assert.is(decodeURIComponent(v.headers.get("x-sugar-nick") ?? ""), "Lucía");
  assert.is(v.headers.get("x-sugar-admin"), "false");
  assert.is(v.headers.get("x-sugar-auth-level"), "device");
  // Only the device cookie (the session expired or was lost): verify renews the session.
  const deviceOnly = new Jar();
  deviceOnly.cookies.set("sugar_device", jar.cookies.get("sugar_device")!);
  const renewed = await get(c, "/auth/verify", deviceOnly);
  assert.is(renewed.status, 200);
  assert.match(renewed.headers.getSetCookie().join(""), /sugar_session=s1\./);
});

t("web: /auth/verify is 401 with nothing, never a redirect, and fails closed on a malformed X-Original-URI or X-Forwarded-Uri", async (c) => {
  assert.is((await get(c, "/auth/verify")).status, 401);
  const { jar } = await registerBrowser(c, "Ana");
  for (const [name, value] of [
    ["x-original-uri", "no-slash"],
    ["x-original-uri", "/a\u0001b"],
    ["x-forwarded-uri", ""],
    ["x-forwarded-uri", `/${"a".repeat(9000)}`],
  ] as const) {
    const r = await fetch(`${c.base}/auth/verify`, { redirect: "manual", headers: { cookie: jar.header(), [name]: value } }).catch(() => undefined);
    if (r) assert.is(r.status, 401, `${name}: ${JSON.stringify(value.slice(0, 20))}`);
  }
});

t("web: a session cookie with a changed uid, expiry or key id, a revoked device, cookies of 8 KB, 200 cookies and bad encodings are nobody (401)", async (c) => {
  const { jar } = await registerBrowser(c, "Beto");
  const session = jar.cookies.get("sugar_session")!;
  const [v, kid, uid, exp, mac] = session.split(".");
  const other = createHash("sha1").update("someone").digest("hex");
  for (const forged of [`${v}.${kid}.${other}.${exp}.${mac}`, `${v}.${kid}.${uid}.${Number(exp) + 3600}.${mac}`, `${v}.${"0".repeat(16)}.${uid}.${exp}.${mac}`, `${session}x`, "s1.%%%.x", "é"]) {
    assert.is((await get(c, "/auth/verify", undefined, { cookie: `sugar_session=${forged}` })).status, 401, forged.slice(0, 30));
  }
  assert.is((await get(c, "/auth/verify", undefined, { cookie: `sugar_session=${session}; pad=${"x".repeat(8 * 1024)}` })).status, 401, "8 KB of cookies");
  assert.is((await get(c, "/auth/verify", undefined, { cookie: Array.from({ length: 200 }, (_, i) => `c${i}=1`).join("; ") + `; sugar_session=${session}` })).status, 401, "200 cookies");
  // Logged out: the device is revoked, its cookie (and the session it renews) stops working.
  const page = await (await get(c, "/register", jar)).text();
  const csrf = /name="csrf" value="([^"]+)"/.exec(page)?.[1] ?? "";
  const device = jar.cookies.get("sugar_device")!;
  assert.is((await postForm(c, "/auth/logout", { csrf }, jar, { origin: c.base })).status, 200);
  assert.is((await get(c, "/auth/verify", undefined, { cookie: `sugar_device=${device}` })).status, 401);
});

t("web: rd to another host, javascript:, //evil and \\\\evil is refused; this server's names and auth-redirect-hosts are fine", async (c) => {
  for (const rd of ["http://evil.example/", "javascript:alert(1)", "//evil.example/", "\\\\evil.example", "/\\evil.example", "http://user@library.school.example/", "https://library.school.example.evil.example/"]) {
    assert.is((await get(c, `/auth/login?rd=${encodeURIComponent(rd)}`)).status, 400, rd);
  }
  for (const rd of ["/shelf", "http://library.school.example:8080/x", "https://school.example/y"]) {
    assert.is((await get(c, `/auth/login?rd=${encodeURIComponent(rd)}`)).status, 200, rd);
  }
  const { jar } = await registerBrowser(c, "Caro");
  const back = await get(c, `/auth/login?rd=${encodeURIComponent("http://library.school.example/z")}`, jar);
  assert.equal([back.status, back.headers.get("location")], [302, "http://library.school.example/z"]);
});

t("web: a client utility registers a device over REST with device_id and no pubkey; the same device again is the same uid; a bad device_id is refused", async (c) => {
  const post = (body: unknown) => fetch(`${c.base}/client/register`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  const first = (await (await post({ nickname: "Tablet", device_id: "3C:5A:B4:01:02:03" })).json()) as Record<string, unknown>;
  assert.equal([first.success, first.kind, first.created], ["OK", "browser", true]);
  assert.match(String(first.uid), /^[0-9a-f]{40}$/);
  assert.match(String(first.credential), /^sugar1\./);
  const again = (await (await post({ nickname: "Tablet", device_id: "3c:5a:b4:01:02:03" })).json()) as Record<string, unknown>;
  assert.equal([again.uid, again.created, again.credential], [first.uid, false, undefined]);
  for (const bad of ["3c:5a:b4:01:02", "not-a-mac", "02:00:00:00:00:00"]) {
    const r = await post({ nickname: "X", device_id: bad });
    assert.is(r.status, 400, bad);
  }
  const login = (await (await fetch(`${c.base}/client/login`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ credential: first.credential }) })).json()) as Record<string, unknown>;
  assert.is(login.uid, first.uid);
});

withKeys("web: an xoid cookie of a registered XO is level xoid, never admin, and 403 where a service asks for a device; broken, unknown or short ones are nobody", async (c) => {
  const key = makeKey(c.dir.path);
  await fetch(`${c.base}/client/register`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ nickname: "XO", pubkey: key.line }) });
  await runCli(["users", "admin", key.uid, "on", "--root", c.root]);
  const xoid = (v: string) => ({ cookie: `xoid=${v}` });
  const good = JSON.stringify({ color: "#FF8F00,#00A0FF", pkey_hash: key.uid });
  for (const form of [good, `"${good.replace(/"/g, '\\"')}"`, encodeURIComponent(good)]) {
    const r = await get(c, "/auth/verify", undefined, xoid(form));
    assert.is(r.status, 200, form);
    assert.equal([r.headers.get("x-sugar-uid"), r.headers.get("x-sugar-auth-level"), r.headers.get("x-sugar-admin")], [key.uid, "xoid", "false"]);
  }
  assert.is((await get(c, "/auth/verify?admin=1", undefined, xoid(good))).status, 403, "xoid is never admin");
  assert.is((await get(c, "/auth/verify?level=device", undefined, xoid(good))).status, 403);
  for (const bad of [JSON.stringify({ pkey_hash: "f".repeat(40) }), '{"pkey_hash": ', JSON.stringify({ pkey_hash: key.uid.slice(0, 39) }), JSON.stringify({ pkey_hash: key.uid.toUpperCase() })]) {
    assert.is((await get(c, "/auth/verify", undefined, xoid(bad))).status, 401, bad);
  }
});

t("web: POST /register without the page's CSRF token, with another's, or from another Origin is refused and registers nobody", async (c) => {
  const jar = new Jar();
  const page = await (await get(c, "/register", jar)).text();
  const csrf = /name="csrf" value="([^"]+)"/.exec(page)?.[1] ?? "";
  assert.is((await postForm(c, "/register", { nickname: "X" }, jar, { origin: c.base })).status, 403, "no token");
  assert.is((await postForm(c, "/register", { nickname: "X", csrf: "A".repeat(22) }, jar, { origin: c.base })).status, 403, "another token");
  assert.is((await postForm(c, "/register", { nickname: "X", csrf }, jar, { origin: "http://evil.example" })).status, 403, "another Origin");
  assert.is((await postForm(c, "/register", { nickname: "X", csrf }, undefined, { origin: c.base })).status, 403, "no cookie");
  const users = await runCli(["users", "list", "--root", c.root]);
  assert.not.match(users.stdout, /\bX\b/);
});

t("web: the first admin's claim link makes a registered browser admin once; used twice, guessed or without a device it is refused", async (c) => {
  const url = (await runCli(["admin", "claim-url", "--root", c.root])).stdout.trim();
  const code = new URL(url).searchParams.get("code")!;
  assert.ok(code);
  const nobody = await get(c, `/auth/claim?code=${encodeURIComponent(code)}`);
  assert.is(nobody.status, 200);
  assert.match(await nobody.text(), /name="rd" value="\/auth\/claim\?code=/, "register first, then back to the link");
  const { jar } = await registerBrowser(c, "Directora");
  assert.is((await get(c, "/auth/verify?admin=1", jar)).status, 403, "not admin yet");
  assert.is((await get(c, "/auth/claim?code=wrong", jar)).status, 403);
  assert.is((await get(c, `/auth/claim?code=${encodeURIComponent(code)}`, jar)).status, 200);
  const v = await get(c, "/auth/verify?admin=1", jar);
  assert.equal([v.status, v.headers.get("x-sugar-admin")], [200, "true"]);
  const { jar: second } = await registerBrowser(c, "Otro");
  assert.is((await get(c, `/auth/claim?code=${encodeURIComponent(code)}`, second)).status, 403, "used once already");
});

t("web: pages follow Accept-Language (Spanish where translated, English otherwise)", async (c) => {
  assert.match(await (await get(c, "/register", undefined, { "accept-language": "es-UY,es;q=0.9,en;q=0.5" })).text(), /Registrar este dispositivo/);
  assert.match(await (await get(c, "/register", undefined, { "accept-language": "fr, de;q=0.5" })).text(), /Register this device/);
});

// Last: the limit counts every registration from 127.0.0.1 in this file.
t("web: 100 browser registrations a minute from one address, then 429", async (c) => {
  const statuses: number[] = [];
  for (let i = 0; i < 105; i++) statuses.push((await registerBrowser(c, `Kid ${i}`)).res.status);
  const first = statuses.indexOf(429);
  assert.ok(first > 0 && first <= 100, `429 after at most 100 a minute: ${first}`);
  assert.ok(statuses.slice(first).every((s) => s === 429));
});

t.run();
