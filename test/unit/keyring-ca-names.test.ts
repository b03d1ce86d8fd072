/** The names a school may have in its certificates (actors/keyring/ca/names.ts): ca-server-names for the asking site. */
import { test } from "uvu";
import * as assert from "uvu/assert";
import { concreteNames, hostPatterns, namesFor, patternsOf } from "../../actors/keyring/ca/names.js";
import { SugarError } from "../../src/errors.js";

/** A shared name beside the per-school one (the default is the per-school one alone). */
const WITH_SHARED = patternsOf("schoolserver,{site}.schoolserver.lan");
const WILD = patternsOf("schoolserver, {site}.schoolserver.lan ,*.{site}.schoolserver.lan,");

function refused(fn: () => unknown, code: string, re: RegExp): void {
  try {
    fn();
  } catch (err) {
    assert.instance(err, SugarError);
    assert.is((err as SugarError).code, code, (err as Error).message);
    assert.match((err as Error).message, re);
    return;
  }
  assert.unreachable(`expected ${code}`);
}

test("keyring-ca-names: patterns are trimmed and lower-cased; {site} becomes * for known_hosts", () => {
  assert.equal(WILD, ["schoolserver", "{site}.schoolserver.lan", "*.{site}.schoolserver.lan"]);
  assert.equal(hostPatterns(WILD), ["schoolserver", "*.schoolserver.lan", "*.*.schoolserver.lan"]);
  assert.equal(patternsOf("A.Example.ORG"), ["a.example.org"]);
});

test("keyring-ca-names: the concrete names are the patterns without *, with the site filled in", () => {
  assert.equal(concreteNames(WILD, "north"), ["schoolserver", "north.schoolserver.lan"]);
  assert.equal(concreteNames(patternsOf("*.{site}.lan"), "north"), []);
  assert.equal(concreteNames(WITH_SHARED, "bad_site"), ["schoolserver"], "a site that makes no DNS label drops its patterns");
});

test("keyring-ca-names: no names asked gives the concrete names; none at all is invalid_input", () => {
  assert.equal(namesFor([], WITH_SHARED, "north"), ["schoolserver", "north.schoolserver.lan"]);
  refused(() => namesFor([], patternsOf("*.{site}.lan"), "north"), "invalid_input", /no name without a wildcard/);
});

test("keyring-ca-names: asked names match without case, a trailing dot dropped, duplicates once, * exactly one label", () => {
  assert.equal(namesFor(["North.SchoolServer.LAN.", "north.schoolserver.lan", "www.north.schoolserver.lan"], WILD, "north"), ["north.schoolserver.lan", "www.north.schoolserver.lan"]);
  refused(() => namesFor(["a.b.north.schoolserver.lan"], WILD, "north"), "forbidden", /not a name north may have/);
  refused(() => namesFor(["north.schoolserver.lan.evil"], WILD, "north"), "forbidden", /not a name/);
});

test("keyring-ca-names: another site's name is forbidden", () => {
  refused(() => namesFor(["south.schoolserver.lan"], WITH_SHARED, "north"), "forbidden", /south.schoolserver.lan is not a name north may have/);
  refused(() => namesFor(["www.south.schoolserver.lan"], WILD, "north"), "forbidden", /not a name north may have/);
});

test("keyring-ca-names: a wildcard, a non-DNS name or too many names are invalid_input", () => {
  refused(() => namesFor(["*.north.schoolserver.lan"], WILD, "north"), "invalid_input", /no wildcard/);
  for (const bad of ["", " ", "a b", "a..b", "-a.lan", "a-.lan", "é.lan", `${"x".repeat(64)}.lan`, "a/b"]) {
    refused(() => namesFor([bad], WILD, "north"), "invalid_input", /not a DNS host name/);
  }
  refused(() => namesFor(Array.from({ length: 33 }, () => "schoolserver"), WILD, "north"), "invalid_input", /at most 32 names/);
});

test.run();
