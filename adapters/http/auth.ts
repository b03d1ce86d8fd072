/**
 * REST's side of "who is this client?": the login routes and the guard that
 * routes about one client's data pass through. The auth actor decides
 * (credentials, SSHSIG proofs, token checks); this file only carries the
 * X-Sugar-* headers to it and its answers back.
 *
 * Under `client-auth = token` the guard wants the token headers of the very
 * uid a request is about (`/client/status`, `/client/backup`), or of a uid a
 * serial number is registered to (`/client/lease`); under `open` (stock
 * Sugar sends nothing) it lets everything through. Port 191 is never
 * guarded: an XO's firmware cannot log in.
 */
import type { IncomingHttpHeaders } from "node:http";
import { sugar } from "../../schemas/gen/messages.js";
import { TOKEN_HEADERS, type AuthClient, type RegistryClient } from "../../src/codec.js";
import type { Config } from "../../src/config.js";
import { SugarError } from "../../src/errors.js";

/** One header's value; node lower-cases header names, and a repeated one counts as absent. */
const one = (headers: IncomingHttpHeaders, name: string): string => {
  const v = headers[name.toLowerCase()];
  return Array.isArray(v) ? (v.length === 1 ? v[0]! : "") : (v ?? "");
};

/** The token headers a request carries, or undefined when it carries none. */
export function proofFrom(headers: IncomingHttpHeaders): sugar.registry.Proof.$Properties | undefined {
  const p = { uid: one(headers, TOKEN_HEADERS.uid), time: one(headers, TOKEN_HEADERS.time), lifetime: one(headers, TOKEN_HEADERS.lifetime), auth: one(headers, TOKEN_HEADERS.auth) };
  return p.uid || p.time || p.lifetime || p.auth ? p : undefined;
}

export interface Guard {
  /** Resolves when the request may read or act on `uid`'s data; rejects with an auth code (401/403) otherwise. */
  forUid(headers: IncomingHttpHeaders, uid: string): Promise<void>;
  /** The same for a serial number: the token's uid must be the one the serial number is registered to. */
  forSn(headers: IncomingHttpHeaders, sn: string): Promise<void>;
}

export function guard(config: Config, auth: AuthClient, registry: RegistryClient): Guard {
  const open = config["client-auth"] === "open";
  const verify = async (headers: IncomingHttpHeaders, wantUid: string): Promise<string> => {
    const p = proofFrom(headers);
    if (!p) throw new SugarError("auth_required", "log in first (POST /client/login) and send the X-Sugar-* headers it gives (client-auth = token)");
    const r = await auth.call("verify", { uid: p.uid, time: p.time, lifetime: p.lifetime, auth: p.auth, wantUid });
    return r.uid ?? "";
  };
  return {
    async forUid(headers, uid) {
      if (!open) await verify(headers, uid);
    },
    async forSn(headers, sn) {
      if (open) return;
      const uid = await verify(headers, "");
      let owner: string[];
      try {
        const r = await registry.call("lookup", { machineSn: sn });
        owner = [r.user?.uid ?? "", r.machine?.uid ?? ""];
      } catch (err) {
        if (err instanceof SugarError && err.code === "not_registered") owner = [];
        else throw err;
      }
      if (!owner.includes(uid)) throw new SugarError("forbidden", `${sn} is not registered to ${uid}`);
    },
  };
}

/** The body of a login reply: what the client replays on every request until `expires`. */
export function loginBody(r: { uid?: string | null; expires?: string | null; headers?: Record<string, string> | null; credential?: string | null }): Record<string, unknown> {
  return { uid: r.uid, expires: r.expires, headers: r.headers ?? {}, ...(r.credential ? { credential: r.credential } : {}) };
}

/** `"credential": true` (JSON) or `credential=true` (a form) in an SSHSIG login asks for a new credential too. */
export const wantsCredential = (v: unknown): boolean => v === true || v === "true" || v === "1";
