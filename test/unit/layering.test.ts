/**
 * Keeps the architecture honest: adapters never import actors, actors never
 * import each other, and the kernel (src/, but for the CLI's composition
 * root) imports neither.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { repoRoot } from "../support/paths.js";

function tsFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    if (statSync(p).isDirectory()) return tsFiles(p);
    return n.endsWith(".ts") && !n.endsWith(".d.ts") ? [p] : [];
  });
}

/** Repo-relative paths a file imports (static, dynamic and re-exports). */
export function importsOf(file: string, text = readFileSync(file, "utf8")): string[] {
  const specs = [...text.matchAll(/(?:import|export)\s[^;]*?from\s+["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/g)].map((m) => m[1] ?? m[2]!);
  return specs.filter((s) => s.startsWith(".")).map((s) => relative(repoRoot, resolve(dirname(file), s)));
}

/** What a file may not import, as a reason, or undefined when fine. */
export function violation(from: string, to: string): string | undefined {
  const top = (p: string) => p.split("/").slice(0, 2);
  const [fromTop, fromPart] = top(from);
  const [toTop, toPart] = top(to);
  if (fromTop === "adapters" && toTop === "actors") return "an adapter imports an actor";
  if (fromTop === "actors" && toTop === "actors" && fromPart !== toPart) return "an actor imports another actor";
  if (fromTop === "adapters" && toTop === "adapters" && fromPart !== toPart) return "an adapter imports another adapter";
  if (fromTop === "src" && fromPart !== "cli" && (toTop === "actors" || toTop === "adapters")) return "the kernel imports an actor or adapter";
  return undefined;
}

test("layering: no adapter imports an actor, no actor imports another, the kernel imports neither", () => {
  const problems: string[] = [];
  for (const top of ["src", "actors", "adapters"]) {
    for (const file of tsFiles(join(repoRoot, top))) {
      const from = relative(repoRoot, file);
      for (const to of importsOf(file)) {
        const why = violation(from, to);
        if (why) problems.push(`${from} → ${to}: ${why}`);
      }
    }
  }
  assert.equal(problems, []);
});

test("layering: the check itself catches each forbidden import", () => {
  const fake = join(repoRoot, "adapters", "http", "x.ts");
  assert.equal(importsOf(fake, 'import { startRegistry } from "../../actors/registry/index.js";'), ["actors/registry/index.js"]);
  assert.ok(violation("adapters/http/x.ts", "actors/registry/index.js"));
  assert.ok(violation("actors/lease/index.ts", "actors/keyring/olpc.js"));
  assert.ok(violation("src/codec.ts", "adapters/http/index.js"));
  assert.not.ok(violation("src/cli/components.ts", "actors/registry/index.js"));
  assert.not.ok(violation("actors/registry/index.ts", "actors/registry/store.js"));
  assert.not.ok(violation("adapters/http/index.ts", "src/codec.js"));
});

test.run();
