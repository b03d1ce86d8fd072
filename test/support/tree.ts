/** Whole directory trees compared by content: what a backup and its restore must keep. */
import { createHash } from "node:crypto";
import { lstatSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { join } from "node:path";

/** path → sha256 (files), "->target" (symlinks), "dir" (directories). */
export function treeHashes(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (dir: string, rel: string) => {
    for (const name of readdirSync(dir).sort()) {
      const p = join(dir, name);
      const r = rel ? `${rel}/${name}` : name;
      const st = lstatSync(p);
      if (st.isSymbolicLink()) out.set(r, `->${readlinkSync(p)}`);
      else if (st.isDirectory()) {
        out.set(r, "dir");
        walk(p, r);
      } else out.set(r, createHash("sha256").update(readFileSync(p)).digest("hex"));
    }
  };
  walk(root, "");
  return out;
}

/** The paths that differ, one line each; undefined when both trees are the same. */
export function sameTree(a: Map<string, string>, b: Map<string, string>): string | undefined {
  const diff = [...new Set([...a.keys(), ...b.keys()])].filter((k) => a.get(k) !== b.get(k));
  return diff.length ? diff.map((k) => `${k}: ${a.get(k) ?? "(none)"} vs ${b.get(k) ?? "(none)"}`).join("\n") : undefined;
}
