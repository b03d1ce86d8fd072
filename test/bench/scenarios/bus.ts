/**
 * bus-roundtrip: the registry's `status` request/reply through the bus, in
 * this process (startRegistry + registryClient), on MemoryBus and on NatsBus
 * (server and client on two connections), at 1 and at 100 in flight. The
 * baseline is a bare nats.js request/reply on the same nats-server: one
 * connection subscribes and responds with a payload the size of the
 * registry's reply, another requests with a payload the size of its request.
 */
import { connect, type NatsConnection } from "nats";
import { startRegistry } from "../../../actors/registry/index.js";
import { sugar } from "../../../schemas/gen/messages.js";
import { MemoryBus } from "../../../src/bus/memory.js";
import { NatsBus } from "../../../src/bus/nats.js";
import type { Bus } from "../../../src/bus/types.js";
import { encodeReply, registryClient } from "../../../src/codec.js";
import { configWith } from "../../../src/config.js";
import { silentLogger } from "../../../src/log.js";
import type { Bench, Scenario } from "../context.js";
import { NATS_ABSENT } from "../context.js";
import { fakeKey, unknownUid } from "../fixtures.js";
import { measure, runLoad, type LoadResult } from "../load.js";
import { round, skippedRow, throughputRow, type Row } from "../report.js";
import { JABBER } from "./rest.js";

const TIMEOUT_MS = 10_000;
const LEVELS = [1, 100] as const;
const KNOWN_USERS = 100;

type Op = (i: number) => Promise<void>;

/** The registry on one bus and a client on another (or the same, for MemoryBus); returns the status operation. */
async function registryRoundtrip(bench: Bench, kind: "memory" | "nats", url?: string): Promise<Op> {
  let serveBus: Bus;
  let clientBus: Bus;
  if (kind === "memory") {
    serveBus = clientBus = new MemoryBus({ timeoutMs: TIMEOUT_MS });
  } else {
    serveBus = await NatsBus.connect({ servers: url!, timeoutMs: TIMEOUT_MS, name: "bench-registry" });
    clientBus = await NatsBus.connect({ servers: url!, timeoutMs: TIMEOUT_MS, name: "bench-client" });
  }
  // A site of its own: a sugar-server of another scenario may serve "school" on the same nats-server.
  const config = configWith({ root: bench.dir(`bus-${kind}`), site: "busbench", "jabber-url": JABBER, "backup-user": "sugar", "backup-host": JABBER });
  const registry = await startRegistry({ bus: serveBus, config, log: silentLogger });
  await serveBus.flush();
  bench.onCleanup(async () => {
    await registry.stop();
    await serveBus.close();
    if (clientBus !== serveBus) await clientBus.close();
  });
  const client = registryClient(clientBus, config.site, { timeoutMs: TIMEOUT_MS });
  const known: string[] = [];
  const setup = await runLoad({ concurrency: 16, count: KNOWN_USERS }, async () => {
    const r = await client.call("register", { nickname: "Bench", pubkey: fakeKey().line });
    known.push(r.user!.uid!);
  });
  if (setup.errors) throw new Error(`registering users on ${kind}: ${setup.firstError}`);
  const unknown = Array.from({ length: 1024 }, unknownUid);
  return async (i) => {
    const isKnown = (i & 1) === 0;
    const uid = isKnown ? known[(i >>> 1) % known.length]! : unknown[(i >>> 1) & 1023]!;
    const s = await client.call("status", { uid });
    if (!!s.registered !== isKnown) throw new Error(`status of ${uid}: registered = ${s.registered}`);
  };
}

/** Bare nats.js request/reply with payloads the size of the registry's status request and reply. */
async function bareRoundtrip(bench: Bench, url: string): Promise<Op> {
  const responder: NatsConnection = await connect({ servers: url, name: "bench-bare-responder" });
  const requester: NatsConnection = await connect({ servers: url, name: "bench-bare-requester" });
  bench.onCleanup(async () => {
    await requester.close();
    await responder.close();
  });
  const request = sugar.registry.Request.encode({ status: { uid: unknownUid() } }).finish();
  const reply = encodeReply(sugar.registry.Reply.encode({ status: { registered: true, jabberUrl: JABBER } }).finish());
  responder.subscribe("bench.roundtrip", {
    queue: "bench",
    callback: (err, msg) => {
      if (!err) msg.respond(reply);
    },
  });
  await responder.flush();
  return async () => {
    const m = await requester.request("bench.roundtrip", request, { timeout: TIMEOUT_MS });
    if (m.data.length !== reply.length) throw new Error(`bare reply of ${m.data.length} bytes`);
  };
}

export const busRoundtrip: Scenario = {
  id: "bus-roundtrip",
  what: "registry status request/reply through MemoryBus and NatsBus at 1 and 100 in flight, vs bare nats.js request/reply",
  async run(bench) {
    const nats = await bench.nats();
    const { warmupMs, busMs, rounds } = bench.sizes;
    const ops: Record<string, Op> = { memory: await registryRoundtrip(bench, "memory") };
    if (nats) {
      ops.nats = await registryRoundtrip(bench, "nats", nats.url);
      ops.bare = await bareRoundtrip(bench, nats.url);
    }
    const results: Record<string, LoadResult> = {};
    const kinds = ["bare", "memory", "nats"].filter((k) => ops[k] !== undefined);
    for (const c of LEVELS) {
      bench.progress(`bus-roundtrip: ${kinds.join(", ")} at ${c} in flight, ${busMs} ms each in ${rounds} round(s)`);
      const measured = await measure({ warmupMs: Math.min(warmupMs, busMs / 3), durationMs: busMs, rounds }, kinds.map((k) => ({ concurrency: c, op: ops[k]! })));
      kinds.forEach((k, j) => (results[`${k}@${c}`] = measured[j]!));
    }
    const rows: Row[] = [];
    for (const kind of ["memory", "nats"]) {
      for (const c of LEVELS) {
        const name = `bus-roundtrip/${kind}@${c}`;
        const subject = results[`${kind}@${c}`];
        if (!subject) {
          rows.push(skippedRow(name, NATS_ABSENT));
          continue;
        }
        const bare = results[`bare@${c}`];
        const notes = bare ? `baseline: bare nats.js request/reply at ${c} in flight, measured alternately (p50 ${round(bare.p50Ms)} ms, p99 ${round(bare.p99Ms)} ms)` : `no baseline: bare nats.js needs ${NATS_ABSENT}`;
        rows.push(throughputRow(name, subject, bare, undefined, notes));
      }
    }
    return rows;
  },
};
