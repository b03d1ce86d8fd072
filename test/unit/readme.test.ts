/** The README's options table is the option table in the code, and its commands are the real ones. */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { repoRoot } from "../support/paths.js";

const readme = readFileSync(join(repoRoot, "README.md"), "utf8");

test("readme: the options table is exactly what the option table in src/config.ts generates", async () => {
  const { optionsTable } = (await import(pathToFileURL(join(repoRoot, "scripts", "options-table.mjs")).href)) as { optionsTable(): string };
  const block = /<!-- options-table[^>]*-->\n([\s\S]*?)\n<!-- \/options-table -->/.exec(readme)?.[1];
  assert.ok(block, "options table markers missing");
  assert.fixture(block!, optionsTable());
});

test("readme: the two commands a newcomer needs are there and match package.json", () => {
  assert.match(readme, /npm install && npm start/);
  assert.match(readme, /npm install && npm test/);
  const pkg = JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8"));
  assert.is(pkg.scripts.start, "node bin/sugar-server.js start");
  assert.ok(pkg.scripts.prepare, "npm install builds (prepare)");
  assert.is(pkg.bin["sugar-server"], "bin/sugar-server.js");
});

test.run();
