/**
 * Two district actors' directories kept alike: `directory_list` (a peer
 * pages through the whole directory by uid, or learns with one digest that
 * nothing differs), the catch-up that asks it (at start, before this actor
 * serves, and every district-sync-seconds), and the handling of a peer's
 * directory event. Whatever a merge finds this actor holds better (an older
 * claim of a uid, an entry the peer lacks) is published, so the peer, and
 * the schools, take it; a claim held here that loses is replaced and logged.
 */
import { sugar } from "../../schemas/gen/messages.js";
import { districtClient } from "../../src/codec.js";
import { SugarError, describe } from "../../src/errors.js";
import type { Bus } from "../../src/bus/types.js";
import type { Logger } from "../../src/log.js";
import type { KeyedMutex } from "../../src/mutex.js";
import { checkPeerEntry, PAGE_ENTRIES, type Change, type Directory, type Entry, type MergeResult, type WireEntry } from "./directory.js";

import pb = sugar.district;

export interface DirectorySyncDeps {
  bus: Bus;
  log: Logger;
  directory: Directory;
  locks: KeyedMutex;
  /** How long one page may take a peer. */
  timeoutMs: number;
  wireEntry: (e: Entry) => WireEntry;
  publish: (changed: readonly Change[]) => void;
}

/** Bytes an entry takes in a reply (its encoding and the field's tag and length). */
const sizeOf = (wire: (e: Entry) => WireEntry) => (e: Entry) => pb.Entry.encode(wire(e)).finish().length + 4;

/** sugar.district.directory_list: a page of the whole directory, or `unchanged` for the digest the peer holds. */
export function directoryList(d: DirectorySyncDeps, req: pb.DirectoryListRequest.$Properties): pb.Reply.$Properties {
  const digest = d.directory.fullDigest();
  if (req.digest && req.digest === digest) return { directoryList: { unchanged: true, digest, entries: [], more: false } };
  const page = d.directory.page(req.afterUid ?? "", req.limit ?? 0, sizeOf(d.wireEntry));
  return { directoryList: { unchanged: false, digest, entries: page.entries.map(d.wireEntry), more: page.more } };
}

/** Publishes what the peer should learn, and logs each claim held here that lost. */
function settle(d: DirectorySyncDeps, r: MergeResult): void {
  for (const { loser, winner } of r.replaced) d.log.warn(`uid ${winner.uid}: claim by ${loser.site} refused, at home at ${winner.site} since ${winner.claimed}`);
  d.publish(r.tell.map((e) => ({ ...e, removed: false })));
}

/** A peer's directory event: merged by the claim rule; a losing claim it carries is answered with this actor's winner. */
export async function followDirectory(d: DirectorySyncDeps, ev: pb.DirectoryEvent): Promise<void> {
  const r = await d.locks.run(["directory"], () => d.directory.follow(ev.entries ?? []));
  settle(d, r);
}

/**
 * Asks a peer for its whole directory, page by page (first with this
 * actor's digest: `unchanged` ends it at once), and merges each page. A
 * malformed entry of a page is logged and ignored.
 */
export async function catchUpDirectory(d: DirectorySyncDeps, periodic: boolean): Promise<void> {
  const client = districtClient(d.bus, { timeoutMs: d.timeoutMs });
  let after = "";
  let pages = 0;
  let learned = 0;
  let told = 0;
  let digest = d.directory.fullDigest();
  for (;;) {
    let reply: pb.DirectoryListReply.$Properties;
    try {
      reply = await client.call("directoryList", { afterUid: after, limit: PAGE_ENTRIES, digest });
    } catch (err) {
      if (err instanceof SugarError && (err.code === "unavailable" || err.code === "timeout")) {
        if (pages > 0) d.log.warn(`catching up the directory with a peer: page ${pages + 1}: ${err.code}; the rest next round`);
        else if (periodic) d.log.debug(`catching up the directory with a peer: ${err.code}`);
        else d.log.info(`no peer district actor answered (${err.code}): starting from the ${d.directory.size} directory entries on disk`);
      } else d.log.warn(`catching up the directory with a peer failed: ${describe(err)}`);
      return;
    }
    if (reply.unchanged) break;
    digest = ""; // later pages: every entry
    const entries: Change[] = [];
    for (const raw of reply.entries ?? []) {
      try {
        const e = checkPeerEntry(raw);
        if (e.removed) throw new SugarError("invalid_input", `directory entry ${e.uid}: a removal in a list`);
        if (e.uid <= after) throw new SugarError("invalid_input", `directory entry ${e.uid}: not after ${after || "the start"}`);
        entries.push(e);
      } catch (err) {
        d.log.warn(`a peer's directory entry ignored: ${describe(err)}`);
      }
    }
    const list = reply.entries ?? [];
    const last = list.length > 0 ? String(list[list.length - 1]!.uid ?? "") : "";
    const more = !!reply.more && last > after;
    const through = more ? last : "";
    const r = await d.locks.run(["directory"], () => d.directory.mergePage(entries, after, through));
    settle(d, r);
    learned += r.changes.filter((c) => !c.removed).length;
    told += r.tell.length;
    pages++;
    if (!more) break;
    after = last;
  }
  const line = `directory caught up with a peer: ${pages} pages, ${learned} entries learned, ${told} told`;
  if (!periodic || learned > 0 || told > 0) d.log.info(line);
  else d.log.debug(line);
}
