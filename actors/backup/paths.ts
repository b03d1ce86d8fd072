/**
 * Where the backup actor keeps things under `<root>`. Every path below a
 * client's directory is built from a uid that src/validate.ts accepted.
 *
 *   <root>/.ssh/authorized_keys          one line per registered user (authorized-keys.ts)
 *   <root>/.ssh/authorized_keys.foreign  lines found there that the server did not build
 *   <root>/home/backups/<uid[-2:]>/<uid>/ the client's directory: all rrsync lets it see
 *   <root>/home/backups/.events/         what the forced command reports (events.ts)
 *   <root>/home/backups/.state/<uid>     last backup / restore times (state.ts)
 *
 * `.events` and `.state` start with a dot, so they never collide with the
 * two-hex-digit fan-out directories.
 */
import { join } from "node:path";
import type { Uid } from "../../src/validate.js";

export const backupsDir = (root: string) => join(root, "home", "backups");
export const spoolDir = (root: string) => join(backupsDir(root), ".events");
export const stateDir = (root: string) => join(backupsDir(root), ".state");
export const sshDir = (root: string) => join(root, ".ssh");
export const authorizedKeysPath = (root: string) => join(sshDir(root), "authorized_keys");
export const foreignKeysPath = (root: string) => join(sshDir(root), "authorized_keys.foreign");

/** `<root>/home/backups/<uid[-2:]>/<uid>`: the one directory a client's key reaches. */
export function clientDir(root: string, uid: Uid): string {
  return join(backupsDir(root), uid.slice(-2), uid);
}
