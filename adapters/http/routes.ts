/**
 * REST's routes: what each checks of what arrives and which actor it asks.
 * No domain rule lives here.
 */
import type { Bus } from "../../src/bus/types.js";
import type { AuthClient, BackupClient, KeyringCaClient, LeaseClient, RegistryClient } from "../../src/codec.js";
import { SugarError } from "../../src/errors.js";
import { field, typedSn, type Route } from "./fields.js";
import { loginBody, proofFrom, wantsCredential, type Guard } from "./auth.js";

export interface RouteDeps {
  bus: Bus;
  registry: RegistryClient;
  backup: BackupClient;
  lease: LeaseClient;
  auth: AuthClient;
  keyring: KeyringCaClient;
  allowed: Guard;
  /** The district CA's fingerprint for registration replies ("" without one). */
  serverCa: () => string;
}

export function restRoutes(d: RouteDeps): Route[] {
  const { bus, registry, backup, lease, auth, keyring, allowed } = d;
  return [
    {
      method: "POST",
      path: "/client/register",
      async handle({ fields, headers }) {
        const ca = d.serverCa();
        const serverCa = ca ? { server_ca: ca } : {};
        // A device without an SSH key (a client utility on a phone): device_id in place of a serial number, no pubkey.
        if (fields.has("device_id") && !fields.has("pubkey")) {
          const r = await registry.call("registerDevice", { nickname: field(fields, ["nickname"], true), deviceId: field(fields, ["device_id"], true) });
          return { body: { uid: r.user?.uid, created: r.created, kind: "browser", ...(r.credential ? { credential: r.credential } : {}), ...serverCa } };
        }
        const r = await registry.call("register", {
          nickname: field(fields, ["nickname"], true),
          pubkey: field(fields, ["pubkey"], true),
          machineSn: typedSn(field(fields, ["machine_sn", "serial"], false)),
          machineUuid: field(fields, ["machine_uuid", "uuid"], false).trim(),
          proof: proofFrom(headers) ?? null,
        });
        return {
          body: {
            uid: r.user?.uid,
            jabberserver: r.jabberServer,
            backupurl: r.backupUrl,
            backuppath: r.backupPath,
            created: r.created,
            ...(r.home ? { home: r.home } : {}),
            ...(r.credential ? { credential: r.credential } : {}),
            ...(r.claimedUid ? { reflash: r.approved ? "approved" : "pending" } : {}),
            ...serverCa,
          },
        };
      },
    },
    {
      // With the credential from registration, or with the key itself: an SSHSIG over a nonce from /client/challenge.
      method: "POST",
      path: "/client/login",
      async handle({ fields, source }) {
        const credential = fields.get("credential");
        if (fields.has("signature") || fields.has("nonce")) {
          const r = await auth.call("prove", {
            uid: field(fields, ["uid"], true),
            nonce: field(fields, ["nonce"], true),
            signature: field(fields, ["signature"], true),
            credential: wantsCredential(credential),
            source,
          });
          return { body: loginBody(r) };
        }
        return { body: loginBody(await auth.call("login", { credential: field(fields, ["credential"], true), source })) };
      },
    },
    {
      method: "GET",
      path: "/client/challenge",
      async handle({ query }) {
        const c = await auth.call("challenge", { uid: field(query, ["uid"], true) });
        return { body: { nonce: c.nonce, namespace: c.namespace, expires: c.expires } };
      },
    },
    {
      // A TLS client certificate for the logged-in uid (always its own: whatever client-auth says), signed by the district CA.
      method: "POST",
      path: "/client/certificate",
      async handle({ fields, headers, who }) {
        const uid = await allowed.loggedIn(who, headers, field(fields, ["uid"], false));
        const csr = field(fields, ["csr"], true);
        try {
          await registry.call("lookup", { uid });
        } catch (err) {
          if (err instanceof SugarError && err.code === "not_registered") throw new SugarError("forbidden", `${uid} is not registered at this school`);
          throw err;
        }
        const c = await keyring.call("clientCert", { csr, uid });
        return { body: { certificate: c.certificate, ca: c.ca, not_after: c.notAfter } };
      },
    },
    {
      method: "GET",
      path: "/client/status",
      async handle({ query, headers, who }) {
        // Registration is the registry's answer, backups the backup actor's (asked only for a registered uid).
        const uid = field(query, ["uid", "uuid"], true);
        await allowed.forUid(who, headers, uid);
        const s = await registry.call("status", { uid });
        if (!s.registered) return { body: { registered: false } };
        // Roaming (option district): at home at another school, whose backups these are not.
        if (s.homeBackupUrl) return { body: { registered: true, home: s.home, "jabber-url": s.jabberUrl, "backup-url": s.homeBackupUrl, "pending-restore": false } };
        const b = await backup.call("status", { uid });
        return { body: { registered: true, ...(s.home ? { home: s.home } : {}), "jabber-url": s.jabberUrl, "backup-url": b.backupUrl, "pending-restore": !!b.pendingRestore } };
      },
    },
    {
      method: "GET",
      path: "/healthz",
      async handle() {
        // A real round trip to the registry: healthy means registrations can be answered.
        await registry.call("status", { uid: "0".repeat(40) });
        return { body: { status: "ok", bus: bus.kind } };
      },
    },
    {
      method: "GET",
      path: "/client/backup",
      async handle({ query, headers, who }) {
        const uid = field(query, ["uid", "uuid"], true);
        await allowed.forUid(who, headers, uid);
        const a = await backup.call("admit", { uid });
        return { body: { accepted: a.accepted, "backup-url": a.backupUrl, ...(a.accepted ? {} : { reason: a.reason, "retry-after": a.retryAfter }) } };
      },
    },
    {
      method: "GET",
      path: "/client/lease",
      async handle({ query, headers, who }) {
        const sn = typedSn(field(query, ["machine_sn", "serial"], true));
        await allowed.forSn(who, headers, sn);
        const r = await lease.call("get", { machineSn: sn, source: "rest" });
        return { body: { lease: r.lease } };
      },
    },
    {
      // The OLPC ds-backup client: 200 = go ahead, 503 = busy (it backs off and retries), 403 = not allowed.
      method: "GET",
      path: "/backup/1/available/",
      prefix: true,
      raw: true,
      async handle({ rest }) {
        const a = await backup.call("admit", { machineSn: rest });
        return a.accepted ? { status: 200, body: {} } : { status: 503, body: { "retry-after": a.retryAfter } };
      },
    },
  ];
}
