/**
 * Long CLI imports (the admin console issue, part 4): `leases import` of a
 * deployment's 100,000 leases, sent to the lease actor in slices, finishes
 * well under a minute and, when standard error is not a terminal, reports a
 * line per 10%; a delegation file's refusals keep the whole file's line
 * numbers although it travels in slices.
 */
import { readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { runCli } from "../support/server.js";
import { vectors } from "../support/olpc-fixtures.js";
import { tempDir } from "../support/tmp.js";

/** The vector v1 lease, filed under n other serial numbers (the lease actor checks form, not signatures, on import). */
function leaseFile(n: number): string {
  const line = vectors.leaseV1.trim();
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(line.replace(vectors.v1.sn, `SHF${i.toString(16).toUpperCase().padStart(8, "0")}`));
  return out.join("\n") + "\n";
}

test("console-import: 100,000 leases import, every one stored, with a progress line per 10% on a non-terminal", async () => {
  const d = tempDir();
  try {
    const file = join(d.path, "leases.txt");
    writeFileSync(file, leaseFile(100_000));
    const r = await runCli(["leases", "import", file, "--root", join(d.path, "root")]);
    assert.is(r.code, 0, r.stderr);
    assert.is(r.stdout, "100000 imported, 0 replaced, 0 refused\n");
    const lines = r.stderr.split("\n").filter((l) => /leases, [\d,]+\/s/.test(l));
    assert.is(lines.length, 10, r.stderr);
    assert.match(lines[0]!, /^ 10% [\d,]+\/100,000 leases, [\d,]+\/s; \d+ imported, 0 replaced, 0 refused$/);
    assert.match(lines[9]!, /^100% 100,000\/100,000 leases/);
    // How long it takes is the bench's business (timed by hand in the closing note), never an assertion here.
    const stored = readdirSync(join(d.path, "root", "share", "leases")).reduce((n, b) => n + readdirSync(join(d.path, "root", "share", "leases", b)).length, 0);
    assert.is(stored, 100_000);
  } finally {
    d.remove();
  }
});

test("console-import: a delegation file sent in slices still names the whole file's line in a refusal", async () => {
  const d = tempDir();
  try {
    const root = join(d.path, "root");
    const file = join(d.path, "del.txt");
    // 2,000 broken lines (more than one slice), then one more: its number is the file's.
    const bad = "del01: SHF00000000 not a delegation at all, padded to take room ".padEnd(600, "x");
    writeFileSync(file, Array.from({ length: 2001 }, () => bad).join("\n") + "\n");
    writeFileSync(join(d.path, "master.key01"), `key01: ${vectors.masterKey01}\n`);
    const init = await runCli(["keyring", "init", "--root", root]);
    assert.is(init.code, 0, init.stderr);
    const trust = await runCli(["keyring", "trust", join(d.path, "master.key01"), "--root", root]);
    assert.is(trust.code, 0, trust.stderr);
    const r = await runCli(["keyring", "import-delegations", file, "--root", root]);
    assert.is(r.code, 1);
    assert.match(r.stdout, /^0 imported, 0 replaced, 2001 refused\n/);
    assert.match(r.stdout, /\nrefused line 2001: /);
    assert.match(r.stderr, /100% 2,001\/2,001 delegations/);
  } finally {
    d.remove();
  }
});

test.run();
