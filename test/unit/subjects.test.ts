/** Bus subjects (src/bus/subjects.ts): an op travels under its .proto name. */
import { test } from "uvu";
import * as assert from "uvu/assert";
import { subjects } from "../../src/bus/subjects.js";
import { SugarError } from "../../src/errors.js";

test("subjects: an op the generated code names in camelCase travels as its snake_case .proto name, and opOf gives it back", () => {
  assert.is(subjects.actor("school", "auth", "claimCode"), "sugar.school.auth.claim_code");
  assert.is(subjects.actor("school", "auth", "claim_code"), "sugar.school.auth.claim_code");
  assert.is(subjects.actor("school", "registry", "lookup"), "sugar.school.registry.lookup");
  assert.is(subjects.keyring("sign"), "sugar.keyring.sign");
  assert.is(subjects.opOf("sugar.school.auth.claim_code"), "claimCode");
  assert.is(subjects.opOf("sugar.school.lease.stolenlist"), "stolenlist");
});

test("subjects: a subject token in camelCase names no op", () => {
  assert.is(subjects.opOf("sugar.school.auth.claimCode"), "");
  try {
    subjects.actor("School", "auth", "check");
    assert.unreachable("an upper-case site was accepted");
  } catch (err) {
    assert.instance(err, SugarError);
  }
});

test.run();
