/** One HTTP(S) request with full control over the TLS side (CA, client certificate), for the TLS port's tests. */
import { readFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";

export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  /** The body as JSON, or undefined when it is not JSON. */
  json: Record<string, unknown> | undefined;
}

export interface RequestOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: string | Record<string, unknown>;
  /** TLS: the CA file the server's certificate must chain to; absent = plain HTTP. */
  ca?: string;
  /** TLS: a client certificate and its key (files). */
  cert?: string;
  key?: string;
}

export function call(port: number, path: string, o: RequestOptions = {}): Promise<Reply> {
  const body = o.body === undefined ? undefined : typeof o.body === "string" ? o.body : JSON.stringify(o.body);
  const headers = { ...(body !== undefined && typeof o.body !== "string" ? { "content-type": "application/json" } : {}), ...o.headers };
  const base = { host: "127.0.0.1", port, path, method: o.method ?? (body === undefined ? "GET" : "POST"), headers, agent: false as const };
  return new Promise((resolve, reject) => {
    const onResponse = (res: import("node:http").IncomingMessage) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (text += d));
      res.on("end", () => {
        let json: Record<string, unknown> | undefined;
        try {
          json = JSON.parse(text) as Record<string, unknown>;
        } catch {
          json = undefined; // a page or an XML-RPC answer: the test reads text
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
      res.on("error", reject);
    };
    const req = o.ca
      ? httpsRequest({ ...base, ca: readFileSync(o.ca), ...(o.cert ? { cert: readFileSync(o.cert), key: readFileSync(o.key!) } : {}) }, onResponse)
      : httpRequest(base, onResponse);
    req.on("error", reject);
    req.setTimeout(10_000, () => req.destroy(new Error(`no answer from port ${port} in 10 s`)));
    req.end(body);
  });
}
