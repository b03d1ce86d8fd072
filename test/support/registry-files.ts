/** The registry's files on disk: they are written by the journal's checkpoint, shortly after a write is acknowledged. */
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { waitFor } from "./wait.js";

/** True once every acknowledged registry write is in its file: one journal left, and it is empty. */
export function registryCheckpointed(root: string): boolean {
  const dir = join(root, "home", "registry");
  const journals = readdirSync(dir).filter((n) => /^\.journal-\d+$/.test(n));
  return journals.length === 1 && statSync(join(dir, journals[0]!)).size === 0;
}

/** Waits for the registry's checkpoint (a tenth of a second after the last write, when nothing else is written). */
export function registryOnDisk(root: string): Promise<true> {
  return waitFor("the registry's checkpoint to write its files", () => registryCheckpointed(root));
}
