/**
 * Keeps the architecture honest. The kernel (src/) imports no actor, adapter
 * or format library, but for the one file that wires components together;
 * its transports (src/bus/) know nothing of envelopes; actors never import
 * each other or an adapter; adapters share only their kit; lib/ (the OLPC
 * formats) builds on the kernel alone; and nothing ships code that imports
 * the tests.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { repoRoot } from "../support/paths.js";

/** The folders checked; one that does not exist yet is skipped. */
const TOPS = ["src", "actors", "adapters", "lib", "bin"];

/** The one module that imports actors and adapters: it wires them into a server. */
const COMPOSITION_ROOT = "src/cli/components";

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    if (statSync(p).isDirectory()) return sourceFiles(p);
    return /\.(ts|js|mjs)$/.test(n) && !n.endsWith(".d.ts") ? [p] : [];
  });
}

/**
 * Repo-relative paths a file imports (static, dynamic and re-exports),
 * without their extension; bin/'s imports of the compiled dist/ count as
 * imports of the sources.
 */
export function importsOf(file: string, text = readFileSync(file, "utf8")): string[] {
  const specs = [...text.matchAll(/(?:import|export)\s[^;]*?from\s+["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/g)].map((m) => m[1] ?? m[2]!);
  return specs.filter((s) => s.startsWith(".")).map((s) => relative(repoRoot, resolve(dirname(file), s)).replace(/^dist\//, ""));
}

/** What a file may not import, as a reason, or undefined when fine. Paths are repo-relative; extensions do not matter. */
export function violation(from: string, to: string): string | undefined {
  const bare = (p: string) => p.replace(/\.(ts|js|mjs)$/, "");
  const [fromTop, fromPart] = from.split("/");
  const [toTop, toPart] = to.split("/");
  if (toTop === "test" && fromTop !== "test") return "shipped code imports the tests";
  if (fromTop === "src") {
    if (toTop === "lib") return "the kernel imports lib/";
    if ((toTop === "actors" || toTop === "adapters") && bare(from) !== COMPOSITION_ROOT) return `only ${COMPOSITION_ROOT}.ts wires actors and adapters`;
    if (fromPart === "bus" && bare(to) === "src/codec") return "a transport imports the codec (transports move bytes; the codec makes envelopes)";
  }
  if (fromTop === "actors") {
    if (toTop === "adapters") return "an actor imports an adapter";
    if (toTop === "actors" && fromPart !== toPart) return "an actor imports another actor";
  }
  if (fromTop === "adapters") {
    if (toTop === "actors") return "an adapter imports an actor";
    if (fromPart === "kit" && toTop !== "src" && !(toTop === "adapters" && toPart === "kit")) return "the adapters' kit imports something besides src/";
    if (toTop === "adapters" && toPart !== fromPart && toPart !== "kit") return "an adapter imports another adapter";
  }
  if (fromTop === "lib" && toTop !== "src" && toTop !== "lib") return "lib/ imports something besides src/ and lib/";
  return undefined;
}

test("layering: every import in src, actors, adapters, lib and bin keeps the layers", () => {
  const problems: string[] = [];
  for (const top of TOPS.filter((t) => existsSync(join(repoRoot, t)))) {
    for (const file of sourceFiles(join(repoRoot, top))) {
      const from = relative(repoRoot, file);
      for (const to of importsOf(file)) {
        const why = violation(from, to);
        if (why) problems.push(`${from} → ${to}: ${why}`);
      }
    }
  }
  assert.equal(problems, []);
});

test("layering: imports are read as repo paths, bin's dist/ imports as the sources", () => {
  assert.equal(importsOf(join(repoRoot, "adapters", "http", "x.ts"), 'import { startRegistry } from "../../actors/registry/index.js";'), ["actors/registry/index.js"]);
  assert.equal(importsOf(join(repoRoot, "bin", "x.js"), 'import { main } from "../dist/src/cli/main.js";'), ["src/cli/main.js"]);
  assert.equal(importsOf(join(repoRoot, "src", "x.ts"), 'const m = await import("./bus/nats.js");\nexport { a } from "../lib/olpc.js";'), ["src/bus/nats.js", "lib/olpc.js"]);
});

test("layering: only the composition root imports actors and adapters", () => {
  assert.ok(violation("src/codec.ts", "adapters/http/index.js"));
  assert.ok(violation("src/cli/main.ts", "actors/registry/index.js"), "the rest of the CLI is kernel too");
  assert.ok(violation("src/cli/main.ts", "adapters/kit/listen.js"));
  assert.not.ok(violation("src/cli/components.ts", "actors/registry/index.js"));
  assert.not.ok(violation("src/cli/components.ts", "adapters/http/index.js"));
});

test("layering: transports do not import the codec", () => {
  assert.ok(violation("src/bus/nats.ts", "src/codec.js"));
  assert.ok(violation("src/bus/memory.ts", "src/codec.ts"));
  assert.not.ok(violation("src/bus/nats.ts", "src/errors.js"));
  assert.not.ok(violation("src/codec.ts", "src/bus/subjects.js"));
});

test("layering: adapters share adapters/kit and nothing else; the kit builds on src/ alone", () => {
  assert.ok(violation("adapters/http/index.ts", "adapters/xmlrpc/index.js"));
  assert.not.ok(violation("adapters/http/index.ts", "adapters/kit/http.js"));
  assert.not.ok(violation("adapters/http/index.ts", "adapters/http/routes.js"));
  assert.ok(violation("adapters/kit/http.ts", "adapters/http/index.js"));
  assert.ok(violation("adapters/kit/listen.ts", "actors/registry/index.js"));
  assert.not.ok(violation("adapters/kit/listen.ts", "adapters/kit/http.js"));
  assert.not.ok(violation("adapters/kit/listen.ts", "src/errors.js"));
  assert.ok(violation("adapters/http/x.ts", "actors/registry/index.js"));
  assert.not.ok(violation("adapters/http/index.ts", "src/codec.js"));
});

test("layering: actors import neither each other nor adapters", () => {
  assert.ok(violation("actors/lease/index.ts", "actors/keyring/olpc.js"));
  assert.ok(violation("actors/backup/index.ts", "adapters/kit/http.js"));
  assert.not.ok(violation("actors/registry/index.ts", "actors/registry/store.js"));
  assert.not.ok(violation("actors/registry/index.ts", "src/codec.js"));
  // The district actor shares the keyring's host, never its code (nor the lease actor's stolen list).
  assert.ok(violation("actors/district/index.ts", "actors/keyring/store.js"));
  assert.ok(violation("actors/district/stolen.ts", "actors/lease/store.js"));
  assert.not.ok(violation("actors/district/index.ts", "actors/district/stolen.js"));
  assert.not.ok(violation("src/cli/components.ts", "actors/district/index.js"));
});

test("layering: lib/ builds on src/ and lib/ alone, and src/ never imports lib/", () => {
  assert.not.ok(violation("lib/olpc/lease.ts", "src/errors.js"));
  assert.not.ok(violation("lib/olpc/lease.ts", "lib/olpc/keys.js"));
  assert.ok(violation("lib/olpc/lease.ts", "actors/keyring/store.js"));
  assert.ok(violation("lib/olpc/lease.ts", "adapters/kit/http.js"));
  assert.ok(violation("src/validate.ts", "lib/olpc/lease.js"));
  assert.ok(violation("src/cli/components.ts", "lib/olpc/lease.js"));
});

test("layering: nothing outside test/ imports test/", () => {
  for (const from of ["src/cli/main.ts", "actors/registry/index.ts", "adapters/kit/http.ts", "lib/olpc/lease.ts", "bin/sugar-server.js"]) {
    assert.ok(violation(from, "test/support/wait.js"), from);
  }
  assert.not.ok(violation("test/unit/x.test.ts", "test/support/wait.js"));
});

test.run();
