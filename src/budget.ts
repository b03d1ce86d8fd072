/**
 * The time budgets of a live lease request (an XO on port 191, the REST
 * lease), in one place because two sides must agree on them: the lease
 * actor gives the keyring part of the bus timeout and keeps the rest for
 * its fallback, and a front end waits long enough for whatever the lease
 * actor does after the keyring answered.
 */

/**
 * How much of the bus timeout one keyring exchange may use. When the keyring
 * is slow or far, the exchange must give up early enough that the
 * stored-lease fallback (a stat, a page-cached read, the reply) still
 * reaches the XO in time. The margin is 15% of the budget, at least 25 ms:
 * 300 ms of the default 2000, leaving the keyring 1700 ms.
 */
export function keyringBudgetMs(busTimeoutMs: number): number {
  return Math.max(1, busTimeoutMs - Math.max(25, Math.round(busTimeoutMs * 0.15)));
}

/**
 * How long a front end waits for the lease actor's answer to a live get or
 * rtc reset: the lease actor's own bus timeout (the keyring's budget and the
 * fallback's margin) and as much again. After the keyring has signed, the
 * lease actor still writes the lease durably (write, fsync, rename) and
 * replies; on a school server starved of CPU (an activation storm) that can
 * take longer than the margin, and a front end that gave up then would
 * answer nothing for a lease already signed and stored.
 */
export function leaseWaitMs(busTimeoutMs: number): number {
  return 2 * busTimeoutMs;
}
