/**
 * `sugar-server events --follow`: every event of this site
 * (`sugar.<site>.events.>`) as one JSON line on standard output, until
 * interrupted, so a small script can act on them (make an account in a
 * school web service when a user registers, drop it when one is removed):
 *
 *   {"time":"2025-…Z","kind":"registered","user":{"uid":"…",…},"replaced_uid":"","created":true}
 *
 * `time` is when the event arrived here, `kind` the subject's last token;
 * the rest are the decoded event's fields, named as in schemas/*.proto:
 * registered, removed and reflash_* (registry), login (auth), stolen,
 * keyring_error and renewal (lease), activation (port 191), backup (started, finished). An event of a kind this version does not know is printed with
 * its bytes as base64 `data`. The events come from a running server: over
 * NATS with --nats, else through its admin socket.
 */
import { join } from "node:path";
import { sugar } from "../../schemas/gen/messages.js";
import { AdminClient, type EventHandler } from "../bus/admin.js";
import { runDir, type Config } from "../config.js";
import { SugarError, describe } from "../errors.js";
import type { Logger } from "../log.js";
import { createBus } from "./components.js";

export interface EventsIo {
  out(text: string): void;
  err(text: string): void;
}

/** Where the events come from: a running server. */
export interface EventSource {
  /** Resolves once the subscription is in effect. */
  follow(pattern: string, handler: EventHandler): Promise<void>;
  /** Settles when the source is gone (the server stopped). */
  readonly closed: Promise<void>;
  close(): Promise<void>;
}

const REGISTRY_KINDS = new Set(["registered", "removed", "reflash_pending", "reflash_approved", "reflash_rejected"]);
const TO_OBJECT = { defaults: true, longs: String, bytes: String } as const;

const snake = (k: string) => k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/** protobufjs's plain objects use camelCase; the lines use the .proto's names. */
function snakeKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(snakeKeys);
  if (v === null || typeof v !== "object") return v;
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [snake(k), snakeKeys(x)]));
}

function fieldsOf(kind: string, data: Uint8Array): Record<string, unknown> {
  if (REGISTRY_KINDS.has(kind)) {
    const ev = sugar.registry.Event.decode(data);
    const c = ev.event;
    const body = c ? (sugar.registry.Event.toObject(ev, TO_OBJECT) as Record<string, unknown>)[c] : undefined;
    if (!body || typeof body !== "object") throw new SugarError("invalid_input", "a registry event with nothing in it");
    return body as Record<string, unknown>;
  }
  if (kind === "login") return sugar.auth.LoginEvent.toObject(sugar.auth.LoginEvent.decode(data), TO_OBJECT);
  if (kind === "stolen") return sugar.lease.StolenEvent.toObject(sugar.lease.StolenEvent.decode(data), TO_OBJECT);
  if (kind === "activation") return sugar.lease.Activation.toObject(sugar.lease.Activation.decode(data), TO_OBJECT);
  if (kind === "keyring_error") return sugar.lease.KeyringError.toObject(sugar.lease.KeyringError.decode(data), TO_OBJECT);
  if (kind === "renewal") return sugar.lease.Renewal.toObject(sugar.lease.Renewal.decode(data), TO_OBJECT);
  if (kind === "backup") return sugar.backup.BackupEvent.toObject(sugar.backup.BackupEvent.decode(data), TO_OBJECT);
  return { data: Buffer.from(data).toString("base64") };
}

/** One event as its JSON line (no newline). Throws on bytes that are not the event its subject names. */
export function formatEvent(subject: string, data: Uint8Array, time: Date = new Date()): string {
  const kind = subject.slice(subject.lastIndexOf(".") + 1);
  const head = { time: time.toISOString(), kind };
  return JSON.stringify(Object.assign({ ...head }, snakeKeys(fieldsOf(kind, data)), head));
}

export const EVENTS_USAGE = "usage: sugar-server events --follow   (this site's events as JSON lines, until interrupted)\n";

/** Prints every event of `site` from `source` until `stop` settles (0) or the source goes (1). */
export async function followEvents(source: EventSource, site: string, io: EventsIo, stop: Promise<void>): Promise<number> {
  const pattern = `sugar.${site}.events.>`;
  try {
    await source.follow(pattern, (data, subject) => {
      try {
        io.out(formatEvent(subject, data) + "\n");
      } catch (err) {
        io.err(`sugar-server events: ${subject}: not a valid event (${describe(err)})\n`);
      }
    });
  } catch (err) {
    await source.close();
    throw err;
  }
  io.err(`following ${pattern} (Ctrl-C stops)\n`);
  const how = await Promise.race([stop.then(() => "stopped" as const), source.closed.then(() => "gone" as const)]);
  await source.close();
  if (how === "gone") {
    io.err("sugar-server events: the server stopped; no more events\n");
    return 1;
  }
  return 0;
}

/** The running server's events: NATS with --nats, else its admin socket (no server: unavailable). */
export async function openEventSource(config: Config, log: Logger): Promise<EventSource> {
  if (config.nats) {
    const bus = await createBus(config, log.child("events"));
    return {
      async follow(pattern, handler) {
        bus.subscribe(pattern, handler);
        await bus.flush();
      },
      // A NATS connection that drops reconnects by itself (and the bus logs it): it never ends here.
      closed: new Promise<void>(() => undefined),
      close: () => bus.close(),
    };
  }
  const path = join(runDir(config), "admin.sock");
  let client: AdminClient;
  try {
    client = await AdminClient.connect(path);
  } catch (err) {
    if (err instanceof SugarError && err.code === "unavailable") {
      throw new SugarError("unavailable", `no server is running on ${config.root} (no admin socket ${path}) and no --nats is given: there are no events to follow`, { cause: err });
    }
    throw err;
  }
  return {
    follow: (pattern, handler) => client.subscribe(pattern, handler),
    closed: client.closed,
    close: async () => client.close(),
  };
}

/** Settles on the first SIGINT or SIGTERM; `dispose` gives the signals back. */
function interrupted(): { promise: Promise<void>; dispose(): void } {
  let on: () => void = () => undefined;
  const promise = new Promise<void>((resolve) => (on = resolve));
  process.on("SIGINT", on);
  process.on("SIGTERM", on);
  return {
    promise,
    dispose() {
      process.off("SIGINT", on);
      process.off("SIGTERM", on);
    },
  };
}

export async function eventsCommand(args: string[], flags: ReadonlySet<string>, config: Config, log: Logger, io: EventsIo): Promise<number> {
  if (args.length > 0 || !flags.has("follow")) {
    io.err(EVENTS_USAGE);
    return 2;
  }
  const source = await openEventSource(config, log);
  const signals = interrupted();
  try {
    return await followEvents(source, config.site, io, signals.promise);
  } finally {
    signals.dispose();
  }
}
