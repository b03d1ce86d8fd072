/**
 * How many times one address may do a thing in a window (browser
 * registrations): a sliding count per source, bounded in memory.
 */
const MAX_SOURCES = 100_000;

export class SourceLimit {
  private readonly seen = new Map<string, number[]>();

  constructor(
    private readonly limit: number,
    private readonly windowMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Counts one more from `source`; false once it is over the limit in the window. */
  take(source: string): boolean {
    const t = this.now();
    const since = t - this.windowMs;
    const times = (this.seen.get(source) ?? []).filter((x) => x > since);
    if (times.length >= this.limit) {
      this.seen.set(source, times);
      return false;
    }
    times.push(t);
    this.seen.delete(source); // re-inserted last: the oldest sources are the first to go
    this.seen.set(source, times);
    if (this.seen.size > MAX_SOURCES) this.seen.delete(this.seen.keys().next().value!);
    return true;
  }
}
