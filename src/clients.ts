/**
 * Typed callers for the actors' bus operations, shared by adapters and the
 * CLI. They only encode, send and decode; each actor decides.
 */
import { sugar } from "../schemas/gen/messages.js";
import { requestMessage } from "./codec.js";
import { SugarError } from "./errors.js";
import { subjects } from "./bus/subjects.js";
import type { RequestOptions, Requester } from "./bus/types.js";

import reg = sugar.registry;

type RegistryOp = NonNullable<reg.Request["op"]>;
type RegistryReplyOf<K extends RegistryOp> = NonNullable<reg.Reply[K]>;

export class RegistryClient {
  constructor(private readonly bus: Requester, private readonly site: string, private readonly opts?: RequestOptions) {}

  async call<K extends RegistryOp>(op: K, body: NonNullable<reg.Request.$Properties[K]>): Promise<RegistryReplyOf<K>> {
    const reply = await requestMessage(this.bus, subjects.actor(this.site, "registry", op), reg.Request, { [op]: body } as reg.Request.$Properties, reg.Reply, this.opts);
    const result = reply[op];
    if (reply.result !== op || !result) throw new SugarError("internal", `registry answered ${reply.result ?? "nothing"} to ${op}`);
    return result as RegistryReplyOf<K>;
  }
}
