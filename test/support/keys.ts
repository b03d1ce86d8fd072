/**
 * Real SSH keys for tests, made by ssh-keygen as a Sugar desktop makes them.
 * Tests that call makeKey are registered with `requires(TOOLS.sshKeygen)`.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { join } from "node:path";
import type { Uid } from "../../src/validate.js";
import { toolBin, TOOLS } from "./requires.js";

export interface TestKey {
  /** The .pub line: `type body comment`. */
  line: string;
  type: string;
  body: string;
  /** SHA-1 hex of the body: the uid the server must give. */
  uid: Uid;
  privatePath: string;
}

let counter = 0;
export function makeKey(dir: string, type: "ed25519" | "rsa" | "ecdsa" | "dsa" = "ed25519", comment = "test@sugar"): TestKey {
  const privatePath = join(dir, `key-${process.pid}-${++counter}`);
  const bits = type === "rsa" ? ["-b", "2048"] : [];
  execFileSync(toolBin(TOOLS.sshKeygen), ["-q", "-t", type, ...bits, "-N", "", "-C", comment, "-f", privatePath], { stdio: "ignore" });
  const line = readFileSync(privatePath + ".pub", "utf8").trim();
  const [kt, body] = line.split(" ");
  return { line, type: kt!, body: body!, uid: createHash("sha1").update(body!).digest("hex") as Uid, privatePath };
}
