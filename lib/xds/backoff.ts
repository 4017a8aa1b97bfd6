/**
 * Reconnect timing of the xDS client: an injectable clock (so tests move time without waiting) and the delay
 * before the next attempt. Kept here rather than shared with the certificate manager's backoff so that loading the
 * xDS client does not load the X.509 stack; the shape (initial × multiplier^(n-1), jitter, hard cap) is the same.
 */
import { XDS_BACKOFF_INITIAL_MS, XDS_BACKOFF_JITTER, XDS_BACKOFF_MAX_MS, XDS_BACKOFF_MULTIPLIER } from './defaults.js';

export interface Clock {
  now(): number;
  setTimeout(callback: () => void, delayMs: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (callback, delayMs) => {
    const t = setTimeout(callback, delayMs);
    // A pending reconnect alone must not keep a process alive; the stream it opens does.
    t.unref();
    return t;
  },
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

export interface XdsBackoffPolicy {
  readonly initialMs: number;
  readonly multiplier: number;
  /** Fraction; the delay is multiplied by a uniform factor in [1 - jitter, 1 + jitter]. */
  readonly jitter: number;
  readonly maxMs: number;
}

export const DEFAULT_XDS_BACKOFF: XdsBackoffPolicy = Object.freeze({
  initialMs: XDS_BACKOFF_INITIAL_MS,
  multiplier: XDS_BACKOFF_MULTIPLIER,
  jitter: XDS_BACKOFF_JITTER,
  maxMs: XDS_BACKOFF_MAX_MS,
});

/**
 * Delay before the next attempt after `failures` consecutive failures (0 = after a graceful close: the initial
 * delay). 1 -> initial, 2 -> 2×initial, ... capped at maxMs; the cap applies after jitter so it is a hard bound.
 */
export function reconnectDelayMs(failures: number, random: () => number = Math.random, policy: XdsBackoffPolicy = DEFAULT_XDS_BACKOFF): number {
  const base = Math.min(policy.initialMs * policy.multiplier ** Math.max(0, failures - 1), policy.maxMs);
  const factor = 1 + policy.jitter * (2 * random() - 1);
  return Math.max(0, Math.min(Math.round(base * factor), policy.maxMs));
}
