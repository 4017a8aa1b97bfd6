/**
 * Reconnect timing of the xDS client: ztunnel's schedule (10 ms doubling to 15 s) over the shared backoff.
 */
import { type BackoffPolicy, backoffDelayMs } from '../timing.js';
import { XDS_BACKOFF_INITIAL_MS, XDS_BACKOFF_JITTER, XDS_BACKOFF_MAX_MS, XDS_BACKOFF_MULTIPLIER } from './defaults.js';

export { type Clock, systemClock } from '../timing.js';
export type XdsBackoffPolicy = BackoffPolicy;

export const DEFAULT_XDS_BACKOFF: XdsBackoffPolicy = Object.freeze({
  initialMs: XDS_BACKOFF_INITIAL_MS,
  multiplier: XDS_BACKOFF_MULTIPLIER,
  jitter: XDS_BACKOFF_JITTER,
  maxMs: XDS_BACKOFF_MAX_MS,
});

/** Delay before the next attempt after `failures` consecutive failures (0 = after a graceful close: the initial delay). */
export function reconnectDelayMs(
  failures: number,
  random: () => number = Math.random,
  policy: XdsBackoffPolicy = DEFAULT_XDS_BACKOFF,
): number {
  return backoffDelayMs(failures, random, policy);
}
