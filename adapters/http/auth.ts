/**
 * REST's side of "who is this client?": the login routes and the guard that
 * routes about one client's data pass through. The auth actor decides
 * (credentials, SSHSIG proofs, token checks, client certificates); this
 * file only carries the X-Sugar-* headers and the TLS port's verified
 * client certificate (adapters/kit/identify.ts) to it and its answers back.
 *
 * Under `client-auth = token` the guard wants the token headers, or a client
 * certificate, of the very uid a request is about (`/client/status`,
 * `/client/backup`), or of a uid a serial number is registered to
 * (`/client/lease`); under `open` (stock Sugar sends nothing) it lets
 * everything through. Token headers, when sent, are what counts; a client
 * certificate stands in for them when there are none. Port 191 is never
 * guarded: an XO's firmware cannot log in.
 */
import type { IncomingHttpHeaders } from "node:http";
import type { AuthClient, RegistryClient } from "../../src/codec.js";
import type { Config } from "../../src/config.js";
import { SugarError } from "../../src/errors.js";
import { tokenFrom, type RequestIdentity } from "../kit/identify.js";

/** The token headers a request carries, or undefined when it carries none. */
export const proofFrom = tokenFrom;

export interface Guard {
  /** Resolves when the request may read or act on `uid`'s data; rejects with an auth code (401/403) otherwise. */
  forUid(who: RequestIdentity, headers: IncomingHttpHeaders, uid: string): Promise<void>;
  /** The same for a serial number: the login's uid must be the one the serial number is registered to. */
  forSn(who: RequestIdentity, headers: IncomingHttpHeaders, sn: string): Promise<void>;
  /**
   * The uid the request is logged in as, whatever client-auth says (a route
   * that acts for the client itself: its certificate); `wantUid` when given
   * must be it (else forbidden).
   */
  loggedIn(who: RequestIdentity, headers: IncomingHttpHeaders, wantUid?: string): Promise<string>;
}

export function guard(config: Config, auth: AuthClient, registry: RegistryClient): Guard {
  const open = config["client-auth"] === "open";
  const loggedIn = async (who: RequestIdentity, headers: IncomingHttpHeaders, wantUid = ""): Promise<string> => {
    const p = proofFrom(headers);
    if (p) {
      const r = await auth.call("verify", { uid: p.uid, time: p.time, lifetime: p.lifetime, auth: p.auth, wantUid });
      return r.uid ?? "";
    }
    const uid = await who.certificate();
    if (uid === undefined) throw new SugarError("auth_required", "log in first (POST /client/login) and send the X-Sugar-* headers it gives, or connect to the TLS port with a client certificate");
    if (wantUid && wantUid !== uid) throw new SugarError("forbidden", `this certificate is ${uid}'s, not ${wantUid.slice(0, 40)}'s`);
    return uid;
  };
  return {
    loggedIn,
    async forUid(who, headers, uid) {
      if (!open) await loggedIn(who, headers, uid);
    },
    async forSn(who, headers, sn) {
      if (open) return;
      const uid = await loggedIn(who, headers);
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
