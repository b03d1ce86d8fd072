/**
 * Auth actor: who a client is. Serves `sugar.<site>.auth.<op>` (queue group
 * `auth`), one op per field of `Request.op` (schemas/auth.proto), and owns
 * every secret that proves a client, under `<root>/auth/` (store.ts):
 *
 * - issue:     a new per-client secret and the long-lived credential MACed with it
 * - login:     credential → short-lived token headers (tokens.ts)
 * - challenge: a single-use nonce for a registered uid
 * - prove:     an `ssh-keygen -Y sign -n sugar-server` signature of the nonce → token headers
 * - verify:    token headers → the uid (no per-client lookup)
 * - rotate:    a new token key; tokens under the previous one run out normally
 * - device, check, logout, claim_code, claim: browsers' cookies and the
 *              first admin (browser.ts)
 * - certificate: a TLS client certificate the TLS port verified → its uid,
 *              unless the uid was removed or replaced since (certificate.ts)
 *
 * Identity stays the registry's: auth asks it over the bus (lookup) whether
 * a uid is registered and for its key, and forgets a uid's secret and its
 * browsers' devices, and voids its certificates issued until then, when the
 * registry says the uid was removed or replaced.
 * Every successful login, prove, device registration and session renewal
 * from a device is published as a `login` event. Nonces and failed-attempt
 * counters live in memory (memory.ts): a restart forgets them, which costs
 * a client one new challenge at most. One auth actor per site: the nonces
 * and counters are not shared between instances.
 */
import { join } from "node:path";
import { match } from "ts-pattern";
import { sugar } from "../../schemas/gen/messages.js";
import { registryClient, serveOps, subscribeMessages } from "../../src/codec.js";
import { once, type Component, type Context } from "../../src/component.js";
import { SugarError } from "../../src/errors.js";
import { KeyedMutex } from "../../src/mutex.js";
import { subjects } from "../../src/bus/subjects.js";
import * as validate from "../../src/validate.js";
import type { MachineSn, Uid } from "../../src/validate.js";
import { browserOps, type LoginHow } from "./browser.js";
import { certificateUid, Revocations } from "./certificate.js";
import { ClaimCodeStore } from "./claim.js";
import { credentialMacOk, makeCredential, parseCredential } from "./credential.js";
import { DeviceStore } from "./devices.js";
import { FailureCounter, NonceBook } from "./memory.js";
import { NAMESPACE, verifySshSig } from "./sshsig.js";
import { AuthStore } from "./store.js";
import { checkToken, makeToken, type Proof, type Token } from "./tokens.js";

import pb = sugar.auth;
import reg = sugar.registry;

export { NAMESPACE } from "./sshsig.js";
export { TOKEN_HEADERS, MAX_LIFETIME } from "./tokens.js";

export interface AuthOptions {
  /** How long a challenge nonce is good for (default 60 s; tests make it short). */
  nonceSeconds?: number;
  /** The clock (ms since the epoch); tests may move it. */
  now?: () => number;
}

const MAX_NONCE_TEXT = 128;

export async function startAuth(ctx: Context, opts: AuthOptions = {}): Promise<Component> {
  const { bus, config } = ctx;
  const log = ctx.log.child("auth");
  const site = config.site;
  const now = opts.now ?? Date.now;
  const lifetime = config["token-seconds"];
  /** A superseded token key checks tokens this long after it was superseded: every token under it has run out by then. */
  const keepMs = lifetime * 1000;
  const store = new AuthStore(join(config.root, "auth"), log);
  await store.open(now());
  const devices = new DeviceStore(join(store.dir, "devices"), log);
  await devices.open();
  const claims = new ClaimCodeStore(store.dir, log);
  await claims.open();
  const revocations = new Revocations(join(store.dir, "revoked"));
  await revocations.open();
  const registry = registryClient(bus, site, { timeoutMs: config["bus-timeout"] });
  const locks = new KeyedMutex();
  const failures = new FailureCounter(config["login-failures"]);
  const nonces = new NonceBook((opts.nonceSeconds ?? 60) * 1000);
  const iso = (ms: number) => new Date(ms).toISOString();
  const publishLogin = (uid: Uid, how: LoginHow, source: string) =>
    bus.publish(subjects.event(site, "login"), pb.LoginEvent.encode({ uid, how, source }).finish());

  const credentialInvalid = (source: string, why: string) => {
    log.debug(`credential refused from ${source || "(no source)"}: ${why}`);
    return new SugarError("auth_invalid", "credential is not valid (unknown, revoked or altered); register or prove the key again");
  };

  /** The registered user, or not_registered. */
  async function registered(uid: Uid): Promise<reg.User.$Properties> {
    const found = await registry.call("lookup", { uid });
    if (!found.user) throw new SugarError("not_registered", `uid ${uid} is not registered`);
    return found.user;
  }

  /**
   * The credential of the uid's secret: a new secret (the old one stops
   * working), or for `initial` (a key's first registration) the current one,
   * which writes nothing to disk.
   */
  async function issueFor(uid: Uid, sn: MachineSn | "", initial = false): Promise<string> {
    return locks.run([uid], async () => {
      const s = initial ? store.clientSecret(uid) : await store.newClientSecret(uid, now());
      log.debug(`issued a credential for ${uid} (key id ${s.keyId})`);
      return makeCredential(s.secret, { uid, sn, iat: Math.floor(now() / 1000), kid: s.keyId });
    });
  }

  const token = (uid: Uid, proof: Proof): Token => makeToken(store.current(), uid, now(), lifetime, proof);

  /** Login and prove: refused at once while the source is over its limit; every failure counts against it. */
  const guarded = <T>(source: string, fn: () => Promise<T>): Promise<T> => failures.guard(source, now, fn);

  async function issue(req: pb.IssueRequest.$Properties): Promise<pb.Reply.$Properties> {
    const uid = validate.uid(req.uid ?? "");
    const sn = req.machineSn ? validate.machineSn(req.machineSn) : "";
    // The initial issue is the registry's own call while it registers the uid (before the user is
    // visible, so it can run beside the registry's write); any other issue asks the registry first.
    if (!req.initial) await registered(uid);
    return { issue: { credential: await issueFor(uid, sn, !!req.initial) } };
  }

  function login(req: pb.LoginRequest.$Properties): Promise<pb.Reply.$Properties> {
    const source = req.source ?? "";
    return guarded(source, async () => {
      if (!req.credential) throw new SugarError("auth_required", "login needs the credential registration gave");
      const parsed = parseCredential(req.credential);
      if (typeof parsed === "string") throw credentialInvalid(source, parsed);
      const { uid, sn, kid } = parsed.fields;
      const secret = store.clientSecret(uid);
      if (secret.keyId !== kid) throw credentialInvalid(source, `${uid}: key id ${kid} was replaced by ${secret.keyId}`);
      if (!credentialMacOk(secret.secret, parsed)) throw credentialInvalid(source, `${uid}: the MAC does not match`);
      try {
        await registered(uid);
      } catch (err) {
        if (!(err instanceof SugarError) || err.code !== "not_registered") throw err;
        // A removal this actor did not hear about: the secret goes now.
        await locks.run([uid], () => store.removeClientSecret(uid));
        throw credentialInvalid(source, `${uid} is no longer registered`);
      }
      const t = token(uid, "credential");
      publishLogin(uid, "credential", source);
      return { login: { uid, expires: iso(t.expires), headers: t.headers, machineSn: sn } };
    });
  }

  async function challenge(req: pb.ChallengeRequest.$Properties): Promise<pb.Reply.$Properties> {
    const uid = validate.uid(req.uid ?? "");
    await registered(uid);
    const c = nonces.issue(uid, now());
    return { challenge: { nonce: c.nonce, namespace: NAMESPACE, expires: iso(c.expires) } };
  }

  function prove(req: pb.ProveRequest.$Properties): Promise<pb.Reply.$Properties> {
    const source = req.source ?? "";
    return guarded(source, async () => {
      const uid = validate.uid(req.uid ?? "");
      const nonce = req.nonce ?? "";
      if (!nonce || nonce.length > MAX_NONCE_TEXT) throw new SugarError("auth_invalid", "nonce is missing or malformed; ask for a challenge");
      const why = nonces.take(nonce, uid, now());
      if (why) throw new SugarError("auth_invalid", `nonce is not valid: ${why}`);
      let user: reg.User.$Properties;
      try {
        user = await registered(uid);
      } catch (err) {
        if (err instanceof SugarError && err.code === "not_registered") throw new SugarError("auth_invalid", `uid ${uid} is no longer registered`);
        throw err;
      }
      verifySshSig(req.signature ?? "", Buffer.from(nonce, "utf8"), user.pubkey ?? "");
      const sn = user.machineSn && validate.isMachineSn(user.machineSn) ? user.machineSn : "";
      const credential = req.credential ? await issueFor(uid, sn) : "";
      const t = token(uid, "key");
      log.info(`${uid} proved its key${source ? ` from ${source}` : ""}`);
      publishLogin(uid, "key", source);
      return { prove: { uid, expires: iso(t.expires), headers: t.headers, credential } };
    });
  }

  /** The token headers' uid, expiry and proof; throws auth_required, auth_invalid or auth_expired. */
  function tokenOf(req: pb.VerifyRequest.$Properties): { uid: Uid; expires: number; proof: Proof } {
    const t = now();
    const ok = checkToken(
      { uid: req.uid ?? "", time: req.time ?? "", lifetime: req.lifetime ?? "", auth: req.auth ?? "" },
      (id) => store.tokenKey(id, t, keepMs),
      t,
    );
    if (store.hasPrunable(t, keepMs)) prune();
    return ok;
  }

  function verifyToken(req: pb.VerifyRequest.$Properties): pb.Reply.$Properties {
    const ok = tokenOf(req);
    if (req.wantUid && req.wantUid !== ok.uid) throw new SugarError("forbidden", `this token is ${ok.uid}'s, not ${req.wantUid.slice(0, 40)}'s`);
    return { verify: { uid: ok.uid, expires: iso(ok.expires), proof: ok.proof } };
  }

  async function rotate(): Promise<pb.Reply.$Properties> {
    const k = await store.rotate(now(), keepMs);
    log.info(`token key ${k.id} is current; the previous one checks tokens for ${lifetime} s more`);
    return { rotate: { keyId: k.id } };
  }

  /** Deletes retired token keys from disk; runs in the background (a timer, a verify). */
  let pruning: Promise<void> | undefined;
  function prune(): void {
    pruning ??= store
      .prune(now(), keepMs)
      .then(
        (any) => void (any && log.info("retired token keys deleted")),
        (err: unknown) => log.error(`pruning token keys failed: ${(err as Error).message}`),
      )
      .finally(() => (pruning = undefined));
  }

  const browser = browserOps({
    config,
    log,
    now,
    store,
    keepMs,
    devices,
    claims,
    registry,
    locks,
    registered,
    verifyToken: (req) => tokenOf(req).uid,
    certificateUid: (req) => certificateUid({ site, revocations, registered, log }, req),
    publishLogin,
  });

  async function onEvent(e: reg.Event): Promise<void> {
    const gone = e.event === "removed" ? e.removed?.user?.uid : e.event === "registered" ? e.registered?.replacedUid : undefined;
    if (!gone) return;
    const uid = validate.uid(gone);
    const why = e.event === "removed" ? "removed" : "replaced";
    // The revocation first: a certificate must not log in while the rest is forgotten.
    await locks.run([uid], () => revocations.revoke(uid, now()));
    if (await locks.run([uid], () => store.removeClientSecret(uid))) log.info(`forgot the secret of ${uid} (${why})`);
    const n = await locks.run([uid], () => devices.revokeUid(uid));
    if (n) log.info(`revoked ${n} browser device${n === 1 ? "" : "s"} of ${uid} (${why})`);
  }

  const subs = [
    subscribeMessages(bus, subjects.event(site, "removed"), reg.Event, onEvent, log),
    subscribeMessages(bus, subjects.event(site, "registered"), reg.Event, onEvent, log),
    serveOps(
      bus,
      subjects.actorAll(site, "auth"),
      pb.Request,
      pb.Reply,
      (req) =>
        match(req.op)
          .with("issue", () => issue(req.issue!))
          .with("login", () => login(req.login!))
          .with("challenge", () => challenge(req.challenge!))
          .with("prove", () => prove(req.prove!))
          .with("verify", () => verifyToken(req.verify!))
          .with("rotate", () => rotate())
          .with("device", () => browser.device(req.device!))
          .with("check", () => browser.check(req.check!))
          .with("logout", () => browser.logout(req.logout!))
          .with("claimCode", () => browser.claimCode())
          .with("claim", () => browser.claim(req.claim!))
          .with("certificate", async () => ({ certificate: { uid: await browser.certificate(req.certificate!), level: "token" } }))
          .exhaustive(),
      log,
      { queue: "auth" },
    ),
  ];
  const timer = setInterval(() => {
    const t = now();
    failures.sweep(t);
    nonces.sweep(t);
    browser.sweep(t);
    if (store.hasPrunable(t, keepMs)) prune();
  }, Math.min(60_000, keepMs));
  timer.unref();
  await bus.flush();
  log.info(`ready; token key ${store.current().id}, tokens last ${lifetime} s`);
  log.debug(`state in ${store.dir}`);

  return {
    name: "auth",
    stop: once(async () => {
      clearInterval(timer);
      await Promise.all(subs.map((s) => s.drain()));
      await locks.idle();
      await store.idle();
    }),
  };
}
