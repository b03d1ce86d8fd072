import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { defaultEnv, loadConfig, type ConfigEnv } from "../../src/config.js";
import { SugarError } from "../../src/errors.js";
import { parseArgs } from "../../src/cli/args.js";
import { tempDir } from "../support/tmp.js";

function env(dir: string): ConfigEnv {
  return { ...defaultEnv(), home: dir, user: "alice", hostname: "xs", systemFile: join(dir, "etc.conf"), userFile: join(dir, "user.conf"), cwd: dir };
}

function throwsConfig(fn: () => unknown, re: RegExp): void {
  try {
    fn();
  } catch (err) {
    assert.instance(err, SugarError);
    assert.is((err as SugarError).code, "invalid_config");
    assert.match((err as Error).message, re);
    return;
  }
  assert.unreachable("expected an invalid_config error");
}

test("config: defaults match the interface contract", () => {
  const d = tempDir();
  const { config, sources } = loadConfig(new Map(), undefined, env(d.path));
  assert.is(config["httpd-port"], 8000);
  assert.is(config["xmlrpc-port"], 8080);
  assert.is(config["activation-port"], 191);
  assert.is(config.host, "::");
  assert.is(config["identity-model"], "sshkey");
  assert.is(config.root, join(d.path, ".local", "share", "sugar-server"));
  assert.is(config["backup-user"], "alice");
  assert.is(config["jabber-url"], "xs");
  assert.is(sources["httpd-port"], "default");
  d.remove();
});

test("config: layers apply in order, later wins, and sources say where each value came from", () => {
  const d = tempDir();
  const e = env(d.path);
  writeFileSync(e.systemFile, "# system\nhttpd-port = 8001\nxmlrpc-port = 8081\nsite = district-a\n");
  writeFileSync(e.userFile, "xmlrpc-port = 8082\n");
  mkdirSync(join(d.path, "c"));
  writeFileSync(join(d.path, "c", "extra.conf"), "site = school-7\n");
  const { config, sources } = loadConfig(new Map([["root", "data"]]), "c/extra.conf", e);
  assert.is(config["httpd-port"], 8001);
  assert.is(config["xmlrpc-port"], 8082);
  assert.is(config.site, "school-7");
  assert.is(config.root, join(d.path, "data"), "relative paths resolve against the working directory");
  assert.is(sources["httpd-port"], e.systemFile);
  assert.is(sources["xmlrpc-port"], e.userFile);
  assert.is(sources.root, "command line");
  assert.ok(Object.isFrozen(config));
  d.remove();
});

test("config: unknown keys and bad values name the key and the file", () => {
  const d = tempDir();
  const e = env(d.path);
  writeFileSync(e.userFile, "httpd-prot = 8000\n");
  throwsConfig(() => loadConfig(new Map(), undefined, e), /user\.conf:1: unknown option "httpd-prot"/);
  writeFileSync(e.userFile, "httpd-port = eighty\n");
  throwsConfig(() => loadConfig(new Map(), undefined, e), /user\.conf:1: httpd-port = "eighty": must be a whole number/);
  writeFileSync(e.userFile, "identity-model = retina\n");
  throwsConfig(() => loadConfig(new Map(), undefined, e), /identity-model.*sshkey, hardware/);
  writeFileSync(e.userFile, "jabber-url = http://xs:5222\n");
  throwsConfig(() => loadConfig(new Map(), undefined, e), /bare host name/);
  writeFileSync(e.userFile, "backup-user = sugar-backup\n");
  throwsConfig(() => loadConfig(new Map(), undefined, e), /backup-user/);
  writeFileSync(e.userFile, "just words\n");
  throwsConfig(() => loadConfig(new Map(), undefined, e), /expected "key = value"/);
  writeFileSync(e.userFile, "");
  throwsConfig(() => loadConfig(new Map([["httpd-port", "70000"]]), undefined, e), /--httpd-port.*between 0 and 65535/);
  throwsConfig(() => loadConfig(new Map(), "missing.conf", e), /cannot read config file/);
  d.remove();
});

test("config: command-line parsing takes --k v, --k=v, bool flags, and rejects unknown options", () => {
  const a = parseArgs(["start", "--httpd-port", "0", "--root=/srv/x", "--nats-wait", "--config", "f.conf", "extra"]);
  assert.is(a.command, "start");
  assert.equal(a.positionals, ["extra"]);
  assert.is(a.options.get("httpd-port"), "0");
  assert.is(a.options.get("root"), "/srv/x");
  assert.is(a.options.get("nats-wait"), "true");
  assert.is(a.configFile, "f.conf");
  assert.is(parseArgs(["start", "--no-nats-wait"]).options.get("nats-wait"), "false");
  throwsConfig(() => parseArgs(["start", "--bogus", "1"]), /unknown option --bogus/);
  throwsConfig(() => parseArgs(["start", "--httpd-port"]), /needs a value/);
});

test.run();
