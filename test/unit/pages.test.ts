/** src/pages.ts: one page after a cursor (the server's side), and every page (the asker's), with the checks that keep an asker from looping. */
import { test } from "uvu";
import * as assert from "uvu/assert";
import { SugarError } from "../../src/errors.js";
import { followPages, pageAfter } from "../../src/pages.js";

const keys = ["A", "C", "E", "G", "I"];
const id = (k: string) => k;

test("pages: pageAfter answers at most limit keys after the cursor, sorted, and whether more follow; a cursor between keys or past the end is fine", () => {
  assert.equal(pageAfter(keys, id, "", 2), { items: ["A", "C"], more: true });
  assert.equal(pageAfter(keys, id, "C", 2), { items: ["E", "G"], more: true });
  assert.equal(pageAfter(keys, id, "G", 2), { items: ["I"], more: false });
  assert.equal(pageAfter(keys, id, "D", 2), { items: ["E", "G"], more: true }, "a cursor held by no item: what sorts after it");
  assert.equal(pageAfter(keys, id, "Z", 2), { items: [], more: false }, "past the end: an empty last page");
  assert.equal(pageAfter(keys, id, "", 5), { items: keys, more: false });
  assert.equal(pageAfter([], id, "", 5), { items: [], more: false });
});

interface Page {
  keys: string[];
  more?: boolean;
  digest?: string;
}
const shape = { keys: (p: Page) => p.keys, what: "the test's list" };
/** An asker over pageAfter, as a server would answer it. */
const serve = (list: string[], limit: number) => async (after: string): Promise<Page> => {
  const p = pageAfter(list, id, after, limit);
  return { keys: p.items, more: p.more };
};

test("pages: followPages asks after the last key of each page until more is false, and gives every page in order", async () => {
  const asked: string[] = [];
  const ask = serve(keys, 2);
  const pages = await followPages(await ask(""), (after) => (asked.push(after), ask(after)), shape);
  assert.equal(pages?.map((p) => p.keys), [["A", "C"], ["E", "G"], ["I"]]);
  assert.equal(asked, ["C", "G"]);
  assert.equal((await followPages<Page>({ keys: [] }, () => Promise.reject(new Error("not asked")), shape))?.length, 1, "an empty list is one page");
});

test("pages: followPages refuses an empty page with more to come and a page that does not start after the cursor (a server that would loop the asker for ever), as internal", async () => {
  const fails = async (p: Promise<unknown>, re: RegExp) => {
    const err = await p.then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof SugarError && err.code === "internal" && re.test(err.message), String(err));
  };
  await fails(followPages({ keys: [], more: true }, serve(keys, 2), shape), /the test's list answered an empty page with more to come/);
  await fails(followPages({ keys: ["A"], more: true }, async () => ({ keys: [], more: true }), shape), /empty page with more to come/);
  await fails(followPages({ keys: ["C"], more: true }, async () => ({ keys: ["C", "E"] }), shape), /a page that does not start after C/);
  await fails(followPages({ keys: ["C"], more: true }, async () => ({ keys: ["B"] }), shape), /does not start after C/);
});

test("pages: followPages gives undefined when a later page says the list changed (same is false), without asking further", async () => {
  let asked = 0;
  const next = async (after: string): Promise<Page> => (asked++, { keys: [after + "x"], more: true, digest: "other" });
  const r = await followPages({ keys: ["A"], more: true, digest: "d" }, next, { ...shape, same: (p) => p.digest === "d" });
  assert.is(r, undefined);
  assert.is(asked, 1);
});

test.run();
