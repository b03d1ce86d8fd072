/**
 * What the bytes on the bus mean. Every reply is a `sugar.common.Envelope`:
 * the payload of the operation or an Error with a code from src/errors.ts.
 * `serveMessages` and `requestMessage` are the only places that encode and
 * decode envelopes, so every actor answers and every caller fails the same
 * way; the typed callers at the end (ActorClient and one per actor) are what
 * adapters, actors and the CLI call. They only encode, send and decode; each
 * actor decides.
 */
import { sugar } from "../schemas/gen/messages.js";
import { SugarError, describe, isErrorCode, toSugarError } from "./errors.js";
import { subjects, type SiteActor } from "./bus/subjects.js";
import type { Bus, RequestOptions, Requester, ServeOptions, Subscription } from "./bus/types.js";
import type { Logger } from "./log.js";

/** What pbjs generates for each message: enough to encode and decode it. */
export interface MessageType<T, P> {
  encode(message: P): { finish(): Uint8Array };
  decode(data: Uint8Array): T;
}

export function encodeReply(payload: Uint8Array): Uint8Array {
  return sugar.common.Envelope.encode({ payload }).finish();
}

function encodeError(err: unknown): Uint8Array {
  const e = toSugarError(err);
  return sugar.common.Envelope.encode({ error: { code: e.code, message: e.message } }).finish();
}

/** The payload of an envelope, or the SugarError it carries. */
export function decodeReply(data: Uint8Array): Uint8Array {
  let env: sugar.common.Envelope;
  try {
    env = sugar.common.Envelope.decode(data);
  } catch (cause) {
    throw new SugarError("internal", "reply is not a valid envelope", { cause });
  }
  if (env.result === "error" && env.error) {
    const code = env.error.code ?? "";
    throw new SugarError(isErrorCode(code) ? code : "internal", env.error.message || code);
  }
  if (env.result === "payload") return env.payload ?? new Uint8Array();
  throw new SugarError("internal", "empty reply envelope");
}

/** Decodes bytes from the bus; garbage is the sender's fault, not a crash. */
function decodeMessage<T, P>(type: MessageType<T, P>, data: Uint8Array, what: string): T {
  try {
    return type.decode(data);
  } catch (cause) {
    throw new SugarError("invalid_input", `not a valid ${what} message`, { cause });
  }
}

/** Sends a typed request and decodes the typed reply; errors arrive as SugarError. */
async function requestMessage<Req, ReqP, Res, ResP>(
  bus: Requester,
  subject: string,
  reqType: MessageType<Req, ReqP>,
  req: ReqP,
  resType: MessageType<Res, ResP>,
  opts?: RequestOptions,
): Promise<Res> {
  const reply = await bus.request(subject, reqType.encode(req).finish(), opts);
  return decodeMessage(resType, decodeReply(reply), "reply");
}

/**
 * Serves typed requests. Decoding failures become `invalid_input`, a thrown
 * SugarError keeps its code, anything else is logged and becomes `internal`.
 */
function serveMessages<Req, ReqP, Res, ResP>(
  bus: Bus,
  subject: string,
  reqType: MessageType<Req, ReqP>,
  resType: MessageType<Res, ResP>,
  handler: (req: Req, subject: string) => Promise<ResP>,
  log: Logger,
  opts?: ServeOptions,
): Subscription {
  return bus.serve(
    subject,
    async (data, actual) => {
      try {
        const req = decodeMessage(reqType, data, "request");
        return encodeReply(resType.encode(await handler(req, actual)).finish());
      } catch (err) {
        if (!(err instanceof SugarError) || err.code === "internal") log.error(`${actual}: ${describe(err)}`);
        return encodeError(err);
      }
    },
    opts,
  );
}

/**
 * Serves an actor's `Request { oneof op }` on `<prefix>.*`. The op is in the
 * subject (so NATS permissions can name it) and in the message; a request
 * whose two disagree, or that names no op, is refused before the actor sees it.
 */
export function serveOps<Req extends { op?: string }, ReqP, Res, ResP>(
  bus: Bus,
  subject: string,
  reqType: MessageType<Req, ReqP>,
  resType: MessageType<Res, ResP>,
  dispatch: (req: Req & { op: NonNullable<Req["op"]> }, subject: string) => ResP | Promise<ResP>,
  log: Logger,
  opts?: ServeOptions,
): Subscription {
  return serveMessages(
    bus,
    subject,
    reqType,
    resType,
    async (req, actual) => {
      const op = subjects.opOf(actual);
      // opOf gives the generated code's name back (`claim_code` -> `claimCode`), as req.op spells it.
      if (req.op === undefined || req.op !== op) throw new SugarError("invalid_input", `subject ${actual} does not match request op ${req.op ?? "(none)"}`);
      return dispatch(req as Req & { op: NonNullable<Req["op"]> }, actual);
    },
    log,
    opts,
  );
}

/** Subscribes to typed events; a handler failure is logged, never thrown into the bus. */
export function subscribeMessages<T, P>(
  bus: Bus,
  subject: string,
  type: MessageType<T, P>,
  handler: (msg: T, subject: string) => Promise<void> | void,
  log: Logger,
  opts?: ServeOptions,
): Subscription {
  return bus.subscribe(
    subject,
    async (data, actual) => {
      try {
        await handler(decodeMessage(type, data, "event"), actual);
      } catch (err) {
        log.error(`${actual}: event handler failed: ${describe(err)}`);
      }
    },
    opts,
  );
}

// Typed callers for the actors' bus operations.

/** The op names of a request message: the cases of its `op` oneof. */
type OpOf<Req> = Req extends { op?: infer O } ? NonNullable<O> : never;

/**
 * One client for any actor whose schema has `Request { oneof op }` and
 * `Reply { oneof result }` with the same case names.
 */
export class ActorClient<Req extends { op?: string }, ReqP, Rep extends { result?: string }> {
  constructor(
    private readonly bus: Requester,
    private readonly subjectFor: (op: string) => string,
    private readonly reqType: MessageType<Req, ReqP>,
    private readonly repType: MessageType<Rep, unknown>,
    private readonly opts?: RequestOptions,
  ) {}

  async call<K extends OpOf<Req> & keyof ReqP & keyof Rep>(op: K, body: NonNullable<ReqP[K]>, opts?: RequestOptions): Promise<NonNullable<Rep[K]>> {
    // subjects.actor writes a two-word op (registerDevice) as its .proto name (register_device).
    const subject = this.subjectFor(op);
    const reply = await requestMessage(this.bus, subject, this.reqType, { [op]: body } as ReqP, this.repType, opts ?? this.opts);
    const result = reply[op];
    if (reply.result !== op || result === undefined || result === null) {
      throw new SugarError("internal", `${this.subjectFor(op)} answered ${reply.result ?? "nothing"}`);
    }
    return result as NonNullable<Rep[K]>;
  }
}

const siteActor = <Req extends { op?: string }, ReqP, Rep extends { result?: string }>(actor: SiteActor, req: MessageType<Req, ReqP>, rep: MessageType<Rep, unknown>) =>
  (bus: Requester, site: string, opts?: RequestOptions) => new ActorClient(bus, (op) => subjects.actor(site, actor, op), req, rep, opts);

export const registryClient = siteActor("registry", sugar.registry.Request, sugar.registry.Reply);
export type RegistryClient = ReturnType<typeof registryClient>;
export const backupClient = siteActor("backup", sugar.backup.Request, sugar.backup.Reply);
export type BackupClient = ReturnType<typeof backupClient>;
export const leaseClient = siteActor("lease", sugar.lease.Request, sugar.lease.Reply);
export const authClient = siteActor("auth", sugar.auth.Request, sugar.auth.Reply);
/** The token headers a login gives and every later request carries (the auth actor's wire names). */
export const TOKEN_HEADERS = {
  uid: "X-Sugar-Uid",
  time: "X-Sugar-Auth-Time",
  lifetime: "X-Sugar-Auth-Expires",
  auth: "X-Sugar-Auth",
} as const;
export type AuthClient = ReturnType<typeof authClient>;
export type LeaseClient = ReturnType<typeof leaseClient>;

/** The keyring is shared by a district: its subjects carry no site. */
export const keyringClient = (bus: Requester, opts?: RequestOptions) =>
  new ActorClient(bus, (op) => subjects.keyring(op), sugar.keyring.Request, sugar.keyring.Reply, opts);
export type KeyringClient = ReturnType<typeof keyringClient>;
/** The keyring's district-CA ops, asked as one school: `sugar.keyring.<site>.<op>`. */
export const keyringCaClient = (bus: Requester, site: string, opts?: RequestOptions) =>
  new ActorClient(bus, (op) => subjects.keyringFor(site, op), sugar.keyring.Request, sugar.keyring.Reply, opts);
export type KeyringCaClient = ReturnType<typeof keyringCaClient>;

/** The district's shared ops (stolen_list, lookup): any school may ask. */
export const districtClient = (bus: Requester, opts?: RequestOptions) =>
  new ActorClient(bus, (op) => subjects.district(op), sugar.district.Request, sugar.district.Reply, opts);
export type DistrictClient = ReturnType<typeof districtClient>;

/** The district's ops on behalf of one school (stolen, directory): the site travels in the subject. */
export const districtFromClient = (bus: Requester, site: string, opts?: RequestOptions) =>
  new ActorClient(bus, (op) => subjects.districtFrom(site, op), sugar.district.Request, sugar.district.Reply, opts);
export type DistrictFromClient = ReturnType<typeof districtFromClient>;
