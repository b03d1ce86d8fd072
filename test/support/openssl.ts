/**
 * A second, openssl-based check of OLPC lease signatures (RSASSA-PSS, SHA-256,
 * MGF1-SHA-256, salt length exactly 8), independent of node:crypto.
 *
 * Works with OpenSSL 3.x:
 *   openssl rsa -pubin -inform DER -RSAPublicKey_in -in key.der -pubout -out key.pem
 *   openssl pkeyutl -verify -pubin -inkey key.pem -rawin -digest sha256 -in signed.bin -sigfile sig.bin
 *     -pkeyopt rsa_padding_mode:pss -pkeyopt rsa_pss_saltlen:8 -pkeyopt rsa_mgf1_md:sha256
 * (`-pkeyopt digest:sha256` together with `-rawin` is refused by OpenSSL 3.0; without `-rawin`
 * pkeyutl would expect `-in` to hold the SHA-256 digest instead of the message.)
 */
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { toolBin, TOOLS } from "./requires.js";

const run = promisify(execFile);

/** The openssl binary ($OPENSSL, then $PATH); tests that run it are registered with `requires(TOOLS.openssl)`. */
export const opensslPath = (): string => toolBin(TOOLS.openssl);

export function opensslKeyConvertArgs(derPath: string, pemPath: string): string[] {
  return ["rsa", "-pubin", "-inform", "DER", "-RSAPublicKey_in", "-in", derPath, "-pubout", "-out", pemPath];
}

export function opensslPssVerifyArgs(pemPath: string, dataPath: string, sigPath: string): string[] {
  return [
    "pkeyutl", "-verify", "-pubin", "-inkey", pemPath,
    "-rawin", "-digest", "sha256",
    "-in", dataPath, "-sigfile", sigPath,
    "-pkeyopt", "rsa_padding_mode:pss",
    "-pkeyopt", "rsa_pss_saltlen:8",
    "-pkeyopt", "rsa_mgf1_md:sha256",
  ];
}

interface ExecFailure {
  code?: number | string;
  stdout?: string;
  stderr?: string;
}

function asExecFailure(e: unknown): ExecFailure {
  return typeof e === "object" && e !== null ? (e as ExecFailure) : {};
}

/**
 * Verify a lease signature with the openssl CLI. Resolves true / false for a good / bad
 * signature; rejects when openssl cannot run or the key cannot be converted.
 */
export async function opensslVerifyPss(args: {
  key01Hex: string;
  signedBytes: Buffer;
  signatureHex: string;
}): Promise<boolean> {
  const keyHex = args.key01Hex.trim().replace(/^key01:\s*/, "");
  if (!/^(?:[0-9a-fA-F]{2})+$/.test(keyHex)) throw new Error("key01Hex is not hex");
  if (!/^(?:[0-9a-fA-F]{2})+$/.test(args.signatureHex)) return false;
  const dir = await mkdtemp(join(tmpdir(), "sugar-openssl-"));
  try {
    const der = join(dir, "key.der");
    const pem = join(dir, "key.pem");
    const data = join(dir, "signed.bin");
    const sig = join(dir, "sig.bin");
    await writeFile(der, Buffer.from(keyHex, "hex"));
    await writeFile(data, args.signedBytes);
    await writeFile(sig, Buffer.from(args.signatureHex, "hex"));
    await run(opensslPath(), opensslKeyConvertArgs(der, pem));
    try {
      const { stdout } = await run(opensslPath(), opensslPssVerifyArgs(pem, data, sig));
      if (stdout.includes("Signature Verified Successfully")) return true;
      throw new Error(`openssl pkeyutl exited 0 without a verdict: ${stdout}`);
    } catch (e) {
      const f = asExecFailure(e);
      if (f.code === 1 && (f.stdout ?? "").includes("Signature Verification Failure")) return false;
      throw e;
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
