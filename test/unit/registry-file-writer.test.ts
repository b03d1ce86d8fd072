/** The checkpoint's record files, written by a worker thread; the event loop writes them when the thread is gone. */
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { FileWriter } from "../../actors/registry/file-writer.js";
import { captureLogger } from "../support/log.js";
import { waitFor } from "../support/wait.js";
import { tempDir } from "../support/tmp.js";

interface Ctx {
  dir: { path: string; remove(): void };
  users: string;
}
const t = suite<Ctx>("registry file writer");

t.before.each((c) => {
  c.dir = tempDir("sugar-file-writer-");
  c.users = join(c.dir.path, "users");
  mkdirSync(c.users);
});
t.after.each((c) => c.dir.remove());

t("registry file writer: writes new files, replaces existing ones whole, removes the null ones, leaves no temporary file", async (c) => {
  const { log } = captureLogger();
  const w = new FileWriter(log);
  writeFileSync(join(c.users, "old"), "old record\n");
  writeFileSync(join(c.users, "gone"), "to be removed\n");
  await w.write([
    [c.users, "a", "record a\n"],
    [c.users, "old", "new record\n"],
    [c.users, "gone", null],
    [c.users, "never-there", null],
  ]);
  assert.equal(readdirSync(c.users).sort(), ["a", "old"]);
  assert.is(readFileSync(join(c.users, "a"), "utf8"), "record a\n");
  assert.is(readFileSync(join(c.users, "old"), "utf8"), "new record\n");
  await w.close();
});

t("registry file writer: a failing job rejects with its errno code and the jobs before it are done; the thread keeps serving", async (c) => {
  const { log } = captureLogger();
  const w = new FileWriter(log);
  const missing = join(c.dir.path, "no-such-dir");
  const err = await w.write([
    [c.users, "first", "1\n"],
    [missing, "x", "2\n"],
    [c.users, "after", "3\n"],
  ]).then(
    () => undefined,
    (e: NodeJS.ErrnoException) => e,
  );
  assert.ok(err, "the write failed");
  assert.is(err!.code, "ENOENT");
  assert.ok(existsSync(join(c.users, "first")), "the job before the failure was done");
  assert.not.ok(existsSync(join(c.users, "after")), "nothing after the failure was written");
  assert.not.ok(existsSync(missing), "no directory was made for it");
  await w.write([[c.users, "next", "4\n"]]);
  assert.is(readFileSync(join(c.users, "next"), "utf8"), "4\n", "the next checkpoint's files are written");
  await w.close();
});

t("registry file writer: a thread that dies fails the write it held, and later writes are done on the event loop (with one warning)", async (c) => {
  const script = join(c.dir.path, "dies.mjs");
  writeFileSync(script, 'import { parentPort } from "node:worker_threads";\nparentPort.on("message", () => process.exit(3));\n');
  const { log, text } = captureLogger();
  const w = new FileWriter(log, pathToFileURL(script));
  const err = await w.write([[c.users, "held", "1\n"]]).then(
    () => undefined,
    (e: Error) => e,
  );
  assert.ok(err, "the write the thread held failed");
  assert.match(err!.message, /exited \(3\)/);
  await w.write([[c.users, "later", "2\n"]]);
  await w.write([[c.users, "later2", "3\n"]]);
  assert.is(readFileSync(join(c.users, "later"), "utf8"), "2\n");
  assert.is(readFileSync(join(c.users, "later2"), "utf8"), "3\n");
  assert.is(text().match(/writing record files on the event loop/g)?.length, 1, "one warning, not one per checkpoint");
  assert.not.match(text(), new RegExp(c.dir.path.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")), "no file path in the log");
  await w.close();
});

t("registry file writer: a thread that cannot load fails no file and falls back at once", async (c) => {
  const { log, text } = captureLogger();
  const w = new FileWriter(log, pathToFileURL(join(c.dir.path, "missing-worker.mjs")));
  const first = await w.write([[c.users, "a", "1\n"]]).then(
    () => "ok",
    () => "failed",
  );
  if (first === "failed") await w.write([[c.users, "a", "1\n"]]);
  assert.is(readFileSync(join(c.users, "a"), "utf8"), "1\n", "written on the event loop");
  assert.match(text(), /writing record files on the event loop/);
  await w.close();
});

t("registry file writer: close while a write is in the thread waits for it: the write resolves and no file is left torn", async (c) => {
  const { log } = captureLogger();
  const w = new FileWriter(log);
  const record = "x".repeat(2000);
  const jobs = Array.from({ length: 5000 }, (_, i): [string, string, string] => [c.users, `r${i}`, record]);
  let settled: string | undefined;
  const writing = w.write(jobs).then(
    () => (settled = "resolved"),
    (e: Error) => (settled = `rejected: ${e.message}`),
  );
  await waitFor("the thread writing", () => readdirSync(c.users).length > 0);
  await w.close();
  // Before: the thread was terminated mid-write; the write never settled (the process could exit under it) and a file was cut short.
  await waitFor("the write settled", () => settled, 5000);
  await writing;
  assert.is(settled, "resolved");
  const names = readdirSync(c.users);
  assert.is(names.length, jobs.length);
  assert.equal(names.filter((n) => statSync(join(c.users, n)).size !== record.length), [], "no file cut short");
});

t.run();
