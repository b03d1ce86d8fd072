/** The listener kit's view of who a client is, directly or behind a proxy on this machine. */
import type { IncomingMessage } from "node:http";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { overTls, sourceOf } from "../../adapters/kit/http.js";

const req = (peer: string, headers: Record<string, string> = {}, encrypted = false) =>
  ({ socket: { remoteAddress: peer, encrypted }, headers }) as unknown as IncomingMessage;

test("kit: sourceOf counts the peer, and with trust-proxy a loopback peer's last X-Forwarded-For", () => {
  assert.is(sourceOf(req("10.0.0.5", { "x-forwarded-for": "1.2.3.4" }), true), "10.0.0.5", "a remote peer is itself, whatever it claims");
  assert.is(sourceOf(req("127.0.0.1", { "x-forwarded-for": "1.2.3.4" }), false), "127.0.0.1", "without trust-proxy the header is ignored");
  assert.is(sourceOf(req("127.0.0.1", { "x-forwarded-for": "9.9.9.9, 1.2.3.4" }), true), "1.2.3.4", "the address the proxy saw is the last");
  assert.is(sourceOf(req("::1", { "x-forwarded-for": "2001:db8::7" }), true), "2001:db8::7");
  assert.is(sourceOf(req("127.0.0.1", { "x-forwarded-for": "not an address; drop table" }), true), "127.0.0.1", "garbage is not an address");
});

test("kit: overTls is the listener's own TLS, or with trust-proxy a loopback proxy's X-Forwarded-Proto https", () => {
  assert.is(overTls(req("10.0.0.5", {}, true), false), true);
  assert.is(overTls(req("127.0.0.1", { "x-forwarded-proto": "https" }), true), true);
  assert.is(overTls(req("127.0.0.1", { "x-forwarded-proto": "https" }), false), false);
  assert.is(overTls(req("10.0.0.5", { "x-forwarded-proto": "https" }), true), false, "only a proxy on this machine is believed");
  assert.is(overTls(req("127.0.0.1", { "x-forwarded-proto": "http" }), true), false);
});

test.run();
