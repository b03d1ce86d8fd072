/**
 * IPv6 link-local addresses (fe80::/10): the listeners may bind one with its
 * interface (`host = fe80::1%eth0`), but no URL or host the server hands a
 * client may name one — it reaches this server only from one network link.
 */
import { request } from "node:http";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { allowedRedirect, redirectHosts } from "../../adapters/web/redirect.js";
import { runComponents } from "../../src/cli/components.js";
import { formatAddress } from "../../src/component.js";
import { configWith, isLinkLocal } from "../../src/config.js";
import { SugarError } from "../../src/errors.js";
import { captureLogger } from "../support/log.js";
import { feature, linkLocalAddress, testsNeeding } from "../support/requires.js";
import { tempDir } from "../support/tmp.js";

const refusal = (overrides: Record<string, string>): string => {
  try {
    configWith(overrides);
  } catch (err) {
    assert.instance(err, SugarError);
    assert.is((err as SugarError).code, "invalid_config");
    return (err as Error).message;
  }
  throw new Error(`accepted ${JSON.stringify(overrides)}`);
};

test("link-local: isLinkLocal knows fe80::/10 with or without brackets and zone, and nothing else", () => {
  for (const h of ["fe80::1", "FE80::1", "[fe80::1]", "fe80::1%eth0", "febf:ffff::1", "fe80::fc:ff:fe00:1"]) assert.ok(isLinkLocal(h), h);
  for (const h of ["fec0::1", "fe7f::1", "fe8::1", "::1", "::", "fd00::2", "127.0.0.1", "169.254.1.1", "school.example", "fe80.example"]) assert.not.ok(isLinkLocal(h), h);
});

test("link-local: config accepts host = fe80::1%lo (a link-local address with its interface) and ordinary addresses and names", () => {
  assert.is(configWith({ host: "fe80::1%lo" }).host, "fe80::1%lo");
  for (const host of ["::", "0.0.0.0", "127.0.0.1", "::1", "fd00::2", "localhost", "xs.school.example"]) assert.is(configWith({ host }).host, host);
});

test("link-local: config refuses a zone on anything but a link-local address, and a host that is no address or name", () => {
  assert.match(refusal({ host: "::1%lo" }), /--host: host = "::1%lo": only an IPv6 link-local address \(fe80::\/10\) takes a zone/);
  assert.match(refusal({ host: "fe80::1%" }), /takes a zone, and it names an interface/);
  assert.match(refusal({ host: "http://xs" }), /must be an IP address/);
});

test("link-local: config refuses backup-host and jabber-url literals in fe80::/10, saying why, and the values stay unset", () => {
  for (const [key, value] of [["backup-host", "fe80::1"], ["backup-host", "[fe80::1]"], ["backup-host", "fe80::1%eth0"], ["jabber-url", "fe80::abcd"]] as const) {
    assert.match(refusal({ [key]: value }), new RegExp(`--${key}: ${key} = .*IPv6 link-local address \\(fe80::/10\\).*no client can be given it; use a host name`));
  }
  assert.is(configWith({ "backup-host": "xs.example" })["backup-host"], "xs.example");
});

test("link-local: a web redirect never names a link-local host, even when the request's Host header did", () => {
  const hosts = redirectHosts(["xs.example", "[fe80::1]:8000", "fe80::2"], "library.example");
  assert.not.ok([...hosts].some((h) => isLinkLocal(h)), [...hosts].join(" "));
  assert.is(allowedRedirect("http://[fe80::1]:8000/shelf", new Set(["fe80::1"])), undefined);
  assert.is(allowedRedirect("http://library.example/shelf", hosts), "http://library.example/shelf");
});

test("link-local: formatAddress brackets an address with a zone", () => {
  assert.is(formatAddress({ host: "fe80::1%eth0", port: 8000 }), "[fe80::1%eth0]:8000");
});

const address = linkLocalAddress();
const onLinkLocal = testsNeeding(test, feature(address !== undefined, "no network interface has an IPv6 link-local address"));

onLinkLocal("link-local: the REST listener binds a link-local address with its interface and answers /healthz through it", async () => {
  const d = tempDir();
  const { log, text } = captureLogger();
  const config = configWith({ root: d.path, host: address!, "httpd-port": 0 });
  const server = await runComponents(["registry", "http"], config, log);
  try {
    const http = server.components.find((c) => c.name === "http") as unknown as { address: { host: string; port: number } };
    assert.is(http.address.host, address);
    assert.match(text(), new RegExp(`http: listening on \\[${address!.replace(/[.]/g, "\\.")}\\]:${http.address.port}`));
    const body = await new Promise<string>((resolve, reject) => {
      const req = request({ host: address, port: http.address.port, path: "/healthz", agent: false }, (res) => {
        let b = "";
        res.on("data", (x) => (b += x));
        res.on("end", () => resolve(`${res.statusCode} ${b}`));
      });
      req.on("error", reject);
      req.end();
    });
    assert.match(body, /^200 \{"success":"OK","status":"ok"/);
  } finally {
    await server.stop();
    d.remove();
  }
});

test.run();
