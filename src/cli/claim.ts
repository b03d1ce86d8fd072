/**
 * The first admin's claim URL (first-admin = claim): `sugar-server admin
 * claim-url` prints a new one, and `start` prints one while the registry has
 * no admin. The auth actor makes the one-time code (op `claim_code`: valid
 * 24 h, replacing any earlier one); the web adapter's /auth/claim consumes
 * it. The URL names the server the way its clients do (`backup-host`, which
 * may not be a link-local address: src/config.ts) and the REST port
 * (`httpd-port`, or the port it really listens on). It is not under /admin:
 * only admins pass there (adapters/kit/admin-rule.ts), and this link is how
 * the first one becomes admin.
 */
import type { Requester } from "../bus/types.js";
import { authClient, registryClient, type AuthClient } from "../codec.js";
import type { Config } from "../config.js";
import { describe } from "../errors.js";
import type { Logger } from "../log.js";

export interface ClaimIo {
  out(text: string): void;
  err(text: string): void;
}

export function claimUrl(config: Config, code: string, port: number = config["httpd-port"]): string {
  return `http://${config["backup-host"]}:${port}/auth/claim?code=${encodeURIComponent(code)}`;
}

const USAGE = "usage: sugar-server admin claim-url\n";

/** `sugar-server admin claim-url`: a new one-time claim URL on standard output. */
export async function adminCommand(args: string[], auth: AuthClient, config: Config, io: ClaimIo): Promise<number> {
  if (args.length === 1 && args[0] === "claim-url") {
    const r = await auth.call("claimCode", {});
    io.out(`${claimUrl(config, r.code ?? "")}\n`);
    return 0;
  }
  io.err(USAGE);
  return 2;
}

/**
 * At start: while no user is an admin (and first-admin = claim), one log line
 * with a new claim URL. A failure to make one is a warning, not a failed start:
 * everything else works, and `admin claim-url` can be asked later.
 */
export async function announceClaimUrl(bus: Requester, config: Config, log: Logger, port?: number): Promise<void> {
  if (config["first-admin"] !== "claim") return;
  const opts = { timeoutMs: config["bus-timeout"] };
  try {
    const { admins } = await registryClient(bus, config.site, opts).call("admins", {});
    if (admins) return;
    const c = await authClient(bus, config.site, opts).call("claimCode", {});
    log.info(`no admin yet: open ${claimUrl(config, c.code ?? "", port)} in the browser of a registered user to make it this server's admin (one use, until ${c.expires})`);
  } catch (err) {
    log.warn(`no admin yet, and no claim URL: ${describe(err)} (sugar-server admin claim-url makes one)`);
  }
}
