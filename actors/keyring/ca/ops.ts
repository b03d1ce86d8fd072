/**
 * The keyring's district-CA ops, for the school the subject names
 * (`sugar.keyring.<site>.<op>`): the hub exports each school's subjects to
 * that school alone, so the site is who asks, and nothing in the request
 * can speak for another school.
 */
import { sugar } from "../../../schemas/gen/messages.js";
import type { Requester } from "../../../src/bus/types.js";
import { registryClient } from "../../../src/codec.js";
import type { Config } from "../../../src/config.js";
import { SugarError } from "../../../src/errors.js";
import type { Logger } from "../../../src/log.js";
import * as validate from "../../../src/validate.js";
import { checkCsr } from "./csr.js";
import { concreteNames, hostPatterns, namesFor, patternsOf } from "./names.js";
import { issueHostCert } from "./ssh.js";
import type { CaStore, HeldCa } from "./store.js";
import { issue } from "./x509.js";

import pb = sugar.keyring;

const LOOKUP_TIMEOUT_MS = 5000;

export function caOps(store: CaStore, config: Pick<Config, "ca-server-names">, bus: Requester, log: Logger) {
  const patterns = patternsOf(config["ca-server-names"]);
  // A pattern without {site} is a name every school may have: a certificate for it proves the district, not the school.
  const shared = patterns.filter((p) => !p.split(".").includes("{site}"));
  if (shared.length) log.warn(`ca-server-names ${shared.join(", ")} name no school: every school may get ${shared.length === 1 ? "it" : "them"}, so a client that trusts it cannot tell one school from another`);

  const held = (): HeldCa => {
    if (!store.ca) throw new SugarError("unavailable", "the keyring holds no district CA: run `sugar-server keyring init --ca` on the keyring host");
    return store.ca;
  };

  /** Whether `site`'s own registry knows `uid`: the keyring asks the school, never believes the request. */
  async function registered(site: string, uid: validate.Uid): Promise<void> {
    try {
      const r = await registryClient(bus, site, { timeoutMs: LOOKUP_TIMEOUT_MS }).call("lookup", { uid });
      if (r.user?.uid === uid) return;
    } catch (err) {
      if (!(err instanceof SugarError && err.code === "not_registered")) throw err;
    }
    throw new SugarError("forbidden", `uid ${uid} is not registered at ${site}`);
  }

  return {
    ca(site: string): pb.CaReply.$Properties {
      const ca = held();
      return { certificate: ca.pem, fingerprint: ca.fingerprint, sshPublicKey: ca.sshPublicKey, hostPatterns: hostPatterns(patterns), names: concreteNames(patterns, site) };
    },

    async serverCert(site: string, req: pb.ServerCertRequest.$Properties): Promise<pb.CertReply.$Properties> {
      const ca = held();
      const csr = await checkCsr(req.csr ?? "", "server");
      const names = namesFor(req.names ?? [], patterns, site);
      const cert = await issue(ca, csr, { kind: "server", names, site });
      log.info(`${site}: server certificate ${cert.serial} for ${names.join(", ")}`);
      return { certificate: cert.pem, ca: ca.pem, notAfter: cert.notAfter.toISOString(), names, serial: cert.serial };
    },

    async clientCert(site: string, req: pb.ClientCertRequest.$Properties): Promise<pb.CertReply.$Properties> {
      const ca = held();
      const uid = validate.uid(req.uid ?? "");
      const csr = await checkCsr(req.csr ?? "", "client");
      await registered(site, uid);
      const cert = await issue(ca, csr, { kind: "client", uid, site });
      log.info(`${site}: client certificate ${cert.serial} for ${uid}`);
      return { certificate: cert.pem, ca: ca.pem, notAfter: cert.notAfter.toISOString(), names: [uid], serial: cert.serial };
    },

    sshHostCert(site: string, req: pb.SshHostCertRequest.$Properties): pb.SshHostCertReply.$Properties {
      const ca = held();
      const principals = namesFor(req.names ?? [], patterns, site);
      const cert = issueHostCert(ca.ssh, req.publicKey ?? "", principals, site);
      log.info(`${site}: ssh host certificate ${cert.serial} for ${principals.join(", ")}`);
      return { certificate: cert.line, principals, notAfter: cert.notAfter.toISOString(), serial: cert.serial };
    },
  };
}
