/**
 * Leader election with a coordination.k8s.io/v1 Lease (client-go's algorithm): the holder renews every
 * `renewIntervalMs`; anyone may take a lease whose renewTime + leaseDurationSeconds has passed, with the
 * resourceVersion as the optimistic lock, so two replicas can never both win. Only the leader writes
 * (ConfigMaps, later Gateway status); every replica serves xDS.
 */
import { CoordinationV1Api, type KubeConfig, type V1Lease } from '@kubernetes/client-node';
import type { Logger } from 'pino';

export interface LeaseElectionOptions {
  readonly namespace: string;
  readonly name: string;
  /** This replica, e.g. the pod name; written as holderIdentity. */
  readonly identity: string;
  readonly leaseDurationSeconds?: number;
  readonly renewIntervalMs?: number;
  readonly retryIntervalMs?: number;
  readonly logger?: Logger;
}

function statusOf(err: unknown): number | undefined {
  const e = err as { code?: number; statusCode?: number; response?: { statusCode?: number } };
  return e?.code ?? e?.statusCode ?? e?.response?.statusCode;
}

export class LeaseElection {
  readonly #api: CoordinationV1Api;
  readonly #opts: Required<Omit<LeaseElectionOptions, 'logger'>> & { logger: Logger | undefined };
  readonly #listeners = new Set<(leader: boolean) => void>();
  #leader = false;
  #lastRenew = 0;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(kc: KubeConfig, opts: LeaseElectionOptions) {
    this.#api = kc.makeApiClient(CoordinationV1Api);
    this.#opts = {
      namespace: opts.namespace,
      name: opts.name,
      identity: opts.identity,
      leaseDurationSeconds: opts.leaseDurationSeconds ?? 15,
      renewIntervalMs: opts.renewIntervalMs ?? 5_000,
      retryIntervalMs: opts.retryIntervalMs ?? 2_000,
      logger: opts.logger,
    };
  }

  get isLeader(): boolean {
    return this.#leader;
  }

  onChange(listener: (leader: boolean) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  start(): void {
    void this.#tick();
  }

  /** Stops campaigning; a leader releases the lease so another replica takes over at once. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    if (!this.#leader) return;
    try {
      const lease = await this.#api.readNamespacedLease({ name: this.#opts.name, namespace: this.#opts.namespace });
      if (lease.spec?.holderIdentity === this.#opts.identity) {
        await this.#api.replaceNamespacedLease({
          name: this.#opts.name,
          namespace: this.#opts.namespace,
          body: { ...lease, spec: { ...lease.spec, holderIdentity: undefined, leaseDurationSeconds: 1 } },
        });
      }
    } catch {
      // best effort: the lease expires by itself
    }
    this.#set(false);
  }

  #set(leader: boolean): void {
    if (leader === this.#leader) return;
    this.#leader = leader;
    this.#opts.logger?.info({ lease: `${this.#opts.namespace}/${this.#opts.name}`, identity: this.#opts.identity }, leader ? 'became leader' : 'lost leadership');
    for (const l of this.#listeners) l(leader);
  }

  async #tick(): Promise<void> {
    if (this.#stopped) return;
    try {
      await this.#tryAcquireOrRenew();
    } catch (err) {
      this.#opts.logger?.warn({ err: err instanceof Error ? err.message : String(err) }, 'lease update failed');
    }
    // A leader that could not renew for a whole lease duration must assume someone else holds it now.
    if (this.#leader && Date.now() - this.#lastRenew > this.#opts.leaseDurationSeconds * 1000) this.#set(false);
    if (this.#stopped) return;
    this.#timer = setTimeout(() => void this.#tick(), this.#leader ? this.#opts.renewIntervalMs : this.#opts.retryIntervalMs);
    this.#timer.unref();
  }

  async #tryAcquireOrRenew(): Promise<void> {
    const { name, namespace, identity, leaseDurationSeconds } = this.#opts;
    const now = new Date();
    let lease: V1Lease;
    try {
      lease = await this.#api.readNamespacedLease({ name, namespace });
    } catch (err) {
      if (statusOf(err) !== 404) throw err;
      try {
        await this.#api.createNamespacedLease({
          namespace,
          body: { metadata: { name, namespace }, spec: { holderIdentity: identity, leaseDurationSeconds, acquireTime: now, renewTime: now, leaseTransitions: 0 } },
        });
        this.#lastRenew = Date.now();
        this.#set(true);
      } catch (e) {
        if (statusOf(e) !== 409) throw e; // someone else created it first
      }
      return;
    }
    const spec = lease.spec ?? {};
    const renewedAt = spec.renewTime ? new Date(spec.renewTime).getTime() : 0;
    const duration = (spec.leaseDurationSeconds ?? leaseDurationSeconds) * 1000;
    const mine = spec.holderIdentity === identity;
    const expired = !spec.holderIdentity || renewedAt + duration < now.getTime();
    if (!mine && !expired) {
      this.#set(false);
      return;
    }
    try {
      await this.#api.replaceNamespacedLease({
        name,
        namespace,
        body: {
          ...lease, // carries metadata.resourceVersion: the optimistic lock
          spec: {
            ...spec,
            holderIdentity: identity,
            leaseDurationSeconds,
            renewTime: now,
            ...(mine ? {} : { acquireTime: now, leaseTransitions: (spec.leaseTransitions ?? 0) + 1 }),
          },
        },
      });
      this.#lastRenew = Date.now();
      this.#set(true);
    } catch (err) {
      if (statusOf(err) === 409) {
        this.#set(false); // another replica wrote the lease first
        return;
      }
      throw err;
    }
  }
}
