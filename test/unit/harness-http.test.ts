/**
 * The small servers the forward-auth tests put behind nginx and Caddy: the
 * echo upstream shows exactly what it received, the stub auth answers as the
 * test decides, and httpGet sends header lines exactly as written.
 */
import { Agent, request } from "node:http";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { echoOf, headerValues, startEchoUpstream } from "../support/echo-upstream.js";
import { httpGet } from "../support/http-server.js";
import { startStubAuth } from "../support/stub-auth.js";

test("echo upstream: answers with the method, path and every header line it received, repeats and spelling kept", async () => {
  const echo = await startEchoUpstream();
  try {
    const r = await httpGet(`${echo.url}/some/path?x=1`, [["X-Sugar-Uid", "a"], ["x-sugar-uid", "b"], ["X_Sugar_Uid", "c"], ["Cookie", "k=v"]], "DELETE");
    assert.is(r.status, 200);
    assert.match(String(r.headers["content-type"]), /^application\/json/);
    const seen = echoOf(r.body);
    assert.is(seen.method, "DELETE");
    assert.is(seen.path, "/some/path?x=1");
    assert.equal(headerValues(seen, "X-Sugar-Uid"), ["a", "b"]);
    assert.equal(headerValues(seen, "X_Sugar_Uid"), ["c"]);
    assert.is(seen.headers.cookie, "k=v");
    assert.is(echo.requests.length, 1);
    assert.equal(echo.requests[0], seen);
  } finally {
    await echo.stop();
  }
});

test("stub auth: answers 401 until told otherwise, then as decided per request, and keeps what it was asked", async () => {
  const auth = await startStubAuth();
  try {
    assert.is((await httpGet(`${auth.url}/auth/verify`)).status, 401);
    auth.decide((req) => (req.headers.cookie === "s=good" ? { status: 200, headers: { "X-Sugar-Uid": "u1" } } : { status: 403 }));
    const ok = await httpGet(`${auth.url}/auth/verify`, [["Cookie", "s=good"]]);
    assert.is(ok.status, 200);
    assert.is(ok.headers["x-sugar-uid"], "u1");
    assert.is(ok.body, "");
    assert.is((await httpGet(`${auth.url}/auth/verify`, [["Cookie", "s=bad"]])).status, 403);
    assert.equal(auth.requests.map((r) => r.headers.cookie), [undefined, "s=good", "s=bad"]);
  } finally {
    await auth.stop();
  }
});

test("test http server: stop() returns although a client keeps its connection open", async () => {
  const echo = await startEchoUpstream();
  const agent = new Agent({ keepAlive: true });
  await new Promise<void>((resolve, reject) => {
    request(echo.url, { agent }, (res) => {
      res.resume();
      res.on("end", resolve);
    })
      .on("error", reject)
      .end();
  });
  await echo.stop(); // would wait for the idle keep-alive connection without closeAllConnections
  agent.destroy();
});

test.run();
