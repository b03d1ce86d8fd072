/**
 * `leases import` and `keyring import-delegations` for files of any size:
 * the file is split here and sent to the actor a slice at a time, so a
 * progress bar can move (src/cli/progress.ts) and no bus message grows past
 * what NATS carries (max_payload is 1 MB by default). Each slice is itself a
 * file of the same form, so the actor checks every line exactly as it checks
 * a whole file (the kernel knows the forms, not the leases: it imports no
 * lib/); the counts of the slices add up.
 */
import type { KeyringClient, LeaseClient } from "../codec.js";
import { Progress, type ProgressSink } from "./progress.js";

/** Bytes of lease or delegation text per request: under NATS's 1 MB default max_payload, with room for the envelope. */
const SLICE_BYTES = 900 * 1024;

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
 * A lease file: act01 lines, sliced like a delegation file (the actor's
 * "line N" stays the whole file's), or compact JSON `[1, {SN: lines}]`,
 * sliced by serial number (its "\"SN\" line N" needs no help). The actor
 * does every check; a file that is neither (broken JSON) goes whole, for
 * its refusal.
 */
export async function importLeaseFile(text: string, lease: LeaseClient, sink: ProgressSink): Promise<ImportReport> {
  const body = text.startsWith("\ufeff") ? text.slice(1) : text;
  if (!body.trimStart().startsWith("[")) return importLines(body, (t) => lease.call("import", { text: t }), "leases", sink);
  let map: Record<string, unknown> | undefined;
  try {
    const v: unknown = JSON.parse(body);
    if (Array.isArray(v) && v.length === 2 && v[0] === 1 && typeof v[1] === "object" && v[1] !== null && !Array.isArray(v[1])) map = v[1] as Record<string, unknown>;
  } catch {
    map = undefined; // not JSON after all: the actor says why, below
  }
  if (!map) {
    const r = await lease.call("import", { text: body });
    const total: ImportReport = { imported: 0, replaced: 0, refused: [] };
    add(total, r);
    return total;
  }
  const entries = Object.entries(map);
  const total: ImportReport = { imported: 0, replaced: 0, refused: [] };
  const progress = new Progress({ unit: "leases", total: entries.length, sink });
  let done = 0;
  for (const slice of slices(entries, ([k, v]) => k.length + (typeof v === "string" ? v.length : 64) + 8)) {
    add(total, await lease.call("import", { text: JSON.stringify([1, Object.fromEntries(slice)]) }));
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
export function importDelegationFile(text: string, keyring: KeyringClient, sink: ProgressSink): Promise<ImportReport> {
  return importLines(text, (t) => keyring.call("import", { text: t }), "delegations", sink);
}

/** A file of lines in slices, each preceded by as many empty lines as came before it in the file. */
async function importLines(text: string, send: (text: string) => Promise<Counts>, unit: string, sink: ProgressSink): Promise<ImportReport> {
  const lines = text.split("\n");
  const numbered = lines.map((line, i) => ({ line, i })).filter((x) => x.line.trim() !== "" && !x.line.startsWith("#"));
  const total: ImportReport = { imported: 0, replaced: 0, refused: [] };
  const progress = new Progress({ unit, total: numbered.length, sink });
  let done = 0;
  for (const slice of slices(numbered, (x) => x.line.length + 1)) {
    const first = slice[0]!.i;
    add(total, await send("\n".repeat(first) + lines.slice(first, slice[slice.length - 1]!.i + 1).join("\n") + "\n"));
    done += slice.length;
    progress.update(done, detail(total));
  }
  progress.finish();
  return total;
}
