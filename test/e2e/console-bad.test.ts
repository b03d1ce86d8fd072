/**
 * The admin console's bad inputs, over HTTP against `sugar-server start`:
 * every form without its CSRF token, with another Origin, and from a
 * non-admin's session; a lease upload of 50 MB, of garbage, and with a line
 * for another serial number; a stolen-list page link after something that is
 * not a serial number. Each is refused with a clear answer and the
 * server's state (registry, leases, stolen list) is exactly what it was.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { Jar } from "../support/cookie-jar.js";
import { adminBrowser, csrfOf, registeredBrowser, startConsoleServer, type ConsoleServer } from "../support/console.js";
import { describeDiff, sameSnapshot, snapshot } from "../support/disk.js";
import { makeKey } from "../support/keys.js";
import { vectors } from "../support/olpc-fixtures.js";
import { requires, testsNeeding, TOOLS } from "../support/requires.js";
import { runCli } from "../support/server.js";
import { tempDir } from "../support/tmp.js";
import { waitFor } from "../support/wait.js";

interface Ctx {
  dir: ReturnType<typeof tempDir>;
  c: ConsoleServer;
  admin: Jar;
  pupil: Jar;
  pupilUid: string;
  claimUid: string;
}

const t = suite<Ctx>("console-bad");
const withKeys = testsNeeding(t, requires(TOOLS.sshKeygen));

t.before(async (ctx) => {
  if (!requires(TOOLS.sshKeygen).ok) return;
  ctx.dir = tempDir("sugar-console-bad-");
  ctx.c = await startConsoleServer(ctx.dir.path);
  ctx.admin = await adminBrowser(ctx.c);
  ctx.pupil = await registeredBrowser(ctx.c.base, "Alumno");
  // A registered laptop, re-flashed: a pending claim every form could settle.
  const reg = async (pubkey: string) => {
    const res = await fetch(`${ctx.c.base}/client/register`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ nickname: "Ana", pubkey, machine_sn: "SHF706002A7", machine_uuid: "8BF9AC40-26F8-4BCC-A699-BE51FD366419" }) });
    assert.is(res.status, 200, await res.clone().text());
    return (await res.json()) as { uid: string };
  };
  ctx.pupilUid = (await reg(makeKey(ctx.dir.path).line)).uid;
  ctx.claimUid = (await reg(makeKey(ctx.dir.path).line)).uid;
  // The backup actor writes both keys into authorized_keys after the replies: that is setup, not a form's doing.
  const keys = join(ctx.c.root, ".ssh", "authorized_keys");
  await waitFor("both keys in authorized_keys", () => {
    const text = existsSync(keys) ? readFileSync(keys, "utf8") : "";
    return text.includes(ctx.pupilUid) && text.includes(ctx.claimUid) && readdirSync(join(ctx.c.root, ".ssh")).every((n) => !n.endsWith(".tmp"));
  });
});
t.after(async (ctx) => {
  await ctx.c?.server.stop();
  ctx.dir?.remove();
});

/**
 * What a request could change: the registry's users (admin flags included)
 * and claims, as the running server reports them (its files are written
 * behind the journal, in their own time), and the lease files and stolen list
 * on disk.
 */
async function state(c: ConsoleServer): Promise<Map<string, string>> {
  const files = snapshot(join(c.root, "share"));
  for (const args of [["users", "list"], ["users", "pending"], ["stolen", "list"]]) {
    const r = await runCli([...args, "--root", c.root]);
    assert.is(r.code, 0, r.stderr);
    files.set(args.join(" "), r.stdout);
  }
  return files;
}

async function assertUnchanged(before: Map<string, string>, c: ConsoleServer, what: string): Promise<void> {
  const after = await state(c);
  assert.ok(sameSnapshot(before, after), `${what} changed the server: ${describeDiff(before, after)}`);
}

/** Every form of the console and fields that, accepted, would change something. */
const FORMS = (c: Ctx): Array<[string, Record<string, string>]> => [
  ["/admin/user/admin", { uid: c.pupilUid, admin: "on" }],
  ["/admin/user/remove", { uid: c.pupilUid }],
  ["/admin/claims/approve", { uid: c.claimUid }],
  ["/admin/claims/reject", { uid: c.claimUid }],
  ["/admin/stolen", { sn: "SHF706002A7", stolen: "1" }],
];

async function post(c: ConsoleServer, path: string, jar: Jar, form: Record<string, string>, origin: string | undefined = c.base): Promise<Response> {
  return fetch(`${c.base}${path}`, {
    method: "POST",
    redirect: "manual",
    headers: { "content-type": "application/x-www-form-urlencoded", cookie: jar.header(), ...(origin ? { origin } : {}) },
    body: new URLSearchParams(form).toString(),
  });
}

withKeys("console-bad: every form without its CSRF token is refused and changes nothing", async (ctx) => {
  await csrfOf(ctx.c.base, "/admin", ctx.admin); // the admin has a CSRF cookie: the form just lacks its twin
  for (const [path, form] of FORMS(ctx)) {
    const before = await state(ctx.c);
    const res = await post(ctx.c, path, ctx.admin, form);
    assert.is(res.status, 403, path);
    assert.match(await res.text(), /expired or came from another site/);
    await assertUnchanged(before, ctx.c, path);
  }
});

withKeys("console-bad: every form with a wrong CSRF token, or with another site's Origin, is refused and changes nothing", async (ctx) => {
  const csrf = await csrfOf(ctx.c.base, "/admin", ctx.admin);
  for (const [path, form] of FORMS(ctx)) {
    const before = await state(ctx.c);
    const wrong = await post(ctx.c, path, ctx.admin, { ...form, csrf: `${csrf.slice(0, -2)}xx` });
    assert.is(wrong.status, 403, `${path} with a wrong token`);
    const foreign = await post(ctx.c, path, ctx.admin, { ...form, csrf }, "http://evil.example");
    assert.is(foreign.status, 403, `${path} from another Origin`);
    assert.match(await foreign.text(), /came from another site/);
    await assertUnchanged(before, ctx.c, path);
  }
});

withKeys("console-bad: every form and page from a non-admin's session (or none) is refused and changes nothing", async (ctx) => {
  const csrf = await csrfOf(ctx.c.base, "/register", ctx.pupil);
  for (const [path, form] of FORMS(ctx)) {
    const before = await state(ctx.c);
    assert.is((await post(ctx.c, path, ctx.pupil, { ...form, csrf })).status, 403, `${path} as a pupil`);
    assert.is((await post(ctx.c, path, new Jar(), { ...form, csrf })).status, 403, `${path} as nobody`);
    await assertUnchanged(before, ctx.c, path);
  }
  for (const path of ["/admin", "/admin/users", "/admin/leases", "/admin/backups", "/metrics", "/admin/live"]) {
    assert.is((await fetch(`${ctx.c.base}${path}`, { headers: { cookie: ctx.pupil.header() } })).status, 403, path);
  }
});

withKeys("console-bad: an admin's own form with its token works (the refusals above are not everything refused)", async (ctx) => {
  const csrf = await csrfOf(ctx.c.base, "/admin/leases", ctx.admin);
  const res = await post(ctx.c, "/admin/stolen", ctx.admin, { sn: "SHF00000009", stolen: "1", csrf, back: "/admin/leases?sn=SHF00000009" });
  assert.is(res.status, 303);
  assert.match(res.headers.get("location") ?? "", /^\/admin\/leases\?sn=SHF00000009&done=/);
  const undo = await post(ctx.c, "/admin/stolen", ctx.admin, { sn: "SHF00000009", stolen: "0", csrf });
  assert.is(undo.status, 303);
});

withKeys("console-bad: a stolen-list page after something that is not a serial number is a bad request answered with the first page, and changes nothing; after the last one it is an empty last page", async (ctx) => {
  const page = (after: string) => fetch(`${ctx.c.base}/admin/leases?after=${encodeURIComponent(after)}`, { headers: { cookie: ctx.admin.header() } });
  const csrf = await csrfOf(ctx.c.base, "/admin/leases", ctx.admin);
  assert.is((await post(ctx.c, "/admin/stolen", ctx.admin, { sn: "SHF00000009", stolen: "1", csrf })).status, 303);
  try {
    const before = await state(ctx.c);
    for (const after of ["shf00000001", "SHF0000000G", "../../etc/passwd", "SHF00000001".repeat(500)]) {
      const res = await page(after);
      assert.is(res.status, 400, after.slice(0, 20));
      const text = await res.text();
      assert.ok(text.includes(`${after.slice(0, 40)}: not a serial number`), text.slice(0, 3000));
      assert.match(text, /1 of 1 stolen serial numbers;/, "the first page of the list instead");
    }
    await assertUnchanged(before, ctx.c, "a bad stolen-list cursor");
    const from = await (await page("SHF00000008")).text();
    assert.match(from, /<a href="\/admin\/leases\?sn=SHF00000009">SHF00000009<\/a><\/td><td>this school<\/td>/);
    assert.match(from, /1 of 1 stolen serial numbers, after SHF00000008;/);
    assert.match(from, /First page<\/a>/);
    const past = await page("ZZZFFFFFFFF");
    assert.is(past.status, 200);
    const text = await past.text();
    assert.match(text, /0 of 1 stolen serial numbers, after ZZZFFFFFFFF;/);
    assert.not.match(text, /Next page/);
  } finally {
    assert.is((await post(ctx.c, "/admin/stolen", ctx.admin, { sn: "SHF00000009", stolen: "0", csrf })).status, 303);
  }
});

/** A multipart upload of the lease form, as a browser sends it. */
async function upload(ctx: Ctx, file: Buffer | string, csrf: string): Promise<Response> {
  const form = new FormData();
  form.set("csrf", csrf);
  form.set("file", new Blob([typeof file === "string" ? file : new Uint8Array(file)]), "leases.sig");
  return fetch(`${ctx.c.base}/admin/leases/import`, { method: "POST", headers: { cookie: ctx.admin.header(), origin: ctx.c.base }, body: form });
}

withKeys("console-bad: a lease upload of 50 MB is refused by its size and changes nothing", async (ctx) => {
  const csrf = await csrfOf(ctx.c.base, "/admin/leases", ctx.admin);
  const before = await state(ctx.c);
  const line = vectors.leaseV1.trim() + "\n";
  const big = Buffer.from(line.repeat(Math.ceil((50 * 1024 * 1024) / line.length)));
  const res = await upload(ctx, big, csrf);
  assert.is(res.status, 413);
  assert.match(await res.text(), /larger than 16 MB/);
  await assertUnchanged(before, ctx.c, "a 50 MB upload");
});

withKeys("console-bad: a lease upload of garbage is refused as not a lease file and changes nothing", async (ctx) => {
  const csrf = await csrfOf(ctx.c.base, "/admin/leases", ctx.admin);
  for (const garbage of [Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 1, 2, 3, 0xff, 0xfe]), "[1, {not json", "hello\nthis is not a lease\n"]) {
    const before = await state(ctx.c);
    const res = await upload(ctx, garbage, csrf);
    assert.is(res.status, 400);
    const text = await res.text();
    assert.ok(/not a lease file/i.test(text) || /0<\/b> imported, <b class="replaced">0<\/b> replaced, <b class="refused">2<\/b> refused/.test(text), text.slice(0, 2000));
    await assertUnchanged(before, ctx.c, "a garbage upload");
  }
});

withKeys("console-bad: a lease upload with a line for another serial number refuses that line, saying so, and stores nothing for it", async (ctx) => {
  const csrf = await csrfOf(ctx.c.base, "/admin/leases", ctx.admin);
  const before = await state(ctx.c);
  const file = JSON.stringify([1, { SHF00000005: vectors.leaseV1 }]);
  const res = await upload(ctx, file, csrf);
  assert.is(res.status, 400);
  const text = await res.text();
  assert.match(text, /<b class="imported">0<\/b> imported/);
  assert.match(text, /<b class="refused">1<\/b> refused/);
  assert.match(text, /the lease is for SHF706002A7, filed under SHF00000005/);
  await assertUnchanged(before, ctx.c, "a line for another serial number");
});

withKeys("console-bad: an upload without its CSRF token, or from another Origin, is refused and changes nothing", async (ctx) => {
  const csrf = await csrfOf(ctx.c.base, "/admin/leases", ctx.admin);
  const before = await state(ctx.c);
  assert.is((await upload(ctx, vectors.leaseV1, "")).status, 403);
  const form = new FormData();
  form.set("csrf", csrf);
  form.set("file", new Blob([vectors.leaseV1]), "leases.sig");
  const foreign = await fetch(`${ctx.c.base}/admin/leases/import`, { method: "POST", headers: { cookie: ctx.admin.header(), origin: "http://evil.example" }, body: form });
  assert.is(foreign.status, 403);
  await assertUnchanged(before, ctx.c, "an upload without its token");
});

t.run();
