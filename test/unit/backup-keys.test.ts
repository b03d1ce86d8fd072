/** The authorized_keys line, shell quoting of the forced command, and telling the server's lines from others. */
import { spawnSync } from "node:child_process";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { appendFileSync, readFileSync } from "node:fs";
import { AuthorizedKeys, classifyLine, forcedCommandText, keyLine, shellWord, type ForcedCommand } from "../../actors/backup/authorized-keys.js";
import { silentLogger } from "../../src/log.js";
import { tempDir } from "../support/tmp.js";
import { waitFor } from "../support/wait.js";
import { classifyOriginalCommand, parseCommandArgs } from "../../actors/backup/command.js";
import { parseSpoolEvent } from "../../actors/backup/events.js";
import { SugarError } from "../../src/errors.js";

const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHCfCpPd3Ddw6CKU0Rd24+9kfN8bN2SyQkxvQWu2Cc0d";
const UID = "7b7d1a3f4e1f2f5b0e6f8b8bb0d5b4f5f6b3c1d2"; // any 40 hex; classifyLine recomputes the real one
const fc: ForcedCommand = { node: "/usr/bin/node", script: "/opt/sugar-server/bin/sugar-backup-command.js", root: "/srv/sugar", rrsync: "/usr/bin/rrsync" };

function realUid(): string {
  const body = KEY.split(" ")[1]!;
  return spawnSync("sh", ["-c", `printf %s '${body}' | sha1sum`], { encoding: "utf8" }).stdout.slice(0, 40);
}

test("backup: the key line is restrict + the forced command + the canonical key", () => {
  assert.is(
    keyLine(fc, UID, KEY),
    `restrict,command="/usr/bin/node /opt/sugar-server/bin/sugar-backup-command.js --root /srv/sugar --rrsync /usr/bin/rrsync ${UID}" ${KEY}`,
  );
});

test("backup: shell words: plain paths as they are, others single-quoted, quotes/backslashes/control characters refused", () => {
  assert.is(shellWord("/srv/sugar-server_1.0/a+b@c:d,e=f%g", "x"), "/srv/sugar-server_1.0/a+b@c:d,e=f%g");
  assert.is(shellWord("/srv/my school", "x"), "'/srv/my school'");
  assert.is(shellWord("/srv/it's $HOME `x`", "x"), `'/srv/it'\\''s $HOME \`x\`'`);
  const echoed = spawnSync("sh", ["-c", `printf %s ${shellWord("/srv/it's $HOME `x` ; rm", "x")}`], { encoding: "utf8" }).stdout;
  assert.is(echoed, "/srv/it's $HOME `x` ; rm", "sh reads the word back unchanged");
  for (const bad of ['/a"b', "/a\\b", "/a\nb", "/a\tb", ""]) assert.throws(() => shellWord(bad, "root"), (e: unknown) => e instanceof SugarError && e.code === "invalid_config");
  assert.throws(() => forcedCommandText({ ...fc, rrsync: '/usr/bin/rr"sync' }, UID), /rrsync-path/);
  assert.throws(() => forcedCommandText(fc, "../../etc"), /uid/);
});

test("backup: lines the server builds are recognised; hand-made and tampered lines are foreign", () => {
  const uid = realUid();
  const mine = keyLine(fc, uid, KEY);
  assert.is(classifyLine(fc, mine), "server");
  assert.is(classifyLine(fc, ""), "blank");
  assert.is(classifyLine(fc, "   "), "blank");
  assert.is(classifyLine(fc, KEY), "foreign");
  assert.is(classifyLine(fc, `${KEY} admin@laptop`), "foreign");
  assert.is(classifyLine(fc, "# comment"), "foreign");
  assert.is(classifyLine(fc, mine.replace("restrict,", "")), "foreign");
  assert.is(classifyLine(fc, mine.replace("restrict,", "restrict,port-forwarding,")), "foreign");
  assert.is(classifyLine(fc, keyLine(fc, "0".repeat(40), KEY)), "foreign", "a key sent to another uid's directory");
  assert.is(classifyLine(fc, mine + " comment"), "foreign");
  assert.is(classifyLine(fc, mine.replace("/usr/bin/node", "/opt/node-22/bin/node")), "stale", "the server's own line from an older install");
  assert.is(classifyLine(fc, mine.replace("sugar-backup-command.js", "evil.js")), "foreign");
});

test("backup: the forced command's arguments and SSH_ORIGINAL_COMMAND are checked", () => {
  const uid = "a".repeat(40);
  assert.equal(parseCommandArgs(["--root", "/r", "--rrsync", "/usr/bin/rrsync", uid]), { root: "/r", rrsync: "/usr/bin/rrsync", uid });
  assert.throws(() => parseCommandArgs(["--root", "/r", "--rrsync", "/usr/bin/rrsync"]), /usage/);
  assert.throws(() => parseCommandArgs(["--root", "r", "--rrsync", "/usr/bin/rrsync", uid]), /absolute/);
  assert.throws(() => parseCommandArgs(["--root", "/r", "--rrsync", "/usr/bin/rrsync", uid, "x"]), /usage/);
  assert.throws(() => parseCommandArgs(["--root", "/r", "--rrsync", "/usr/bin/rrsync", "A".repeat(40)]), /uid/);
  assert.equal(classifyOriginalCommand("rsync --server -logDtprze.iLsfxCIvu . datastore-current"), { ok: true, direction: "backup" });
  assert.equal(classifyOriginalCommand("rsync --server --sender -logDtprze.iLsfxCIvu . datastore-latest/"), { ok: true, direction: "restore" });
  for (const bad of [undefined, "", "true", "sh", "rsync", "rsync --daemon", "/usr/bin/rsync --server . x", "rsync --server;id", "rsync --server . x\nid"]) {
    assert.is(classifyOriginalCommand(bad).ok, false, JSON.stringify(bad));
  }
});

test("backup: spool events are checked field by field", () => {
  const good = { uid: "a".repeat(40), direction: "backup", exit: 0, started: "2024-01-02T03:04:05.678Z", finished: "2024-01-02T03:04:06.000Z" };
  assert.equal(parseSpoolEvent(JSON.stringify(good)), good);
  const bad: Array<[string, unknown]> = [
    ["not json", "{"],
    ["an array", []],
    ["a bad uid", { ...good, uid: "../x" }],
    ["a bad direction", { ...good, direction: "sideways" }],
    ["a bad exit", { ...good, exit: 256 }],
    ["a fractional exit", { ...good, exit: 1.5 }],
    ["a bad time", { ...good, finished: "yesterday" }],
  ];
  for (const [what, v] of bad) assert.throws(() => parseSpoolEvent(typeof v === "string" ? v : JSON.stringify(v)), /spool event|uid/, what);
});

test("backup: the server's own rewrites are never taken for hand edits; a real one is, once", async () => {
  const dir = tempDir("sugar-ak-");
  const warnings: string[] = [];
  const log = { ...silentLogger, warn: (m: string) => void warnings.push(m), child: () => log };
  const keys = new AuthorizedKeys(dir.path, { ...fc, root: dir.path }, log);
  try {
    await keys.init();
    keys.watch();
    const uid = realUid();
    for (let i = 0; i < 20; i++) await keys.update((m) => (i % 2 === 0 ? m.set(uid, KEY) : m.delete(uid)));
    appendFileSync(keys.path, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHCfCpPd3Ddw6CKU0Rd24+9kfN8bN2SyQkxvQWu2Cc0d intruder\n");
    await waitFor("the hand edit to be undone", () => !readFileSync(keys.path, "utf8").includes("intruder"));
    assert.equal(warnings.filter((w) => /changed outside the server/.test(w)).length, 1, warnings.join("\n"));
    assert.ok(readFileSync(keys.path, "utf8") === "", "the 20th change removed the only key");
  } finally {
    await keys.close();
    dir.remove();
  }
});

test.run();
