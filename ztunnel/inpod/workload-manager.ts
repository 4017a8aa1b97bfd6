/**
 * What ztunnel does with the pods the node agent hands it over ZDS: start a proxy inside each pod's network
 * namespace (on a data-plane worker), prefetch the pod's certificate, stop proxies for deleted pods, and after
 * a snapshot drop the pods the agent no longer knows. Failed adds are NACKed; the agent retries them.
 */
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import { describeError } from '../../lib/errors.js';
import type { CertificateManager } from '../../lib/identity/cert-manager.js';
import { makeIdentity } from '../../lib/identity/spiffe.js';
import { closeFd } from '../../lib/native/index.js';
import type { DataPlane } from '../dataplane/data-plane.js';
import { identityOf } from '../proxy/route.js';
import type { WorkloadStore } from '../state/store.js';

export interface WorkloadInfo {
  readonly name: string;
  readonly namespace: string;
  readonly serviceAccount: string;
}

export class WorkloadManager {
  readonly #dataPlane: DataPlane;
  readonly #certs: CertificateManager;
  readonly #store: WorkloadStore;
  readonly #trustDomain: string;
  readonly #log: Logger;
  readonly #active: Gauge<string>;
  readonly #pending: Gauge<string>;
  readonly #started: Counter<string>;
  readonly #stopped: Counter<string>;
  #pendingCount = 0;

  constructor(dataPlane: DataPlane, certs: CertificateManager, store: WorkloadStore, trustDomain: string, registry: Registry, log: Logger) {
    this.#dataPlane = dataPlane;
    this.#certs = certs;
    this.#store = store;
    this.#trustDomain = trustDomain;
    this.#log = log;
    const registers = [registry];
    // ztunnel registers these under the "workload_manager" prefix.
    this.#active = new Gauge({
      name: 'workload_manager_active_proxy_count',
      help: 'The total number current workloads with active proxies',
      registers,
    });
    this.#pending = new Gauge({
      name: 'workload_manager_pending_proxy_count',
      help: 'The total number current workloads with pending proxies',
      registers,
    });
    this.#started = new Counter({
      name: 'workload_manager_proxies_started_total',
      help: 'The total number of proxies that were started',
      registers,
    });
    this.#stopped = new Counter({
      name: 'workload_manager_proxies_stopped_total',
      help: 'The total number of proxies that were stopped',
      registers,
    });
  }

  async addWorkload(uid: string, info: WorkloadInfo, netnsFd: number): Promise<void> {
    // The state is authoritative for identity; the agent's info is the fallback (it may not know the account).
    const known = this.#store.workloadsByName(info.namespace, info.name)[0];
    this.#certs.prefetch(known ? identityOf(known) : makeIdentity(info.namespace, info.serviceAccount || 'default', this.#trustDomain));
    this.#pending.set(++this.#pendingCount);
    try {
      await this.#dataPlane.addPod({ uid, ...info }, netnsFd);
      this.#started.inc();
      this.#log.info({ uid, pod: `${info.namespace}/${info.name}` }, 'pod added to the mesh');
    } catch (err) {
      // The worker closed the fd when it failed; the agent will retry with a fresh one.
      this.#log.error({ uid, err: describeError(err) }, 'failed to start the pod proxy');
      throw err;
    } finally {
      this.#pending.set(--this.#pendingCount);
      this.#active.set(this.#dataPlane.pods().length);
    }
  }

  /** The agent still has this pod but no longer its netns: keep the running proxy as it is. */
  keepWorkload(_uid: string): void {}

  async delWorkload(uid: string): Promise<void> {
    if (!this.#dataPlane.pods().includes(uid)) return;
    await this.#dataPlane.removePod(uid);
    this.#stopped.inc();
    this.#active.set(this.#dataPlane.pods().length);
    this.#log.info({ uid }, 'pod removed from the mesh');
  }

  /** End of the snapshot: pods we run but the agent did not mention (added or kept) are gone. */
  async snapshotSent(current: ReadonlySet<string>): Promise<void> {
    const stale = this.#dataPlane.pods().filter((uid) => !current.has(uid));
    await Promise.all(stale.map((uid) => this.delWorkload(uid)));
  }

  /** Closes a netns fd that never reached a worker (a rejected Add). */
  static discardFd(fd: number): void {
    try {
      closeFd(fd);
    } catch {
      // already closed
    }
  }
}
