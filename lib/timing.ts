/**
 * Time for retry loops, shared by the certificate manager and the xDS client: an injectable clock (tests move
 * time without waiting) and exponential backoff with jitter. No dependencies, so loading it costs nothing.
 */

export interface Clock {
  now(): number;
  setTimeout(callback: () => void, delayMs: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (callback, delayMs) => {
    const t = setTimeout(callback, delayMs);
    // A pending retry or renewal alone must not keep a process alive.
    t.unref();
    return t;
  },
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

export interface BackoffPolicy {
  readonly initialMs: number;
  readonly multiplier: number;
  /** Fraction; the delay is multiplied by a uniform factor in [1 - jitter, 1 + jitter]. */
  readonly jitter: number;
  readonly maxMs: number;
}

/**
 * Wait before attempt number `failures + 1` (1 = after the first failure): initial × multiplier^(failures-1),
 * jittered, never above maxMs (the cap applies after jitter, so the maximum is a hard bound).
 */
export function backoffDelayMs(failures: number, random: () => number, policy: BackoffPolicy): number {
  const base = Math.min(policy.initialMs * policy.multiplier ** Math.max(0, failures - 1), policy.maxMs);
  const factor = 1 + policy.jitter * (2 * random() - 1);
  return Math.max(0, Math.min(Math.round(base * factor), policy.maxMs));
}
