/**
 * The HTTP scenarios: REST status and register, XML-RPC register, and both
 * REST operations over NATS. The subject is `sugar-server start` as a child
 * process; the REST baseline is baselines/rest.ts, also a child process; both
 * get the same requests from the same generator, alternating in rounds.
 *
 * Every scenario starts its own servers and stops them before the next one:
 * work a server queues behind its replies (the backup actor handles each
 * registration event after the reply went out) must not run into another
 * scenario's measurement. How long a server stays busy after a load, and how
 * long it takes to exit, are reported in the notes.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import serializer from "xmlrpc/lib/serializer.js";
import type { Bench, Scenario } from "../context.js";
import { NATS_ABSENT } from "../context.js";
import { fakeKey, nextSerial, unknownUid, uuid, writeRegistryUsers } from "../fixtures.js";
import { HttpClient, combine, measure, type LoadResult } from "../load.js";
import { startBaseline, startSubject, waitIdle, type Proc } from "../procs.js";
import { ratioAtLeast, skippedRow, throughputRow, type Target } from "../report.js";

export const JABBER = "bench.example";
export const BACKUP_URL = `sugar@${JABBER}:datastore-current`;

/** `sugar-server` options every subject gets: its own root, loopback only, every port ephemeral. */
export function subjectArgs(root: string): string[] {
  return ["--root", root, "--host", "127.0.0.1", "--httpd-port", "0", "--xmlrpc-port", "0", "--activation-port", "0", "--jabber-url", JABBER, "--backup-user", "sugar", "--backup-host", JABBER];
}

type Kind = "embedded" | "nats" | "baseline";

interface Server {
  kind: Kind;
  proc: Proc;
  rest: HttpClient;
  xmlrpc?: HttpClient;
  /** uids registered before the start. */
  known: string[];
  /** Credentials of users registered over REST (the login scenario). */
  credentials?: string[];
  /** Cookie headers of browsers registered on /register (the auth-verify scenario). */
  cookies?: string[];
  /** Still working off a load when last checked: it is killed rather than waited for. */
  stillBusy?: boolean;
}

const OK = Buffer.from('"success":"OK"');
const REGISTERED = Buffer.from('"registered":true');
const NOT_REGISTERED = Buffer.from('"registered":false');
const XML_OK = Buffer.from("<name>success</name><value><string>OK</string>");
const TOKEN = Buffer.from('"X-Sugar-Auth":');

const preview = (b: Buffer) => JSON.stringify(b.toString("utf8", 0, Math.min(b.length, 200)));

function registerOp(client: HttpClient): () => Promise<void> {
  return async () => {
    const k = fakeKey();
    const body = JSON.stringify({ nickname: "Bench", pubkey: k.line, machine_sn: nextSerial(), machine_uuid: uuid() });
    const r = await client.post("/client/register", body, "application/json");
    if (r.status !== 200 || r.body.indexOf(OK) < 0) throw new Error(`register: HTTP ${r.status} ${preview(r.body)}`);
  };
}

function xmlrpcRegisterOp(client: HttpClient): () => Promise<void> {
  return async () => {
    const xml = serializer.serializeMethodCall("register", [nextSerial(), "Bench", uuid(), fakeKey().body]);
    const r = await client.post("/", xml, "text/xml");
    if (r.status !== 200 || r.body.indexOf(XML_OK) < 0) throw new Error(`register(): HTTP ${r.status} ${preview(r.body)}`);
  };
}

/** Alternates a registered uid and an unknown one; checks the answer says which. */
function statusOp(client: HttpClient, known: readonly string[]): (i: number) => Promise<void> {
  const unknown = Array.from({ length: 1024 }, unknownUid);
  return async (i) => {
    const isKnown = (i & 1) === 0;
    const j = i >>> 1;
    const uid = isKnown ? known[j % known.length]! : unknown[j & 1023]!;
    const r = await client.get(`/client/status?uid=${uid}`);
    if (r.status !== 200) throw new Error(`status: HTTP ${r.status} ${preview(r.body)}`);
    if (r.body.indexOf(isKnown ? REGISTERED : NOT_REGISTERED) < 0) throw new Error(`status of ${isKnown ? "a registered" : "an unknown"} uid: ${preview(r.body)}`);
  };
}

/**
 * Starts a server for one scenario, with `users` users registered before the
 * start (written as registry files for the subject, given as a list to the
 * baseline): setting up generates no registration events.
 */
async function startServer(bench: Bench, kind: Kind, users: number): Promise<Server> {
  const { concurrency } = bench.sizes;
  let proc: Proc;
  let known: string[] = [];
  if (kind === "baseline") {
    const dir = bench.dir("baseline-rest");
    known = Array.from({ length: users }, unknownUid);
    const list = join(dir, "known.txt");
    writeFileSync(list, known.join("\n") + "\n");
    proc = await startBaseline("rest", ["--dir", dir, "--jabber-url", JABBER, "--backup-url", BACKUP_URL, "--known", list], ["baseline"]);
  } else {
    const root = bench.dir(`school-${kind}`);
    if (users > 0) known = writeRegistryUsers(root, users);
    const args = subjectArgs(root);
    if (kind === "nats") {
      const nats = await bench.nats();
      if (!nats) throw new Error(NATS_ABSENT);
      args.push("--nats", nats.url);
    }
    proc = await startSubject(kind, ["start", ...args], ["http", "xmlrpc"]);
  }
  bench.onCleanup(() => proc.stop(bench.sizes.settleMs));
  const rest = new HttpClient("127.0.0.1", kind === "baseline" ? proc.ports.baseline! : proc.ports.http!, concurrency);
  const s: Server = { kind, proc, rest, known };
  if (kind !== "baseline") s.xmlrpc = new HttpClient("127.0.0.1", proc.ports.xmlrpc!, concurrency);
  bench.progress(`${proc.name}: ready in ${proc.readyMs.toFixed(0)} ms with ${users} users`);
  return s;
}

/**
 * Closes the clients and stops the servers, each given settleMs to exit (or
 * killed at once when it was still busy with an earlier load); says how long
 * each took when that was slow.
 */
async function stopServers(bench: Bench, servers: readonly Server[]): Promise<string> {
  const notes: string[] = [];
  for (const s of servers) {
    s.rest.close();
    s.xmlrpc?.close();
    await s.proc.stop(s.stillBusy ? 0 : bench.sizes.settleMs);
    if (s.stillBusy) notes.push(`${s.proc.name} killed while still busy`);
    else if (s.proc.killed) notes.push(`${s.proc.name} had not exited ${(bench.sizes.settleMs / 1000).toFixed(0)} s after SIGTERM (killed)`);
    else if ((s.proc.stopMs ?? 0) >= 1000) notes.push(`${s.proc.name} took ${((s.proc.stopMs ?? 0) / 1000).toFixed(1)} s to exit after SIGTERM`);
  }
  return notes.map((n) => `; ${n}`).join("");
}

type Operation = "status" | "register" | "xmlrpc" | "login" | "verify";

function operation(s: Server, op: Operation): (i: number) => Promise<void> {
  switch (op) {
    case "status":
      return statusOp(s.rest, s.known);
    case "register":
      return registerOp(s.rest);
    case "xmlrpc":
      return xmlrpcRegisterOp(s.xmlrpc!);
    case "login":
      return loginOp(s.rest, s.credentials ?? []);
    case "verify":
      return verifyOp(s.rest, s.cookies ?? []);
  }
}

/** What a proxy asks before every request to a school web service: GET /auth/verify with the browser's cookies. */
function verifyOp(client: HttpClient, cookies: readonly string[]): (i: number) => Promise<void> {
  return async (i) => {
    const r = await client.get("/auth/verify", { Cookie: cookies[i % cookies.length]! });
    if (r.status !== 200) throw new Error(`verify: HTTP ${r.status} ${preview(r.body)}`);
  };
}

/** Registers `n` browsers the way a phone does (the page, then its form), keeping each one's cookies. */
async function registerBrowsers(s: Server, n: number): Promise<void> {
  s.cookies = [];
  const base = `http://127.0.0.1:${s.proc.ports.http}`;
  for (let i = 0; i < n; i++) {
    const page = await fetch(`${base}/register`);
    const csrf = /name="csrf" value="([^"]+)"/.exec(await page.text())?.[1] ?? "";
    const jar = page.headers.getSetCookie().map((c) => c.split(";")[0]!);
    const res = await fetch(`${base}/register`, {
      method: "POST",
      redirect: "manual",
      headers: { "content-type": "application/x-www-form-urlencoded", origin: base, cookie: jar.join("; ") },
      body: new URLSearchParams({ nickname: `Phone ${i}`, csrf }).toString(),
    });
    const got = res.headers.getSetCookie().map((c) => c.split(";")[0]!).filter((c) => /^sugar_(device|session)=./.test(c));
    if (res.status !== 303 || got.length !== 2) throw new Error(`browser registration: HTTP ${res.status}`);
    s.cookies.push(got.join("; "));
  }
}

/** Logs in with the credentials registration gave, round robin; checks the answer carries the token headers. */
function loginOp(client: HttpClient, credentials: readonly string[]): (i: number) => Promise<void> {
  const bodies = credentials.map((credential) => JSON.stringify({ credential }));
  return async (i) => {
    const r = await client.post("/client/login", bodies[i % bodies.length]!, "application/json");
    if (r.status !== 200 || r.body.indexOf(TOKEN) < 0) throw new Error(`login: HTTP ${r.status} ${preview(r.body)}`);
  };
}

/** Registers `n` users over REST, keeping their uids and credentials. */
async function registerWithCredentials(s: Server, n: number): Promise<void> {
  s.credentials = [];
  for (let i = 0; i < n; i++) {
    const k = fakeKey();
    const r = await s.rest.post("/client/register", JSON.stringify({ nickname: "Bench", pubkey: k.line }), "application/json");
    const body = JSON.parse(r.body.toString("utf8")) as { uid?: string; credential?: string };
    if (r.status !== 200 || !body.credential || !body.uid) throw new Error(`register for a credential: HTTP ${r.status} ${preview(r.body)}`);
    s.known.push(body.uid);
    s.credentials.push(body.credential);
  }
}

/** How long each server stayed busy once a load had ended (work queued behind the replies), up to settleMs. */
async function afterLoad(bench: Bench, servers: readonly Server[]): Promise<string> {
  const notes: string[] = [];
  for (const s of servers) {
    const w = await waitIdle(s.proc, bench.sizes.settleMs);
    s.stillBusy = !w.idle;
    if (!w.idle) notes.push(`${s.proc.name} was still busy ${(w.busyMs / 1000).toFixed(1)} s after the load ended (gave up waiting)`);
    else if (w.busyMs >= 300) notes.push(`${s.proc.name} stayed busy ${(w.busyMs / 1000).toFixed(1)} s after the load ended`);
  }
  return notes.map((n) => `; ${n}`).join("");
}

/**
 * Measures operations side by side, alternating in rounds, each with the
 * scenario's concurrency, once every server is idle; one result per pair,
 * in order. Only for loads that leave nothing behind, or for one server:
 * a server working off its load would slow the other's rounds.
 */
async function sideBySide(bench: Bench, pairs: ReadonlyArray<[Operation, Server]>): Promise<{ results: LoadResult[]; after: string }> {
  const { concurrency, warmupMs, measureMs, rounds, settleMs } = bench.sizes;
  const distinct = [...new Set(pairs.map(([, s]) => s))];
  for (const s of distinct) await waitIdle(s.proc, settleMs);
  bench.progress(`${pairs.map(([op, s]) => `${op} on ${s.proc.name}`).join(" vs ")}: ${concurrency} in flight, ${measureMs} ms each in ${rounds} round(s)`);
  const results = await measure({ warmupMs, durationMs: measureMs, rounds }, pairs.map(([op, s]) => ({ concurrency, op: operation(s, op), serverCpu: s.proc.cpuSeconds })));
  return { results, after: await afterLoad(bench, distinct) };
}

/**
 * Measures a load on one server, then stops that server before anything
 * else is measured: registrations leave work behind (events), which must not
 * slow down the next contender.
 */
async function measureThenStop(bench: Bench, op: Operation, s: Server): Promise<{ result: LoadResult; after: string }> {
  const { concurrency, warmupMs, measureMs, settleMs } = bench.sizes;
  await waitIdle(s.proc, settleMs);
  bench.progress(`${op} on ${s.proc.name}: ${concurrency} in flight for ${measureMs} ms`);
  const [result] = await measure({ warmupMs, durationMs: measureMs }, [{ concurrency, op: operation(s, op), serverCpu: s.proc.cpuSeconds }]);
  const after = await afterLoad(bench, [s]);
  return { result: result!, after: after + (await stopServers(bench, [s])) };
}

/**
 * For loads that leave work behind: each round starts a fresh server of each
 * kind and measures them one after the other, stopping each before the next
 * starts, in ABBA order (A B, then B A, ...) so that neither always runs on a
 * disk still writing back the other's files. The rounds of each are pooled.
 */
async function inTurns(bench: Bench, op: Operation, start: { subject: () => Promise<Server>; baseline: () => Promise<Server> }): Promise<{ subject: LoadResult; baseline: LoadResult; after: string }> {
  const parts = { subject: [] as LoadResult[], baseline: [] as LoadResult[] };
  const notes = new Set<string>();
  for (let round = 0; round < bench.sizes.rounds; round++) {
    const order = round % 2 === 0 ? (["baseline", "subject"] as const) : (["subject", "baseline"] as const);
    for (const kind of order) {
      const m = await measureThenStop(bench, op, await start[kind]());
      parts[kind].push(m.result);
      if (m.after) notes.add(m.after);
    }
  }
  return { subject: combine(parts.subject), baseline: combine(parts.baseline), after: [...notes].join("") };
}

const IN_TURNS = (rounds: number) => `measured in turns in this run (${rounds} round(s), ABBA order, a fresh server each time)`;

const ALTERNATELY = "measured alternately in this run";

export const status: Scenario = {
  id: "status",
  what: "GET /client/status req/s, embedded bus, vs a bare node:http answering from a Map",
  async run(bench) {
    const { users } = bench.sizes;
    const subject = await startServer(bench, "embedded", users);
    const baseline = await startServer(bench, "baseline", users);
    const m = await sideBySide(bench, [
      ["status", subject],
      ["status", baseline],
    ]);
    const stopped = await stopServers(bench, [subject, baseline]);
    // An absolute p99 on a shared 2-core VM measures the neighbours: the target is relative to the bare baseline's p99 in the same run.
    const target: Target = { text: "ratio >= 0.5, p99 <= 1.2 x baseline p99", ok: (r) => r.ratio !== null && r.ratio >= 0.5 && r.p99_ms !== null && r.baseline_p99_ms !== undefined && r.p99_ms <= 1.2 * r.baseline_p99_ms };
    return [throughputRow("status", m.results[0]!, m.results[1], target, `${users} users registered before the start; half the queries for them, half for unknown uids; ${ALTERNATELY}${m.after}${stopped}`)];
  },
};

export const register: Scenario = {
  id: "register",
  what: "POST /client/register req/s, a new key each, vs a bare node:http writing one durable file per request",
  async run(bench) {
    const m = await inTurns(bench, "register", { subject: () => startServer(bench, "embedded", 0), baseline: () => startServer(bench, "baseline", 0) });
    return [
      throughputRow("register", m.subject, m.baseline, ratioAtLeast(2.0), `baseline: open temp, write, fsync, close, rename per request; ${IN_TURNS(bench.sizes.rounds)}${m.after}`),
    ];
  },
};

export const registerXmlrpc: Scenario = {
  id: "register-xmlrpc",
  what: "XML-RPC register() req/s vs REST register on the same server",
  async run(bench) {
    const subject = await startServer(bench, "embedded", 0);
    const m = await sideBySide(bench, [
      ["xmlrpc", subject],
      ["register", subject],
    ]);
    const stopped = await stopServers(bench, [subject]);
    return [throughputRow("register-xmlrpc", m.results[0]!, m.results[1], ratioAtLeast(0.8), `baseline: REST register on the same server, ${ALTERNATELY} (both pay for the work registrations leave behind)${m.after}${stopped}`)];
  },
};

export const registerNats: Scenario = {
  id: "register-nats",
  what: "REST register and status over NatsBus vs the same on the embedded bus",
  async run(bench) {
    const target = ratioAtLeast(0.5);
    if (!bench.natsAvailable) return [skippedRow("register-nats/register", NATS_ABSENT, target), skippedRow("register-nats/status", NATS_ABSENT, target)];
    const { users } = bench.sizes;
    const nats = await startServer(bench, "nats", users);
    const embedded = await startServer(bench, "embedded", users);
    // Status first and side by side: it leaves nothing behind. Registrations do, so each server
    // registers on its own and is stopped before the other starts.
    const st = await sideBySide(bench, [
      ["status", nats],
      ["status", embedded],
    ]);
    const emb = await measureThenStop(bench, "register", embedded);
    const nat = await measureThenStop(bench, "register", nats);
    return [
      throughputRow("register-nats/register", nat.result, emb.result, target, `baseline: register on the embedded bus, measured one after the other in this run${nat.after}${emb.after}`),
      throughputRow("register-nats/status", st.results[0]!, st.results[1], target, `baseline: status on the embedded bus, ${ALTERNATELY}; ${users} users registered before the start${st.after}`),
    ];
  },
};

export const login: Scenario = {
  id: "login",
  what: "POST /client/login logins/s with a credential vs GET /client/status on the same server",
  async run(bench) {
    const subject = await startServer(bench, "embedded", bench.sizes.users);
    const n = Math.min(200, Math.max(20, bench.sizes.users / 10));
    await registerWithCredentials(subject, n);
    const m = await sideBySide(bench, [
      ["login", subject],
      ["status", subject],
    ]);
    const stopped = await stopServers(bench, [subject]);
    return [
      throughputRow(
        "login",
        m.results[0]!,
        m.results[1],
        undefined,
        `${n} users logging in with the credential their registration gave, round robin; baseline: status on the same server, ${ALTERNATELY}${m.after}${stopped}`,
      ),
    ];
  },
};

export const authVerify: Scenario = {
  id: "auth-verify",
  what: "GET /auth/verify req/s (forward auth, a browser's session cookie) vs GET /client/status on the same server",
  async run(bench) {
    const subject = await startServer(bench, "embedded", bench.sizes.users);
    const n = Math.min(50, Math.max(10, bench.sizes.users / 20));
    await registerBrowsers(subject, n);
    const m = await sideBySide(bench, [
      ["verify", subject],
      ["status", subject],
    ]);
    const stopped = await stopServers(bench, [subject]);
    return [
      throughputRow(
        "auth-verify",
        m.results[0]!,
        m.results[1],
        undefined,
        `${n} browsers registered on /register, each verify with its sugar_device and sugar_session cookies, round robin; baseline: status on the same server, ${ALTERNATELY}${m.after}${stopped}`,
      ),
    ];
  },
};
