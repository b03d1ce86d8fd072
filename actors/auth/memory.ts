/**
 * The auth actor's state that lives in memory only: failed-attempt counters
 * and challenge nonces. A restart forgets both, on purpose: a forgotten
 * counter only gives an attacker one more minute's worth of tries, and a
 * forgotten nonce only makes its client ask for a new challenge. Both are
 * bounded so a flood cannot grow them without limit.
 */
import { randomBytes } from "node:crypto";
import type { Uid } from "../../src/validate.js";

const WINDOW_MS = 60_000;
/** Sources tracked at once; beyond that the stalest are forgotten. */
const MAX_SOURCES = 100_000;

/** Failed attempts per source address over a sliding minute. */
export class FailureCounter {
  /** source → times (ms) of its last `limit` failures, oldest first. */
  private readonly failures = new Map<string, number[]>();

  constructor(private readonly limit: number) {}

  /** True when the source has `limit` failures within the last minute. */
  limited(source: string, now: number): boolean {
    const times = this.failures.get(source);
    return times !== undefined && times.length >= this.limit && times[times.length - this.limit]! > now - WINDOW_MS;
  }

  record(source: string, now: number): void {
    let times = this.failures.get(source);
    if (!times) {
      if (this.failures.size >= MAX_SOURCES) this.sweep(now);
      if (this.failures.size >= MAX_SOURCES) this.failures.delete(this.failures.keys().next().value!);
      times = [];
      this.failures.set(source, times);
    }
    times.push(now);
    if (times.length > this.limit) times.splice(0, times.length - this.limit);
  }

  /** Forgets sources whose last failure is more than a minute old. */
  sweep(now: number): void {
    for (const [source, times] of this.failures) if (times[times.length - 1]! <= now - WINDOW_MS) this.failures.delete(source);
  }
}

interface Pending {
  uid: Uid;
  expires: number;
}

/** Outstanding challenges of one uid; an older one is dropped when a uid asks for more. */
const PER_UID = 8;
const MAX_NONCES = 100_000;

/** Single-use challenge nonces, each bound to a uid and an expiry. */
export class NonceBook {
  private readonly pending = new Map<string, Pending>();
  private readonly byUid = new Map<Uid, string[]>();

  constructor(private readonly lifetimeMs: number) {}

  issue(uid: Uid, now: number): { nonce: string; expires: number } {
    if (this.pending.size >= MAX_NONCES) this.sweep(now);
    if (this.pending.size >= MAX_NONCES) this.forget(this.pending.keys().next().value!);
    const nonce = randomBytes(32).toString("base64url");
    const expires = now + this.lifetimeMs;
    this.pending.set(nonce, { uid, expires });
    const mine = this.byUid.get(uid) ?? [];
    mine.push(nonce);
    this.byUid.set(uid, mine);
    while (mine.length > PER_UID) this.forget(mine[0]!);
    return { nonce, expires };
  }

  /** Uses the nonce up (whatever the outcome) and says why it does not fit, or undefined when it does. */
  take(nonce: string, uid: Uid, now: number): string | undefined {
    const p = this.pending.get(nonce);
    if (!p) return "unknown or already used";
    this.forget(nonce);
    if (p.expires <= now) return "expired; ask for a new challenge";
    if (p.uid !== uid) return "issued for another uid";
    return undefined;
  }

  sweep(now: number): void {
    for (const [nonce, p] of this.pending) if (p.expires <= now) this.forget(nonce);
  }

  private forget(nonce: string): void {
    const p = this.pending.get(nonce);
    if (!p) return;
    this.pending.delete(nonce);
    const mine = this.byUid.get(p.uid);
    if (!mine) return;
    mine.splice(mine.indexOf(nonce), 1);
    if (mine.length === 0) this.byUid.delete(p.uid);
  }
}
