/**
 * Honest skips (test/support/requires.ts): a test whose tool is missing is
 * counted by uvu as skipped, never as passed, and under CI=true it fails.
 * Each case runs a tiny uvu file in a child process, as test/run.mjs runs
 * the real ones, and reads uvu's own summary.
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { repoRoot } from "../support/paths.js";
import { allOf, feature, requires, toolPath, TOOLS, type Tool } from "../support/requires.js";

const requiresJs = pathToFileURL(join(repoRoot, "dist", "test", "support", "requires.js")).href;

interface Outcome {
  code: number | null;
  out: string;
  total: number;
  passed: number;
  skipped: number;
  /** Did the test's body run? */
  ran: boolean;
}

/**
 * Runs one uvu test registered with `testsNeeding(test, <requirement>)`,
 * where the requirement is the TypeScript-free expression given (it may use
 * requires, allOf, feature, TOOLS and a `present` and a `missing` tool).
 */
function runTiny(requirement: string, env: Record<string, string | undefined> = {}): Outcome {
  const script = `
    import { test } from "uvu";
    import { allOf, feature, requires, testsNeeding, TOOLS } from ${JSON.stringify(requiresJs)};
    const present = { name: "present-tool", candidates: [${JSON.stringify(process.execPath)}], apt: "nodejs" };
    const missing = { name: "missing-tool", candidates: ["/nonexistent/missing-tool"], apt: "missing-package" };
    testsNeeding(test, ${requirement})("tiny: needs a tool", () => console.log("BODY RAN"));
    test.run();
  `;
  const childEnv: NodeJS.ProcessEnv = { ...process.env, FORCE_COLOR: "0", CI: undefined, SUGAR_TEST_WITHOUT: undefined, ...env };
  for (const [k, v] of Object.entries(childEnv)) if (v === undefined) delete childEnv[k];
  // --eval resolves "uvu" from the working directory: the checkout's node_modules.
  const r = spawnSync(process.execPath, ["--input-type=module", "--eval", script], { cwd: repoRoot, env: childEnv, encoding: "utf8", timeout: 30_000 });
  const out = r.stdout + r.stderr;
  const count = (label: string) => Number(new RegExp(`^  ${label}:\\s+(\\d+)$`, "m").exec(out)?.[1] ?? NaN);
  return { code: r.status, out, total: count("Total"), passed: count("Passed"), skipped: count("Skipped"), ran: out.includes("BODY RAN") };
}

test("requires: a test whose tool is there runs and passes", () => {
  const r = runTiny("requires(present)");
  assert.is(r.code, 0, r.out);
  assert.equal([r.total, r.passed, r.skipped, r.ran], [1, 1, 0, true], r.out);
});

test("requires: a missing tool makes the test a counted skip, not a pass, and says how to install it", () => {
  const r = runTiny("requires(present, missing)");
  assert.is(r.code, 0, r.out);
  assert.equal([r.total, r.passed, r.skipped, r.ran], [0, 0, 1, false], r.out);
  assert.match(r.out, /missing-tool not installed \(apt-get install missing-package\)/);
});

test("requires: under CI=true a missing tool is a failure naming the tool", () => {
  const r = runTiny("requires(missing)", { CI: "true" });
  assert.is(r.code, 1, r.out);
  assert.equal([r.total, r.passed, r.skipped, r.ran], [1, 0, 0, false], r.out);
  assert.match(r.out, /missing-tool not installed.*CI=true/);
});

test("requires: a missing feature of an installed tool is a skip even under CI=true", () => {
  const r = runTiny('allOf(requires(present), feature(false, "this tool lacks the feature"))', { CI: "true" });
  assert.is(r.code, 0, r.out);
  assert.equal([r.total, r.passed, r.skipped, r.ran], [0, 0, 1, false], r.out);
  const withTool = runTiny('allOf(requires(missing), feature(false, "this tool lacks the feature"))', { CI: "true" });
  assert.is(withTool.code, 1, "a missing tool still fails under CI, whatever else is missing");
});

test("requires: SUGAR_TEST_WITHOUT makes the tools it names look absent", () => {
  const r = runTiny("requires(TOOLS.natsServer, TOOLS.sshd)", { SUGAR_TEST_WITHOUT: "nats-server, sshd" });
  assert.is(r.code, 0, r.out);
  assert.equal([r.total, r.passed, r.skipped], [0, 0, 1], r.out);
  assert.match(r.out, /nats-server, sshd not installed \(apt-get install nats-server openssh-server\)/);
  const ci = runTiny("requires(TOOLS.natsServer)", { SUGAR_TEST_WITHOUT: "nats-server", CI: "true" });
  assert.is(ci.code, 1, ci.out);
});

test("requires: SUGAR_TEST_WITHOUT refuses a name that is no known tool", () => {
  const before = process.env.SUGAR_TEST_WITHOUT;
  process.env.SUGAR_TEST_WITHOUT = "nats";
  try {
    assert.throws(() => toolPath(TOOLS.natsServer), /SUGAR_TEST_WITHOUT names no known tool: nats/);
  } finally {
    if (before === undefined) delete process.env.SUGAR_TEST_WITHOUT;
    else process.env.SUGAR_TEST_WITHOUT = before;
  }
});

test("requires: allOf holds only when every part does, and gives every reason", () => {
  const missing: Tool = { name: "missing-tool", candidates: ["/nonexistent/missing-tool"], apt: "missing-package" };
  assert.equal(allOf(), { ok: true, why: "" });
  const both = allOf(requires(missing), feature(false, "no feature"));
  assert.is(both.ok, false);
  assert.match(both.why, /missing-tool not installed.*; no feature/);
  assert.is(both.featureOnly, false);
});

test.run();
