/**
 * The admin socket carries admin requests from the CLI to a running server,
 * so who can reach it, or stand in for it, matters: its directory is made
 * this user's alone, the socket is made 0600, and the CLI talks only to a
 * socket its own user made. The tests that need another user's files chown
 * to `nobody` and so need root (CI runs as root; elsewhere they are skipped).
 */
import { chmodSync, chownSync, mkdirSync, statSync, symlinkSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { AdminClient, secureRunDir, startAdminServer } from "../../src/bus/admin.js";
import { MemoryBus } from "../../src/bus/memory.js";
import { silentLogger } from "../../src/log.js";
import { feature, testsNeeding } from "../support/requires.js";
import { tempDir } from "../support/tmp.js";
import { expectError } from "../support/bus-errors.js";

const NOBODY = 65534;
const asRoot = testsNeeding(test, feature(process.getuid?.() === 0, "needs root to make files another user owns"));


test("admin socket: its directory is made 0700 and the socket 0600; the CLI's client talks through it", async () => {
  const dir = tempDir("sugar-admin-");
  const run = join(dir.path, "run");
  mkdirSync(run, { mode: 0o777 });
  chmodSync(run, 0o777);
  const bus = new MemoryBus();
  bus.serve("sugar.school.echo.x", async (d) => d);
  const server = await startAdminServer(join(run, "admin.sock"), bus, silentLogger);
  try {
    assert.is(statSync(run).mode & 0o777, 0o700);
    assert.is(statSync(join(run, "admin.sock")).mode & 0o777, 0o600);
    const client = await AdminClient.connect(join(run, "admin.sock"));
    assert.equal([...(await client.request("sugar.school.echo.x", new Uint8Array([1, 2, 3])))], [1, 2, 3]);
    client.close();
  } finally {
    await server.close();
    await bus.close();
    dir.remove();
  }
});

test("admin socket: no server listening is `unavailable` (the CLI then runs the actors itself)", async () => {
  const dir = tempDir("sugar-admin-");
  try {
    await expectError(AdminClient.connect(join(dir.path, "admin.sock")), "unavailable", /no server/);
  } finally {
    dir.remove();
  }
});

test("admin socket: a run directory that is a symlink (to a directory someone else chose) is refused by the server and by the CLI", async () => {
  const dir = tempDir("sugar-admin-");
  const elsewhere = join(dir.path, "elsewhere");
  mkdirSync(elsewhere, { mode: 0o700 });
  const run = join(dir.path, "run");
  symlinkSync(elsewhere, run);
  const bus = new MemoryBus();
  try {
    await expectError(startAdminServer(join(run, "admin.sock"), bus, silentLogger), "invalid_config", /must be a directory/);
    // A server listening in the symlink's target: the CLI, given the path through the symlink, does not talk to it.
    const server = await startAdminServer(join(elsewhere, "admin.sock"), bus, silentLogger);
    try {
      await expectError(AdminClient.connect(join(run, "admin.sock")), "forbidden");
    } finally {
      await server.close();
    }
  } finally {
    await bus.close();
    dir.remove();
  }
});

asRoot("admin socket: a run directory owned by another user is refused at start", async () => {
  const dir = tempDir("sugar-admin-");
  const run = join(dir.path, "run");
  mkdirSync(run, { mode: 0o700 });
  chownSync(run, NOBODY, NOBODY);
  try {
    await expectError(secureRunDir(run), "invalid_config", /belongs to another user/);
    const bus = new MemoryBus();
    await expectError(startAdminServer(join(run, "admin.sock"), bus, silentLogger), "invalid_config", /belongs to another user/);
    await bus.close();
  } finally {
    dir.remove();
  }
});

asRoot("admin socket: the CLI refuses a socket another user made (someone standing in for the server)", async () => {
  const dir = tempDir("sugar-admin-");
  const run = join(dir.path, "run");
  mkdirSync(run, { mode: 0o700 });
  const path = join(run, "admin.sock");
  const impostor = createServer((s) => s.end());
  await new Promise<void>((resolve) => impostor.listen(path, resolve));
  chownSync(path, NOBODY, NOBODY);
  try {
    await expectError(AdminClient.connect(path), "forbidden", /not a socket this user's server made/);
    // The same socket in a directory others may write is refused too.
    chownSync(path, 0, 0);
    chmodSync(run, 0o777);
    await expectError(AdminClient.connect(path), "forbidden", /not a socket/);
  } finally {
    await new Promise<void>((resolve) => impostor.close(() => resolve()));
    dir.remove();
  }
});

test.run();
