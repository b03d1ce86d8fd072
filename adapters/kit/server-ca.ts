/**
 * The district CA's fingerprint that registration replies carry
 * (`server_ca`), so a client can pin the CA that signs this school's TLS
 * certificate. Registration is on the hot path, so the answer is kept in
 * memory: read at start, and looked at again (one stat, in the background)
 * at most every few seconds, re-read only when the file changed — `tls init`
 * on a running server shows within that time, and no request reads the file.
 */
import { stat, statSync } from "node:fs";
import type { Config } from "../../src/config.js";
import { describe } from "../../src/errors.js";
import type { Logger } from "../../src/log.js";
import { serverCaFingerprint, tlsPaths } from "../../src/tls.js";

const RECHECK_MS = 3000;

/** A function that gives the current fingerprint ("" while the school has no ca.crt) without touching the disk. */
export function serverCa(config: Config, log: Logger, now: () => number = Date.now): () => string {
  const path = tlsPaths(config).ca;
  let value = "";
  let seen = "";
  let checked = now();
  let checking = false;
  const load = (): void => {
    try {
      value = serverCaFingerprint(config);
    } catch (err) {
      // A ca.crt that is not a certificate: the replies carry none until it is fixed.
      log.warn(`the district CA certificate (<root>/tls/ca.crt) does not read as a certificate: ${describe(err)}`);
      value = "";
    }
  };
  const signature = (s: { ino: number; size: number; mtimeMs: number } | undefined) => (s ? `${s.ino}:${s.size}:${s.mtimeMs}` : "");
  seen = signature(statSync(path, { throwIfNoEntry: false }));
  load();
  return () => {
    const t = now();
    if (!checking && t - checked >= RECHECK_MS) {
      checking = true;
      checked = t;
      stat(path, (err, s) => {
        checking = false;
        const sig = err ? "" : signature(s);
        if (sig === seen) return;
        seen = sig;
        load();
      });
    }
    return value;
  };
}
