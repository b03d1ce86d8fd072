/**
 * The benchmarks still run: `node dist/test/bench/run.js --smoke` (tiny
 * sizes) as a child process must exit 0 and write a row for every scenario,
 * each with the fields and sane values. A row may be skipped only for a
 * tool that is really absent (nats-server; sshd and its kin for the backup
 * rows), and have no errors unless errors are what it measures
 * (`errors_measured`: the district rows where a keyring is overloaded or
 * killed). The figures themselves are not judged here.
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { SCENARIOS } from "../bench/scenarios/index.js";
import { repoRoot } from "../support/paths.js";
import { toolPath, TOOLS } from "../support/requires.js";
import { tempDir } from "../support/tmp.js";

const LIMIT_MS = 120_000;

function runBench(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(repoRoot, "dist", "test", "bench", "run.js"), ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    // A hung bench fails the test instead of hanging it (the bench's own handler stops its children).
    const timer = setTimeout(() => child.kill("SIGTERM"), LIMIT_MS);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const isCount = (v: unknown) => typeof v === "number" && Number.isFinite(v) && v >= 0;
const isFigure = (v: unknown) => v === null || isCount(v);

test("bench: --smoke runs every scenario and writes the JSON", async () => {
  const dir = tempDir("sugar-bench-smoke-");
  try {
    const out = join(dir.path, "bench.json");
    const r = await runBench(["--smoke", "--out", out]);
    assert.is(r.code, 0, `exit ${r.code}\n${r.stdout}\n${r.stderr.slice(-4000)}`);
    assert.match(r.stdout, /^machine: .+, \d+ cores, [\d.]+ GiB RAM$/m);
    assert.match(r.stdout, /^scenario +unit +value +baseline +ratio +p50 ms +p99 ms +errors/m);

    const rows = JSON.parse(readFileSync(out, "utf8")) as Array<Record<string, unknown>>;
    assert.ok(Array.isArray(rows) && rows.length >= SCENARIOS.length, `${rows.length} rows`);
    const absent = Object.values(TOOLS).filter((t) => toolPath(t) === undefined).map((t) => t.name);
    for (const s of SCENARIOS) {
      assert.ok(
        rows.some((row) => row.scenario === s.id || String(row.scenario).startsWith(`${s.id}/`)),
        `no row for ${s.id}`,
      );
    }
    for (const row of rows) {
      const name = String(row.scenario);
      assert.ok(SCENARIOS.some((s) => name === s.id || name.startsWith(`${s.id}/`)), `unknown scenario ${name}`);
      for (const key of ["scenario", "unit", "value", "baseline", "ratio", "p50_ms", "p99_ms", "errors"]) assert.ok(key in row, `${name}: no ${key}`);
      assert.type(row.unit, "string");
      assert.is(row.failed, undefined, `${name} failed: ${row.failed}`);
      assert.ok(isCount(row.errors), `${name}: errors = ${row.errors}`);
      if (row.skipped !== undefined) {
        assert.ok(absent.some((tool) => String(row.skipped).includes(tool)), `${name} skipped although every tool is installed (absent: ${absent.join(", ") || "none"}): ${row.skipped}`);
        continue;
      }
      assert.ok(isCount(row.value), `${name}: value = ${row.value}`);
      for (const key of ["baseline", "ratio", "p50_ms", "p99_ms"]) assert.ok(isFigure(row[key]), `${name}: ${key} = ${row[key]}`);
      if (row.baseline !== null) assert.ok(isCount(row.ratio), `${name}: a baseline without a ratio`);
      // A row whose errors are its figure (XOs a killed keyring left unanswered) may have some; every other row none.
      if (row.errors_measured !== true) assert.is(row.errors, 0, `${name}: ${row.errors} errors (${row.notes})`);
      if (row.target !== undefined) assert.type(row.met, "boolean");
    }
  } finally {
    dir.remove();
  }
});

test.run();
