/**
 * The certificate manager a proxy uses (ztunnel's SecretManager): one certificate per identity (service account,
 * not pod), fetched on demand or ahead of time, renewed at half-life, retried with backoff, and served until it
 * expires even when renewals fail.
 *
 * Scheduling: at most `maxConcurrentFetches` provider calls run at once; waiting fetches are served by priority
 * RealTime (a connection waits) > Warmup (prefetch, retries with no usable certificate) > Background (renewals),
 * first come first served within a priority. A second request for an identity joins the pending one (raising its
 * priority if needed) instead of fetching twice.
 */
import { componentLogger, type Logger } from '../telemetry/logger.js';
import { type BackoffPolicy, type Clock, backoffDelayMs as sharedBackoffDelayMs, systemClock } from '../timing.js';
import { describeError, errorCode } from '../errors.js';
import { type WorkloadCertificate, isExpired, parseCertificatePem, refreshAt } from './certificate.js';
import {
  CERT_FETCH_BACKOFF_INITIAL_MS,
  CERT_FETCH_BACKOFF_JITTER,
  CERT_FETCH_BACKOFF_MAX_MS,
  CERT_FETCH_BACKOFF_MULTIPLIER,
  MAX_CONCURRENT_CERT_FETCHES,
  MIN_CERT_REFRESH_DELAY_MS,
} from './defaults.js';
import { IdentityError, IdentityErrorCode } from './errors.js';
import { type Identity, formatSpiffeId, sameIdentity } from './spiffe.js';

/** Where certificates come from: the remote CA (CaClient) or an in-process one (LocalCaProvider, FAKE_CA). */
export interface CertificateProvider {
  fetch(identity: Identity): Promise<WorkloadCertificate>;
}

export const CertificatePriority = {
  /** A connection is waiting for this certificate. */
  RealTime: 0,
  /** Prefetch for a workload that just arrived on this node. */
  Warmup: 1,
  /** Renewal of a certificate that is still valid. */
  Background: 2,
} as const;
export type CertificatePriority = (typeof CertificatePriority)[keyof typeof CertificatePriority];

/** Time source and timers; injectable so tests can move time without waiting. */
export type ManagerClock = Clock;
export { systemClock };
export type { BackoffPolicy };

export const DEFAULT_CERT_BACKOFF: BackoffPolicy = Object.freeze({
  initialMs: CERT_FETCH_BACKOFF_INITIAL_MS,
  multiplier: CERT_FETCH_BACKOFF_MULTIPLIER,
  jitter: CERT_FETCH_BACKOFF_JITTER,
  maxMs: CERT_FETCH_BACKOFF_MAX_MS,
});

/** Wait before retry number `failures` of a certificate fetch (500 ms ×2 ±20 %, at most 150 s). */
export function backoffDelayMs(failures: number, random: () => number = Math.random, policy: BackoffPolicy = DEFAULT_CERT_BACKOFF): number {
  return sharedBackoffDelayMs(failures, random, policy);
}

/** One certificate as ztunnel's /config_dump shows it. */
export interface CertificateDump {
  /** Base64 of the PEM text. */
  readonly pem: string;
  /** Decimal, as ztunnel prints it. */
  readonly serialNumber: string;
  /** RFC 3339, seconds precision, UTC. */
  readonly validFrom: string;
  readonly expirationTime: string;
}

/** The `certificates` section of ztunnel's /config_dump, one element per identity. */
export interface CertificatesDump {
  readonly identity: string;
  /** "Initializing" | "Available" | "Unavailable: <error>" */
  readonly state: string;
  readonly certChain: readonly CertificateDump[];
  readonly rootCerts: readonly CertificateDump[];
}

export interface CertificateManagerOptions {
  readonly provider: CertificateProvider;
  readonly logger?: Logger;
  readonly clock?: ManagerClock;
  /** Uniform [0, 1) source for backoff jitter. */
  readonly random?: () => number;
  readonly maxConcurrentFetches?: number;
  readonly backoff?: BackoffPolicy;
}

export type CertificateListener = (cert: WorkloadCertificate) => void;

interface Job {
  readonly entry: Entry;
  priority: CertificatePriority;
  running: boolean;
  readonly promise: Promise<WorkloadCertificate>;
  readonly resolve: (cert: WorkloadCertificate) => void;
  readonly reject: (err: unknown) => void;
}

interface Entry {
  readonly identity: Identity;
  readonly key: string;
  cert?: WorkloadCertificate;
  lastError?: unknown;
  /** Consecutive failed fetches; drives the backoff. */
  failures: number;
  job?: Job;
  timer?: unknown;
  timerKind?: 'refresh' | 'retry';
  timerAt?: number;
}

/** setTimeout stores delays in 32 bits; longer waits (a 90-day certificate's half-life) are re-armed in steps. */
const MAX_TIMER_DELAY_MS = 2 ** 31 - 1;

function rfc3339(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function dumpPem(pem: string): CertificateDump {
  const cert = parseCertificatePem(pem);
  return {
    pem: Buffer.from(pem).toString('base64'),
    serialNumber: BigInt(`0x${cert.serialNumber}`).toString(10),
    validFrom: rfc3339(new Date(cert.validFrom)),
    expirationTime: rfc3339(new Date(cert.validTo)),
  };
}

export class CertificateManager {
  readonly #provider: CertificateProvider;
  readonly #log: Logger;
  readonly #clock: ManagerClock;
  readonly #random: () => number;
  readonly #maxConcurrent: number;
  readonly #backoff: BackoffPolicy;
  readonly #entries = new Map<string, Entry>();
  /** Waiting jobs, indexed by priority; Sets keep insertion order, so each is a FIFO with O(1) removal. */
  readonly #queues: readonly [Set<Job>, Set<Job>, Set<Job>] = [new Set(), new Set(), new Set()];
  readonly #listeners = new Set<CertificateListener>();
  #inFlight = 0;
  #closed = false;

  constructor(opts: CertificateManagerOptions) {
    this.#provider = opts.provider;
    this.#log = opts.logger ?? componentLogger('cert-manager');
    this.#clock = opts.clock ?? systemClock;
    this.#random = opts.random ?? Math.random;
    this.#maxConcurrent = Math.max(1, opts.maxConcurrentFetches ?? MAX_CONCURRENT_CERT_FETCHES);
    this.#backoff = opts.backoff ?? DEFAULT_CERT_BACKOFF;
  }

  /**
   * The certificate for `identity`: the cached one while it is valid, else the result of a (shared) fetch.
   * Rejects with IdentityError(IDENTITY_CERT_UNAVAILABLE) when the fetch fails, or at once while a failed
   * identity waits for its backoff retry (a burst of connections must not hammer a failing CA).
   */
  fetchCertificate(identity: Identity, priority: CertificatePriority = CertificatePriority.RealTime): Promise<WorkloadCertificate> {
    if (this.#closed) {
      return Promise.reject(
        new IdentityError(
          IdentityErrorCode.CERT_UNAVAILABLE,
          `certificate manager is closed; no certificate for ${formatSpiffeId(identity)}`,
        ),
      );
    }
    const entry = this.#entry(identity);
    if (entry.cert && !isExpired(entry.cert, this.#clock.now())) return Promise.resolve(entry.cert);
    if (entry.job) {
      this.#promote(entry.job, priority);
      return entry.job.promise;
    }
    if (entry.timerKind === 'retry' && entry.lastError !== undefined) {
      const inMs = Math.max(0, (entry.timerAt ?? 0) - this.#clock.now());
      return Promise.reject(
        new IdentityError(
          IdentityErrorCode.CERT_UNAVAILABLE,
          `no certificate for ${entry.key}: the last fetch failed (${describeError(entry.lastError)}); retrying in ${inMs} ms`,
          { cause: entry.lastError },
        ),
      );
    }
    this.#cancelTimer(entry);
    return this.#start(entry, priority).promise;
  }

  /** Fetches ahead of need (a workload of this identity arrived on the node); errors are logged, not thrown. */
  prefetch(identity: Identity): void {
    if (this.#closed) return;
    this.fetchCertificate(identity, CertificatePriority.Warmup).catch(() => {
      // Already logged by the fetch; the retry timer is armed.
    });
  }

  /** The valid certificate held for `identity`, without fetching. */
  current(identity: Identity): WorkloadCertificate | undefined {
    const cert = this.#entries.get(formatSpiffeId(identity))?.cert;
    return cert && !isExpired(cert, this.#clock.now()) ? cert : undefined;
  }

  /** Drops the identity (its last workload left the node): cancels timers and any pending fetch. */
  forget(identity: Identity): void {
    const key = formatSpiffeId(identity);
    const entry = this.#entries.get(key);
    if (!entry) return;
    this.#entries.delete(key);
    this.#cancelTimer(entry);
    this.#abandon(entry, `certificate for ${key} was forgotten while being fetched`);
  }

  /** Called after every (re)issue, e.g. so a TLS server swaps its secure context. Returns an unsubscribe function. */
  onCertificate(listener: CertificateListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Provider calls running now. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** ztunnel's /config_dump `certificates`, sorted by identity. */
  dump(): CertificatesDump[] {
    const now = this.#clock.now();
    const out: CertificatesDump[] = [];
    for (const entry of this.#entries.values()) {
      const cert = entry.cert && !isExpired(entry.cert, now) ? entry.cert : undefined;
      const state = cert ? 'Available' : entry.lastError !== undefined ? `Unavailable: ${describeError(entry.lastError)}` : 'Initializing';
      out.push({
        identity: entry.key,
        state,
        certChain: cert ? cert.certChainPem.map(dumpPem) : [],
        rootCerts: cert ? cert.rootCertsPem.map(dumpPem) : [],
      });
    }
    return out.sort((a, b) => (a.identity < b.identity ? -1 : a.identity > b.identity ? 1 : 0));
  }

  /** Stops everything: timers cleared, pending fetches rejected, late results discarded. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const entry of this.#entries.values()) {
      this.#cancelTimer(entry);
      this.#abandon(entry, `certificate manager closed while fetching ${entry.key}`);
    }
    this.#entries.clear();
    this.#listeners.clear();
  }

  #entry(identity: Identity): Entry {
    const key = formatSpiffeId(identity);
    let entry = this.#entries.get(key);
    if (!entry) {
      entry = { identity, key, failures: 0 };
      this.#entries.set(key, entry);
    }
    return entry;
  }

  #abandon(entry: Entry, why: string): void {
    const job = entry.job;
    if (!job) return;
    entry.job = undefined;
    if (!job.running) this.#queues[job.priority].delete(job);
    job.reject(new IdentityError(IdentityErrorCode.CERT_UNAVAILABLE, why));
  }

  #start(entry: Entry, priority: CertificatePriority): Job {
    let resolve!: (cert: WorkloadCertificate) => void;
    let reject!: (err: unknown) => void;
    const promise = new Promise<WorkloadCertificate>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // Prefetches and renewals have no awaiting caller; the failure is handled (logged, retried) here.
    promise.catch(() => undefined);
    const job: Job = { entry, priority, running: false, promise, resolve, reject };
    entry.job = job;
    this.#queues[priority].add(job);
    this.#pump();
    return job;
  }

  #promote(job: Job, priority: CertificatePriority): void {
    if (job.running || priority >= job.priority) return;
    this.#queues[job.priority].delete(job);
    job.priority = priority;
    this.#queues[priority].add(job);
  }

  #next(): Job | undefined {
    for (const queue of this.#queues) {
      for (const job of queue) {
        queue.delete(job);
        return job;
      }
    }
    return undefined;
  }

  #pump(): void {
    while (!this.#closed && this.#inFlight < this.#maxConcurrent) {
      const job = this.#next();
      if (!job) return;
      this.#run(job);
    }
  }

  #run(job: Job): void {
    job.running = true;
    this.#inFlight++;
    let result: Promise<WorkloadCertificate>;
    try {
      result = this.#provider.fetch(job.entry.identity);
    } catch (err) {
      result = Promise.reject(err);
    }
    result.then(
      (cert) => this.#settle(job, cert, undefined),
      (err: unknown) => this.#settle(job, undefined, err ?? new Error('certificate provider failed without an error')),
    );
  }

  #settle(job: Job, cert: WorkloadCertificate | undefined, err: unknown): void {
    this.#inFlight--;
    const entry = job.entry;
    // A forgotten identity or a closed manager already rejected this job; the result is dropped.
    const live = !this.#closed && this.#entries.get(entry.key) === entry && entry.job === job;
    if (live) {
      entry.job = undefined;
      if (cert && !sameIdentity(cert.identity, entry.identity)) {
        err = new IdentityError(
          IdentityErrorCode.SAN_MISMATCH,
          `provider returned a certificate for ${formatSpiffeId(cert.identity)} when ${entry.key} was asked for`,
        );
        cert = undefined;
      }
      if (cert) this.#succeeded(entry, job, cert);
      else this.#failed(entry, job, err);
    }
    this.#pump();
  }

  #succeeded(entry: Entry, job: Job, cert: WorkloadCertificate): void {
    entry.cert = cert;
    entry.failures = 0;
    entry.lastError = undefined;
    const at = Math.max(refreshAt(cert).getTime(), this.#clock.now() + MIN_CERT_REFRESH_DELAY_MS);
    this.#schedule(entry, 'refresh', at);
    this.#log.debug({ identity: entry.key, serial: cert.serialNumber, notAfter: cert.notAfter.toISOString() }, 'certificate issued');
    job.resolve(cert);
    for (const listener of this.#listeners) {
      try {
        listener(cert);
      } catch (listenerErr) {
        this.#log.error({ identity: entry.key, err: describeError(listenerErr) }, 'certificate listener threw');
      }
    }
  }

  #failed(entry: Entry, job: Job, err: unknown): void {
    entry.failures++;
    entry.lastError = err;
    const delay = backoffDelayMs(entry.failures, this.#random, this.#backoff);
    this.#schedule(entry, 'retry', this.#clock.now() + delay);
    const holding = entry.cert !== undefined && !isExpired(entry.cert, this.#clock.now());
    this.#log.warn(
      {
        identity: entry.key,
        code: errorCode(err),
        attempt: entry.failures,
        retryInMs: delay,
        servingPrevious: holding,
        err: describeError(err),
      },
      'certificate fetch failed',
    );
    job.reject(new IdentityError(IdentityErrorCode.CERT_UNAVAILABLE, `cannot obtain a certificate for ${entry.key}`, { cause: err }));
  }

  #schedule(entry: Entry, kind: 'refresh' | 'retry', at: number): void {
    this.#cancelTimer(entry);
    entry.timerKind = kind;
    entry.timerAt = at;
    const arm = (): void => {
      const delay = at - this.#clock.now();
      entry.timer =
        delay > MAX_TIMER_DELAY_MS
          ? this.#clock.setTimeout(arm, MAX_TIMER_DELAY_MS)
          : this.#clock.setTimeout(() => this.#fire(entry), Math.max(0, delay));
    };
    arm();
  }

  #cancelTimer(entry: Entry): void {
    if (entry.timer !== undefined) this.#clock.clearTimeout(entry.timer);
    entry.timer = undefined;
    entry.timerKind = undefined;
    entry.timerAt = undefined;
  }

  #fire(entry: Entry): void {
    const kind = entry.timerKind;
    entry.timer = undefined;
    entry.timerKind = undefined;
    entry.timerAt = undefined;
    if (this.#closed || this.#entries.get(entry.key) !== entry || entry.job) return;
    const holding = entry.cert !== undefined && !isExpired(entry.cert, this.#clock.now());
    // Renewing a certificate that still works can wait behind prefetches; replacing a missing one cannot.
    this.#start(entry, kind === 'refresh' || holding ? CertificatePriority.Background : CertificatePriority.Warmup);
  }
}
