/** What REST routes are made of: their shape, and reading the fields a client sent. */
import type { IncomingHttpHeaders } from "node:http";
import { SugarError } from "../../src/errors.js";
import * as validate from "../../src/validate.js";
import type { Method } from "../kit/handler.js";
import type { RequestIdentity } from "../kit/identify.js";

export type Json = Record<string, unknown>;

/** A route's answer: the fields besides `success`, and the HTTP status when not 200. */
export interface Answer {
  status?: number;
  body: Json;
}

export interface Route {
  method: Method;
  /** Exact path, or with `prefix` every path under it (the rest is `input.rest`). */
  path: string;
  prefix?: boolean;
  handle(input: Input): Promise<Answer>;
  /** Answers in its own format instead of the JSON dictionary (ds-backup reads only the status). */
  raw?: boolean;
}

export interface Input {
  query: URLSearchParams;
  /** The POST body's fields (JSON object or form fields); empty for GET. */
  fields: Map<string, unknown>;
  /** For a prefix route: the path after the prefix. */
  rest: string;
  headers: IncomingHttpHeaders;
  /** The client's address: failed logins are counted per source. */
  source: string;
  /** Who the request is (token headers, client certificate), asked only by the routes that care. */
  who: RequestIdentity;
}

/** A text field, by its current name or an old alias; absent → "", wrong type → invalid_input. */
export function field(input: Map<string, unknown> | URLSearchParams, names: readonly string[], required: boolean): string {
  for (const name of names) {
    const v = input.get(name);
    if (v === undefined || v === null) continue;
    if (typeof v !== "string") throw new SugarError("invalid_input", `${name} must be a string`);
    return v;
  }
  if (required) throw new SugarError("invalid_input", `${names[0]} is required`);
  return "";
}

/** A serial number as a person or a tool typed it (validate.typedMachineSn); absent stays absent. */
export const typedSn = (v: string) => (v === "" ? "" : validate.typedMachineSn(v));

/** JSON object or form fields; anything else is the client's mistake. */
export function parseFields(body: Buffer, contentType: string): Map<string, unknown> {
  const text = body.toString("utf8");
  if (/^application\/x-www-form-urlencoded/i.test(contentType)) return new Map(new URLSearchParams(text));
  if (text.trim() === "") throw new SugarError("invalid_input", "request body is empty; send a JSON object");
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (cause) {
    throw new SugarError("invalid_input", `malformed JSON: ${(cause as Error).message}`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new SugarError("invalid_input", "request body must be a JSON object");
  return new Map(Object.entries(parsed));
}
