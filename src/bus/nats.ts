/**
 * The bus across processes: the `nats` package (nats.js 2.x) behind the Bus
 * interface, with the semantics MemoryBus has in one process.
 *
 * nats.js pitfalls this class exists to contain:
 * - a subscription callback that throws silently kills the connection, so
 *   every callback here is wrapped and never lets an exception escape, and
 *   every handler's throw or rejection is logged here and answered with an
 *   empty reply carrying the `Sugar-Error: internal` header, which the
 *   requesting NatsBus turns into SugarError `internal` (the handler's
 *   message stays on the serving side);
 * - during an outage requests only fail at their own timeout: here a request
 *   made while disconnected fails at once with `unavailable`, and requests in
 *   flight when the connection drops fail with `unavailable` as soon as the
 *   client notices (their replies cannot arrive: the server that would route
 *   them is gone);
 * - outgoing bytes are queued by reference until the next flush, so every
 *   outgoing buffer is copied first (a caller may reuse its buffer at once);
 * - the connection's drain does not know about async handlers, so handlers
 *   are tracked here and `drain()`/`close()` wait for them before the
 *   connection goes away (their replies still go out);
 * - nats.js flushes its outbound buffer in a microtask after the first
 *   message of a turn, so replies of async handlers (each finishing in its
 *   own microtask) go out one socket write each: here every publish and
 *   reply of one turn of the event loop is handed to nats.js at once, in a
 *   setImmediate, and leaves in one write (flushed at once before anything
 *   whose order matters: a subscription change, a flush, a drain);
 * - nats.js's request() builds an Error for every request it resolves (its
 *   cancel() after the reply): requests here go through this class's own
 *   reply subscription (`<inbox>.*`, one per connection, as nats.js's is),
 *   with a timer each; a reply with no payload and status 503 is "no
 *   responders", and a permissions violation on a request's subject fails
 *   that request.
 */
import { readFileSync } from "node:fs";
import { connect, createInbox, credsAuthenticator, ErrorCode, Events, DebugEvents, headers, NatsError } from "nats";
import type { ConnectionOptions, Msg, MsgHdrs, NatsConnection, Status, Subscription as NatsSubscription } from "nats";
import { SugarError, describe } from "../errors.js";
import { silentLogger, type Logger } from "../log.js";
import { isConcreteSubject } from "./subjects.js";
import type { Bus, MessageHandler, RequestHandler, RequestOptions, ServeOptions, Subscription } from "./types.js";

export interface NatsBusOptions {
  /** Server URL(s): an array, or one string with URLs separated by commas. */
  servers: string | readonly string[];
  user?: string;
  password?: string;
  /** A NATS credentials file (JWT + nkey seed), read once at connect. */
  credsFile?: string;
  /** TLS: the CA that signed the server's certificate (PEM file). */
  tlsCaFile?: string;
  /** TLS client certificate and key (PEM files), when the server verifies clients. */
  tlsCertFile?: string;
  tlsKeyFile?: string;
  /** Prefix of reply subjects, for accounts whose permissions restrict `_INBOX.>`. */
  inboxPrefix?: string;
  /** Client name shown in the server's monitoring. */
  name?: string;
  /** Default request timeout (ms); 2000 when absent, like MemoryBus. */
  timeoutMs?: number;
  /**
   * Keep trying until the first connection succeeds (a service started before
   * its NATS server). Without it, an unreachable server fails `connect` at once.
   */
  waitOnFirstConnect?: boolean;
  /** How long one connection attempt may take (ms); 5000 when absent. */
  connectTimeoutMs?: number;
  /** Pause between reconnection attempts (ms); 2000 when absent. */
  reconnectTimeWaitMs?: number;
  /** Where connection events (disconnect, reconnect, errors) and handler failures are logged. */
  log?: Logger;
}

/** One subscription of this bus: the nats.js subscription plus its running handlers. */
class Entry implements Subscription {
  private natsSub: NatsSubscription | undefined;
  private readonly inFlight = new Set<Promise<void>>();
  private stopped = false;
  private drained: Promise<void> | undefined;

  constructor(
    private readonly bus: NatsBus,
    readonly subject: string,
  ) {}

  attach(sub: NatsSubscription): void {
    this.natsSub = sub;
  }

  /** False once unsubscribed: messages still arriving are dropped. */
  get receiving(): boolean {
    return !this.stopped;
  }

  /** Counts a running handler until it settles (handlers log their own failures; this is the backstop). */
  track(p: Promise<void>): void {
    const tracked: Promise<void> = p
      .catch((err: unknown) => this.bus.log.error(`handler on ${this.subject}: ${describe(err)}`))
      .finally(() => this.inFlight.delete(tracked));
    this.inFlight.add(tracked);
  }

  unsubscribe(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.bus.forget(this);
    this.bus.sendQueued(); // what was published before the unsubscribe goes out before it
    try {
      this.natsSub?.unsubscribe();
    } catch (err) {
      this.bus.log.warn(`unsubscribe from ${this.subject}: ${describe(err)}`);
    }
  }

  drain(): Promise<void> {
    this.drained ??= this.doDrain();
    return this.drained;
  }

  private async doDrain(): Promise<void> {
    const sub = this.natsSub;
    if (!this.stopped && sub && this.bus.isConnected()) {
      // Messages the server already sent are still handled; then the
      // subscription ends.
      this.bus.sendQueued();
      try {
        await sub.drain();
      } catch (err) {
        this.bus.log.warn(`drain of ${this.subject}: ${describe(err)}`);
      }
    }
    // Disconnected (nothing more can arrive) or already unsubscribed.
    this.unsubscribe();
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
  }
}

interface PendingRequest {
  fail(err: SugarError): void;
}

/** A request waiting for its reply on the bus's reply subscription. */
interface Waiter extends PendingRequest {
  subject: string;
  resolve(data: Uint8Array): void;
}

/** What nats.js adds to a status event of a permissions violation. */
interface PermissionStatus {
  permissionContext?: { operation?: string; subject?: string };
}

const DEFAULT_TIMEOUT_MS = 2000;

/**
 * The header of a reply that reports a handler's failure instead of
 * carrying bytes. Its only value is `internal`: the transport says the
 * handler failed, never why.
 */
const FAILURE_HEADER = "Sugar-Error";

export class NatsBus implements Bus {
  /** The server URL(s) as configured. */
  readonly kind: string;
  readonly log: Logger;
  private readonly nc: NatsConnection;
  private readonly timeoutMs: number;
  private readonly entries = new Set<Entry>();
  private readonly pending = new Set<PendingRequest>();
  private connected = true;
  private closing = false;
  private closePromise: Promise<void> | undefined;
  private readonly statusEvents: AsyncIterable<Status>;
  private readonly statusLoop: Promise<void>;
  /** Publishes and replies of this turn of the event loop, handed to nats.js together. */
  private outgoing: Array<() => void> = [];
  private outgoingScheduled = false;
  /** The reply subscription (`<prefix><token>`), made at the first request. */
  private replies: { prefix: string; sub: NatsSubscription } | undefined;
  private readonly waiters = new Map<string, Waiter>();
  private nextToken = 0;
  private readonly inboxPrefix: string | undefined;

  private constructor(nc: NatsConnection, kind: string, timeoutMs: number, log: Logger, inboxPrefix: string | undefined) {
    this.nc = nc;
    this.inboxPrefix = inboxPrefix;
    this.kind = kind;
    this.timeoutMs = timeoutMs;
    this.log = log;
    this.statusEvents = nc.status();
    this.statusLoop = this.watchStatus();
    void nc.closed().then((err) => {
      this.connected = false;
      if (err && !this.closing) this.log.error(`connection to NATS at ${this.kind} closed: ${describe(err)}`);
      else if (!this.closing) this.log.error(`connection to NATS at ${this.kind} closed unexpectedly`);
      this.failPending(`connection to NATS at ${this.kind} closed`);
      if (hasStop(this.statusEvents)) this.statusEvents.stop();
    });
  }

  /**
   * Connects to NATS. Fails with SugarError `unavailable` naming the URL when
   * the server cannot be reached (unless `waitOnFirstConnect`, which waits).
   */
  static async connect(opts: NatsBusOptions): Promise<NatsBus> {
    const servers = (typeof opts.servers === "string" ? opts.servers.split(",") : [...opts.servers])
      .map((s) => s.trim())
      .filter((s) => s.length > 0);
    if (servers.length === 0) throw new SugarError("invalid_input", "no NATS server URL given");
    const kind = servers.join(",");
    const log = opts.log ?? silentLogger;
    const options: ConnectionOptions = {
      servers,
      maxReconnectAttempts: -1,
      waitOnFirstConnect: opts.waitOnFirstConnect ?? false,
      timeout: opts.connectTimeoutMs ?? 5000,
      reconnectTimeWait: opts.reconnectTimeWaitMs ?? 2000,
      // nats.js otherwise captures a stack trace per request so a timeout can
      // say where it was made: a third of the CPU of a request under load.
      // Our errors name the subject instead.
      noAsyncTraces: true,
    };
    if (opts.name !== undefined) options.name = opts.name;
    if (opts.inboxPrefix !== undefined) options.inboxPrefix = opts.inboxPrefix;
    if (opts.user !== undefined) {
      options.user = opts.user;
      options.pass = opts.password ?? "";
    }
    if (opts.credsFile !== undefined) {
      let creds: Uint8Array;
      try {
        creds = readFileSync(opts.credsFile);
      } catch (cause) {
        throw new SugarError("unavailable", `cannot read NATS credentials file ${opts.credsFile}: ${describe(cause)}`, { cause });
      }
      options.authenticator = credsAuthenticator(creds);
    }
    if (opts.tlsCaFile !== undefined || opts.tlsCertFile !== undefined || opts.tlsKeyFile !== undefined) {
      options.tls = {};
      if (opts.tlsCaFile !== undefined) options.tls.caFile = opts.tlsCaFile;
      if (opts.tlsCertFile !== undefined) options.tls.certFile = opts.tlsCertFile;
      if (opts.tlsKeyFile !== undefined) options.tls.keyFile = opts.tlsKeyFile;
    }
    let nc: NatsConnection;
    try {
      nc = await connect(options);
    } catch (cause) {
      throw new SugarError("unavailable", `cannot connect to NATS at ${kind}: ${natsReason(cause)}`, { cause });
    }
    log.info(`connected to NATS at ${nc.getServer()}`);
    return new NatsBus(nc, kind, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS, log, opts.inboxPrefix);
  }

  /** True while the client holds a connection to a server. */
  isConnected(): boolean {
    return this.connected && !this.nc.isClosed();
  }

  /**
   * Resolves once the server has processed everything this bus sent so far.
   * A subscription takes effect a round trip after serve()/subscribe()
   * return; after flush() it is in place for every other client.
   */
  async flush(): Promise<void> {
    this.checkOpen();
    if (!this.isConnected()) throw new SugarError("unavailable", `not connected to NATS at ${this.kind}`);
    this.sendOutgoing();
    try {
      await this.nc.flush();
    } catch (err) {
      throw natsToSugar(err, "flush");
    }
  }

  request(subject: string, data: Uint8Array, opts?: RequestOptions): Promise<Uint8Array> {
    try {
      this.checkOpen();
      this.checkOutgoing(subject, data);
      if (!this.isConnected()) throw new SugarError("unavailable", `not connected to NATS at ${this.kind} (request on ${subject})`);
    } catch (err) {
      return Promise.reject(err);
    }
    const timeoutMs = Math.max(1, Math.ceil(opts?.timeoutMs ?? this.timeoutMs));
    let prefix: string;
    try {
      prefix = this.replyPrefix();
    } catch (err) {
      return Promise.reject(requestError(err, subject, timeoutMs));
    }
    const token = (this.nextToken++).toString(36);
    const copy = data.slice();
    return new Promise<Uint8Array>((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(token);
        this.pending.delete(waiter);
      };
      const waiter: Waiter = {
        subject,
        fail: (err) => {
          if (!this.waiters.has(token)) return;
          done();
          reject(err);
        },
        resolve: (bytes) => {
          done();
          resolve(bytes);
        },
      };
      const timer = setTimeout(() => waiter.fail(new SugarError("timeout", `no reply on ${subject} within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.set(token, waiter);
      this.pending.add(waiter);
      this.queue(() => {
        if (!this.waiters.has(token)) return; // failed meanwhile (a disconnect)
        try {
          this.nc.publish(subject, copy, { reply: prefix + token });
        } catch (err) {
          waiter.fail(requestError(err, subject, timeoutMs));
        }
      });
    });
  }

  /** The prefix of this connection's reply subjects; the first request subscribes to `<prefix>*`. */
  private replyPrefix(): string {
    if (this.replies) return this.replies.prefix;
    const prefix = `${createInbox(this.inboxPrefix)}.`;
    this.sendOutgoing(); // what was published before goes out before the SUB, as it would have without the queue
    const sub = this.nc.subscribe(`${prefix}*`, {
      callback: (err, msg) => {
        // A callback that throws kills the nats.js connection: nothing escapes.
        try {
          if (err) {
            this.log.error(`reply subscription: ${describe(err)}`);
            return;
          }
          this.onReply(prefix, msg);
        } catch (e) {
          this.log.error(`reply subscription: ${describe(e)}`);
        }
      },
    });
    this.replies = { prefix, sub };
    return prefix;
  }

  private onReply(prefix: string, msg: Msg): void {
    if (!msg.subject.startsWith(prefix)) return;
    const waiter = this.waiters.get(msg.subject.slice(prefix.length));
    if (!waiter) return; // too late: it timed out or failed
    if (msg.data.length === 0 && msg.headers?.code === 503) {
      waiter.fail(new SugarError("unavailable", `no responders for ${waiter.subject}`));
      return;
    }
    if (msg.headers?.has(FAILURE_HEADER)) {
      waiter.fail(new SugarError("internal", `the handler for ${waiter.subject} failed`));
      return;
    }
    waiter.resolve(msg.data.slice());
  }

  /** Hands an outgoing message to nats.js with the others of this turn of the event loop. */
  private queue(send: () => void): void {
    this.outgoing.push(send);
    if (this.outgoingScheduled) return;
    this.outgoingScheduled = true;
    setImmediate(() => this.sendOutgoing());
  }

  /** Everything queued, to nats.js now (its next flush writes it all at once). */
  private sendOutgoing(): void {
    this.outgoingScheduled = false;
    if (this.outgoing.length === 0) return;
    const out = this.outgoing;
    this.outgoing = [];
    for (const send of out) send();
  }

  serve(subject: string, handler: RequestHandler, opts?: ServeOptions): Subscription {
    return this.add(subject, opts, (entry, msg) => {
      if (!msg.reply) {
        this.log.debug(`${msg.subject}: message without a reply subject ignored by the request handler on ${subject}`);
        return;
      }
      entry.track(this.answer(handler, msg, msg.data.slice()));
    });
  }

  publish(subject: string, data: Uint8Array): void {
    this.checkOpen();
    this.checkOutgoing(subject, data);
    if (!this.isConnected()) {
      // What nats.js does anyway (the outbound buffer is reset on reconnect),
      // said out loud.
      this.log.debug(`not connected to NATS: message on ${subject} dropped`);
      return;
    }
    const copy = data.slice();
    this.queue(() => {
      try {
        this.nc.publish(subject, copy);
      } catch (err) {
        this.log.warn(`message on ${subject} dropped: ${describe(natsToSugar(err, `publish on ${subject}`))}`);
      }
    });
  }

  subscribe(subject: string, handler: MessageHandler, opts?: ServeOptions): Subscription {
    return this.add(subject, opts, (entry, msg) => {
      entry.track(this.deliver(handler, msg.subject, msg.data.slice()));
    });
  }

  /** Drains every subscription (waiting for running handlers), then the connection. Idempotent. */
  close(): Promise<void> {
    this.closePromise ??= this.doClose();
    return this.closePromise;
  }

  /** @internal Hands every queued publish and reply to nats.js now (before a subscription changes). */
  sendQueued(): void {
    this.sendOutgoing();
  }

  /** @internal Called by an Entry that stops receiving. */
  forget(entry: Entry): void {
    this.entries.delete(entry);
  }

  private async doClose(): Promise<void> {
    this.closing = true;
    await Promise.all([...this.entries].map((e) => e.drain()));
    this.sendOutgoing(); // the last replies of the handlers drained above
    if (!this.nc.isClosed()) {
      if (this.isConnected()) {
        try {
          await this.nc.drain();
        } catch (err) {
          this.log.warn(`drain of the NATS connection: ${describe(err)}`);
        }
      }
      // drain() gives up without closing when the connection drops meanwhile.
      if (!this.nc.isClosed()) await this.nc.close();
    }
    this.connected = false;
    this.failPending(`bus closed`);
    // nats.js never ends the iterator that status() returns, even once closed.
    if (hasStop(this.statusEvents)) this.statusEvents.stop();
    await this.statusLoop;
    this.log.debug(`NATS connection to ${this.kind} closed`);
  }

  private add(subject: string, opts: ServeOptions | undefined, onMsg: (entry: Entry, msg: Msg) => void): Subscription {
    this.checkOpen();
    checkPattern(subject);
    if (opts?.queue !== undefined && !/^[^\s]+$/.test(opts.queue)) {
      throw new SugarError("invalid_input", `invalid queue group "${opts.queue}"`);
    }
    const entry = new Entry(this, subject);
    const callback = (err: NatsError | null, msg: Msg): void => {
      // A callback that throws kills the nats.js connection: nothing escapes.
      try {
        if (err) {
          this.log.error(`subscription ${subject}: ${describe(err)}`);
          return;
        }
        if (!entry.receiving) return;
        onMsg(entry, msg);
      } catch (e) {
        this.log.error(`subscription ${subject}: ${describe(e)}`);
      }
    };
    let sub: NatsSubscription;
    this.sendOutgoing(); // order: what was published before the subscription goes out before it
    try {
      sub = this.nc.subscribe(subject, opts?.queue !== undefined ? { queue: opts.queue, callback } : { callback });
    } catch (err) {
      throw natsToSugar(err, `subscribe to ${subject}`);
    }
    entry.attach(sub);
    this.entries.add(entry);
    return entry;
  }

  /** Runs a request handler and replies; a throw or rejection is logged here and answered with the failure header. */
  private async answer(handler: RequestHandler, msg: Msg, data: Uint8Array): Promise<void> {
    let reply: Uint8Array;
    try {
      const r: unknown = await handler(data, msg.subject);
      if (!(r instanceof Uint8Array)) throw new TypeError(`the handler returned ${typeof r}, not bytes`);
      reply = r;
    } catch (err) {
      this.log.error(`handler for ${msg.subject} failed: ${describe(err)}`);
      return this.respond(msg, failed());
    }
    const max = this.nc.info?.max_payload;
    if (max !== undefined && reply.byteLength > max) {
      this.log.error(`reply on ${msg.subject} of ${reply.byteLength} bytes exceeds the server's max payload ${max}`);
      return this.respond(msg, failed());
    }
    this.respond(msg, { data: reply.slice() });
  }

  private respond(msg: Msg, reply: { data: Uint8Array; headers?: MsgHdrs }): void {
    this.queue(() => {
      try {
        msg.respond(reply.data, reply.headers ? { headers: reply.headers } : undefined);
      } catch (err) {
        this.log.error(`cannot reply to a request on ${msg.subject}: ${describe(err)}`);
      }
    });
  }

  /** Runs a message handler; its failure is logged, never thrown into nats.js. */
  private async deliver(handler: MessageHandler, subject: string, data: Uint8Array): Promise<void> {
    try {
      await handler(data, subject);
    } catch (err) {
      this.log.error(`message handler for ${subject} failed: ${describe(err)}`);
    }
  }

  private async watchStatus(): Promise<void> {
    try {
      for await (const s of this.statusEvents) {
        const data = typeof s.data === "string" || typeof s.data === "number" ? String(s.data) : JSON.stringify(s.data);
        switch (s.type) {
          case Events.Disconnect:
            this.connected = false;
            if (!this.closing) this.log.warn(`disconnected from NATS at ${data}; reconnecting`);
            this.failPending(`connection to NATS at ${data} lost before the reply came`);
            break;
          case Events.Reconnect:
            this.connected = true;
            this.log.info(`reconnected to NATS at ${data}`);
            break;
          case Events.Error:
            this.log.error(`NATS error: ${data}`);
            this.failDenied(s as Status & PermissionStatus);
            break;
          case Events.LDM:
            this.log.warn(`NATS server ${data} is entering lame duck mode`);
            break;
          case DebugEvents.StaleConnection:
            this.log.warn(`NATS connection is stale; reconnecting`);
            break;
          default:
            this.log.debug(`NATS ${s.type} ${data}`);
        }
      }
    } catch (err) {
      this.log.error(`NATS status events ended: ${describe(err)}`);
    }
  }

  /** A permissions violation: the requests it names (or all of them, when it is the reply subscription's) fail now, not at their timeouts. */
  private failDenied(s: PermissionStatus): void {
    const ctx = s.permissionContext;
    if (!ctx?.subject) return;
    if (ctx.operation === "subscription" && this.replies && ctx.subject === `${this.replies.prefix}*`) {
      this.replies = undefined; // made again at the next request
      for (const w of [...this.waiters.values()]) w.fail(new SugarError("internal", `request on ${w.subject}: NATS permissions violation for the reply subject`));
      return;
    }
    if (ctx.operation !== "publish") return;
    for (const w of [...this.waiters.values()]) {
      if (w.subject === ctx.subject) w.fail(new SugarError("internal", `request on ${w.subject}: NATS permissions violation`));
    }
  }

  private failPending(why: string): void {
    const pending = [...this.pending];
    this.pending.clear();
    for (const p of pending) p.fail(new SugarError("unavailable", why));
  }

  private checkOpen(): void {
    if (this.closing) throw new SugarError("unavailable", "bus is closed");
  }

  private checkOutgoing(subject: string, data: Uint8Array): void {
    if (!isConcreteSubject(subject)) throw new SugarError("invalid_input", `invalid subject "${subject}"`);
    const max = this.nc.info?.max_payload;
    if (max !== undefined && data.byteLength > max) {
      throw new SugarError("invalid_input", `message of ${data.byteLength} bytes exceeds max payload ${max}`);
    }
  }
}

/** The reply that reports a handler's failure: no bytes, the failure header. */
function failed(): { data: Uint8Array; headers: MsgHdrs } {
  const h = headers();
  h.set(FAILURE_HEADER, "internal");
  return { data: new Uint8Array(), headers: h };
}

/** A subscription subject: non-empty tokens, no spaces, `>` only as the last token. */
function checkPattern(pattern: string): void {
  const tokens = pattern.split(".");
  if (!/^[^\s]+$/.test(pattern) || tokens.some((t, i) => t === "" || (t === ">" && i !== tokens.length - 1))) {
    throw new SugarError("invalid_input", `invalid subject pattern "${pattern}"`);
  }
}

/** The iterator nats.js returns from status() can be stopped, though its declared type does not say so. */
function hasStop<T extends object>(it: T): it is T & { stop(): void } {
  return typeof (it as { stop?: unknown }).stop === "function";
}

function natsCode(err: unknown): string | undefined {
  return err instanceof NatsError ? err.code : undefined;
}

/** The most useful words of a nats.js failure, e.g. "CONNECTION_REFUSED (connect ECONNREFUSED 127.0.0.1:4222)". */
function natsReason(err: unknown): string {
  if (err instanceof NatsError) {
    const chained = err.chainedError?.message;
    return chained && chained !== err.message ? `${err.message} (${chained})` : err.message;
  }
  // A TLS or socket failure: its message says what went wrong; its stack is noise in a one-line error.
  if (err instanceof Error) return `${err.message}${"code" in err && typeof err.code === "string" ? ` (${err.code})` : ""}`;
  return describe(err);
}

function requestError(err: unknown, subject: string, timeoutMs: number): SugarError {
  if (err instanceof SugarError) return err;
  switch (natsCode(err)) {
    case ErrorCode.NoResponders:
      return new SugarError("unavailable", `no responders for ${subject}`, { cause: err });
    case ErrorCode.Timeout:
      return new SugarError("timeout", `no reply on ${subject} within ${timeoutMs} ms`, { cause: err });
    default:
      return natsToSugar(err, `request on ${subject}`);
  }
}

function natsToSugar(err: unknown, what: string): SugarError {
  if (err instanceof SugarError) return err;
  switch (natsCode(err)) {
    case ErrorCode.ConnectionClosed:
    case ErrorCode.ConnectionDraining:
    case ErrorCode.Disconnect:
      return new SugarError("unavailable", `${what}: NATS connection ${natsReason(err)}`, { cause: err });
    case ErrorCode.MaxPayloadExceeded:
    case ErrorCode.BadSubject:
    case ErrorCode.BadPayload:
      return new SugarError("invalid_input", `${what}: ${natsReason(err)}`, { cause: err });
    default:
      return new SugarError("internal", `${what}: ${natsReason(err)}`, { cause: err });
  }
}
