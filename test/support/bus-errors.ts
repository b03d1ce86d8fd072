/** Asserting how a bus operation fails: the SugarError code (and message) a caller sees. */
import * as assert from "uvu/assert";
import type { Requester } from "../../src/bus/types.js";
import { decodeReply } from "../../src/codec.js";
import { SugarError } from "../../src/errors.js";

/** Awaits `p` and asserts it fails with SugarError `code` (and a message matching `re`). */
export async function expectError(p: Promise<unknown>, code: string, re?: RegExp): Promise<SugarError> {
  try {
    await p;
  } catch (err) {
    assert.instance(err, SugarError);
    assert.is((err as SugarError).code, code, (err as Error).message);
    if (re) assert.match((err as Error).message, re);
    return err as SugarError;
  }
  assert.unreachable(`expected ${code}`);
  throw new Error("unreachable");
}

/** Sends raw bytes to a subject and asserts the reply envelope carries error `code`. */
export async function expectRawError(bus: Requester, subject: string, data: Uint8Array, code: string, re?: RegExp): Promise<void> {
  const reply = await bus.request(subject, data, { timeoutMs: 3000 });
  await expectError(Promise.resolve().then(() => decodeReply(reply)), code, re);
}
