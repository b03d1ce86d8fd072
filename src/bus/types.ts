/**
 * The message bus every actor and adapter talks through. Two implementations
 * keep the same semantics (NATS's): MemoryBus for one process, NatsBus for
 * many; AdminClient (admin.ts) carries requests over a server's admin socket.
 * A transport moves bytes, never objects, and knows nothing of what they
 * mean: envelopes and typed messages are src/codec.ts's, one layer up.
 */

export interface RequestOptions {
  /** How long to wait for a reply; the bus's default when absent. */
  timeoutMs?: number;
}

export interface ServeOptions {
  /** Queue group: each request goes to one member of the group. */
  queue?: string;
}

/** Handles a request; the returned bytes are the reply. */
export type RequestHandler = (data: Uint8Array, subject: string) => Promise<Uint8Array>;
/** Handles a published message; nothing is replied. */
export type MessageHandler = (data: Uint8Array, subject: string) => void | Promise<void>;

export interface Subscription {
  readonly subject: string;
  /** Stop receiving at once; handlers already running finish on their own. */
  unsubscribe(): void;
  /** Stop receiving and wait until the handlers already running have finished. */
  drain(): Promise<void>;
}

export interface Requester {
  /**
   * Sends a request and resolves with the first reply's bytes.
   * Rejects with SugarError `unavailable` at once when nobody serves the
   * subject, `timeout` when no reply came within the timeout, and
   * `internal` when the handler that answered failed.
   */
  request(subject: string, data: Uint8Array, opts?: RequestOptions): Promise<Uint8Array>;
}

export interface Bus extends Requester {
  /**
   * Answers requests on `subject` (wildcards allowed). A handler that throws
   * or rejects fails that request with SugarError `internal` (its own
   * message stays on the serving side); the subscription keeps serving.
   */
  serve(subject: string, handler: RequestHandler, opts?: ServeOptions): Subscription;
  /** Fire and forget; delivered to every matching subscriber. */
  publish(subject: string, data: Uint8Array): void;
  subscribe(subject: string, handler: MessageHandler, opts?: ServeOptions): Subscription;
  /**
   * Resolves once every subscription made so far is in effect for other
   * connections (on NATS a subscription takes a round trip to the server).
   */
  flush(): Promise<void>;
  /** Drains every subscription, then closes. Idempotent. */
  close(): Promise<void>;
  /** A short name for logs: "memory" or the NATS server URL. */
  readonly kind: string;
}
