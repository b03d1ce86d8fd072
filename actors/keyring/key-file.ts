/**
 * Reading a private key file of the keyring directory: one that group or
 * others can read is refused at start (it may have leaked), for every key
 * the keyring holds.
 */
import { promises as fsp } from "node:fs";
import { SugarError } from "../../src/errors.js";

/** The file's bytes, or undefined when there is none; refuses a file with group or other permissions. */
export async function readPrivateKeyFile(path: string): Promise<Buffer | undefined> {
  let st;
  try {
    st = await fsp.stat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
  if ((st.mode & 0o077) !== 0) {
    throw new SugarError(
      "forbidden",
      `refusing to start: ${path} is readable by others (mode ${(st.mode & 0o777).toString(8)}); the private key may have leaked — check, then chmod 600 ${path}`,
    );
  }
  return fsp.readFile(path);
}
