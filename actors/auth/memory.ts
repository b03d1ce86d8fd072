/**
 * The auth actor's state that lives in memory only: failed-attempt counters
 * and challenge nonces. A restart forgets both, on purpose: a forgotten
 * counter only gives an attacker one more minute's worth of tries, and a
 * forgotten nonce only makes its client ask for a new challenge. Both are
 * bounded so a flood cannot grow them without limit.
 */
import { randomBytes } from "node:crypto";
import { isIPv6 } from "node:net";
import { SugarError, type ErrorCode } from "../../src/errors.js";
import type { Uid } from "../../src/validate.js";

const WINDOW_MS = 60_000;
/** Sources tracked at once; beyond that the stalest are forgotten. */
const MAX_SOURCES = 100_000;

/**
 * What one limit counts: an IPv4 address (also written IPv6-mapped), or an
 * IPv6 /64 — one host holds a whole /64 (SLAAC, privacy addresses) and can
 * pick a fresh address in it for every attempt. Anything else as it is.
 */
export function sourceKey(source: string): string {
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(source);
  if (mapped) return mapped[1]!;
  const addr = source.split("%")[0]!; // a zone (fe80::1%eth0) names the interface, not the host
  if (!isIPv6(addr)) return source;
  // An embedded IPv4 (a.b.c.d) fills the last two groups, never the first four.
  const groups = (part: string) => (part === "" ? [] : part.split(":").flatMap((g) => (g.includes(".") ? ["0", "0"] : [g])));
  const [head = "", tail] = addr.split("::");
  const front = groups(head);
  const back = tail === undefined ? [] : groups(tail);
  const all = [...front, ...Array<string>(8 - front.length - back.length).fill("0"), ...back];
  return `${all.slice(0, 4).map((g) => parseInt(g, 16).toString(16)).join(":")}::/64`;
}

/** Errors that are the server's trouble, not a failed attempt by the client. */
const NOT_A_FAILURE = new Set<ErrorCode>(["internal", "unavailable", "timeout", "busy", "rate_limited", "disk_full"]);

/** Failed attempts per source (sourceKey) over a sliding minute. */
export class FailureCounter {
  /** source → times (ms) of its last `limit` failures, oldest first. */
  private readonly failures = new Map<string, number[]>();

  /** `maxSources` bounds the memory: a high `limit` keeps that many times per source. */
  constructor(private readonly limit: number, private readonly maxSources = MAX_SOURCES) {}

  /** Runs `fn` for the source: refused at once while the source is over its limit; every failure of `fn` counts against it. */
  async guard<T>(source: string, now: () => number, fn: () => Promise<T>): Promise<T> {
    if (this.limited(source, now())) throw new SugarError("rate_limited", "too many failed attempts from this address; wait a minute");
    try {
      return await fn();
    } catch (err) {
      if (!(err instanceof SugarError) || !NOT_A_FAILURE.has(err.code)) this.record(source, now());
      throw err;
    }
  }

  /** True when the source has `limit` failures within the last minute. */
  limited(address: string, now: number): boolean {
    const times = this.failures.get(sourceKey(address));
    return times !== undefined && times.length >= this.limit && times[times.length - this.limit]! > now - WINDOW_MS;
  }

  record(address: string, now: number): void {
    const source = sourceKey(address);
    let times = this.failures.get(source);
    if (!times) {
      if (this.failures.size >= this.maxSources) this.sweep(now);
      if (this.failures.size >= this.maxSources) this.failures.delete(this.failures.keys().next().value!);
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
