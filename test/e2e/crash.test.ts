/**
 * `kill -9` of a server in the middle of a registration burst, and in the
 * middle of a checkpoint: every registration it acknowledged is there after
 * a restart (the journal is replayed), in memory, in its file and in the
 * index the next start reads.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { fakeKey, uidOf } from "../bench/fixtures.js";
import { registryOnDisk } from "../support/registry-files.js";
import { startServer, type ServerProcess } from "../support/server.js";
import { tempDir } from "../support/tmp.js";
import { waitFor } from "../support/wait.js";

const t = suite("crash");
const dir = tempDir("sugar-crash-e2e-");
const running: ServerProcess[] = [];
t.after(async () => {
  for (const s of running) await s.stop("SIGKILL");
  dir.remove();
});

let n = 0;
const args = (root: string) => ["start", "--root", root, "--host", "127.0.0.1", "--httpd-port", "0", "--xmlrpc-port", "0", "--activation-port", "0", "--backup-host", "xs.example"];
const journals = (root: string) => readdirSync(join(root, "home", "registry")).filter((f) => /^\.journal-\d+$/.test(f));

/** Started, its signal handlers in place (the whole server's ready line, not only a component's). */
async function start(root: string): Promise<ServerProcess> {
  const s = await startServer(args(root));
  running.push(s);
  await waitFor("the server's ready line", () => / sugar-server: ready: /.test(s.output()));
  return s;
}

/**
 * Registers new keys, 32 in flight, until `until` says to stop, then kills
 * the server with SIGKILL at once. Returns the uids whose registration was
 * acknowledged (HTTP 200, success OK) before the kill.
 */
async function burstThenKill(s: ServerProcess, until: (acked: number) => boolean): Promise<string[]> {
  const base = `http://127.0.0.1:${s.ports.http}`;
  const acked: string[] = [];
  let stop = false;
  const one = async () => {
    while (!stop) {
      const k = fakeKey();
      try {
        const res = await fetch(`${base}/client/register`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ nickname: "Kid", pubkey: k.line }) });
        const body = (await res.json()) as { success?: string; uid?: string };
        if (res.status === 200 && body.success === "OK") {
          assert.is(body.uid, uidOf(k.body));
          if (!stop) acked.push(body.uid!);
        }
      } catch {
        return; // the server is gone: this one was never acknowledged
      }
    }
  };
  const workers = Array.from({ length: 32 }, one);
  for (;;) {
    if (until(acked.length)) break;
    await new Promise((r) => setTimeout(r, 1));
  }
  s.child.kill("SIGKILL");
  stop = true;
  const known = [...acked]; // what was acknowledged before the kill
  await Promise.all(workers);
  await s.stop();
  return known;
}

async function checkAfterRestart(root: string, acked: readonly string[]): Promise<ServerProcess> {
  const s = await start(root);
  const base = `http://127.0.0.1:${s.ports.http}`;
  for (const uid of acked) {
    const st = (await (await fetch(`${base}/client/status?uid=${uid}`)).json()) as { registered?: boolean };
    assert.is(st.registered, true, `${uid} was acknowledged before the kill`);
  }
  await registryOnDisk(root);
  const files = new Set(readdirSync(join(root, "home", "registry", "users")));
  for (const uid of acked) assert.ok(files.has(uid), `${uid}'s file`);
  return s;
}

t("crash: kill -9 in the middle of a registration burst loses no acknowledged registration", async () => {
  const root = join(dir.path, `root${++n}`);
  const s = await start(root);
  const acked = await burstThenKill(s, (count) => count >= 400);
  assert.ok(acked.length >= 400);
  const again = await checkAfterRestart(root, acked);
  // A clean stop after the restart: the next start reads the index, with the same users.
  assert.is(await again.stop(), 0, again.output().slice(-3000));
  const third = await start(root);
  const users = Number(/registry: ready: (\d+) users/.exec(third.output())?.[1]);
  assert.ok(users >= acked.length, `${users} users, ${acked.length} acknowledged`);
  assert.not.match(third.output(), /reading every registry file/, "the index was current");
  assert.is(await third.stop(), 0, third.output().slice(-3000));
});

t("crash: kill -9 during a checkpoint (its files half written, its journal not yet deleted) loses no acknowledged registration", async () => {
  const root = join(dir.path, `root${++n}`);
  const s = await start(root);
  // A checkpoint is running from the moment it opens the next journal until it deletes the old one.
  const acked = await burstThenKill(s, (count) => count >= 300 && journals(root).length >= 2);
  const left = journals(root);
  assert.ok(left.length >= 2, `killed during a checkpoint: journals ${left.join(", ")}`);
  const again = await checkAfterRestart(root, acked);
  assert.match(again.output(), /replayed \d+ journaled writes/);
  // Every line of the index and of the files is a whole record (nothing torn survives the replay).
  for (const name of readdirSync(join(root, "home", "registry", "users"))) {
    if (name.startsWith(".")) continue;
    const rec = JSON.parse(readFileSync(join(root, "home", "registry", "users", name), "utf8")) as { uid?: string };
    assert.is(rec.uid, name);
  }
  assert.is(await again.stop(), 0, again.output().slice(-3000));
  const third = await start(root);
  const users = Number(/registry: ready: (\d+) users/.exec(third.output())?.[1]);
  assert.ok(users >= acked.length, `${users} users, ${acked.length} acknowledged`);
  assert.is(await third.stop(), 0, third.output().slice(-3000));
});

t.run();
