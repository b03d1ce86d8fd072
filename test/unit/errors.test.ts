/** The error catalogue and the one mapping each HTTP adapter makes of it. */
import { promises as fsp } from "node:fs";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { httpFailure } from "../../adapters/http/index.js";
import { xmlrpcFailure } from "../../adapters/xmlrpc/index.js";
import { ERROR_CODES, ListenError, SugarError, describe, isErrorCode, toSugarError } from "../../src/errors.js";

/** A real fs failure: its message names the file. */
async function fsError(): Promise<unknown> {
  try {
    await fsp.readFile("/nonexistent/sugar-server/secret/users.json");
  } catch (err) {
    return err;
  }
  throw new Error("expected the read to fail");
}

test("errors: the catalogue is closed, and ListenError is a SugarError listen_failed with its privileged flag", () => {
  for (const code of ["invalid_input", "too_large", "internal", "invalid_config", "listen_failed"]) assert.ok(isErrorCode(code), code);
  assert.not.ok(isErrorCode("tooLarge"));
  assert.is(new Set(ERROR_CODES).size, ERROR_CODES.length);
  const e = new ListenError("cannot listen", { privileged: true });
  assert.instance(e, SugarError);
  assert.is(e.code, "listen_failed");
  assert.is(e.privileged, true);
  assert.is(new ListenError("in use").privileged, false);
});

test("errors: toSugarError keeps a SugarError and makes anything else internal; describe says code and message", () => {
  const e = new SugarError("busy", "later");
  assert.is(toSugarError(e), e);
  assert.is(toSugarError(new Error("boom")).code, "internal");
  assert.is(toSugarError("text").message, "text");
  assert.is(describe(e), "busy: later");
});

test("errors: REST maps every code to a status; too_large is 413; a 500 never shows its message", async () => {
  assert.is(httpFailure(new SugarError("invalid_input", "bad uid")).status, 400);
  assert.equal(httpFailure(new SugarError("too_large", "request body is larger than 65536 bytes")), { status: 413, code: "too_large", message: "request body is larger than 65536 bytes" });
  assert.is(httpFailure(new SugarError("not_registered", "no such user")).message, "no such user");
  assert.is(httpFailure(new SugarError("busy", "later")).status, 503);
  assert.is(httpFailure(new SugarError("timeout", "slow")).status, 504);
  const fs = httpFailure(await fsError());
  assert.equal(fs, { status: 500, code: "internal", message: "internal server error" });
  for (const code of ["internal", "invalid_config", "listen_failed"] as const) {
    assert.equal(httpFailure(new SugarError(code, "/srv/sugar/run/lock: EACCES")), { status: 500, code, message: "internal server error" }, code);
  }
  for (const code of ERROR_CODES) {
    const f = httpFailure(new SugarError(code, "/a/path"));
    assert.ok(f.status >= 400 && f.status < 600, `${code} → ${f.status}`);
    if (f.status === 500) assert.not.match(f.message, /\/a\/path/, code);
  }
});

test("errors: XML-RPC answers too_large with 413, business errors with an ERR struct, and hides the server's own failures", async () => {
  assert.equal(xmlrpcFailure(new SugarError("too_large", "request body is larger than 65536 bytes")), { http: 413, text: "request body is larger than 65536 bytes\n" });
  assert.equal(xmlrpcFailure(new SugarError("invalid_input", "machine_sn is malformed")), { struct: { success: "ERR", error: "machine_sn is malformed", code: "invalid_input" } });
  const busy = xmlrpcFailure(new SugarError("unavailable", "no responders"));
  assert.ok("struct" in busy && /try again later \(no responders\)/.test(busy.struct.error!));
  assert.equal(xmlrpcFailure(await fsError()), { struct: { success: "ERR", error: "internal server error", code: "internal" }, serverSide: true });
  for (const code of ["invalid_config", "listen_failed"] as const) {
    assert.equal(xmlrpcFailure(new SugarError(code, "/etc/sugar-server.conf:3: bad")), { struct: { success: "ERR", error: "internal server error", code: "internal" }, serverSide: true }, code);
  }
});

test.run();
