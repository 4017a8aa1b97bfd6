/** Polling until something holds, with the last failure in the timeout message. */
import { describeError } from '../../lib/errors.js';
import { KubeTestError, KubeTestErrorCode } from './errors.js';

export interface WaitForOptions {
  /** Delay between attempts. Default 100 ms. */
  readonly intervalMs?: number;
  /** What is awaited, for the timeout message ("pod default/x to be Running"). */
  readonly description?: string;
}

/** What a predicate returns: a value (done) or undefined/null/false (not yet). */
export type WaitResult<T> = T | undefined | null | false;

/**
 * Calls `predicate` until it returns something other than undefined, null or false, and returns that. A
 * predicate that throws counts as "not yet" (an object that does not exist yet is the usual case); its last error
 * is quoted if time runs out. Fails with KUBETEST_TIMEOUT after `timeoutMs` (default 10 s).
 */
export async function waitFor<T>(
  predicate: () => WaitResult<T> | Promise<WaitResult<T>>,
  timeoutMs = 10_000,
  opts: WaitForOptions = {},
): Promise<T> {
  const interval = opts.intervalMs ?? 100;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await predicate();
      if (v !== undefined && v !== null && v !== false) return v;
      lastError = undefined;
    } catch (e) {
      lastError = e;
    }
    if (Date.now() >= deadline) break;
    await new Promise((r) => setTimeout(r, Math.min(interval, Math.max(0, deadline - Date.now()))));
  }
  const what = opts.description ?? 'condition';
  const last = lastError === undefined ? '' : `; last error: ${describeError(lastError)}`;
  throw new KubeTestError(
    KubeTestErrorCode.TIMEOUT,
    `timed out after ${timeoutMs} ms waiting for ${what}${last}`,
    lastError === undefined ? undefined : { cause: lastError },
  );
}
