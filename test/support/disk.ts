/** A picture of everything under a directory, to prove a bad request changed nothing. */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { createHash } from "node:crypto";
import { join, relative } from "node:path";

/** `run/` (lock, socket) and the registry journal (bookkeeping of writes already acknowledged) are not state a request may change. */
export function snapshot(root: string, ignore: RegExp = /\/run\/|\/\.journal-\d+$/): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (dir: string) => {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    for (const name of names) {
      const p = join(dir, name);
      if (ignore.test(p + (statSync(p).isDirectory() ? "/" : ""))) continue;
      const st = statSync(p);
      if (st.isDirectory()) {
        out.set(relative(root, p) + "/", "dir");
        walk(p);
      } else if (st.isFile()) out.set(relative(root, p), createHash("sha256").update(readFileSync(p)).digest("hex"));
    }
  };
  walk(root);
  return out;
}

export function sameSnapshot(a: Map<string, string>, b: Map<string, string>): boolean {
  return a.size === b.size && [...a].every(([k, v]) => b.get(k) === v);
}

export function describeDiff(a: Map<string, string>, b: Map<string, string>): string {
  const keys = new Set([...a.keys(), ...b.keys()]);
  return [...keys].filter((k) => a.get(k) !== b.get(k)).map((k) => `${k}: ${a.get(k) ?? "(none)"} → ${b.get(k) ?? "(none)"}`).join("; ");
}
