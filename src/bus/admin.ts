/**
 * The local admin socket, `<root>/run/admin.sock` (mode 0600): a bus
 * transport for requests, and for following a site's events. A running
 * server on the embedded bus carries requests from `sugar-server users ...`
 * and the other admin commands, so they go to the actor that owns the state
 * instead of editing files behind its back. AdminClient is the Requester the
 * CLI sends through; startAdminServer forwards each request to the server's
 * bus. One JSON object per line each way; payloads are base64 bus bytes,
 * failures a SugarError's code and message.
 *
 * `sugar-server events --follow` sends `{"id", "subscribe": "sugar.<site>.events.>"}`
 * (only the server's own site's events subjects); the server answers
 * `{"id"}` once the subscription is in effect, then forwards every matching
 * publish as `{"event": subject, "data": base64}` until the client goes.
 */
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { promises as fsp } from "node:fs";
import { dirname } from "node:path";
import { SugarError, isErrorCode, toSugarError } from "../errors.js";
import { subjectMatches } from "./subjects.js";
import type { Bus, Requester, RequestOptions, Subscription } from "./types.js";
import type { Logger } from "../log.js";

const MAX_LINE = 8 * 1024 * 1024;
/** A follower that reads slower than events arrive is cut off once this much waits for it. */
const MAX_BACKLOG = 8 * 1024 * 1024;

interface Frame {
  id: number;
  subject?: string;
  data?: string;
  timeoutMs?: number;
  error?: { code: string; message: string };
  /** Client → server: follow publishes on this subject pattern. */
  subscribe?: string;
  /** Server → client: a publish the client follows (with `data`). */
  event?: string;
}

/** What a client may follow: its site's events, one kind (or `*`) or all of them (`>`). */
export function eventsPattern(site: string, pattern: string): boolean {
  const prefix = `sugar.${site}.events.`;
  return pattern.startsWith(prefix) && /^(>|\*|[a-z0-9][a-z0-9_-]{0,62})$/.test(pattern.slice(prefix.length));
}

function lines(socket: Socket, onLine: (line: string) => void): void {
  let buf = "";
  socket.setEncoding("utf8");
  socket.on("data", (chunk: string) => {
    buf += chunk;
    if (buf.length > MAX_LINE) {
      socket.destroy(new Error("admin frame too large"));
      return;
    }
    let nl: number;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line) onLine(line);
    }
  });
}

export interface AdminServer {
  readonly path: string;
  close(): Promise<void>;
}

const ownUid = () => process.getuid?.() ?? -1;

/**
 * The socket's directory must be this user's alone: anyone who can write
 * there could put their own socket in its place, and the CLI would send
 * admin requests to it. Made 0700; refused when another user owns it or it
 * stays open to group or others.
 */
export async function secureRunDir(dir: string): Promise<void> {
  const st = await fsp.lstat(dir);
  if (!st.isDirectory()) throw new SugarError("invalid_config", `${dir} must be a directory`);
  if (st.uid !== ownUid()) throw new SugarError("invalid_config", `${dir} belongs to another user (uid ${st.uid}); the admin socket's directory must be this user's alone`);
  await fsp.chmod(dir, 0o700);
  const after = await fsp.lstat(dir);
  if ((after.mode & 0o077) !== 0) throw new SugarError("invalid_config", `${dir} is open to group or others (mode ${(after.mode & 0o777).toString(8)}); it must be 0700`);
}

export interface AdminServerOptions {
  /** The site whose events clients may follow; without it, subscribe frames are refused. */
  site?: string;
}

/** Serves admin requests on `path` by forwarding them to `bus`. Only `sugar.` subjects. */
export async function startAdminServer(path: string, bus: Requester & Partial<Pick<Bus, "subscribe" | "flush">>, log: Logger, opts: AdminServerOptions = {}): Promise<AdminServer> {
  await secureRunDir(dirname(path));
  await fsp.rm(path, { force: true }); // a socket left by a process that is gone (the lock says so)
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    const follows: Subscription[] = [];
    socket.on("close", () => {
      sockets.delete(socket);
      for (const f of follows) f.unsubscribe();
    });
    socket.on("error", (err) => log.debug(`admin client: ${err.message}`));
    lines(socket, (line) => {
      let frame: Frame;
      try {
        frame = JSON.parse(line) as Frame;
      } catch {
        socket.destroy(); // not our client: no frame to answer, so cut it off
        return;
      }
      const answer = (f: Omit<Frame, "id">) => socket.writable && socket.write(JSON.stringify({ id: frame.id, ...f }) + "\n");
      if (frame.subscribe !== undefined) {
        follow(socket, frame.subscribe, follows, answer);
        return;
      }
      if (typeof frame.subject !== "string" || !frame.subject.startsWith("sugar.") || typeof frame.data !== "string") {
        answer({ error: { code: "invalid_input", message: "admin frame needs a sugar.* subject and data" } });
        return;
      }
      bus
        .request(frame.subject, Buffer.from(frame.data, "base64"), { timeoutMs: frame.timeoutMs })
        .then((reply) => answer({ data: Buffer.from(reply).toString("base64") }))
        .catch((err) => {
          const e = toSugarError(err);
          answer({ error: { code: e.code, message: e.message } });
        });
    });
  });
  function follow(socket: Socket, pattern: unknown, follows: Subscription[], answer: (f: Omit<Frame, "id">) => unknown): void {
    const site = opts.site;
    if (socket.destroyed) return;
    if (typeof pattern !== "string" || !site || !bus.subscribe || !eventsPattern(site, pattern)) {
      answer({ error: { code: "invalid_input", message: `only this server's events can be followed: sugar.${site ?? "<site>"}.events.> (or one kind)` } });
      return;
    }
    follows.push(
      bus.subscribe(pattern, (data, subject) => {
        if (!socket.writable) return;
        if (socket.writableLength > MAX_BACKLOG) {
          log.warn(`an events follower is too slow (${socket.writableLength} bytes waiting): disconnected`);
          socket.destroy();
          return;
        }
        socket.write(JSON.stringify({ event: subject, data: Buffer.from(data).toString("base64") }) + "\n");
      }),
    );
    (bus.flush?.() ?? Promise.resolve()).then(
      () => answer({}),
      (err: unknown) => {
        const e = toSugarError(err);
        answer({ error: { code: e.code, message: e.message } });
      },
    );
  }

  // Created 0600 from the start (no moment when another user could connect). The umask is the whole
  // process's: it is restored as soon as listen() has bound the socket, which it does before returning.
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    const umask = process.umask(0o177);
    try {
      server.listen(path, () => {
        server.off("error", reject);
        resolve();
      });
    } finally {
      process.umask(umask);
    }
  });
  await fsp.chmod(path, 0o600);
  let closing: Promise<void> | undefined;
  return {
    path,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.end();
      }).then(() => fsp.rm(path, { force: true }));
      return closing;
    },
  };
}

/** Receives one followed publish. */
export type EventHandler = (data: Uint8Array, subject: string) => void;

/** A Requester that sends over the admin socket. `connect` fails when no server listens. */
export class AdminClient implements Requester {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve(b: Uint8Array): void; reject(e: Error): void }>();
  private readonly follows: Array<{ pattern: string; handler: EventHandler }> = [];
  /** Settles when the connection is gone (the server stopped, or close()). */
  readonly closed: Promise<void>;

  private constructor(private readonly socket: Socket) {
    lines(socket, (line) => {
      let frame: Frame;
      try {
        frame = JSON.parse(line) as Frame;
      } catch (cause) {
        this.failAll(new SugarError("internal", "admin socket sent a malformed frame", { cause }));
        return;
      }
      if (typeof frame.event === "string") {
        const data = Buffer.from(frame.data ?? "", "base64");
        for (const f of this.follows) if (subjectMatches(f.pattern, frame.event)) f.handler(data, frame.event);
        return;
      }
      const p = this.pending.get(frame.id);
      if (!p) return;
      this.pending.delete(frame.id);
      if (frame.error) p.reject(new SugarError(isErrorCode(frame.error.code) ? frame.error.code : "internal", frame.error.message));
      else p.resolve(Buffer.from(frame.data ?? "", "base64"));
    });
    this.closed = new Promise((resolve) => socket.on("close", () => resolve()));
    socket.on("close", () => this.failAll(new SugarError("unavailable", "admin socket closed")));
    socket.on("error", () => undefined); // surfaced through "close"
  }

  /**
   * Connects to a server's socket, but only to one this user owns, in a
   * directory only this user can write (Node has no SO_PEERCRED, so the
   * socket file's owner stands in for the peer's credentials).
   */
  static async connect(path: string): Promise<AdminClient> {
    let st;
    try {
      st = await fsp.lstat(path);
    } catch (cause) {
      throw new SugarError("unavailable", `no server on ${path}`, { cause });
    }
    const dir = await fsp.lstat(dirname(path));
    if (!st.isSocket() || st.uid !== ownUid() || dir.uid !== ownUid() || (dir.mode & 0o022) !== 0) {
      throw new SugarError("forbidden", `${path} is not a socket this user's server made (owner uid ${st.uid}); not sending admin requests to it`);
    }
    return new Promise((resolve, reject) => {
      const socket = createConnection(path);
      socket.once("connect", () => resolve(new AdminClient(socket)));
      socket.once("error", (err) => reject(new SugarError("unavailable", `no server on ${path}: ${err.message}`, { cause: err })));
    });
  }

  request(subject: string, data: Uint8Array, opts?: RequestOptions): Promise<Uint8Array> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.socket.write(JSON.stringify({ id, subject, data: Buffer.from(data).toString("base64"), timeoutMs: opts?.timeoutMs }) + "\n");
    });
  }

  /**
   * Follows the server's publishes on `pattern` (its site's events only);
   * resolves once the server's subscription is in effect.
   */
  async subscribe(pattern: string, handler: EventHandler): Promise<void> {
    const id = this.nextId++;
    const entry = { pattern, handler };
    this.follows.push(entry);
    try {
      await new Promise<Uint8Array>((resolve, reject) => {
        this.pending.set(id, { resolve, reject });
        this.socket.write(JSON.stringify({ id, subscribe: pattern }) + "\n");
      });
    } catch (err) {
      this.follows.splice(this.follows.indexOf(entry), 1);
      throw err;
    }
  }

  close(): void {
    this.socket.end();
  }

  private failAll(err: Error): void {
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }
}
