/**
 * One result row per scenario (or per part of one): the JSON `--out` writes
 * and the table the bench prints.
 */
import type { LoadResult } from "./load.js";

export interface Row {
  /** The scenario id, or `id/part` when a scenario reports several figures. */
  scenario: string;
  unit: string;
  /** The subject's figure; null only when skipped or failed. */
  value: number | null;
  /** The baseline's figure measured in the same run, with the same generator; null when there is none. */
  baseline: number | null;
  /** value / baseline. */
  ratio: number | null;
  p50_ms: number | null;
  p99_ms: number | null;
  /** The subject's failed requests (wrong answer, error status, timeout, dropped connection). */
  errors: number;
  /** What the issue asks. */
  target?: string;
  /** Whether the target was met (never with errors); null when there is no target or nothing was measured. */
  met?: boolean | null;
  /** Why the scenario did not run (a tool it needs is absent: nats-server, sshd, ...). */
  skipped?: string;
  /** Why the scenario failed to run to its end. */
  failed?: string;
  /**
   * The errors are what the row measures (XOs an overloaded or killed
   * keyring left unanswered), not a fault of the run: the smoke test does
   * not require 0 of them.
   */
  errors_measured?: boolean;
  baseline_p50_ms?: number;
  baseline_p99_ms?: number;
  baseline_errors?: number;
  notes?: string;
}

export interface Target {
  text: string;
  /** Judged on the row's figures; errors fail a target whatever this says. */
  ok(row: Row): boolean;
}

export const ratioAtLeast = (min: number): Target => ({ text: `ratio >= ${min}`, ok: (r) => r.ratio !== null && r.ratio >= min });
export const ratioAtMost = (max: number): Target => ({ text: `ratio <= ${max}`, ok: (r) => r.ratio !== null && r.ratio <= max });

const round = (x: number, digits = 3) => Number(x.toFixed(digits));

/** Judges a row against its target (no target: met is null). */
export function judge(row: Row, target?: Target): Row {
  if (!target) return { ...row, met: null };
  return { ...row, target: target.text, met: row.value !== null && row.errors === 0 && target.ok(row) };
}

/** A throughput row (req/s) from the subject's run and, when there is one, the baseline's. */
export function throughputRow(scenario: string, subject: LoadResult, baseline: LoadResult | undefined, target?: Target, notes?: string): Row {
  const row: Row = {
    scenario,
    unit: "req/s",
    value: round(subject.perSecond, 1),
    baseline: baseline ? round(baseline.perSecond, 1) : null,
    ratio: baseline && baseline.perSecond > 0 ? round(subject.perSecond / baseline.perSecond) : null,
    p50_ms: round(subject.p50Ms),
    p99_ms: round(subject.p99Ms),
    errors: subject.errors,
  };
  if (baseline) {
    row.baseline_p50_ms = round(baseline.p50Ms);
    row.baseline_p99_ms = round(baseline.p99Ms);
    row.baseline_errors = baseline.errors;
  }
  const why = [notes, cpuNote(subject, baseline), subject.firstError && `first error: ${subject.firstError}`, baseline?.firstError && `baseline's first error: ${baseline.firstError}`].filter(Boolean);
  if (why.length) row.notes = why.join("; ");
  return judge(row, target);
}

const share = (x: number) => `${Math.round(x * 100)}%`;

/** Where the CPU went: the generator near 100% means the figures are the generator's limit as much as the server's. */
function cpuNote(subject: LoadResult, baseline: LoadResult | undefined): string {
  const one = (r: LoadResult) => `${r.serverCpu === undefined ? "" : `server ${share(r.serverCpu)}, `}generator ${share(r.generatorCpu)}`;
  return `CPU (of one core): subject: ${one(subject)}${baseline ? `; baseline: ${one(baseline)}` : ""}`;
}

export function skippedRow(scenario: string, why: string, target?: Target): Row {
  return { scenario, unit: "-", value: null, baseline: null, ratio: null, p50_ms: null, p99_ms: null, errors: 0, ...(target ? { target: target.text } : {}), met: null, skipped: why };
}

export function failedRow(scenario: string, why: string): Row {
  return { scenario, unit: "-", value: null, baseline: null, ratio: null, p50_ms: null, p99_ms: null, errors: 0, met: false, failed: why };
}

export { round };

const fmt = (x: number | null | undefined): string => {
  if (x === null || x === undefined) return "-";
  if (Math.abs(x) >= 1000) return x.toFixed(0);
  if (Math.abs(x) >= 100) return x.toFixed(1);
  return x.toFixed(x === Math.round(x) ? 0 : 2);
};

/** The table: one line per row, then the notes, numbered. */
export function formatTable(rows: readonly Row[]): string {
  const header = ["scenario", "unit", "value", "baseline", "ratio", "p50 ms", "p99 ms", "errors", "target", "met"];
  const notes: string[] = [];
  const lines = rows.map((r) => {
    const note = r.skipped ? `skipped: ${r.skipped}` : r.failed ? `FAILED: ${r.failed}` : r.notes;
    let mark = "";
    if (note) {
      notes.push(note);
      mark = ` [${notes.length}]`;
    }
    const met = r.skipped ? "skipped" : r.met === null || r.met === undefined ? "-" : r.met ? "met" : "MISSED";
    return [r.scenario + mark, r.unit, fmt(r.value), fmt(r.baseline), fmt(r.ratio), fmt(r.p50_ms), fmt(r.p99_ms), String(r.errors), r.target ?? "-", met];
  });
  const all = [header, ...lines];
  const widths = header.map((_, i) => Math.max(...all.map((l) => l[i]!.length)));
  const right = new Set([2, 3, 4, 5, 6, 7]);
  const text = all.map((l) => l.map((c, i) => (right.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join("  ").trimEnd());
  text.splice(1, 0, widths.map((w) => "-".repeat(w)).join("  "));
  return [...text, "", ...notes.map((n, i) => `[${i + 1}] ${n}`)].join("\n") + "\n";
}
