/**
 * XO activation adapter (activation-port, default 191). An XO booting
 * without a valid lease connects, sends its 11-byte serial number, shuts
 * its write side and reads until we close, with no timeout of its own: so
 * every connection here is closed, always. Replies: the lease line(s),
 * exactly `STOLEN`, or nothing (the XO then tries its next network).
 * Also `rtcreset SN TIMESTAMP COUNT` → an rtc01 line.
 *
 * Every answer is published as an `activation` event (serial number, what
 * was answered, how long it took) for the admin console's live feed and the
 * lease actor's "last activation", and counted for /metrics.
 */
import { createServer, type Socket } from "node:net";
import { sugar } from "../../schemas/gen/messages.js";
import { leaseClient, subscribeMessages } from "../../src/codec.js";
import { formatAddress, once, type Context, type Listener } from "../../src/component.js";
import { describe, toSugarError, type ErrorCode } from "../../src/errors.js";
import type { ActivationAnswer } from "../../src/metrics.js";
import { fetchLeaseStolenList } from "../../src/lease-pages.js";
import { leaseWaitMs } from "../../src/budget.js";
import { subjects } from "../../src/bus/subjects.js";
import { listen } from "../kit/listen.js";
import { isMachineSn, MACHINE_SN, OLPC_TIME } from "../../src/validate.js";

/** Longest request: "rtcreset " + SN + " " + 16-char time + " " + count, with room to spare. */
const MAX_REQUEST = 64;
/** A whole-string pattern's body, to build a longer pattern from it. */
const unanchored = (pattern: RegExp) => pattern.source.replace(/^\^/, "").replace(/\$$/, "");
/** `rtcreset SN TIMESTAMP COUNT`, from the one serial-number and the one OLPC-time pattern. */
const RTCRESET = new RegExp(`^rtcreset (${unanchored(MACHINE_SN)}) (${unanchored(OLPC_TIME)}) (\\d{1,10})$`);

export type ActivationRequest = { kind: "lease"; sn: string } | { kind: "rtc"; sn: string; timestamp: string; count: string } | { kind: "invalid" };

/** What the bytes an XO sent ask for. One trailing CR/LF is tolerated; the serial number is taken exactly as sent. */
export function parseActivationRequest(bytes: Buffer): ActivationRequest {
  if (bytes.length === 0 || bytes.length > MAX_REQUEST) return { kind: "invalid" };
  let text = bytes.toString("latin1");
  if (text.endsWith("\r\n")) text = text.slice(0, -2);
  else if (text.endsWith("\n") || text.endsWith("\r")) text = text.slice(0, -1);
  if (isMachineSn(text)) return { kind: "lease", sn: text };
  const m = RTCRESET.exec(text);
  if (m) return { kind: "rtc", sn: m[1]!, timestamp: m[2]!, count: m[3]! };
  return { kind: "invalid" };
}

/** The one place port 191 maps errors: `STOLEN` for a stolen machine, else the configured unknown reply. */
export function activationReplyFor(code: ErrorCode, unknownReply: "empty" | "UNKNOWN"): Buffer {
  if (code === "stolen") return Buffer.from("STOLEN");
  return unknownReply === "UNKNOWN" ? Buffer.from("UNKNOWN") : Buffer.alloc(0);
}

export async function startActivation(ctx: Context): Promise<Listener> {
  const { bus, config } = ctx;
  const log = ctx.log.child("activation");
  // Longer than the lease actor's own budget: a lease the keyring signed still reaches the XO on a starved server.
  const lease = leaseClient(bus, config.site, { timeoutMs: leaseWaitMs(config["bus-timeout"]) });
  const unknownReply = config["unknown-reply"] as "empty" | "UNKNOWN";
  const stolen = new Set<string>();
  const open = new Set<Socket>();
  const perSource = new Map<string, number>();
  let active = 0;
  const waiting: Array<() => void> = [];
  let stopping = false;

  // The stolen list, kept current by events so a stolen XO hears STOLEN even while the lease actor is busy or down.
  const stolenEvents = subscribeMessages(bus, subjects.event(config.site, "stolen"), sugar.lease.StolenEvent, (ev) => {
    if (ev.stolen) stolen.add(ev.machineSn ?? "");
    else stolen.delete(ev.machineSn ?? "");
  }, log);
  try {
    // In pages: with the district's marks the list is more than one bus message holds.
    for (const sn of (await fetchLeaseStolenList((req) => lease.call("stolenlist", req))).machineSns) stolen.add(sn);
  } catch (err) {
    log.warn(`stolen list not loaded yet (${describe(err)}); the lease actor still refuses stolen machines`);
  }

  /** At most activation-concurrency answers at once; the rest wait in order (xinetd's instances). */
  async function inTurn<T>(fn: () => Promise<T>): Promise<T> {
    if (active >= config["activation-concurrency"]) await new Promise<void>((r) => waiting.push(r));
    active++;
    try {
      return await fn();
    } finally {
      active--;
      waiting.shift()?.();
    }
  }

  interface Answer {
    reply: Buffer;
    answer: ActivationAnswer;
    origin?: string;
  }

  async function answer(req: ActivationRequest): Promise<Answer> {
    if (req.kind === "invalid") return { reply: Buffer.alloc(0), answer: "invalid" };
    if (stolen.has(req.sn)) return { reply: Buffer.from("STOLEN"), answer: "stolen" };
    try {
      if (req.kind === "rtc") {
        const r = await lease.call("rtc", { machineSn: req.sn, currentRtc: req.timestamp, nonce: req.count });
        return { reply: Buffer.from(r.line ?? ""), answer: "rtc" };
      }
      const r = await lease.call("get", { machineSn: req.sn, source: "activation" });
      return { reply: Buffer.from(r.lease ?? ""), answer: r.lease ? "lease" : "empty", origin: r.origin ?? "" };
    } catch (err) {
      const e = toSugarError(err);
      const expected = e.code === "unknown_machine" || e.code === "stolen" || e.code === "not_found";
      if (!expected) log.warn(`${req.sn}: ${e.code}: ${e.message}`);
      return { reply: activationReplyFor(e.code, unknownReply), answer: e.code === "stolen" ? "stolen" : expected ? "empty" : "error" };
    }
  }

  /** Counts the answer and tells the bus (the console's live feed, the lease actor's last activation). */
  function report(req: ActivationRequest, a: Answer, started: number): void {
    const latencyMs = performance.now() - started;
    ctx.metrics?.activations.inc({ answer: a.answer });
    ctx.metrics?.requests.inc({ adapter: "activation", op: req.kind, result: a.answer === "error" ? "error" : "ok" });
    ctx.metrics?.latency.observe({ adapter: "activation" }, latencyMs / 1000);
    const ev = { machineSn: req.kind === "invalid" ? "" : req.sn, answer: a.answer, latencyMs, time: new Date().toISOString(), origin: a.origin ?? "" };
    bus.publish(subjects.event(config.site, "activation"), sugar.lease.Activation.encode(ev).finish());
  }

  function handle(socket: Socket): void {
    const source = socket.remoteAddress ?? "?";
    const count = perSource.get(source) ?? 0;
    if (stopping || open.size >= config["activation-max-connections"] || count >= config["activation-per-source"]) {
      socket.destroy();
      return;
    }
    open.add(socket);
    perSource.set(source, count + 1);
    socket.on("close", () => {
      open.delete(socket);
      const n = (perSource.get(source) ?? 1) - 1;
      if (n <= 0) perSource.delete(source);
      else perSource.set(source, n);
    });
    socket.on("error", (err) => log.debug(`${source}: ${err.message}`));
    const chunks: Buffer[] = [];
    let size = 0;
    let decided = false;
    const finish = (reply: Buffer) => {
      if (socket.destroyed) return;
      socket.end(reply);
      // Whatever the client does, the connection is gone soon: the XO must never hang on us.
      socket.setTimeout(config["activation-timeout"] * 1000, () => socket.destroy());
    };
    const decide = () => {
      if (decided) return;
      decided = true;
      socket.setTimeout(0);
      socket.pause();
      const request = parseActivationRequest(Buffer.concat(chunks));
      const started = performance.now();
      void inTurn(() => answer(request)).then(
        (a) => {
          finish(a.reply);
          report(request, a, started);
        },
        (err) => {
          log.error(`answering ${source}: ${describe(err)}`);
          finish(Buffer.alloc(0));
          report(request, { reply: Buffer.alloc(0), answer: "error" }, started);
        },
      );
    };
    socket.setTimeout(config["activation-timeout"] * 1000, () => {
      // Sent nothing (or never half-closed): answer what we have, or close empty.
      if (size === 0) socket.destroy();
      else decide();
    });
    socket.on("data", (chunk: Buffer) => {
      if (decided) return;
      size += chunk.length;
      if (size > MAX_REQUEST) {
        decided = true;
        socket.destroy(); // not an XO
        return;
      }
      chunks.push(chunk);
    });
    // An XO sends its 11 bytes and then FIN: the request is complete at FIN (or at the read timeout).
    socket.on("end", decide);
  }

  const server = createServer({ allowHalfOpen: true }, handle);
  // A storm of XOs connects faster than one thread accepts: the kernel queue holds as many as we would serve.
  const address = await listen(server, config.host, config["activation-port"], "activation-port", Math.max(511, config["activation-max-connections"]));
  log.info(`listening on ${formatAddress(address)}`);
  return {
    name: "activation",
    address,
    stop: once(async () => {
      stopping = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      // Let answers in progress go out; then nothing may stay open.
      const deadline = setTimeout(() => {
        for (const s of open) s.destroy();
      }, 2000);
      await closed;
      clearTimeout(deadline);
      await stolenEvents.drain();
    }),
  };
}
