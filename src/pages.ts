/**
 * A list answered in pages, keyed by a string that sorts it (a serial
 * number): one NATS message holds at most max_payload (1 MB by default),
 * and a district's stolen marks can be tens of thousands. The server answers
 * at most a page of what sorts after the asker's cursor, with `more`; the
 * asker asks again after the last key of each page until `more` is false.
 * The cursor is a key, not an offset: what was on the list all along is
 * answered exactly once even when entries come and go between pages (one
 * added behind the cursor is not in this pass; the next one sees it). The
 * one owner of both sides, for the district's stolen list
 * (src/district-pages.ts, actors/district) and a school's own
 * (src/lease-pages.ts, actors/lease).
 */
import { SugarError } from "./errors.js";

/** The server's side: at most `limit` of `sorted` (sorted by `key`, ascending) after `after` ("" = from the first), and whether more follow. */
export function pageAfter<T>(sorted: readonly T[], key: (item: T) => string, after: string, limit: number): { items: T[]; more: boolean } {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (key(sorted[mid]!) <= after) lo = mid + 1;
    else hi = mid;
  }
  return { items: sorted.slice(lo, lo + limit), more: lo + limit < sorted.length };
}

/** How the asker reads a page: its keys in order, and (optionally) whether it still belongs to the list of the first page. */
export interface PageShape<P> {
  /** The keys of the page's items, in order. */
  keys: (page: P) => readonly string[];
  /** For errors: "the district's stolen list". */
  what: string;
  /** False when the page says the list changed since the first page (a digest): the asker starts over. */
  same?: (page: P) => boolean;
}

/**
 * The asker's side: given the first page, asks `next(after)` for the ones
 * after it until a page says no `more`. Resolves with every page in order,
 * or undefined when `same` said the list changed between pages. A server
 * that would make this loop for ever (an empty page with more to come, a
 * page that does not start after the cursor) is `internal`.
 */
export async function followPages<P extends { more?: boolean | null }>(first: P, next: (after: string) => Promise<P>, shape: PageShape<P>): Promise<P[] | undefined> {
  const pages = [first];
  let page = first;
  while (page.more) {
    const after = shape.keys(page).at(-1) ?? "";
    if (after === "") throw new SugarError("internal", `${shape.what} answered an empty page with more to come`);
    page = await next(after);
    if (shape.same && !shape.same(page)) return undefined;
    const head = shape.keys(page)[0];
    if (head !== undefined && head <= after) throw new SugarError("internal", `${shape.what} answered a page that does not start after ${after}`);
    pages.push(page);
  }
  return pages;
}
