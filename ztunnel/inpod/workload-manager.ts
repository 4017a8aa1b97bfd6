/**
 * What ztunnel does with the pods the node agent hands it over ZDS: start a proxy inside each pod's network
 * namespace (on a data-plane worker), prefetch the pod's certificate, stop proxies for deleted pods, and after
 * a snapshot drop the pods the agent no longer knows. Failed adds are NACKed; the agent retries them.
 *
 * An Add for a pod already running in the same namespace (the agent's snapshot after it restarted or the ZDS
 * connection dropped) keeps the running proxy and its live connections; an Add with another namespace replaces
 * it (ztunnel src/inpod/statemanager.rs). The namespace is identified here, by fstat of the received fd, and the
 * worker that runs the pod decides (dataplane/pod-registry.ts). The workload_manager_* metrics count real
 * starts and stops only: a kept Add moves none of them.
 */
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import { describeError } from '../../lib/errors.js';
import type { CertificateManager } from '../../lib/identity/cert-manager.js';
import { makeIdentity } from '../../lib/identity/spiffe.js';
import { closeFd, netnsIdentity, type NetnsIdentity } from '../../lib/native/index.js';
import type { DataPlane } from '../dataplane/data-plane.js';
import { identityOf } from '../proxy/route.js';
import type { WorkloadStore } from '../state/store.js';
import type { InpodHandler } from './zds-client.js';

/** What the manager needs of the data plane (DataPlane; in tests, a registry without worker threads). */
export type PodRunner = Pick<DataPlane, 'addPod' | 'removePod' | 'pods'>;

export interface WorkloadInfo {
  readonly name: string;
  readonly namespace: string;
  readonly serviceAccount: string;
}

/** ztunnel's InpodHandler: the ZDS client hands it the agent's requests one at a time. */
export class WorkloadManager implements InpodHandler {
  readonly #dataPlane: PodRunner;
  readonly #certs: Pick<CertificateManager, 'prefetch'>;
  readonly #store: WorkloadStore;
  readonly #trustDomain: string;
  readonly #log: Logger;
  readonly #active: Gauge<string>;
  readonly #pending: Gauge<string>;
  readonly #started: Counter<string>;
  readonly #stopped: Counter<string>;
  #pendingCount = 0;

  constructor(
    dataPlane: PodRunner,
    certs: Pick<CertificateManager, 'prefetch'>,
    store: WorkloadStore,
    trustDomain: string,
    registry: Registry,
    log: Logger,
  ) {
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

  /** Owns `netnsFd` from the call on: the data plane keeps or closes it, and it is closed here if it never gets there. */
  async addWorkload(uid: string, info: WorkloadInfo, netnsFd: number): Promise<void> {
    let netns: NetnsIdentity;
    try {
      netns = netnsIdentity(netnsFd);
    } catch (err) {
      WorkloadManager.discardFd(netnsFd);
      throw err;
    }
    // The state is authoritative for identity; the agent's info is the fallback (it may not know the account).
    const known = this.#store.workloadsByName(info.namespace, info.name)[0];
    this.#certs.prefetch(known ? identityOf(known) : makeIdentity(info.namespace, info.serviceAccount || 'default', this.#trustDomain));
    const pod = `${info.namespace}/${info.name}`;
    const wasRunning = this.#dataPlane.pods().includes(uid);
    this.#pending.set(++this.#pendingCount);
    try {
      const outcome = await this.#dataPlane.addPod({ uid, ...info, netns }, netnsFd);
      if (outcome === 'kept') {
        this.#log.debug({ uid, pod, netnsInode: netns.inode }, 'pod already proxied in this netns; proxy kept');
        return;
      }
      this.#started.inc();
      if (outcome === 'replaced') {
        this.#stopped.inc();
        this.#log.info({ uid, pod, netnsInode: netns.inode }, 'pod sandbox re-created: proxy moved to the new netns');
      } else {
        this.#log.info({ uid, pod, netnsInode: netns.inode }, 'pod added to the mesh');
      }
    } catch (err) {
      // The worker closed the fd when it failed; the agent will retry with a fresh one. A failed replace
      // stopped the old proxy first.
      if (wasRunning && !this.#dataPlane.pods().includes(uid)) this.#stopped.inc();
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
