// Runs every compiled test file (dist/test/**/*.test.js) in its own Node
// process, two at a time, and ends with one line "N passed, N failed, N
// skipped" (what CI reads). uvu prints Total/Passed/Skipped per file; they
// are summed here. uvu's Total counts only the tests it ran: a skipped test
// (a tool missing, test/support/requires.ts) is in Skipped alone, and a file
// whose tests are all skipped is not a failure.
// Usage: node test/run.mjs [substring-filter...]
// SUGAR_TEST_WITHOUT=nats-server,sshd pretends those tools are absent.
import { spawn } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { availableParallelism } from "node:os";

const root = join(fileURLToPath(import.meta.url), "..", "..");
const testDir = join(root, "dist", "test");
const filters = process.argv.slice(2);

function find(dir) {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return find(p);
    return name.endsWith(".test.js") ? [p] : [];
  });
}

const files = find(testDir)
  .filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)))
  .sort();
const jobs = Math.max(1, Math.min(Number(process.env.TEST_JOBS) || availableParallelism(), 4));
let passed = 0, failed = 0, skipped = 0;
const failures = [];

function runFile(file) {
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(process.execPath, ["--enable-source-maps", file], { cwd: root, env: { ...process.env, FORCE_COLOR: "0" } });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    const limit = setTimeout(() => {
      out += `\n[run] ${relative(root, file)} exceeded 8 minutes; killed\n`;
      child.kill("SIGKILL");
    }, 8 * 60 * 1000);
    child.on("close", (code) => {
      clearTimeout(limit);
      const total = uvuCount(out, "Total");
      const ok = uvuCount(out, "Passed");
      const skip = uvuCount(out, "Skipped");
      let bad = total - ok; // uvu's Total counts only the tests it ran; skipped ones are apart
      if (code !== 0 && bad === 0) bad = 1; // a crash or a hang is a failure even if uvu never counted it
      passed += ok;
      failed += bad;
      skipped += skip;
      const name = relative(root, file);
      const secs = ((Date.now() - started) / 1000).toFixed(1);
      console.log(`${bad ? "FAIL" : "ok  "} ${name}  (${ok} passed, ${bad} failed, ${skip} skipped, ${secs}s)`);
      if (bad || process.env.TEST_VERBOSE) {
        if (bad) failures.push(name);
        process.stdout.write(out.replace(/^/gm, "    | ") + "\n");
      }
      resolve();
    });
  });
}

/** The last "  Label:  N" line of uvu's summary (a test's own output may say "Total:" too), or 0. */
function uvuCount(out, label) {
  const all = [...out.matchAll(new RegExp(`^  ${label}:\\s+(\\d+)$`, "gm"))];
  return Number(all.at(-1)?.[1] ?? 0);
}

const queue = [...files];
await Promise.all(Array.from({ length: jobs }, async () => {
  while (queue.length) await runFile(queue.shift());
}));
if (failures.length) console.log(`failed files: ${failures.join(", ")}`);
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed > 0 || files.length === 0 ? 1 : 0);
