/**
 * The asker's side of a school's own stolen list in pages
 * (sugar.<site>.lease.stolenlist, schemas/lease.proto): with the district's
 * marks a school holds tens of thousands, more than one NATS message
 * (max_payload 1 MB), so the lease actor answers at most a page of serial
 * numbers, sorted, each with all its marks, and `more` (src/pages.ts).
 * Used by `sugar-server stolen list` and the activation adapter's start.
 */
import type { sugar } from "../schemas/gen/messages.js";
import { STOLEN_PAGE } from "./district-pages.js";
import { followPages } from "./pages.js";

type Request = sugar.lease.StolenListRequest.$Properties;
type Reply = sugar.lease.StolenListReply.$Properties;
type Entry = sugar.lease.StolenEntry.$Properties;

/**
 * Serial numbers per page the lease actor answers at most: the district's
 * page size. A serial number marked both here and by the district (a site
 * name of 63 characters) is ~151 bytes on the wire: 5,000 ≈ 755 KB, the
 * largest a page gets, under max_payload.
 */
export const LEASE_STOLEN_PAGE = STOLEN_PAGE;

/** The whole list: every stolen serial number (sorted, once each) and every mark. */
export interface LeaseStolenList {
  machineSns: string[];
  entries: Entry[];
}

/**
 * Asks page after page until `more` is false; `ask` is one stolenlist
 * request (leaseClient.call). A lease actor from before pages ignores the
 * cursor and the limit and answers the whole list at once, without `more`:
 * that is one page too.
 */
export async function fetchLeaseStolenList(ask: (req: Request) => Promise<Reply>, opts: { limit?: number } = {}): Promise<LeaseStolenList> {
  // Never 0: that is the request from before pages (the whole list in one answer).
  const limit = opts.limit ?? LEASE_STOLEN_PAGE;
  const first = await ask({ afterSn: "", limit });
  const pages = (await followPages(first, (afterSn) => ask({ afterSn, limit }), { keys: (page) => page.machineSns ?? [], what: "the lease actor's stolen list" }))!;
  return { machineSns: pages.flatMap((p) => p.machineSns ?? []), entries: pages.flatMap((p) => p.entries ?? []) };
}
