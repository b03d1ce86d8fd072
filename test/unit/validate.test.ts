import { test } from "uvu";
import * as assert from "uvu/assert";
import * as validate from "../../src/validate.js";
import { SugarError } from "../../src/errors.js";
import { makeKey } from "../support/keys.js";
import { requires, testsNeeding, TOOLS } from "../support/requires.js";
import { tempDir } from "../support/tmp.js";

function refuses(fn: () => unknown, re: RegExp): void {
  try {
    fn();
  } catch (err) {
    assert.instance(err, SugarError);
    assert.is((err as SugarError).code, "invalid_input");
    assert.match((err as Error).message, re);
    return;
  }
  assert.unreachable(`accepted; expected ${re}`);
}

test("validate: serial numbers exactly as an XO sends them; typed ones are upper-cased first", () => {
  assert.is(validate.machineSn("SHF706002A7"), "SHF706002A7");
  assert.is(validate.typedMachineSn(" shf706002a7 "), "SHF706002A7");
  for (const bad of ["shf706002a7", "SHF706002A", "SHF706002A77", "SHF/06002A7", "SH..06002A7", "SHF706002G7", "", "SHF706002A7\n"]) refuses(() => validate.machineSn(bad), /machine_sn/);
});

test("validate: uids are 40 lower-case hex digits", () => {
  assert.is(validate.uid("a".repeat(40)), "a".repeat(40));
  for (const bad of ["A".repeat(40), "a".repeat(39), "a".repeat(41), "g".repeat(40), "../" + "a".repeat(37)]) refuses(() => validate.uid(bad), /uid/);
});

test("validate: uuids in RFC 4122 text form, case kept", () => {
  assert.is(validate.machineUuid("8BF9AC40-26F8-4BCC-A699-BE51FD366419"), "8BF9AC40-26F8-4BCC-A699-BE51FD366419");
  for (const bad of ["8BF9AC4026F84BCCA699BE51FD366419", "8BF9AC40-26F8-4BCC-A699-BE51FD36641", "../../x"]) refuses(() => validate.machineUuid(bad), /machine_uuid/);
});

test("validate: nicknames are any Unicode without control or format (bidi, zero-width) characters, at most 200 characters", () => {
  assert.is(validate.nickname("Niño ☀ 日本"), "Niño ☀ 日本");
  assert.is(validate.nickname("😀".repeat(200)), "😀".repeat(200), "counted in characters, not UTF-16 units");
  refuses(() => validate.nickname("a\nb"), /control/);
  refuses(() => validate.nickname("a\u0085b"), /control/);
  refuses(() => validate.nickname("x".repeat(201)), /200/);
  refuses(() => validate.nickname(""), /empty/);
  // Format characters: a right-to-left override makes "Ana\u202Egnp.exe" read as "Anaexe.png"; a zero-width joiner hides in a name.
  for (const cf of ["\u202E", "\u202D", "\u2066", "\u200D", "\u200B", "\uFEFF", "\u00AD"]) refuses(() => validate.nickname(`Ana${cf}gnp`), /format characters/);
});

testsNeeding(test, requires(TOOLS.sshKeygen))("validate: real keys of every type parse; uid is SHA-1 of the base64 body; bare bodies accepted", () => {
  const d = tempDir();
  for (const type of ["ed25519", "rsa", "ecdsa"] as const) {
    const k = makeKey(d.path, type, "comment with spaces");
    const full = validate.publicKey(k.line);
    assert.is(full.uid, k.uid);
    assert.is(full.line, `${k.type} ${k.body}`, "comment dropped, canonical form");
    const bare = validate.publicKey(k.body);
    assert.is(bare.line, full.line);
    assert.is(bare.uid, full.uid);
  }
  d.remove();
});

test("validate: Sugar's DSA key body (owner.key.pub without its ssh-dss prefix) is accepted", () => {
  // A DSA public key blob built by hand (OpenSSH 10 cannot make one): string "ssh-dss", mpint p, q, g, y.
  const s = (b: Buffer) => Buffer.concat([Buffer.from([0, 0, 0, b.length]), b]);
  const blob = Buffer.concat([s(Buffer.from("ssh-dss")), s(Buffer.alloc(129, 0x11)), s(Buffer.alloc(21, 0x22)), s(Buffer.alloc(128, 0x33)), s(Buffer.alloc(128, 0x44))]);
  const body = blob.toString("base64");
  const k = validate.publicKey(body);
  assert.is(k.type, "ssh-dss");
  assert.is(k.line, `ssh-dss ${body}`);
});

test("validate: keys with newlines, options, unknown types, bad base64, wrong structure are refused", () => {
  const ed = "AAAAC3NzaC1lZDI1NTE5AAAAIHCfCpPd3Ddw6CKU0Rd24+9kfN8bN2SyQkxvQWu2Cc0d";
  assert.is(validate.publicKey(`ssh-ed25519 ${ed}`).type, "ssh-ed25519");
  refuses(() => validate.publicKey(`ssh-ed25519 ${ed}\nssh-ed25519 ${ed}`), /one line/);
  refuses(() => validate.publicKey(`ssh-ed25519 ${ed}\r`), /one line/);
  refuses(() => validate.publicKey(`restrict,command="x" ssh-ed25519 ${ed}`), /options/);
  refuses(() => validate.publicKey(`from="10.0.0.1" ssh-ed25519 ${ed}`), /options/);
  refuses(() => validate.publicKey(`ssh-foo ${ed}`), /not supported/);
  refuses(() => validate.publicKey(`ssh-ed25519 AAAA!!!!`), /base64/);
  refuses(() => validate.publicKey(`ssh-ed25519 ${ed.slice(0, -4)}`), /truncated|32 bytes|trailing/);
  refuses(() => validate.publicKey(`ssh-rsa ${ed}`), /says ssh-rsa/);
  refuses(() => validate.publicKey(`${ed} trailing`), /followed by nothing/);
  refuses(() => validate.publicKey("   "), /empty/);
  refuses(() => validate.publicKey("ssh-ed25519"), /no body/);
  refuses(() => validate.publicKey("x".repeat(20000)), /longer/);
});

test("validate: a device_id is a MAC address with colons, case folded to lower, or empty; placeholders many devices share are refused", () => {
  assert.is(validate.deviceId("3C:5A:B4:01:02:0F"), "3c:5a:b4:01:02:0f");
  assert.is(validate.deviceId("3c:5a:b4:01:02:0f"), "3c:5a:b4:01:02:0f");
  assert.is(validate.deviceId(""), "");
  for (const bad of ["3c:5a:b4:01:02", "3c:5a:b4:01:02:0f:11", "3c-5a-b4-01-02-0f", "3c5ab401020f", "3c:5a:b4:01:02:0g", " 3c:5a:b4:01:02:0f", "3c:5a:b4:01:02:0f\n", "../../etc"]) {
    refuses(() => validate.deviceId(bad), /not a MAC address/);
  }
  for (const placeholder of ["02:00:00:00:00:00", "00:00:00:00:00:00", "FF:FF:FF:FF:FF:FF"]) refuses(() => validate.deviceId(placeholder), /placeholder/);
});

test.run();
