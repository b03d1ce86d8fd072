/** Where things are, seen from compiled tests (dist/test/...) or sources alike. */
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

function findRepoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "package.json")) || dir.endsWith("/dist")) {
    const up = dirname(dir);
    if (up === dir) throw new Error("package.json not found above " + fileURLToPath(import.meta.url));
    dir = up;
  }
  return dir;
}

export const repoRoot = findRepoRoot();
/** The OLPC keys and leases made by an independent implementation (see its README.md). */
export const olpcVectorsDir = join(repoRoot, "test", "fixtures", "olpc");
export const binPath = join(repoRoot, "bin", "sugar-server.js");
