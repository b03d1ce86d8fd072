/**
 * Typed callers for the actors' bus operations, shared by adapters, actors
 * and the CLI. They only encode, send and decode; each actor decides.
 */
import { sugar } from "../schemas/gen/messages.js";
import { requestMessage, type MessageType } from "./codec.js";
import { SugarError } from "./errors.js";
import { subjects, type SiteActor } from "./bus/subjects.js";
import type { RequestOptions, Requester } from "./bus/types.js";

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
    const reply = await requestMessage(this.bus, this.subjectFor(op), this.reqType, { [op]: body } as ReqP, this.repType, opts ?? this.opts);
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
export const backupClient = siteActor("backup", sugar.backup.Request, sugar.backup.Reply);

export type RegistryClient = ReturnType<typeof registryClient>;
export type BackupClient = ReturnType<typeof backupClient>;
export const leaseClient = siteActor("lease", sugar.lease.Request, sugar.lease.Reply);
export type LeaseClient = ReturnType<typeof leaseClient>;
export const authClient = siteActor("auth", sugar.auth.Request, sugar.auth.Reply);
export type AuthClient = ReturnType<typeof authClient>;

/** The keyring is shared by a district: its subjects carry no site. */
export const keyringClient = (bus: Requester, opts?: RequestOptions) =>
  new ActorClient(bus, (op) => subjects.keyring(op), sugar.keyring.Request, sugar.keyring.Reply, opts);
export type KeyringClient = ReturnType<typeof keyringClient>;
