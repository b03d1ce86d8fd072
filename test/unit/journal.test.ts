/** The group-commit journal under the registry: batching, replay after a crash, checkpoints. */
import { appendFileSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { Journal } from "../../actors/registry/journal.js";
import { silentLogger } from "../../src/log.js";
import { tempDir } from "../support/tmp.js";

interface Ctx {
  dir: { path: string; remove(): void };
  users: string;
}
const t = suite<Ctx>("journal");

t.before.each((c) => {
  c.dir = tempDir("sugar-journal-");
  c.users = join(c.dir.path, "users");
  mkdirSync(c.users);
});
t.after.each((c) => c.dir.remove());

const journals = (dir: string) => readdirSync(dir).filter((n) => /^\.journal-\d+$/.test(n)).sort();

t("journal: concurrent puts share batches, each is in the journal when it resolves, and its file comes with the next checkpoint", async (c) => {
  const j = new Journal(c.dir.path, { users: c.users }, silentLogger, { checkpointMs: 60_000, idleMs: 60_000, checkpointRecords: 10_000 });
  await j.open();
  const durable: string[] = [];
  await Promise.all(Array.from({ length: 50 }, (_, i) => j.put("users", `u${i}`, `record ${i}\n`, () => void durable.push(`u${i}`))));
  assert.is(durable.length, 50, "onDurable ran for each write before it resolved");
  assert.equal(readdirSync(c.users), [], "the request path writes no record file");
  const [name] = journals(c.dir.path);
  const lines = readFileSync(join(c.dir.path, name!), "utf8").trim().split("\n").map((l) => JSON.parse(l) as { n: string });
  assert.is(lines.length, 50, "every acknowledged write has its journal line");
  assert.equal(
    lines.find((l) => l.n === "u7"),
    { t: "users", n: "u7", d: "record 7\n" },
  );
  await j.checkpoint();
  for (let i = 0; i < 50; i++) assert.is(readFileSync(join(c.users, `u${i}`), "utf8"), `record ${i}\n`);
  assert.equal(
    readdirSync(c.users).filter((n) => n.startsWith(".")),
    [],
    "no temporary file left",
  );
  await j.close();
});

t("journal: a checkpoint appends what it wrote to a current index; a missing index is not started by a checkpoint", async (c) => {
  const j = new Journal(c.dir.path, { users: c.users }, silentLogger, { checkpointMs: 60_000, idleMs: 60_000, checkpointRecords: 10_000 });
  await j.open();
  await j.put("users", "a", { uid: "a" });
  await j.checkpoint();
  assert.not.ok(existsSync(j.index.path), "no index: the registry writes one from the files first");
  assert.is(readFileSync(join(c.users, "a"), "utf8"), '{\n  "uid": "a"\n}\n', "a record's file is its JSON, pretty-printed");
  await j.index.rewrite([["users", "a", { uid: "a" }]]);
  await j.put("users", "b", { uid: "b" });
  assert.is(await j.remove("users", "a"), true);
  await j.checkpoint();
  const r = j.index.read((_t, _n, v) => v);
  assert.ok(r.current, r.current ? "" : r.why);
  assert.equal(r.current ? [...r.records.get("users")!] : [], [["b", { uid: "b" }]]);
  await j.close();
});

t("journal: a checkpoint deletes the journal it covered; close leaves nothing to replay", async (c) => {
  const j = new Journal(c.dir.path, { users: c.users }, silentLogger, { checkpointMs: 60_000, idleMs: 60_000, checkpointRecords: 10_000 });
  await j.open();
  await j.put("users", "a", "A\n");
  const before = journals(c.dir.path);
  await j.checkpoint();
  const after = journals(c.dir.path);
  assert.is(before.length, 1);
  assert.is(after.length, 1);
  assert.is.not(after[0], before[0], "a new, empty journal took over");
  assert.is(readFileSync(join(c.dir.path, after[0]!), "utf8"), "");
  assert.is(await j.remove("users", "a"), true);
  assert.is(await j.remove("users", "a"), false, "removing what is not there is no write");
  assert.ok(existsSync(join(c.users, "a")), "the file goes with the next checkpoint");
  await j.close();
  assert.not.ok(existsSync(join(c.users, "a")));
  const reopened = new Journal(c.dir.path, { users: c.users }, silentLogger);
  assert.is(await reopened.open(), 0, "a clean close leaves nothing to replay");
  await reopened.close();
});

t("journal: open replays a crash's journal (puts and removes, in order), skips a torn last line and bad names", async (c) => {
  // What a crash leaves: journal lines whose files never reached the disk.
  writeFileSync(join(c.users, "gone"), "old\n");
  writeFileSync(join(c.users, "b"), "stale\n");
  const lines = [
    { t: "users", n: "a", d: "A1\n" },
    { t: "users", n: "a", d: "A2\n" },
    { t: "users", n: "gone", d: null },
    { t: "users", n: "../escape", d: "x" },
    { t: "nosuchtable", n: "z", d: "x" },
  ];
  writeFileSync(join(c.dir.path, ".journal-3"), lines.map((l) => JSON.stringify(l) + "\n").join(""));
  writeFileSync(join(c.dir.path, ".journal-4"), JSON.stringify({ t: "users", n: "b", d: "B\n" }) + "\n");
  appendFileSync(join(c.dir.path, ".journal-4"), '{"t":"users","n":"c","d":"tor');
  const j = new Journal(c.dir.path, { users: c.users }, silentLogger);
  assert.is(await j.open(), 4, "three puts/removes from journal 3 and one from journal 4");
  assert.is(readFileSync(join(c.users, "a"), "utf8"), "A2\n", "later lines win");
  assert.is(readFileSync(join(c.users, "b"), "utf8"), "B\n");
  assert.not.ok(existsSync(join(c.users, "gone")));
  assert.not.ok(existsSync(join(c.users, "c")), "the torn line was never acknowledged");
  assert.not.ok(existsSync(join(c.dir.path, "escape")));
  assert.equal(journals(c.dir.path), [".journal-5"], "replayed journals are gone; the new one follows them");
  await j.close();
});

t("journal: without coreutils' sync a checkpoint syncs file by file, and says so once", async (c) => {
  const warnings: string[] = [];
  const log = { ...silentLogger, warn: (m: string) => void warnings.push(m), child: () => log };
  const j = new Journal(c.dir.path, { users: c.users }, log, { checkpointMs: 60_000, idleMs: 60_000, checkpointRecords: 10_000 });
  await j.open();
  const path = process.env.PATH;
  process.env.PATH = join(c.dir.path, "no-such-bin");
  try {
    await j.put("users", "a", "A\n");
    await j.checkpoint();
    await j.put("users", "b", "B\n");
    await j.checkpoint();
  } finally {
    process.env.PATH = path;
  }
  assert.is(warnings.length, 1, warnings.join("\n"));
  assert.match(warnings[0]!, /sync --file-system failed/);
  assert.is(readFileSync(join(c.dir.path, journals(c.dir.path)[0]!), "utf8"), "", "both checkpoints completed");
  await j.close();
});

t("journal: a write after close is refused, not lost silently", async (c) => {
  const j = new Journal(c.dir.path, { users: c.users }, silentLogger);
  await j.open();
  await j.close();
  await j.close();
  try {
    await j.put("users", "late", "x");
    assert.unreachable("put after close");
  } catch (err) {
    assert.match((err as Error).message, /closed/);
  }
  assert.not.ok(existsSync(join(c.users, "late")));
});

t("journal: close ends under writes that keep coming: what it acknowledged is in its file, what came after close() is refused", async (c) => {
  const j = new Journal(c.dir.path, { users: c.users }, silentLogger);
  await j.open();
  await Promise.all(Array.from({ length: 500 }, (_, i) => j.put("users", `a${i}`, "A\n")));
  let closed = false;
  const closing = j.close().then(() => (closed = true));
  const late: Array<Promise<[string, string]>> = [];
  // Before: every put was taken, each kept close's first wait going, and close never ended (bounded here).
  const deadline = performance.now() + 3000;
  for (let i = 0; !closed && performance.now() < deadline; i++) {
    const name = `late${i}`;
    late.push(Promise.resolve().then(() => j.put("users", name, "L\n")).then(() => [name, "ok"], (e: Error) => [name, e.message]));
    await new Promise((r) => setImmediate(r));
  }
  assert.ok(closed, "close ended");
  await closing;
  for (const [name, how] of await Promise.all(late)) {
    if (how === "ok") assert.ok(existsSync(join(c.users, name)), `${name} was acknowledged and is in its file`);
    else assert.match(how, /closed/);
  }
  for (const f of journals(c.dir.path)) assert.is(readFileSync(join(c.dir.path, f), "utf8"), "", `${f}: nothing left to replay`);
});

t.run();
