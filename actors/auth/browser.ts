/**
 * The auth ops browsers need (the web adapter's forward auth, issue 12):
 *
 * - device:     a new device secret (the sugar_device cookie) and a first session for a registered uid
 * - check:      who a request is: session, device cookie, token headers, client certificate, xoid cookie, in that order
 * - certificate: a verified TLS client certificate → its uid (certificate.ts decides)
 * - logout:     revokes one device secret
 * - claim_code: a new one-time first-admin code (replaces any earlier one)
 * - claim:      uses the code up and makes a registered uid admin (the registry's admin op)
 *
 * A session proves a device (level "device"); the token headers prove a
 * credential or key (level "token"); an xoid only names a registered uid
 * (level "xoid": anyone who knows the public key can write one, so the web
 * adapter never makes it admin); a client certificate the TLS port verified
 * proves as much as the token headers (level "token"). A session is checked
 * with no lookup; a device cookie, a certificate and an xoid ask the
 * registry whether the uid is still there.
 */
import { sugar } from "../../schemas/gen/messages.js";
import type { RegistryClient } from "../../src/codec.js";
import type { Config } from "../../src/config.js";
import { SugarError, type ErrorCode } from "../../src/errors.js";
import type { Logger } from "../../src/log.js";
import type { KeyedMutex } from "../../src/mutex.js";
import * as validate from "../../src/validate.js";
import type { Uid } from "../../src/validate.js";
import type { ClaimCodeStore } from "./claim.js";
import { deviceHash, type DeviceStore } from "./devices.js";
import { FailureCounter } from "./memory.js";
import { checkSession, makeSession, type Session } from "./session.js";
import type { AuthStore } from "./store.js";
import { xoidUid } from "./xoid.js";

import pb = sugar.auth;

/** How a login happened, as the login event says. */
export type LoginHow = "credential" | "key" | "device" | "xoid" | "certificate";

/** Wrong claim codes from one source in a minute before rate_limited (the code has 256 bits: this is hygiene, not the defence). */
export const CLAIM_FAILURES = 1000;
/** Sources whose claim failures are counted at once (each keeps up to CLAIM_FAILURES times). */
const CLAIM_SOURCES = 1000;
/** Uids whose xoid or certificate login was announced recently, remembered at once. */
const MAX_SEEN = 100_000;

/** What a check that fails on one presented value answers with; anything else (the registry down) fails the whole check. */
const REFUSALS = new Set<ErrorCode>(["auth_required", "auth_invalid", "auth_expired"]);

export interface BrowserDeps {
  config: Config;
  log: Logger;
  now: () => number;
  store: AuthStore;
  /** How long a superseded token key still checks (ms). */
  keepMs: number;
  devices: DeviceStore;
  claims: ClaimCodeStore;
  registry: RegistryClient;
  locks: KeyedMutex;
  /** The registered user, or not_registered. */
  registered(uid: Uid): Promise<unknown>;
  /** The token headers' uid, or auth_required / auth_invalid / auth_expired. */
  verifyToken(req: pb.VerifyRequest.$Properties): Uid;
  /** A verified client certificate's uid, or auth_invalid (certificate.ts). */
  certificateUid(req: pb.CertificateRequest.$Properties): Promise<Uid>;
  publishLogin(uid: Uid, how: LoginHow, source: string): void;
}

export function browserOps(d: BrowserDeps) {
  const { config, log, now, store, devices, claims, locks } = d;
  const hours = config["session-hours"];
  const iso = (ms: number) => new Date(ms).toISOString();
  const claimFailures = new FailureCounter(CLAIM_FAILURES, CLAIM_SOURCES);
  /** "<how> <uid>" → when its xoid or certificate login was last announced: once a session-hours, not on every request. */
  const seen = new Map<string, number>();

  const session = (uid: Uid): Session => makeSession(store.current(), uid, now(), hours);

  /** The uid if registered; a uid the registry no longer knows is auth_invalid for `what`. */
  async function stillRegistered(uid: Uid, what: string): Promise<Uid> {
    try {
      await d.registered(uid);
      return uid;
    } catch (err) {
      if (err instanceof SugarError && err.code === "not_registered") throw new SugarError("auth_invalid", `${what} names a uid that is not registered`);
      throw err;
    }
  }

  async function device(req: pb.DeviceRequest.$Properties): Promise<pb.Reply.$Properties> {
    const uid = validate.uid(req.uid ?? "");
    const source = req.source ?? "";
    await d.registered(uid);
    const value = await locks.run([uid], () => devices.add(uid, now()));
    const s = session(uid);
    log.info(`${uid} has a new browser device${source ? ` from ${source}` : ""}`);
    d.publishLogin(uid, "device", source);
    return { device: { device: value, session: s.value, sessionExpires: iso(s.expires) } };
  }

  /** A device cookie: the uid, revoking the device when its user is gone (a removal this actor did not hear about). */
  async function fromDevice(value: string): Promise<Uid> {
    const uid = devices.uidOf(value);
    if (!uid) throw new SugarError("auth_invalid", "device cookie is unknown or revoked; register this browser again");
    try {
      return await stillRegistered(uid, "device cookie");
    } catch (err) {
      if (err instanceof SugarError && err.code === "auth_invalid") await locks.run([uid], () => devices.revokeUid(uid));
      throw err;
    }
  }

  async function fromXoid(raw: string): Promise<Uid> {
    const uid = xoidUid(raw);
    if (!uid) throw new SugarError("auth_invalid", "xoid cookie is not a JSON object with a pkey_hash of 40 lower-case hex digits");
    return stillRegistered(uid, "xoid cookie");
  }

  /** Logins that come with every request (an xoid, a certificate) are announced once a session-hours. */
  function announce(uid: Uid, how: "xoid" | "certificate"): void {
    const t = now();
    const key = `${how} ${uid}`;
    const last = seen.get(key);
    if (last !== undefined && last + hours * 3600_000 > t) return;
    seen.delete(key); // re-inserted last: the map's order is oldest announcement first
    if (seen.size >= MAX_SEEN) seen.delete(seen.keys().next().value!);
    seen.set(key, t);
    d.publishLogin(uid, how, "");
  }

  async function certificate(req: pb.CertificateRequest.$Properties): Promise<Uid> {
    const uid = await d.certificateUid(req);
    announce(uid, "certificate");
    return uid;
  }

  async function check(req: pb.CheckRequest.$Properties): Promise<pb.Reply.$Properties> {
    const refusals: SugarError[] = [];
    /** One presented value: its answer, or undefined (the refusal kept) so the next one is tried. */
    const attempt = async <T>(fn: () => T | Promise<T>): Promise<T | undefined> => {
      try {
        return await fn();
      } catch (err) {
        if (!(err instanceof SugarError) || !REFUSALS.has(err.code)) throw err;
        refusals.push(err.code === "auth_required" ? new SugarError("auth_invalid", err.message) : err);
        return undefined;
      }
    };
    const answer = (uid: Uid, level: "device" | "token" | "xoid", renewed?: Session): pb.Reply.$Properties => ({
      check: { uid, level, session: renewed?.value ?? "", sessionExpires: renewed ? iso(renewed.expires) : "" },
    });

    if (req.session) {
      const ok = await attempt(() => checkSession(req.session!, (id) => store.tokenKey(id, now(), d.keepMs), now(), hours));
      if (ok) return answer(ok.uid, "device");
    }
    if (req.device) {
      const uid = await attempt(() => fromDevice(req.device!));
      if (uid) {
        d.publishLogin(uid, "device", "");
        return answer(uid, "device", session(uid));
      }
    }
    const t = req.token;
    if (t && (t.uid || t.time || t.lifetime || t.auth)) {
      const uid = await attempt(() => d.verifyToken({ uid: t.uid, time: t.time, lifetime: t.lifetime, auth: t.auth }));
      if (uid) return answer(uid, "token");
    }
    const c = req.certificate;
    if (c && (c.uid || c.serial || c.notBefore)) {
      const uid = await attempt(() => certificate(c));
      if (uid) return answer(uid, "token");
    }
    // With xoid-login off the cookie is no more than any other cookie the browser sends.
    if (req.xoid && config["xoid-login"] === "on") {
      const uid = await attempt(() => fromXoid(req.xoid!));
      if (uid) {
        announce(uid, "xoid");
        return answer(uid, "xoid");
      }
    }
    if (refusals.length === 0) throw new SugarError("auth_required", "no session, device cookie, token headers, client certificate or xoid cookie: log in or register");
    // A value that is wrong says more than one that ran out: the browser must register, not just renew.
    throw refusals.find((e) => e.code !== "auth_expired") ?? refusals[0]!;
  }

  async function logout(req: pb.LogoutRequest.$Properties): Promise<pb.Reply.$Properties> {
    const value = req.device ?? "";
    if (!value) throw new SugarError("auth_required", "logout needs the device cookie");
    if (deviceHash(value) === undefined) throw new SugarError("auth_invalid", "device cookie is not 32 bytes of base64url");
    // An unknown device (revoked already) is logged out already.
    const uid = devices.uidOf(value);
    if (uid && (await locks.run([uid], () => devices.revoke(value)))) log.info(`${uid} logged a browser device out`);
    return { logout: {} };
  }

  async function claimCode(): Promise<pb.Reply.$Properties> {
    const c = await locks.run(["claim-code"], () => claims.issue(now()));
    log.info(`a new first-admin claim code is valid until ${iso(c.expires)}; any earlier one no longer is`);
    return { claimCode: { code: c.code, expires: iso(c.expires) } };
  }

  function claim(req: pb.ClaimRequest.$Properties): Promise<pb.Reply.$Properties> {
    const source = req.source ?? "";
    return claimFailures.guard(source, now, () =>
      // One claim at a time: two browsers with the same code cannot both pass the check before either uses it up.
      locks.run(["claim-code"], async () => {
        const uid = validate.uid(req.uid ?? "");
        claims.check(req.code ?? "", now());
        await d.registered(uid);
        await claims.consume();
        const r = await d.registry.call("admin", { uid, admin: true });
        log.info(`${uid} used the first-admin claim code${source ? ` from ${source}` : ""}: ${r.changed ? "now an admin" : "already an admin"}`);
        return { claim: {} };
      }),
    );
  }

  function sweep(t: number): void {
    claimFailures.sweep(t);
    for (const [key, last] of seen) if (last + hours * 3600_000 <= t) seen.delete(key);
  }

  return { device, check, certificate, logout, claimCode, claim, sweep };
}
