/** The xoid cookie parser (actors/auth/xoid.ts): lenient about the wrapping, strict about the content, closed on anything else. */
import { test } from "uvu";
import * as assert from "uvu/assert";
import { xoidUid } from "../../actors/auth/xoid.js";

const HASH = "3f2504e04f8911d39a0c0305e82c3301a1b2c3d4";
const browse = `{"color": "#FF8F00,#00A0FF", "pkey_hash": "${HASH}"}`;

test("xoid: Browse's json.dumps value names its pkey_hash", () => {
  assert.is(xoidUid(browse), HASH);
  assert.is(xoidUid(`{"pkey_hash":"${HASH}","color":"#000000,#FFFFFF"}`), HASH);
  assert.is(xoidUid(`\t${browse}  `), HASH);
});

test("xoid: quotes, \\\" and Python's octal escapes, URL-encoding and form encoding are unwrapped", () => {
  const escaped = browse.replace(/"/g, '\\"');
  for (const v of [
    `"${escaped}"`,
    escaped,
    `"${escaped.replace(/,/g, "\\054")}"`,
    encodeURIComponent(browse),
    encodeURIComponent(browse).replace(/%20/g, "+"),
    encodeURIComponent(`"${escaped}"`),
    `"${encodeURIComponent(browse)}"`,
    encodeURIComponent(browse).toLowerCase().replace(HASH.toLowerCase(), HASH),
  ]) {
    assert.is(xoidUid(v), HASH, v);
  }
});

test("xoid: broken JSON, a missing or malformed pkey_hash, or something that is not an object names nobody", () => {
  for (const v of [
    "",
    "   ",
    browse.slice(0, -1),
    browse.replace(", ", " "),
    browse.replace(HASH, HASH.slice(1)),
    browse.replace(HASH, HASH + "a"),
    browse.replace(HASH, HASH.toUpperCase()),
    browse.replace(HASH, `g${HASH.slice(1)}`),
    `{"pkey_hash": ["${HASH}"]}`,
    `{"pkey_hash": 1}`,
    `{"pkey_hash": null}`,
    `{"__proto__": {"pkey_hash": "${HASH}"}}`,
    `{'pkey_hash': '${HASH}'}`,
    `["${HASH}"]`,
    `"${HASH}"`,
    HASH,
    "null",
    "true",
    "{}",
    `${encodeURIComponent(browse)}%zz`,
    `%E0%A4%A${browse}`,
    `"${browse}`,
    browse + " ".repeat(4096),
    "%".repeat(8192),
    "{".repeat(8192),
  ]) {
    assert.is(xoidUid(v), undefined, v.slice(0, 80));
  }
});
test.run();
