/**
 * The asker's side of the paged district stolen list
 * (sugar.district.stolen_list, schemas/district.proto): every page of one
 * answer, or `unchanged`. One NATS message cannot hold a large district's
 * list (max_payload 1 MB; a mark is ~53 bytes), so the district actor
 * answers at most a page of marks, sorted by serial number, with `more`.
 * Pages of one answer all carry the digest of the first: a page with another
 * digest means the list changed between pages, and the asker starts over (a
 * few times, then `conflict`); the paging itself is src/pages.ts's. Used by
 * the school's lease actor, the district actor's catch-up with its peer, and
 * `stolen list --district`.
 */
import type { sugar } from "../schemas/gen/messages.js";
import { SugarError } from "./errors.js";
import { followPages } from "./pages.js";

type Request = sugar.district.StolenListRequest.$Properties;
type Reply = sugar.district.StolenListReply.$Properties;
type Mark = sugar.district.Mark.$Properties;

/** Marks per page the district actor answers at most: 5,000 × ~60 bytes ≈ 300 KB, well under max_payload. */
export const STOLEN_PAGE = 5000;
/** How often an asker starts over when the list changed between its pages. */
export const STOLEN_RESTARTS = 3;

/** One whole answer: `unchanged` (no marks), or every mark of the list as of `digest`. */
export interface StolenList {
  unchanged: boolean;
  digest: string;
  marks: Mark[];
}

/** Asks page after page until `more` is false; `ask` is one stolen_list request (districtClient.call). */
export async function fetchStolenList(
  ask: (req: Request) => Promise<Reply>,
  req: { digest?: string; withCleared?: boolean },
  opts: { limit?: number; restarts?: number } = {},
): Promise<StolenList> {
  const restarts = opts.restarts ?? STOLEN_RESTARTS;
  const limit = opts.limit ?? 0;
  for (let attempt = 0; ; attempt++) {
    const first = await ask({ digest: req.digest ?? "", withCleared: !!req.withCleared, afterSn: "", limit });
    const digest = first.digest ?? "";
    if (first.unchanged) return { unchanged: true, digest, marks: [] };
    const pages = await followPages(first, (afterSn) => ask({ withCleared: !!req.withCleared, afterSn, limit }), {
      keys: (page) => (page.marks ?? []).map((m) => m.machineSn ?? ""),
      what: "the district's stolen list",
      same: (page) => (page.digest ?? "") === digest,
    });
    if (pages) return { unchanged: false, digest, marks: pages.flatMap((p) => p.marks ?? []) };
    if (attempt >= restarts) throw new SugarError("conflict", `the district's stolen list changed between pages ${attempt + 1} times in a row`);
  }
}
