/**
 * A data-plane worker's view of certificates: it never talks to a CA. It asks the control-plane thread for
 * an identity's certificate once, caches what comes back, and is told about every renewal (so TLS servers can
 * swap their secure context and new connections use the new certificate).
 */
import { isExpired, type WorkloadCertificate } from '../../lib/identity/certificate.js';
import { IdentityError, IdentityErrorCode } from '../../lib/identity/errors.js';
import { type Identity, formatSpiffeId } from '../../lib/identity/spiffe.js';

type Listener = (cert: WorkloadCertificate) => void;

interface Waiter {
  resolve(c: WorkloadCertificate): void;
  reject(e: Error): void;
}

export class WorkerCertificates {
  readonly #cache = new Map<string, WorkloadCertificate>();
  readonly #waiters = new Map<string, Waiter[]>();
  readonly #listeners = new Map<string, Set<Listener>>();

  constructor(private readonly request: (identity: Identity) => void) {}

  get(identity: Identity): Promise<WorkloadCertificate> {
    const key = formatSpiffeId(identity);
    const cached = this.#cache.get(key);
    if (cached && !isExpired(cached)) return Promise.resolve(cached);
    return new Promise((resolve, reject) => {
      const list = this.#waiters.get(key);
      if (list) {
        list.push({ resolve, reject });
        return;
      }
      this.#waiters.set(key, [{ resolve, reject }]);
      this.request(identity);
    });
  }

  /** The control plane answered a request or announced a renewal. */
  deliver(identity: Identity, cert: WorkloadCertificate | undefined, error: string | undefined): void {
    const key = formatSpiffeId(identity);
    const waiters = this.#waiters.get(key) ?? [];
    this.#waiters.delete(key);
    if (cert) {
      this.#cache.set(key, cert);
      for (const w of waiters) w.resolve(cert);
      for (const l of this.#listeners.get(key) ?? []) l(cert);
      return;
    }
    const err = new IdentityError(IdentityErrorCode.CERT_UNAVAILABLE, `no certificate for ${key}: ${error ?? 'unknown error'}`);
    for (const w of waiters) w.reject(err);
  }

  /** Calls `listener` on every new certificate for `identity`; returns the unsubscribe. */
  onRenewal(identity: Identity, listener: Listener): () => void {
    const key = formatSpiffeId(identity);
    let set = this.#listeners.get(key);
    if (!set) {
      set = new Set();
      this.#listeners.set(key, set);
    }
    set.add(listener);
    return () => set?.delete(listener);
  }
}
