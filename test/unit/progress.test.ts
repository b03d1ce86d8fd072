/** src/cli/progress.ts: a bar redrawn in place on a terminal, a line per 10% elsewhere. */
import { test } from "uvu";
import * as assert from "uvu/assert";
import { Progress, chunks } from "../../src/cli/progress.js";

function sink(isTTY: boolean) {
  const out: string[] = [];
  return { out, sink: { isTTY, columns: 200, write: (t: string) => void out.push(t) } };
}

test("progress: not a terminal, one line per 10% with counts and rate, and nothing more at finish", () => {
  const s = sink(false);
  let t = 0;
  const p = new Progress({ unit: "leases", total: 1000, sink: s.sink, now: () => t });
  for (let i = 1; i <= 1000; i++) {
    t = i; // 1 ms per lease: 1,000/s
    p.update(i, `${i} imported`);
  }
  p.finish();
  assert.is(s.out.length, 10);
  assert.is(s.out[0], " 10% 100/1,000 leases, 1,000/s; 100 imported\n");
  assert.is(s.out[9], "100% 1,000/1,000 leases, 1,000/s; 1000 imported\n");
});

test("progress: on a terminal, the bar is redrawn in place at most every 100 ms and ends its line", () => {
  const s = sink(true);
  let t = 0;
  const p = new Progress({ unit: "delegations", total: 4, sink: s.sink, now: () => t });
  p.update(1);
  t = 50;
  p.update(2); // too soon: not drawn
  t = 200;
  p.update(4);
  p.finish();
  assert.is(s.out.length, 3);
  assert.ok(s.out.every((l) => l.startsWith("\r[")));
  assert.match(s.out[0]!, /\[######\.{18}\]  25% 1\/4 delegations/);
  assert.match(s.out[2]!, /\[#{24}\] 100% 4\/4 delegations, 20\/s\u001b\[K\n$/);
});

test("progress: chunks slices without losing or repeating an item", () => {
  assert.equal(chunks([1, 2, 3, 4, 5], 2), [[1, 2], [3, 4], [5]]);
  assert.equal(chunks([], 3), []);
});

test.run();
