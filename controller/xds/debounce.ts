/**
 * Push debouncing as istiod does it (pilot/pkg/xds/discovery.go `debounce`):
 * a push waits until changes have been quiet for `afterMs` (PILOT_DEBOUNCE_AFTER, 100ms) but no longer than
 * `maxMs` after the first change of the window (PILOT_DEBOUNCE_MAX, 10s); requests arriving meanwhile are merged;
 * at most one push runs at a time, and requests that arrive during it form the next window, checked as soon as the
 * running push finishes. Time comes from an injected clock so that tests move it by hand.
 */
import type { Clock } from '../../lib/xds/backoff.js';
import type { DebounceSettings } from './config.js';

/** One reason to push: the types whose resources may have changed. */
export interface PushRequest {
  readonly typeUrls: ReadonlySet<string>;
  /** Why, for logs and metrics (e.g. "pod-update", "policy-update"). */
  readonly reason: string;
}

/** Several PushRequests merged by the debouncer. */
export interface MergedPushRequest {
  readonly typeUrls: ReadonlySet<string>;
  /** reason -> how many requests carried it. */
  readonly reasons: ReadonlyMap<string, number>;
  /** Requests merged into this push. */
  readonly requests: number;
  /** Clock time of the first request of the window. */
  readonly firstAt: number;
  /** Clock time the push was released. */
  readonly releasedAt: number;
}

export interface PushDebouncerOptions {
  readonly settings: DebounceSettings;
  readonly clock: Clock;
  /** Performs one push. The next push is not started before the returned promise settles. */
  readonly run: (push: MergedPushRequest) => void | Promise<void>;
  /** A push that threw or rejected; the debouncer carries on. */
  readonly onError?: (err: unknown) => void;
}

interface Window {
  typeUrls: Set<string>;
  reasons: Map<string, number>;
  requests: number;
  readonly firstAt: number;
  lastAt: number;
}

export class PushDebouncer {
  readonly #opts: PushDebouncerOptions;
  #window: Window | undefined;
  #timer: unknown;
  #timerArmed = false;
  /** No push is running (istiod's `free`). */
  #free = true;
  #closed = false;
  #pushes = 0;

  constructor(opts: PushDebouncerOptions) {
    this.#opts = opts;
  }

  /** Pushes released so far. */
  get pushes(): number {
    return this.#pushes;
  }

  /** A window is collecting requests. */
  get pending(): boolean {
    return this.#window !== undefined;
  }

  get inFlight(): boolean {
    return !this.#free;
  }

  request(req: PushRequest): void {
    if (this.#closed) return;
    const now = this.#opts.clock.now();
    let w = this.#window;
    if (!w) {
      w = { typeUrls: new Set(), reasons: new Map(), requests: 0, firstAt: now, lastAt: now };
      this.#window = w;
    }
    for (const t of req.typeUrls) w.typeUrls.add(t);
    w.reasons.set(req.reason, (w.reasons.get(req.reason) ?? 0) + 1);
    w.requests++;
    w.lastAt = now;
    if (!this.#timerArmed) this.#arm(this.#opts.settings.afterMs);
  }

  /** Drops the pending window and stops; a running push finishes on its own. */
  close(): void {
    this.#closed = true;
    this.#window = undefined;
    if (this.#timerArmed) this.#opts.clock.clearTimeout(this.#timer);
    this.#timerArmed = false;
  }

  #arm(delayMs: number): void {
    this.#timerArmed = true;
    this.#timer = this.#opts.clock.setTimeout(
      () => {
        this.#timerArmed = false;
        // While a push runs the timer only lapses; the push's completion re-checks the window.
        if (this.#free) this.#check();
      },
      Math.max(0, delayMs),
    );
  }

  /** istiod's pushWorker: release the window if it is old enough or quiet enough, else wait the shorter remainder. */
  #check(): void {
    const w = this.#window;
    if (!w || this.#closed) return;
    const now = this.#opts.clock.now();
    const sinceFirst = now - w.firstAt;
    const quiet = now - w.lastAt;
    const { afterMs, maxMs } = this.#opts.settings;
    if (sinceFirst >= maxMs || quiet >= afterMs) {
      this.#window = undefined;
      this.#release({ typeUrls: w.typeUrls, reasons: w.reasons, requests: w.requests, firstAt: w.firstAt, releasedAt: now });
      return;
    }
    // Unlike istiod, the wait is also bounded by what is left of maxMs, so churn pushes at maxMs, not maxMs + afterMs.
    if (!this.#timerArmed) this.#arm(Math.min(afterMs - quiet, maxMs - sinceFirst));
  }

  #release(push: MergedPushRequest): void {
    this.#free = false;
    this.#pushes++;
    const done = (): void => {
      this.#free = true;
      this.#check();
    };
    let result: void | Promise<void>;
    try {
      result = this.#opts.run(push);
    } catch (err) {
      this.#opts.onError?.(err);
      done();
      return;
    }
    if (result instanceof Promise) {
      result.then(done, (err: unknown) => {
        this.#opts.onError?.(err);
        done();
      });
    } else done();
  }
}
