/**
 * Progress of long CLI work (`leases import`, `keyring import-delegations`):
 * on a terminal, one bar redrawn in place with the counts and the rate; into
 * a file or a pipe (a log, cron mail), one line per 10% so the output stays
 * readable. It writes to standard error: standard output keeps the report a
 * script reads.
 *
 * And the chunking that makes progress visible: a big import is sent to the
 * actor a slice at a time, each slice one bus request.
 */

export interface ProgressSink {
  write(text: string): void;
  /** A terminal: redraw in place. Otherwise a line per 10%. */
  readonly isTTY: boolean;
  /** The terminal's width, when known. */
  readonly columns?: number;
}

export interface ProgressOptions {
  /** What is counted: "leases", "delegations". */
  unit: string;
  total: number;
  sink: ProgressSink;
  now?: () => number;
}

const REDRAW_MS = 100;
const BAR = 24;

const n = (x: number) => x.toLocaleString("en-US");

export class Progress {
  private done = 0;
  private detail = "";
  private lastDraw = -Infinity;
  private lastTenth = 0;
  private readonly started: number;
  private readonly now: () => number;

  constructor(private readonly o: ProgressOptions) {
    this.now = o.now ?? (() => performance.now());
    this.started = this.now();
  }

  /** `done` items of `total` so far; `detail` is the counts so far ("12 imported, 3 refused"). */
  update(done: number, detail = ""): void {
    this.done = Math.min(done, this.o.total);
    this.detail = detail;
    if (this.o.sink.isTTY) {
      const t = this.now();
      if (t - this.lastDraw < REDRAW_MS && this.done < this.o.total) return;
      this.lastDraw = t;
      this.o.sink.write(`\r${this.line(true)}\u001b[K`);
      return;
    }
    const tenth = this.o.total > 0 ? Math.floor((this.done / this.o.total) * 10) : 10;
    if (tenth > this.lastTenth) {
      this.lastTenth = tenth;
      this.o.sink.write(`${this.line(false)}\n`);
    }
  }

  /** Ends the bar's line on a terminal (the report follows on its own lines). */
  finish(): void {
    if (this.o.sink.isTTY) {
      this.o.sink.write(`\r${this.line(true)}\u001b[K\n`);
    } else if (this.lastTenth < 10) {
      this.lastTenth = 10;
      this.o.sink.write(`${this.line(false)}\n`);
    }
  }

  /** items per second so far. */
  rate(): number {
    const secs = (this.now() - this.started) / 1000;
    return secs > 0 ? this.done / secs : 0;
  }

  private line(bar: boolean): string {
    const { total, unit } = this.o;
    const frac = total > 0 ? this.done / total : 1;
    const pct = `${Math.floor(frac * 100)}%`.padStart(4);
    const filled = Math.round(frac * BAR);
    const head = bar ? `[${"#".repeat(filled)}${".".repeat(BAR - filled)}] ` : "";
    const text = `${head}${pct} ${n(this.done)}/${n(total)} ${unit}, ${n(Math.round(this.rate()))}/s${this.detail ? `; ${this.detail}` : ""}`;
    const width = this.o.sink.columns;
    return bar && width && text.length >= width ? text.slice(0, width - 1) : text;
  }
}

/** `items` in slices of at most `size`. */
export function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
