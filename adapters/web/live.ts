/**
 * The admin console's live feed: `/admin/live`, a WebSocket (the `ws`
 * package, noServer: the HTTP listener hands it the upgrades) that sends an
 * admin's browser every event of this site as it is published: registrations,
 * logins, activations, backups, re-flash claims, stolen-list changes,
 * keyring errors and the lease renewer's passes, each one JSON line `{time, kind, text}`.
 *
 * One bus subscription feeds every browser. A browser that does not keep up
 * (its unsent bytes over MAX_BUFFERED) is dropped, not buffered for: memory
 * stays bounded whatever a client does; it reconnects and carries on. The
 * upgrade is refused unless it comes from our own page (Origin) and from an
 * admin: the caller decides who is one.
 */
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { WebSocketServer, type WebSocket } from "ws";
import { sugar } from "../../schemas/gen/messages.js";
import type { Bus, Subscription } from "../../src/bus/types.js";
import { describe } from "../../src/errors.js";
import type { Logger } from "../../src/log.js";
import type { Metrics } from "../../src/metrics.js";

/** Unsent bytes a browser may hold before it is dropped: a few hundred events. */
export const MAX_BUFFERED = 64 * 1024;
/** Browsers at once: a school has a few admins; this bounds what a stolen session can open. */
const MAX_CLIENTS = 500;
const PING_MS = 30_000;

export interface LiveEvent {
  time: string;
  kind: string;
  text: string;
}

const REGISTRY_KINDS = new Set(["registered", "removed", "reflash_pending", "reflash_approved", "reflash_rejected"]);

const who = (u: { nickname?: string | null; uid?: string | null } | null | undefined) => `${u?.nickname || "?"} (${(u?.uid ?? "").slice(0, 8)})`;

/** One line for a person: what happened, from the event's bytes. Throws on bytes that are not the event the kind names. */
export function describeEvent(kind: string, data: Uint8Array): string {
  if (REGISTRY_KINDS.has(kind)) {
    const ev = sugar.registry.Event.decode(data);
    const c = ev.reflashPending ?? ev.reflashApproved ?? ev.reflashRejected;
    if (ev.registered) return `${who(ev.registered.user)}${ev.registered.user?.machineSn ? ` ${ev.registered.user.machineSn}` : ""}${ev.registered.created ? "" : " (again)"}`;
    if (ev.removed) return who(ev.removed.user);
    if (c) return `${c.newNickname} (${(c.newUid ?? "").slice(0, 8)}) claims ${c.machineSn} of ${c.oldNickname} (${(c.oldUid ?? "").slice(0, 8)})`;
    return "";
  }
  switch (kind) {
    case "login": {
      const e = sugar.auth.LoginEvent.decode(data);
      return `${(e.uid ?? "").slice(0, 8)} by ${e.how}${e.source ? ` from ${e.source}` : ""}`;
    }
    case "activation": {
      const e = sugar.lease.Activation.decode(data);
      return `${e.machineSn || "(no serial number)"}: ${e.answer}${e.origin ? ` (${e.origin})` : ""}, ${Math.round(e.latencyMs ?? 0)} ms`;
    }
    case "stolen": {
      const e = sugar.lease.StolenEvent.decode(data);
      return `${e.machineSn} ${e.stolen ? "marked stolen" : "no longer stolen"}`;
    }
    case "keyring_error": {
      const e = sugar.lease.KeyringError.decode(data);
      return `${e.op} for ${e.machineSn}: ${e.code}`;
    }
    case "renewal": {
      const e = sugar.lease.Renewal.decode(data);
      return `renewed ${e.passRenewed}, failed ${e.passFailed}, ${e.remaining} left to renew${e.error ? ` (keyring: ${e.error})` : ""}`;
    }
    case "backup": {
      const e = sugar.backup.BackupEvent.decode(data);
      return e.phase === "started" ? `${(e.uid ?? "").slice(0, 8)} started` : `${(e.uid ?? "").slice(0, 8)} ${e.direction} finished${e.exit ? ` (rsync exit ${e.exit})` : ""}`;
    }
    default:
      return "";
  }
}

export interface LiveHub {
  /**
   * Takes an upgrade of /admin/live. `allowed` says whether the request is
   * an admin's from our own page; anything else is answered 403 and closed.
   */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, allowed: () => Promise<boolean>): void;
  readonly clients: number;
  close(): Promise<void>;
}

export function startLiveHub(bus: Bus, site: string, log: Logger, metrics?: Metrics): LiveHub {
  const wss = new WebSocketServer({ noServer: true, maxPayload: 1024, clientTracking: true, perMessageDeflate: false });
  const alive = new WeakSet<WebSocket>();
  const gauge = () => metrics?.liveClients.set(wss.clients.size);

  function broadcast(line: string): void {
    for (const ws of wss.clients) {
      if (ws.readyState !== ws.OPEN) continue;
      if (ws.bufferedAmount > MAX_BUFFERED) {
        log.info(`a live-feed browser fell behind (${ws.bufferedAmount} bytes unsent): dropped`);
        ws.terminate();
        continue;
      }
      ws.send(line);
    }
  }

  const sub: Subscription = bus.subscribe(`sugar.${site}.events.>`, (data, subject) => {
    if (wss.clients.size === 0) return;
    const kind = subject.slice(subject.lastIndexOf(".") + 1);
    let text: string;
    try {
      text = describeEvent(kind, data);
    } catch (err) {
      log.warn(`${subject}: not a valid event for the live feed (${describe(err)})`);
      return;
    }
    const ev: LiveEvent = { time: new Date().toISOString(), kind, text };
    broadcast(JSON.stringify(ev));
  });

  // A browser that vanished without a close (a laptop lid shut) is found by its missing pong.
  const pinger = setInterval(() => {
    for (const ws of wss.clients) {
      if (!alive.has(ws)) {
        ws.terminate();
        continue;
      }
      alive.delete(ws);
      ws.ping();
    }
  }, PING_MS);
  pinger.unref();

  const refuse = (socket: Duplex, status: number, text: string) => {
    socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${text.length}\r\n\r\n${text}`);
  };

  return {
    upgrade(req, socket, head, allowed) {
      socket.on("error", (err) => log.debug(`live feed socket: ${err.message}`));
      allowed().then(
        (ok) => {
          if (!ok) return refuse(socket, 403, "Forbidden");
          if (wss.clients.size >= MAX_CLIENTS) return refuse(socket, 503, "Service Unavailable");
          wss.handleUpgrade(req, socket, head, (ws) => {
            alive.add(ws);
            ws.on("pong", () => alive.add(ws));
            // A browser sends nothing but pongs; anything else is ignored (maxPayload bounds it).
            ws.on("message", () => undefined);
            ws.on("error", (err) => log.debug(`live feed: ${err.message}`));
            ws.on("close", gauge);
            gauge();
          });
        },
        (err: unknown) => {
          log.warn(`live feed upgrade: ${describe(err)}`);
          refuse(socket, 503, "Service Unavailable");
        },
      );
    },
    get clients() {
      return wss.clients.size;
    },
    async close() {
      clearInterval(pinger);
      sub.unsubscribe();
      for (const ws of wss.clients) ws.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}
