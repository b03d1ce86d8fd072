/**
 * XML-RPC adapter (served on xmlrpc-port, default 8080, and at POST / and
 * /RPC2 of the TLS port): the `register(sn, nickname, uuid, pubkey)` call
 * every Sugar desktop makes from "Register". Served by the project's own
 * listener (adapters/kit/listener.ts). Calls are read by call.ts (saxes);
 * the `xmlrpc` package only serialises answers (its server has no body
 * limit and crashes on a handler that throws).
 * Business errors are a struct `{success: "ERR", error}` (what Sugar reads);
 * faults only for protocol errors.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import serializer from "xmlrpc/lib/serializer.js";
import type { Context } from "../../src/component.js";
import { authClient, registryClient } from "../../src/codec.js";
import { SugarError, describe, toSugarError } from "../../src/errors.js";
import { pathOf, type HttpHandler, type Route } from "../kit/handler.js";
import { readBody, send } from "../kit/http.js";
import { serverCa } from "../kit/server-ca.js";
import { Malformed, readCall } from "./call.js";

export const XMLRPC_BODY_LIMIT = 64 * 1024;
const PATHS = new Set(["/", "/RPC2"]);
const ROUTES: readonly Route[] = [...PATHS].map((path) => ({ method: "POST", path }));

/** Why XML-RPC itself refuses a call, before any method runs. */
type Refusal = "malformed" | "unknown_method" | "bad_params";

/** XML-RPC interop fault codes (specs.xmlrpc.com/spec: fault code interoperability). */
export const FAULT: Readonly<Record<Refusal, number>> = { malformed: -32700, unknown_method: -32601, bad_params: -32602 };

/** A call refused by the protocol, not by an actor: `invalid_input`, answered with a fault. */
class CallRefused extends SugarError {
  constructor(
    readonly refusal: Refusal,
    message: string,
  ) {
    super("invalid_input", message);
  }
}

/** How XML-RPC answers a failure: plain HTTP when no call could be read, a fault when the call is refused, else the ERR struct Sugar shows. */
export type XmlrpcFailure =
  | { http: number; text: string }
  | { fault: { faultCode: number; faultString: string } }
  /** `serverSide`: the server's own failure, whose real message only the log gets. */
  | { struct: Record<string, string>; serverSide?: true };

/**
 * The one place XML-RPC maps errors. Every business error is an ERR struct;
 * the server's own failures say only "internal server error" (their
 * messages can name files; the log keeps them).
 */
export function xmlrpcFailure(err: unknown): XmlrpcFailure {
  if (err instanceof CallRefused) return { fault: { faultCode: FAULT[err.refusal], faultString: err.message } };
  const e = toSugarError(err);
  switch (e.code) {
    case "too_large":
      return { http: 413, text: `${e.message}\n` };
    case "unavailable":
    case "timeout":
    case "busy":
      return { struct: { success: "ERR", error: `the school server is busy or partly down, try again later (${e.message})`, code: e.code } };
    case "internal":
    case "invalid_config":
    case "listen_failed":
      return { struct: { success: "ERR", error: "internal server error", code: "internal" }, serverSide: true };
    default:
      return { struct: { success: "ERR", error: e.message, code: e.code } };
  }
}

/**
 * C0 controls other than tab and line breaks. XML forbids them, but
 * Python's xmlrpc.client (Sugar's) sends a string's as they are; no
 * parameter of any method may hold one, so the call gets the ERR struct Sugar
 * shows rather than a parse fault.
 */
const CONTROL = /[\x00-\x08\x0B\x0C\x0E-\x1F]/;

function parseCall(body: Buffer): { method: string; params: unknown[] } {
  // A <!DOCTYPE> (where entity tricks live) is refused by call.ts, with whatever else is not an XML-RPC call.
  if (CONTROL.test(body.toString("latin1"))) throw new SugarError("invalid_input", "a parameter holds a control character: no name, key, serial number or credential may hold one");
  try {
    return readCall(body.toString("utf8"));
  } catch (err) {
    if (err instanceof Malformed) throw new CallRefused("malformed", `malformed XML-RPC request: ${err.message}`);
    throw err;
  }
}

export function createXmlrpc(ctx: Context): HttpHandler {
  const { bus, config } = ctx;
  const log = ctx.log.child("xmlrpc");
  const registry = registryClient(bus, config.site, { timeoutMs: config["bus-timeout"] });
  const auth = authClient(bus, config.site, { timeoutMs: config["bus-timeout"] });
  const ca = serverCa(config, log);

  const methods: Record<string, { arity: number; call(params: string[], source: string): Promise<Record<string, unknown>> }> = {
    /**
     * dict register(str serial, str nickname, str uuid, str pubkey). The serial
     * number goes to the registry exactly as sent, on purpose: Sugar reads it
     * from mfg-data (or makes one up, in the same form), no person typed it, so
     * it is not normalized the way REST and the CLI normalize what a person
     * types (validate.typedMachineSn); a malformed one is refused.
     */
    register: {
      arity: 4,
      async call([sn, nickname, uuid, pubkey]) {
        const r = await registry.call("register", { machineSn: sn!, nickname: nickname!, machineUuid: uuid!, pubkey: pubkey! });
        // server_ca only when there is one: Sugar ignores keys it does not know, and an empty one says nothing.
        const serverCa = ca();
        return {
          success: "OK",
          uid: r.user?.uid ?? "",
          jabberserver: r.jabberServer,
          backupurl: r.backupUrl,
          // Option district: the key is at home at that school (the uid and backup URL are its).
          ...(r.home ? { home: r.home } : {}),
          ...(r.credential ? { credential: r.credential } : {}),
          ...(serverCa ? { server_ca: serverCa } : {}),
        };
      },
    },
    /** dict login(str credential): the credential register() gave → the X-Sugar-* headers for REST calls. */
    login: {
      arity: 1,
      async call([credential], source) {
        const r = await auth.call("login", { credential: credential!, source });
        return { success: "OK", uid: r.uid ?? "", expires: r.expires ?? "", headers: r.headers ?? {} };
      },
    },
  };

  async function dispatch(body: Buffer, source: string): Promise<string> {
    const { method, params } = parseCall(body);
    const m = Object.hasOwn(methods, method) ? methods[method] : undefined;
    if (!m) throw new CallRefused("unknown_method", `unknown method ${JSON.stringify(method.slice(0, 64))}`);
    if (params.length !== m.arity) throw new CallRefused("bad_params", `${method} takes ${m.arity} arguments, got ${params.length}`);
    const bad = params.findIndex((p) => typeof p !== "string");
    if (bad >= 0) throw new CallRefused("bad_params", `${method}: argument ${bad + 1} must be a string`);
    return serializer.serializeMethodResponse(await m.call(params as string[], source));
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? "/", "http://localhost").pathname;
    if (!PATHS.has(path)) return send(res, 404, "text/plain", "XML-RPC is served at POST /\n");
    if (req.method !== "POST") return send(res, 405, "text/plain", "XML-RPC needs POST\n", { Allow: "POST" });
    let xml: string;
    try {
      xml = await dispatch(await readBody(req, XMLRPC_BODY_LIMIT), req.socket.remoteAddress ?? "");
    } catch (err) {
      const f = xmlrpcFailure(err);
      if ("http" in f) return send(res, f.http, "text/plain", f.text);
      if ("fault" in f) xml = serializer.serializeFault(f.fault);
      else {
        if (f.serverSide) log.error(describe(err));
        xml = serializer.serializeMethodResponse(f.struct);
      }
    }
    send(res, 200, "text/xml", xml);
  }

  /**
   * A refusal before the call was read (the listener's: a client
   * certificate that did not verify, the admin rule, no such path) or a
   * failure that escaped. At POST / and /RPC2 a refused client certificate
   * is the ERR struct Sugar shows; anything else is plain HTTP, as for a
   * path that is not XML-RPC's.
   */
  function fail(req: IncomingMessage, res: ServerResponse, err: unknown): void {
    const e = err instanceof SugarError ? err : undefined;
    const auth = e !== undefined && e.code.startsWith("auth_");
    if (auth && PATHS.has(pathOf(req.url))) return send(res, 200, "text/xml", serializer.serializeMethodResponse({ success: "ERR", error: e.message, code: e.code }));
    if (e?.code === "not_found") return send(res, 404, "text/plain", "XML-RPC is served at POST /\n");
    // The admin rule's 403 is never an XML-RPC answer: no admin path is XML-RPC's.
    if (auth || e?.code === "forbidden") return send(res, auth ? 401 : 403, "text/plain", `${e!.message}\n`);
    log.error(`request failed: ${(err as Error).stack ?? String(err)}`);
    send(res, 500, "text/plain", "internal server error\n", {}, true);
  }

  return { name: "xmlrpc", routes: ROUTES, handle, fail };
}
