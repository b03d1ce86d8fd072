/**
 * XML-RPC adapter (xmlrpc-port, default 8080): the `register(sn, nickname,
 * uuid, pubkey)` call every Sugar desktop makes from "Register". Served on
 * the project's own HTTP server; the `xmlrpc` package only (de)serialises
 * (its server has no limits and crashes on handler errors, protocols.md §9).
 * Business errors are a struct `{success: "ERR", error}` (what Sugar reads);
 * faults only for protocol errors.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { Readable } from "node:stream";
import Deserializer from "xmlrpc/lib/deserializer.js";
import serializer from "xmlrpc/lib/serializer.js";
import { once, type Context, type Listener } from "../../src/component.js";
import { registryClient } from "../../src/clients.js";
import { toSugarError, type ErrorCode } from "../../src/errors.js";
import { closeServer, harden, readBody, send } from "../../src/http.js";
import { formatAddress, listen } from "../../src/net.js";

export const XMLRPC_BODY_LIMIT = 64 * 1024;
const PATHS = new Set(["/", "/RPC2"]);

/** XML-RPC interop fault codes (specs.xmlrpc.com/spec: fault code interoperability). */
export const FAULT = { parse: -32700, unknownMethod: -32601, badParams: -32602, application: -32500 } as const;

class Fault extends Error {
  constructor(readonly faultCode: number, message: string) {
    super(message);
  }
}

/** The one place XML-RPC maps error codes to what Sugar shows: every business error is an ERR struct. */
export function xmlrpcErrorStruct(code: ErrorCode, message: string): Record<string, string> {
  switch (code) {
    case "unavailable":
    case "timeout":
    case "busy":
    case "rate_limited":
    case "disk_full":
      return { success: "ERR", error: `the school server is busy or partly down, try again later (${message})` };
    case "internal":
      return { success: "ERR", error: "internal server error" };
    default:
      return { success: "ERR", error: message };
  }
}

function parseCall(body: Buffer): Promise<{ method: string; params: unknown[] }> {
  return new Promise((resolve, reject) => {
    let settled = false;
    // The deserializer can report an error and then the end of the stream: answer once.
    new Deserializer().deserializeMethodCall(Readable.from([body]), (err, method, params) => {
      if (settled) return;
      settled = true;
      if (err || !method) reject(new Fault(FAULT.parse, `malformed XML-RPC request: ${err?.message ?? "no method name"}`));
      else resolve({ method, params: params ?? [] });
    });
  });
}

export async function startXmlrpc(ctx: Context): Promise<Listener> {
  const { bus, config } = ctx;
  const log = ctx.log.child("xmlrpc");
  const registry = registryClient(bus, config.site, { timeoutMs: config["bus-timeout"] });

  const methods: Record<string, { arity: number; call(params: string[]): Promise<Record<string, unknown>> }> = {
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
        return { success: "OK", uid: r.user?.uid ?? "", jabberserver: r.jabberServer, backupurl: r.backupUrl };
      },
    },
  };

  async function dispatch(body: Buffer): Promise<string> {
    const { method, params } = await parseCall(body);
    const m = Object.hasOwn(methods, method) ? methods[method] : undefined;
    if (!m) throw new Fault(FAULT.unknownMethod, `unknown method ${JSON.stringify(method.slice(0, 64))}`);
    if (params.length !== m.arity) throw new Fault(FAULT.badParams, `${method} takes ${m.arity} arguments, got ${params.length}`);
    const bad = params.findIndex((p) => typeof p !== "string");
    if (bad >= 0) throw new Fault(FAULT.badParams, `${method}: argument ${bad + 1} must be a string`);
    try {
      return serializer.serializeMethodResponse(await m.call(params as string[]));
    } catch (err) {
      const e = toSugarError(err);
      if (e.code === "internal") log.error(`${method}: ${e.message}`);
      return serializer.serializeMethodResponse(xmlrpcErrorStruct(e.code, e.message));
    }
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? "/", "http://localhost").pathname;
    if (!PATHS.has(path)) return send(res, 404, "text/plain", "XML-RPC is served at POST /\n");
    if (req.method !== "POST") return send(res, 405, "text/plain", "XML-RPC needs POST\n", { Allow: "POST" });
    let body: Buffer;
    try {
      body = await readBody(req, XMLRPC_BODY_LIMIT);
    } catch {
      return send(res, 413, "text/plain", `request body is larger than ${XMLRPC_BODY_LIMIT} bytes\n`);
    }
    let xml: string;
    try {
      xml = await dispatch(body);
    } catch (err) {
      const fault = err instanceof Fault ? err : new Fault(FAULT.application, "internal server error");
      if (!(err instanceof Fault)) log.error(`unexpected: ${(err as Error).stack ?? String(err)}`);
      xml = serializer.serializeFault({ faultCode: fault.faultCode, faultString: fault.message });
    }
    send(res, 200, "text/xml", xml);
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err) => {
      log.error(`request failed: ${(err as Error).stack ?? String(err)}`);
      if (!res.headersSent) send(res, 500, "text/plain", "internal server error\n", {}, true);
      else res.destroy();
    });
  });
  harden(server, config["max-connections"]);
  const address = await listen(server, config.host, config["xmlrpc-port"], "xmlrpc-port");
  log.info(`listening on ${formatAddress(address)}`);
  return { name: "xmlrpc", address, stop: once(() => closeServer(server)) };
}
