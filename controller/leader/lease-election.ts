/**
 * Leader election with a coordination.k8s.io/v1 Lease (client-go's algorithm): the holder renews every
 * `renewIntervalMs`; anyone may take a lease whose renewTime + leaseDurationSeconds has passed, with the
 * resourceVersion as the optimistic lock, so two replicas can never both win. Only the leader writes
 * (ConfigMaps, later Gateway status); every replica serves xDS.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { type KubeRequest, type KubeResponse, kubeRequest } from '../../lib/kube/rest.js';

/** Each Lease call must answer well within a lease duration, or a leader could not renew in time. */
const LEASE_REQUEST_TIMEOUT_MS = 10_000;

/**
 * Kubernetes MicroTime: RFC 3339 with exactly six fractional digits. The Lease goes out through the raw client
 * because client-node writes three and the API server refuses that.
 */
export function microTime(d: Date): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

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

interface LeaseJson {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string };
  spec?: { holderIdentity?: string; leaseDurationSeconds?: number; acquireTime?: string; renewTime?: string; leaseTransitions?: number };
}

function leaseCall(kc: KubeConfig, method: KubeRequest['method'], path: string, body?: unknown): Promise<KubeResponse> {
  return kubeRequest(kc, { method, path, body, timeoutMs: LEASE_REQUEST_TIMEOUT_MS });
}

export class LeaseElection {
  readonly #kc: KubeConfig;
  readonly #opts: Required<Omit<LeaseElectionOptions, 'logger'>> & { logger: Logger | undefined };
  readonly #listeners = new Set<(leader: boolean) => void>();
  #leader = false;
  #lastRenew = 0;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(kc: KubeConfig, opts: LeaseElectionOptions) {
    this.#kc = kc;
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
      const r = await leaseCall(this.#kc, 'GET', this.#path());
      const lease = r.body as LeaseJson;
      if (r.status === 200 && lease.spec?.holderIdentity === this.#opts.identity) {
        await leaseCall(this.#kc, 'PUT', this.#path(), {
          ...lease,
          spec: { ...lease.spec, holderIdentity: undefined, leaseDurationSeconds: 1 },
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
    this.#opts.logger?.info(
      { lease: `${this.#opts.namespace}/${this.#opts.name}`, identity: this.#opts.identity },
      leader ? 'became leader' : 'lost leadership',
    );
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

  /** The leases collection of our namespace, or (with `self`) our lease in it. */
  #path(self = true): string {
    const base = `/apis/coordination.k8s.io/v1/namespaces/${this.#opts.namespace}/leases`;
    return self ? `${base}/${this.#opts.name}` : base;
  }

  async #tryAcquireOrRenew(): Promise<void> {
    const { name, namespace, identity, leaseDurationSeconds } = this.#opts;
    const now = new Date();
    const read = await leaseCall(this.#kc, 'GET', this.#path());
    if (read.status === 404) {
      const created = await leaseCall(this.#kc, 'POST', this.#path(false), {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: { name, namespace },
        spec: {
          holderIdentity: identity,
          leaseDurationSeconds,
          acquireTime: microTime(now),
          renewTime: microTime(now),
          leaseTransitions: 0,
        },
      });
      if (created.status === 201 || created.status === 200) {
        this.#lastRenew = Date.now();
        this.#set(true);
      } else if (created.status !== 409) {
        throw new Error(`creating lease ${namespace}/${name}: HTTP ${created.status} ${JSON.stringify(created.body)}`);
      }
      return; // 409: another replica created it first
    }
    if (read.status !== 200) throw new Error(`reading lease ${namespace}/${name}: HTTP ${read.status}`);
    const lease = read.body as LeaseJson;
    const spec = lease.spec ?? {};
    const renewedAt = spec.renewTime ? new Date(spec.renewTime).getTime() : 0;
    const duration = (spec.leaseDurationSeconds ?? leaseDurationSeconds) * 1000;
    const mine = spec.holderIdentity === identity;
    const expired = !spec.holderIdentity || renewedAt + duration < now.getTime();
    if (!mine && !expired) {
      this.#set(false);
      return;
    }
    // PUT with the resourceVersion we read: the optimistic lock; a concurrent writer makes this a 409.
    const written = await leaseCall(this.#kc, 'PUT', this.#path(), {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: lease.metadata,
      spec: {
        ...spec,
        holderIdentity: identity,
        leaseDurationSeconds,
        renewTime: microTime(now),
        ...(mine ? {} : { acquireTime: microTime(now), leaseTransitions: (spec.leaseTransitions ?? 0) + 1 }),
      },
    });
    if (written.status === 200) {
      this.#lastRenew = Date.now();
      this.#set(true);
    } else if (written.status === 409) {
      this.#set(false);
    } else {
      throw new Error(`updating lease ${namespace}/${name}: HTTP ${written.status} ${JSON.stringify(written.body)}`);
    }
  }
}
