/**
 * The embedded bus: NATS semantics inside one process, so that code and tests
 * that pass here pass on NatsBus. Wildcards (`*`, `>`), queue groups (one
 * member per group gets each message), an immediate `unavailable` when nobody
 * serves a request, timeouts, and bytes copied in and out so no caller ever
 * shares a buffer with another.
 */
import { SugarError } from "../errors.js";
import { isConcreteSubject, subjectMatches } from "./subjects.js";
import type { Bus, MessageHandler, RequestHandler, RequestOptions, ServeOptions, Subscription } from "./types.js";

interface Entry {
  pattern: string;
  queue?: string;
  kind: "serve" | "subscribe";
  onRequest?: RequestHandler;
  onMessage?: MessageHandler;
  inFlight: Set<Promise<unknown>>;
  closed: boolean;
}

interface Matched {
  plain: Entry[];
  /** Queue group → its members. */
  groups: Map<string, Entry[]>;
}

/** Distinct subjects remembered; past this the cache starts again (a bound, not a working-set size). */
const MATCH_CACHE_SIZE = 4096;

export interface MemoryBusOptions {
  /** Default request timeout (ms). */
  timeoutMs?: number;
  /** Largest message accepted, like NATS's max_payload (bytes). */
  maxPayload?: number;
}

export class MemoryBus implements Bus {
  readonly kind = "memory";
  private entries: Entry[] = [];
  private closed = false;
  private readonly timeoutMs: number;
  private readonly maxPayload: number;
  /** Round-robin position per queue group, so members share the load evenly. */
  private readonly queueTurns = new Map<string, number>();
  private readonly matchCache = new Map<string, Matched>();

  constructor(opts: MemoryBusOptions = {}) {
    this.timeoutMs = opts.timeoutMs ?? 2000;
    this.maxPayload = opts.maxPayload ?? 1024 * 1024;
  }

  request(subject: string, data: Uint8Array, opts?: RequestOptions): Promise<Uint8Array> {
    try {
      this.checkOpen();
      this.checkOutgoing(subject, data);
    } catch (err) {
      return Promise.reject(err);
    }
    // Copied now: the caller may reuse its buffer as soon as request() returns.
    data = data.slice();
    const targets = this.pick(subject, "serve");
    for (const t of this.pick(subject, "subscribe")) this.deliver(t, subject, data);
    if (targets.length === 0) {
      return Promise.reject(new SugarError("unavailable", `no responders for ${subject}`));
    }
    const timeoutMs = opts?.timeoutMs ?? this.timeoutMs;
    return new Promise<Uint8Array>((resolve, reject) => {
      let done = false;
      const timer = setTimeout(() => {
        if (done) return;
        done = true;
        reject(new SugarError("timeout", `no reply on ${subject} within ${timeoutMs} ms`));
      }, timeoutMs);
      // The first answer wins, a reply or a handler's failure, as on NATS.
      const settle = (answer: () => void) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        answer();
      };
      for (const t of targets) {
        void this.track(t, () =>
          this.invoke(t, subject, data).then(
            (reply) => settle(() => resolve(reply.slice())),
            (err: unknown) => settle(() => reject(err)),
          ),
        );
      }
    });
  }

  serve(subject: string, handler: RequestHandler, opts?: ServeOptions): Subscription {
    return this.add({ pattern: subject, queue: opts?.queue, kind: "serve", onRequest: handler });
  }

  publish(subject: string, data: Uint8Array): void {
    this.checkOpen();
    this.checkOutgoing(subject, data);
    for (const t of this.pick(subject, "subscribe")) this.deliver(t, subject, data);
  }

  subscribe(subject: string, handler: MessageHandler, opts?: ServeOptions): Subscription {
    return this.add({ pattern: subject, queue: opts?.queue, kind: "subscribe", onMessage: handler });
  }

  /** Nothing to wait for: a subscription here is in effect as soon as it returns. */
  async flush(): Promise<void> {}

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const entries = this.entries;
    await Promise.all(entries.map((e) => this.drainEntry(e)));
    this.entries = [];
  }

  private add(e: Omit<Entry, "inFlight" | "closed">): Subscription {
    this.checkOpen();
    const tokens = e.pattern.split(".");
    if (!/^[^\s]+$/.test(e.pattern) || tokens.some((t) => t === "") || tokens.slice(0, -1).includes(">")) {
      throw new SugarError("invalid_input", `invalid subject pattern "${e.pattern}"`);
    }
    const entry: Entry = { ...e, inFlight: new Set(), closed: false };
    this.entries.push(entry);
    this.matchCache.clear();
    return {
      subject: e.pattern,
      unsubscribe: () => this.remove(entry),
      drain: () => this.drainEntry(entry),
    };
  }

  private remove(entry: Entry): void {
    entry.closed = true;
    this.entries = this.entries.filter((x) => x !== entry);
    this.matchCache.clear();
  }

  private async drainEntry(entry: Entry): Promise<void> {
    this.remove(entry);
    while (entry.inFlight.size > 0) await Promise.allSettled([...entry.inFlight]);
  }

  /** Every plain subscriber, plus one member of each queue group, that matches. */
  private pick(subject: string, kind: Entry["kind"]): Entry[] {
    const { plain: matched, groups } = this.matching(subject, kind);
    const plain = [...matched];
    for (const [queue, members] of groups) {
      const key = `${kind}:${queue}`;
      const turn = this.queueTurns.get(key) ?? 0;
      this.queueTurns.set(key, turn + 1);
      plain.push(members[turn % members.length]!);
    }
    return plain;
  }

  /**
   * The entries a subject matches, by kind, remembered until the next
   * subscribe or unsubscribe: a server asks the same few subjects all the
   * time, and matching every pattern on every message showed in profiles.
   */
  private matching(subject: string, kind: Entry["kind"]): Matched {
    const key = `${kind} ${subject}`;
    let m = this.matchCache.get(key);
    if (m) return m;
    m = { plain: [], groups: new Map() };
    for (const e of this.entries) {
      if (e.kind !== kind || e.closed || !subjectMatches(e.pattern, subject)) continue;
      if (e.queue === undefined) m.plain.push(e);
      else {
        const g = m.groups.get(e.queue) ?? [];
        g.push(e);
        m.groups.set(e.queue, g);
      }
    }
    if (this.matchCache.size >= MATCH_CACHE_SIZE) this.matchCache.clear();
    this.matchCache.set(key, m);
    return m;
  }

  private deliver(entry: Entry, subject: string, data: Uint8Array): void {
    const copy = data.slice();
    void this.track(entry, async () => {
      // A subscriber's failure is its own: it never reaches the publisher.
      try {
        await entry.onMessage?.(copy, subject);
      } catch {
        /* the handler logs its own errors (subscribeMessages); nothing to return to */
      }
    });
  }

  /** A handler that throws or rejects fails the request with `internal`, as on NatsBus; the entry keeps serving. */
  private async invoke(entry: Entry, subject: string, data: Uint8Array): Promise<Uint8Array> {
    try {
      return await entry.onRequest!(data.slice(), subject);
    } catch (err) {
      // Its message stays in `cause` (this process's own code): what the requester sees is the same as over NATS.
      throw new SugarError("internal", `the handler for ${subject} failed`, { cause: err });
    }
  }

  /** Runs asynchronously (like a network hop) and counts as in flight until done. */
  private track(entry: Entry, fn: () => Promise<void>): Promise<void> {
    const p = new Promise<void>((resolve) => setImmediate(resolve)).then(fn);
    entry.inFlight.add(p);
    void p.finally(() => entry.inFlight.delete(p));
    return p;
  }

  private checkOpen(): void {
    if (this.closed) throw new SugarError("unavailable", "bus is closed");
  }

  private checkOutgoing(subject: string, data: Uint8Array): void {
    if (!isConcreteSubject(subject)) throw new SugarError("invalid_input", `invalid subject "${subject}"`);
    if (data.byteLength > this.maxPayload) {
      throw new SugarError("invalid_input", `message of ${data.byteLength} bytes exceeds max payload ${this.maxPayload}`);
    }
  }
}
