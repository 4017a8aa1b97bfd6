/**
 * The control-plane thread's handle on the data plane: starts the worker threads, assigns each pod to one of
 * them, forwards state and certificates, and gathers dumps and metrics. The forwarding event loops never run
 * xDS, CA calls, or admin requests.
 */
import { Worker } from 'node:worker_threads';
import { AggregatorRegistry, type Registry } from 'prom-client';
import type { Logger } from 'pino';
import { describeError } from '../../lib/errors.js';
import type { CertificateManager } from '../../lib/identity/cert-manager.js';
import type { WorkloadCertificate } from '../../lib/identity/certificate.js';
import type { Identity } from '../../lib/identity/spiffe.js';
import type { ZtunnelSettings } from '../config/settings.js';
import type { Authorization, Service, StateDelta, Workload } from '../state/model.js';
import type { MainToWorker, PodAddOutcome, PodDump, PodInfo, WorkerInit, WorkerToMain } from './protocol.js';

type Pending = { resolve: (data: unknown) => void; reject: (err: Error) => void };

class WorkerHandle {
  readonly worker: Worker;
  readonly pods = new Set<string>();
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  readonly ready: Promise<void>;

  constructor(init: WorkerInit, onMessage: (m: WorkerToMain) => void, log: Logger) {
    this.worker = new Worker(new URL('./worker.js', import.meta.url), { workerData: init });
    this.ready = new Promise((resolve, reject) => {
      this.worker.once('error', reject);
      this.worker.on('message', (m: WorkerToMain) => {
        if (m.type === 'ready') resolve();
        else if (m.type === 'reply') {
          const p = this.#pending.get(m.id);
          this.#pending.delete(m.id);
          if (!p) return;
          if (m.error) p.reject(new Error(m.error));
          else p.resolve(m.data);
        } else onMessage(m);
      });
    });
    this.worker.on('error', (err) => log.error({ err: describeError(err), worker: init.index }, 'data-plane worker crashed'));
  }

  send(m: MainToWorker): void {
    this.worker.postMessage(m);
  }

  request<T>(make: (id: number) => MainToWorker): Promise<T> {
    const id = this.#nextId++;
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { resolve: (d) => resolve(d as T), reject });
      this.send(make(id));
    });
  }
}

export class DataPlane {
  readonly #workers: WorkerHandle[] = [];
  readonly #podWorker = new Map<string, WorkerHandle>();
  readonly #certs: CertificateManager;
  readonly #log: Logger;
  #unsubscribe: (() => void) | undefined;

  constructor(settings: ZtunnelSettings, certs: CertificateManager, log: Logger) {
    this.#certs = certs;
    this.#log = log;
    for (let index = 0; index < settings.workerThreads; index++) {
      this.#workers.push(new WorkerHandle({ settings, index }, (m) => this.#onWorkerMessage(m), log));
    }
    // Renewals reach every worker; a worker without that identity simply caches it.
    this.#unsubscribe = certs.onCertificate((cert: WorkloadCertificate) =>
      this.#broadcast({ type: 'certificate', identity: cert.identity, certificate: cert, error: undefined }),
    );
  }

  async ready(): Promise<void> {
    await Promise.all(this.#workers.map((w) => w.ready));
  }

  replaceState(state: { workloads: readonly Workload[]; services: readonly Service[]; policies: readonly Authorization[] }): void {
    this.#broadcast({ type: 'state-replace', ...state });
  }

  applyDelta(delta: StateDelta): void {
    this.#broadcast({ type: 'state-delta', delta });
  }

  setLogLevel(level: string): void {
    this.#broadcast({ type: 'log-level', level });
  }

  /**
   * Starts the proxy of a pod on the least-loaded worker, or hands a known pod's Add to the worker that runs it,
   * which keeps the proxy when `pod.netns` is the namespace it runs in and replaces it otherwise
   * (pod-registry.ts). The worker owns `netnsFd` from here on, whatever the outcome. On a rejection the pod
   * runs nowhere: a failed replace has stopped the old proxy too.
   */
  async addPod(pod: PodInfo, netnsFd: number): Promise<PodAddOutcome> {
    const previous = this.#podWorker.get(pod.uid);
    const worker = previous ?? this.#workers.reduce((a, b) => (b.pods.size < a.pods.size ? b : a));
    this.#podWorker.set(pod.uid, worker);
    worker.pods.add(pod.uid);
    try {
      return await worker.request<PodAddOutcome>((id) => ({ type: 'pod-add', id, pod, netnsFd }));
    } catch (err) {
      worker.pods.delete(pod.uid);
      this.#podWorker.delete(pod.uid);
      throw err;
    }
  }

  async removePod(uid: string): Promise<void> {
    const worker = this.#podWorker.get(uid);
    if (!worker) return;
    this.#podWorker.delete(uid);
    worker.pods.delete(uid);
    await worker.request((id) => ({ type: 'pod-del', id, uid }));
  }

  pods(): string[] {
    return [...this.#podWorker.keys()];
  }

  async dump(): Promise<Record<string, PodDump>> {
    const parts = await Promise.all(this.#workers.map((w) => w.request<Record<string, PodDump>>((id) => ({ type: 'dump', id }))));
    return Object.assign({}, ...parts) as Record<string, PodDump>;
  }

  /** Metrics of all workers, summed (prom-client's cluster aggregation works on any set of registries). */
  async metrics(): Promise<Registry> {
    type MetricsJson = Awaited<ReturnType<Registry['getMetricsAsJSON']>>;
    const parts = await Promise.all(this.#workers.map((w) => w.request<MetricsJson>((id) => ({ type: 'metrics', id }))));
    return AggregatorRegistry.aggregate(parts);
  }

  async drain(deadlineMs: number): Promise<void> {
    await Promise.all(this.#workers.map((w) => w.request((id) => ({ type: 'drain', id, deadlineMs })).catch(() => undefined)));
  }

  async close(): Promise<void> {
    this.#unsubscribe?.();
    await Promise.all(this.#workers.map((w) => w.worker.terminate()));
  }

  #broadcast(m: MainToWorker): void {
    for (const w of this.#workers) w.send(m);
  }

  #onWorkerMessage(m: WorkerToMain): void {
    if (m.type !== 'certificate-request') return;
    const identity: Identity = m.identity;
    this.#certs.fetchCertificate(identity).then(
      (cert) => this.#broadcast({ type: 'certificate', identity, certificate: cert, error: undefined }),
      (err: unknown) => {
        this.#log.warn({ identity, err: describeError(err) }, 'certificate request failed');
        this.#broadcast({ type: 'certificate', identity, certificate: undefined, error: describeError(err) });
      },
    );
  }
}
