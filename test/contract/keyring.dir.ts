/**
 * A keyring directory laid out the way the keyring actor reads it
 * (actors/keyring/store.ts), from the OLPC vectors: what the lease and
 * keyring contracts start their keyring with.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { vectors } from "../support/olpc-fixtures.js";

export interface KeyringFiles {
  /** server.pem: the vectors' server key, the one delegation.txt is issued to. */
  serverKey?: boolean;
  /** lease.pem: the vectors' master key, so v1 leases and rtc01 lines verify against master. */
  leaseKey?: boolean;
  /** trusted.key01 holding the master key. */
  trustMaster?: boolean;
  /** del01 lines, stored as the keyring stores the ones it imported. */
  delegations?: string[];
}

/** The vectors' keys and delegation, as a school that ran `keyring trust` and `keyring import-delegations` has them. */
export const VECTOR_KEYRING: KeyringFiles = { serverKey: true, trustMaster: true, delegations: [vectors.delegation] };

export function writeKeyringDir(dir: string, files: KeyringFiles): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (files.serverKey) writeFileSync(join(dir, "server.pem"), vectors.serverPem, { mode: 0o600 });
  if (files.leaseKey) writeFileSync(join(dir, "lease.pem"), vectors.masterPem, { mode: 0o600 });
  if (files.trustMaster) writeFileSync(join(dir, "trusted.key01"), `key01: ${vectors.masterKey01}\n`);
  for (const line of files.delegations ?? []) {
    const sn = line.split(" ")[1] ?? "";
    mkdirSync(join(dir, "delegations", sn.slice(-2)), { recursive: true, mode: 0o700 });
    writeFileSync(join(dir, "delegations", sn.slice(-2), sn), line.endsWith("\n") ? line : `${line}\n`);
  }
}
