/**
 * keyring: delegated leases signed per second through the bus. The keyring
 * actor runs in this process on a MemoryBus with the vector server key, the
 * vector master key trusted and delegations (signed with the master key) for
 * many serial numbers; `keyringClient(bus).call("sign")` with some requests
 * in flight. The baseline is raw node:crypto RSA-PSS-2048 signing (SHA-256,
 * salt length 8) of bytes of the same size, one thread, this process, through
 * the same generator.
 */
import { constants, sign } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startKeyring } from "../../../actors/keyring/index.js";
import { MemoryBus } from "../../../src/bus/memory.js";
import { keyringClient } from "../../../src/codec.js";
import { configWith } from "../../../src/config.js";
import { silentLogger } from "../../../src/log.js";
import * as olpc from "../../../lib/olpc/index.js";
import { vectors } from "../../support/olpc-fixtures.js";
import { xoVerifyLease } from "../../support/xo-verify.js";
import type { Scenario } from "../context.js";
import { inAYear, masterKey, nextSerial, serverKey, uuid } from "../fixtures.js";
import { measure, type Contender } from "../load.js";
import { ratioAtLeast, throughputRow } from "../report.js";

const IN_FLIGHT = 8;
const ADMIN_TIMEOUT_MS = 60_000;

export const keyring: Scenario = {
  id: "keyring",
  what: "delegated leases signed per second through the bus vs raw RSA-PSS-2048 signs per second",
  async run(bench) {
    const { delegations, warmupMs, keyringMs, rounds } = bench.sizes;
    const config = configWith({ root: bench.dir("keyring") });
    mkdirSync(config["keyring-dir"], { recursive: true, mode: 0o700 });
    writeFileSync(join(config["keyring-dir"], "server.pem"), vectors.serverPem, { mode: 0o600 });
    const bus = new MemoryBus({ timeoutMs: ADMIN_TIMEOUT_MS });
    const actor = await startKeyring({ bus, config, log: silentLogger });
    bench.onCleanup(async () => {
      await actor.stop();
      await bus.close();
    });
    const client = keyringClient(bus, { timeoutMs: ADMIN_TIMEOUT_MS });
    await client.call("trust", { text: `key01: ${vectors.masterKey01}\n` });

    bench.progress(`keyring: ${delegations} delegations signed with the vector master key`);
    const rootKey = masterKey();
    const server = serverKey();
    const machines = Array.from({ length: delegations }, () => ({ sn: nextSerial("SHD"), uuid: uuid() }));
    const expiry = inAYear();
    const text = machines.map((m) => olpc.signDelegation({ sn: m.sn, uuid: m.uuid, delegationExpiry: expiry, rootKey, serverPublicKey: server })).join("");
    const imported = await client.call("import", { text });
    if (imported.imported !== delegations) throw new Error(`delegations: ${imported.imported} of ${delegations} imported: ${JSON.stringify(imported.refused)}`);

    // What the laptops will check: one signed lease, verified the firmware's way.
    const first = await client.call("sign", { machineSn: machines[0]!.sn });
    const check = xoVerifyLease({ line: first.lease ?? "", sn: machines[0]!.sn, uuid: machines[0]!.uuid, trustedKey01Hex: [vectors.masterKey01], now: new Date() });
    if (!check.ok) throw new Error(`the keyring's lease does not verify: ${check.reason}`);

    const exp = first.expiry ?? expiry;
    const bytes = olpc.delegatedLeaseSignedBytes(machines[0]!.sn, machines[0]!.uuid, exp, exp);
    bench.progress(`keyring: raw RSA-PSS-2048 signing (one at a time) vs signing through the bus (${IN_FLIGHT} in flight), ${keyringMs} ms each in ${rounds} round(s)`);
    const rawSign: Contender = {
      concurrency: 1,
      op: async () => {
        const sig = sign("sha256", bytes, { key: server, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: olpc.PSS_SALT_LENGTH });
        if (sig.length !== 256) throw new Error(`signature of ${sig.length} bytes`);
      },
    };
    const busSign: Contender = {
      concurrency: IN_FLIGHT,
      op: async (i) => {
        const r = await client.call("sign", { machineSn: machines[i % machines.length]!.sn });
        if (r.kind !== "delegated" || !r.lease?.startsWith("act01: ")) throw new Error(`sign: ${JSON.stringify(r)}`);
      },
    };
    const [subject, raw] = await measure({ warmupMs, durationMs: keyringMs, rounds }, [busSign, rawSign]);
    const row = throughputRow(
      "keyring",
      subject!,
      raw,
      ratioAtLeast(0.8),
      `leases/s: ${subject!.perSecond.toFixed(0)} delegated leases through the bus (${IN_FLIGHT} in flight, ${delegations} serial numbers); baseline: raw signs/s, one thread; measured alternately`,
    );
    return [{ ...row, unit: "leases/s" }];
  },
};
