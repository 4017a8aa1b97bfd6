/**
 * A data-plane worker thread: owns the pod proxies assigned to it, a replica of the state, and its metrics.
 * It never talks to the controller or the CA; the control-plane thread feeds it state and certificates.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Registry } from 'prom-client';
import { describeError } from '../../lib/errors.js';
import { TcpMetrics } from '../../lib/telemetry/tcp-metrics.js';
import { componentLogger, setLogLevel } from '../../lib/telemetry/logger.js';
import { PodProxy, type ProxyContext } from '../proxy/pod-proxy.js';
import { WorkloadStore } from '../state/store.js';
import { PodRegistry } from './pod-registry.js';
import type { MainToWorker, WorkerInit, WorkerToMain } from './protocol.js';
import { WorkerCertificates } from './worker-certificates.js';

const init = workerData as WorkerInit;
const port = parentPort;
if (!port) throw new Error('ztunnel data-plane worker must run in a worker thread');

const post = (m: WorkerToMain): void => port.postMessage(m);
// A worker thread has its own root logger: it starts at the program's level, as the main thread's does.
setLogLevel(init.settings.logLevel);
const logger = componentLogger('ztunnel').child({ worker: init.index });
const store = new WorkloadStore();
const registry = new Registry();
const ctx: ProxyContext = {
  settings: init.settings,
  store,
  certificates: new WorkerCertificates((identity) => post({ type: 'certificate-request', identity })),
  metrics: new TcpMetrics(registry),
  logger,
};
const pods = new PodRegistry((pod, netnsFd) => new PodProxy(pod, netnsFd, ctx));

// A policy or workload change may turn allowed live connections into denied ones.
store.onChange((change) => {
  for (const proxy of pods.proxies()) {
    proxy.refreshIdentity();
    if (change.authorizationChanged) proxy.recheckPolicies();
  }
});

async function handle(m: MainToWorker): Promise<void> {
  switch (m.type) {
    case 'state-replace':
      store.replaceAll({ workloads: m.workloads, services: m.services, policies: m.policies });
      return;
    case 'state-delta':
      store.apply(m.delta);
      return;
    case 'certificate':
      ctx.certificates.deliver(m.identity, m.certificate, m.error);
      return;
    case 'log-level':
      setLogLevel(m.level);
      return;
    case 'pod-add':
      // Started, kept (same netns: the agent's snapshot after a reconnect) or replaced (new sandbox): pod-registry.ts.
      post({ type: 'reply', id: m.id, data: await pods.add(m.pod, m.netnsFd) });
      return;
    case 'pod-del':
      await pods.remove(m.uid, init.settings.terminationDeadlineMs);
      post({ type: 'reply', id: m.id });
      return;
    case 'dump':
      post({ type: 'reply', id: m.id, data: pods.dump() });
      return;
    case 'metrics':
      post({ type: 'reply', id: m.id, data: await registry.getMetricsAsJSON() });
      return;
    case 'drain':
      await pods.removeAll(m.deadlineMs);
      post({ type: 'reply', id: m.id });
      return;
  }
}

port.on('message', (m: MainToWorker) => {
  handle(m).catch((err: unknown) => {
    logger.error({ err: describeError(err), message: m.type }, 'data-plane worker failed to handle a message');
    if ('id' in m) post({ type: 'reply', id: m.id, error: describeError(err) });
  });
});
post({ type: 'ready' });
