/**
 * One informer: @kubernetes/client-node's ListWatch (list, then watch from the list's resourceVersion, a new list
 * when the server answers 410 Gone, a new watch when the server ends one) with what ListWatch leaves to its caller:
 * it stops for good on the first error (a failed list, a watch that cannot connect or is refused). Here every such
 * error is retried, with one behaviour for every component that watches the API server:
 *
 *   start()   resolves at the first complete list (and a connected watch); never rejects, whatever the server
 *             does meanwhile. A caller that cannot wait forever races it against its own deadline.
 *   errors    retried after client-go's reflector backoff (tools/cache/reflector.go: 800 ms doubling to 30 s),
 *             jittered ±20 % so that many nodes do not retry in step. The backoff goes back to 800 ms only
 *             after two minutes without an error, so a server that accepts watches and drops them at once is not
 *             hammered. One warning per outage (with the HTTP status when there is one), one line when it is
 *             watching again.
 *   stop()    ends the watch and any pending retry; nothing restarts afterwards, also when stop() comes in the
 *             middle of a list (ListWatch checks for a stop only before it lists).
 *
 * Events are ListWatch's: `add` and `update` with the object as the server sent it, `delete` with its last state.
 * A relist after 410 reports what changed meanwhile (objects gone are deleted, others added or updated).
 */
import { type KubeConfig, type KubernetesListObject, type KubernetesObject, ListWatch, Watch } from '@kubernetes/client-node';
import { describeError } from '../errors.js';
import type { Logger } from '../telemetry/logger.js';
import { type BackoffPolicy, backoffDelayMs, type Clock, systemClock } from '../timing.js';
import { KubeErrorCode } from './errors.js';
import { httpStatusOf } from './rest.js';

/** client-go's reflector schedule, with our jitter convention (lib/timing.ts). */
export const INFORMER_BACKOFF: BackoffPolicy = Object.freeze({ initialMs: 800, multiplier: 2, jitter: 0.2, maxMs: 30_000 });

/** How long an informer must go without an error before its backoff starts again from the initial delay. */
export const INFORMER_BACKOFF_RESET_MS = 120_000;

export interface InformerOptions<T extends KubernetesObject> {
  /** What is watched, for log lines: "pods on node node-1". */
  readonly what: string;
  /** The collection's path, e.g. `/api/v1/pods` or `/apis/security.istio.io/v1/authorizationpolicies`. */
  readonly path: string;
  /** The list call of the same collection with the same selectors (a client-node API method). */
  readonly list: () => Promise<KubernetesListObject<T>>;
  readonly labelSelector?: string;
  readonly fieldSelector?: string;
  readonly logger: Logger;
  /** Tests shorten it; components use INFORMER_BACKOFF. */
  readonly backoff?: Partial<BackoffPolicy>;
  readonly clock?: Clock;
  readonly random?: () => number;
}

export type InformerEvent = 'add' | 'update' | 'delete';

export class Informer<T extends KubernetesObject> {
  readonly what: string;
  readonly #cache: ListWatch<T>;
  readonly #log: Logger;
  readonly #policy: BackoffPolicy;
  readonly #clock: Clock;
  readonly #random: () => number;
  #failures = 0;
  /** Position in the backoff schedule; unlike #failures it survives a success, until a quiet stretch resets it. */
  #step = 0;
  /** Errors seen so far; an attempt that saw one during its list and connect did not succeed. */
  #errors = 0;
  #lastError = Number.NEGATIVE_INFINITY;
  #outage = false;
  #timer: unknown;
  #started = false;
  #stopped = false;
  #synced = false;
  #connects = 0;
  readonly #firstSync: Promise<void>;
  #resolveFirstSync: () => void = () => undefined;

  constructor(kc: KubeConfig, opts: InformerOptions<T>) {
    this.what = opts.what;
    this.#log = opts.logger;
    this.#policy = { ...INFORMER_BACKOFF, ...opts.backoff };
    this.#clock = opts.clock ?? systemClock;
    this.#random = opts.random ?? Math.random;
    this.#cache = new ListWatch<T>(opts.path, new Watch(kc), opts.list, false, opts.labelSelector, opts.fieldSelector);
    this.#cache.on('error', (err: unknown) => this.#failed(err));
    // Fired before every list-or-watch cycle: the first, each new watch after the server ended one, each relist.
    this.#cache.on('connect', () => void this.#connects++);
    this.#firstSync = new Promise<void>((resolve) => {
      this.#resolveFirstSync = resolve;
    });
  }

  on(event: InformerEvent, handler: (obj: T) => void): void {
    this.#cache.on(event, handler);
  }

  /** The cached object, as last seen; cluster-scoped objects have no namespace. */
  get(name: string, namespace?: string): T | undefined {
    return this.#cache.get(name, namespace);
  }

  list(namespace?: string): readonly T[] {
    return this.#cache.list(namespace);
  }

  /** A first complete list has been delivered. */
  get synced(): boolean {
    return this.#synced;
  }

  /** Failed attempts since the last successful list (0 while watching). */
  get failures(): number {
    return this.#failures;
  }

  /** List-or-watch cycles begun: a new watch after the server ended one counts, so does every retry. */
  get connects(): number {
    return this.#connects;
  }

  /** Starts listing and watching; resolves at the first complete list (see the module comment). */
  start(): Promise<void> {
    if (!this.#started && !this.#stopped) {
      this.#started = true;
      void this.#attempt();
    }
    return this.#firstSync;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#cache.stop();
  }

  async #attempt(): Promise<void> {
    if (this.#stopped) return;
    const errorsBefore = this.#errors;
    try {
      // Resolves once listed and the watch is connected; list or watch errors arrive through 'error' first.
      await this.#cache.start();
    } catch (err) {
      this.#failed(err);
      return;
    }
    if (this.#stopped) {
      await this.#cache.stop();
      return;
    }
    if (this.#errors !== errorsBefore) return; // failed; the retry is scheduled
    if (this.#outage) this.#log.info({ informer: this.what }, 'watching again');
    this.#outage = false;
    this.#failures = 0;
    this.#synced = true;
    this.#resolveFirstSync();
  }

  #failed(err: unknown): void {
    this.#errors++;
    if (this.#stopped) return;
    const now = this.#clock.now();
    // Only a long stretch without errors starts the schedule over (client-go resets after 2 minutes too).
    if (now - this.#lastError >= INFORMER_BACKOFF_RESET_MS) this.#step = 0;
    this.#lastError = now;
    this.#step++;
    this.#failures++;
    if (!this.#outage) {
      this.#outage = true;
      this.#log.warn(
        { code: KubeErrorCode.WATCH_FAILED, informer: this.what, status: httpStatusOf(err), err: describeError(err) },
        'list/watch failed; retrying with backoff',
      );
    }
    if (this.#timer !== undefined) return;
    this.#timer = this.#clock.setTimeout(
      () => {
        this.#timer = undefined;
        void this.#attempt();
      },
      backoffDelayMs(this.#step, this.#random, this.#policy),
    );
  }
}
