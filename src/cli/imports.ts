/**
 * `leases import` and `keyring import-delegations` for files of any size:
 * the file is split here and sent to the actor a slice at a time, so a
 * progress bar can move (src/cli/progress.ts) and no bus message grows past
 * what NATS carries (max_payload is 1 MB by default). The actor checks every
 * line exactly as it checks a whole file; the counts of the slices add up.
 */
import * as olpc from "../../lib/olpc/index.js";
import type { KeyringClient, LeaseClient } from "../codec.js";
import { Progress, type ProgressSink } from "./progress.js";

/** Bytes of lease or delegation text per request: well under NATS's 1 MB default, with room for the envelope. */
const SLICE_BYTES = 512 * 1024;

export interface ImportReport {
  imported: number;
  replaced: number;
  refused: Array<{ where: string; reason: string }>;
}

type Counts = { imported?: number | null; replaced?: number | null; refused?: Array<{ where?: string | null; reason?: string | null }> | null };

function add(total: ImportReport, r: Counts): void {
  total.imported += r.imported ?? 0;
  total.replaced += r.replaced ?? 0;
  for (const x of r.refused ?? []) total.refused.push({ where: x.where ?? "", reason: x.reason ?? "" });
}

const detail = (r: ImportReport) => `${r.imported} imported, ${r.replaced} replaced, ${r.refused.length} refused`;

/** Slices of items whose summed size stays under SLICE_BYTES (an item bigger than that travels alone). */
function slices<T>(items: readonly T[], size: (t: T) => number): T[][] {
  const out: T[][] = [];
  let cur: T[] = [];
  let bytes = 0;
  for (const it of items) {
    const s = size(it);
    if (cur.length > 0 && bytes + s > SLICE_BYTES) {
      out.push(cur);
      cur = [];
      bytes = 0;
    }
    cur.push(it);
    bytes += s;
  }
  if (cur.length > 0) out.push(cur);
  return out;
}

/**
 * A lease file (act01 lines or compact JSON), split with the same
 * splitMultiLeaseFile the actor uses; a file that cannot be read as a whole
 * (broken JSON) is sent as it is, for the actor's own refusal.
 */
export async function importLeaseFile(text: string, lease: LeaseClient, sink: ProgressSink): Promise<ImportReport> {
  let entries: olpc.LeaseFileEntry[];
  try {
    entries = olpc.splitMultiLeaseFile(text).entries;
  } catch {
    const r = await lease.call("import", { text }); // the actor refuses it with the reason
    return { imported: r.imported ?? 0, replaced: r.replaced ?? 0, refused: (r.refused ?? []).map((x) => ({ where: x.where ?? "", reason: x.reason ?? "" })) };
  }
  const total: ImportReport = { imported: 0, replaced: 0, refused: [] };
  const progress = new Progress({ unit: "leases", total: entries.length, sink });
  let done = 0;
  for (const slice of slices(entries, (e) => e.line.length + e.where.length + 16)) {
    add(total, await lease.call("import", { entries: slice.map((e) => ({ sn: e.sn ?? "", line: e.line, where: e.where })) }));
    done += slice.length;
    progress.update(done, detail(total));
  }
  progress.finish();
  return total;
}

/**
 * A delegation file: del01 lines. Each slice is preceded by as many empty
 * lines as came before it, so the keyring's "line N" in a refusal is the
 * line of the whole file (empty lines are skipped, and cost a byte each).
 */
export async function importDelegationFile(text: string, keyring: KeyringClient, sink: ProgressSink): Promise<ImportReport> {
  const lines = text.split("\n");
  const numbered = lines.map((line, i) => ({ line, i })).filter((x) => x.line.trim() !== "" && !x.line.startsWith("#"));
  const total: ImportReport = { imported: 0, replaced: 0, refused: [] };
  const progress = new Progress({ unit: "delegations", total: numbered.length, sink });
  let done = 0;
  for (const slice of slices(numbered, (x) => x.line.length + 1)) {
    const first = slice[0]!.i;
    const body = "\n".repeat(first) + lines.slice(first, slice[slice.length - 1]!.i + 1).join("\n");
    add(total, await keyring.call("import", { text: body }));
    done += slice.length;
    progress.update(done, detail(total));
  }
  progress.finish();
  return total;
}
