/**
 * `npm run bench:controller`: the control plane at 1 000 and 10 000 pods (1 000 services), on a real
 * kube-apiserver with the controller as its own process.
 *   - write → applied: a pod added (object + status with its IP) and a policy changed, until a ztunnel has the
 *     change applied. The "ztunnel" here is ztunnel's own xDS client, WDS conversion and WorkloadStore running in
 *     this process, so each change is timestamped exactly (p50/p99 over BENCH_CHANGES changes, default 40).
 *   - full push: a newly connected client, from connect to everything applied, and the bytes received; and a real
 *     ztunnel process from start to ready (synced), with its RSS.
 *   - the controller's RSS and CPU.
 * Prints a table and writes bench/results/controller.json. Needs no root: no fake nodes, only the API server
 * (built by scripts/tools/kube-apiserver.sh on first use), the controller and a ztunnel without pods.
 */
import { spawn } from 'node:child_process';
import { request } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createNamespace,
  createServiceAccount,
  installCrds,
  kubeRequestOk,
  startApiServer,
  type ApiServer,
} from '../testbed/kubeapi/index.js';
import { tokenFromFile } from '../lib/identity/ca-client.js';
import { TypeUrl } from '../lib/proto/index.js';
import { XdsClient } from '../lib/xds/client.js';
import { ztunnelNode } from '../lib/xds/node.js';
import { PROGRAMS } from '../localmesh/node-runtime.js';
import { decodeAddress, decodeAuthorization } from '../ztunnel/sources/wds-convert.js';
import { WorkloadStore } from '../ztunnel/state/store.js';
import { percentile } from './lib/load.js';
import { cpuSeconds, rssBytes } from './lib/proc.js';
import { printTable, writeResults, type Row } from './lib/report.js';
import { freePort } from './lib/tools.js';
import { loadBenchConfig } from './lib/config.js';
import { childEnv } from '../testbed/env.js';

const { changes: CHANGES, scales: SCALES } = loadBenchConfig();
const SERVICES = 1000;
const NAMESPACES = 10;
const NODES = 10;
const CONCURRENCY = 32;
const mib = (b: number): number => Math.round((b / 2 ** 20) * 10) / 10;

function httpStatus(port: number, path: string): Promise<number> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path, timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', () => resolve(0));
    req.end();
  });
}

async function parallel<T>(items: readonly T[], f: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < items.length) await f(items[next++] as T);
    }),
  );
}

const podIp = (i: number): string => `10.200.${Math.floor(i / 250)}.${(i % 250) + 2}`;
const nsOf = (i: number): string => `bench-${i % NAMESPACES}`;
const svcOf = (podIndex: number): number => podIndex % SERVICES;

/** ztunnel's view, built by its own code: xDS client → WDS conversion → WorkloadStore; with a change hook. */
class ZtunnelView {
  readonly store = new WorkloadStore();
  readonly client: XdsClient;
  bytes = 0;
  resources = 0;
  readonly #waiters = new Set<() => void>();

  constructor(address: string, rootCertPem: string, tokenPath: string, nodeName: string) {
    this.client = new XdsClient({
      address,
      transport: { kind: 'tls', rootCertPem, serverName: 'istiod.istio-system.svc' },
      node: ztunnelNode({ podName: `bench-${process.pid}`, podNamespace: 'istio-system', nodeName }),
      token: tokenFromFile(tokenPath),
      maxReceiveBytes: 512 * 1024 * 1024,
      watches: [
        {
          typeUrl: TypeUrl.Address,
          handler: (u) => {
            const workloads = [];
            const services = [];
            for (const r of u.resources) {
              this.bytes += r.body.length;
              this.resources++;
              const m = decodeAddress(r.name, r.body);
              if (m.kind === 'workload') workloads.push(m.workload);
              else services.push(m.service);
            }
            this.store.apply({ workloads, services, removedWorkloads: u.removed, removedServices: u.removed });
            this.#notify();
          },
        },
        {
          typeUrl: TypeUrl.Authorization,
          handler: (u) => {
            const policies = u.resources.map((r) => {
              this.bytes += r.body.length;
              this.resources++;
              return decodeAuthorization(r.name, r.body);
            });
            this.store.apply({ policies, removedPolicies: u.removed });
            this.#notify();
          },
        },
      ],
    });
  }

  #notify(): void {
    for (const w of [...this.#waiters]) w();
  }

  /** Resolves with the time (performance.now) at which `check` first holds after an update. */
  until(check: () => boolean, timeoutMs = 60_000): Promise<number> {
    if (check()) return Promise.resolve(performance.now());
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.#waiters.delete(w);
        reject(new Error('change not applied within the timeout'));
      }, timeoutMs);
      const w = (): void => {
        if (!check()) return;
        clearTimeout(t);
        this.#waiters.delete(w);
        resolve(performance.now());
      };
      this.#waiters.add(w);
    });
  }
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-controller-'));
  const api: ApiServer = await startApiServer({ name: 'benchctl' });
  const kc = api.kubeConfig;
  let controller: ReturnType<typeof spawn> | undefined;
  let out = '';
  const results: Record<string, unknown>[] = [];
  try {
    await installCrds(kc);
    await createNamespace(kc, 'istio-system');
    await createServiceAccount(kc, 'istio-system', 'ztunnel');
    for (let n = 0; n < NODES; n++) {
      await kubeRequestOk(kc, { method: 'POST', path: '/api/v1/nodes', body: { metadata: { name: `node-${n}` } } });
    }
    for (let i = 0; i < NAMESPACES; i++) await createNamespace(kc, `bench-${i}`, { labels: { 'istio.io/dataplane-mode': 'ambient' } });
    // 1000 services, created up front.
    await parallel([...Array(SERVICES).keys()], (s) =>
      kubeRequestOk(kc, {
        method: 'POST',
        path: `/api/v1/namespaces/bench-${s % NAMESPACES}/services`,
        body: {
          metadata: { name: `svc-${s}` },
          spec: { selector: { svc: `svc-${s}` }, ports: [{ name: 'http', port: 80, targetPort: 8080 }] },
        },
      }),
    );
    // The ztunnel pod identity used by both the real ztunnel and the in-process client.
    const zpod = (await kubeRequestOk(kc, {
      method: 'POST',
      path: '/api/v1/namespaces/istio-system/pods',
      body: {
        metadata: { name: 'ztunnel-node-0', labels: { app: 'ztunnel' } },
        spec: { nodeName: 'node-0', serviceAccountName: 'ztunnel', containers: [{ name: 'z', image: 'x' }] },
      },
    })) as { metadata: { uid: string } };
    const { token } = await api.createServiceAccountToken('istio-system', 'ztunnel', {
      audiences: ['istio-ca'],
      boundPod: { name: 'ztunnel-node-0', uid: zpod.metadata.uid },
      expirationSeconds: 3600,
    });
    const tokenPath = join(dir, 'token');
    writeFileSync(tokenPath, token);

    const grpcPort = await freePort();
    const httpPort = await freePort();
    controller = spawn(process.execPath, [PROGRAMS.controller, '--kubeconfig', api.kubeconfigPath], {
      env: childEnv({
        LOG_LEVEL: 'warn',
        SECURE_GRPC_ADDR: `127.0.0.1:${grpcPort}`,
        HTTP_ADDR: `127.0.0.1:${httpPort}`,
        MONITORING_ADDR: `127.0.0.1:${await freePort()}`,
        POD_NAMESPACE: 'istio-system',
      }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    controller.stdout?.on('data', (c: Buffer) => (out = (out + c.toString()).slice(-20_000)));
    controller.stderr?.on('data', (c: Buffer) => (out = (out + c.toString()).slice(-20_000)));
    const core = await (async () => {
      for (let i = 0; i < 200; i++) {
        const cm = await kubeRequestOk(kc, { method: 'GET', path: '/api/v1/namespaces/istio-system/configmaps/istio-ca-root-cert' }).catch(
          () => undefined,
        );
        if (cm) return cm as { data: Record<string, string> };
        if (controller?.exitCode !== null) throw new Error(`controller exited: ${out}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`controller did not publish its root: ${out}`);
    })();
    const rootCertPem = core.data['root-cert.pem'] ?? '';
    const rootPath = join(dir, 'root-cert.pem');
    writeFileSync(rootPath, rootCertPem);
    const address = `127.0.0.1:${grpcPort}`;

    let created = 0;
    const addPods = async (upTo: number): Promise<void> => {
      const indexes = [...Array(upTo - created).keys()].map((k) => k + created);
      await parallel(indexes, async (i) => {
        const ns = nsOf(i);
        await kubeRequestOk(kc, {
          method: 'POST',
          path: `/api/v1/namespaces/${ns}/pods`,
          body: {
            metadata: { name: `pod-${i}`, labels: { svc: `svc-${svcOf(i)}` } },
            spec: { nodeName: `node-${i % NODES}`, containers: [{ name: 'app', image: 'x' }] },
          },
        });
        await kubeRequestOk(kc, {
          method: 'PATCH',
          path: `/api/v1/namespaces/${ns}/pods/pod-${i}/status`,
          contentType: 'application/merge-patch+json',
          body: {
            status: {
              phase: 'Running',
              podIP: podIp(i),
              podIPs: [{ ip: podIp(i) }],
              hostIP: '172.30.0.1',
              conditions: [{ type: 'Ready', status: 'True' }],
            },
          },
        });
      });
      created = upTo;
      // EndpointSlices: every service lists its pods (server-side apply: create or replace).
      await parallel([...Array(SERVICES).keys()], (s) => {
        const pods = [...Array(created).keys()].filter((i) => svcOf(i) === s);
        return kubeRequestOk(kc, {
          method: 'PATCH',
          path: `/apis/discovery.k8s.io/v1/namespaces/bench-${s % NAMESPACES}/endpointslices/svc-${s}?fieldManager=bench&force=true`,
          contentType: 'application/apply-patch+yaml',
          body: {
            apiVersion: 'discovery.k8s.io/v1',
            kind: 'EndpointSlice',
            addressType: 'IPv4',
            metadata: { name: `svc-${s}`, namespace: `bench-${s % NAMESPACES}`, labels: { 'kubernetes.io/service-name': `svc-${s}` } },
            ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
            endpoints: pods.map((i) => ({
              addresses: [podIp(i)],
              conditions: { ready: true },
              nodeName: `node-${i % NODES}`,
              targetRef: { kind: 'Pod', namespace: nsOf(i), name: `pod-${i}` },
            })),
          },
        });
      });
    };

    for (const scale of SCALES) {
      const t0 = Date.now();
      await addPods(scale);
      const populateS = (Date.now() - t0) / 1000;

      // Full push to a newly connected ztunnel view.
      const view = new ZtunnelView(address, rootCertPem, tokenPath, 'node-0');
      const tc = performance.now();
      view.client.start();
      await view.until(
        () =>
          [...view.store.workloads()].filter((w) => w.namespace.startsWith('bench-') && w.workloadIps.length > 0).length >= scale &&
          view.store.counts.services >= SERVICES,
      );
      const fullPushMs = performance.now() - tc;
      const fullPushBytes = view.bytes;
      const fullPushResources = view.resources;

      // A real ztunnel: start → ready (synced with the controller), and its memory once synced.
      const [zAdmin, zReady, zStats] = [await freePort(), await freePort(), await freePort()];
      const zt0 = performance.now();
      const z = spawn(process.execPath, [PROGRAMS.ztunnel], {
        env: childEnv({
          LOG_LEVEL: 'warn',
          XDS_ADDRESS: address,
          XDS_ROOT_CA: rootPath,
          ALT_XDS_HOSTNAME: 'istiod.istio-system.svc',
          AUTH_TOKEN: tokenPath,
          INPOD_ENABLED: 'false',
          NODE_NAME: 'node-0',
          POD_NAME: 'ztunnel-node-0',
          POD_NAMESPACE: 'istio-system',
          ZTUNNEL_ADMIN_ADDRESS: `127.0.0.1:${zAdmin}`,
          ZTUNNEL_READINESS_ADDRESS: `127.0.0.1:${zReady}`,
          ZTUNNEL_STATS_ADDRESS: `127.0.0.1:${zStats}`,
        }),
        stdio: 'ignore',
      });
      let ztunnelReadyMs = NaN;
      let ztunnelRss = 0;
      try {
        for (let i = 0; i < 1200 && z.exitCode === null; i++) {
          if ((await httpStatus(zReady, '/healthz/ready')) === 200) {
            ztunnelReadyMs = performance.now() - zt0;
            break;
          }
          await new Promise((r) => setTimeout(r, 50));
        }
        await new Promise((r) => setTimeout(r, 500));
        ztunnelRss = rssBytes(z.pid as number);
      } finally {
        z.kill('SIGKILL');
      }

      // write → applied latencies.
      const podLatency: number[] = [];
      for (let k = 0; k < CHANGES; k++) {
        const i = 100_000 + scale + k;
        const ns = nsOf(i);
        // A fresh range per phase: earlier phases' probe pods still exist.
        const ip = `10.${201 + SCALES.indexOf(scale)}.${Math.floor(k / 250)}.${(k % 250) + 2}`;
        const start = performance.now();
        await kubeRequestOk(kc, {
          method: 'POST',
          path: `/api/v1/namespaces/${ns}/pods`,
          body: { metadata: { name: `probe-${scale}-${k}` }, spec: { nodeName: 'node-1', containers: [{ name: 'app', image: 'x' }] } },
        });
        await kubeRequestOk(kc, {
          method: 'PATCH',
          path: `/api/v1/namespaces/${ns}/pods/probe-${scale}-${k}/status`,
          contentType: 'application/merge-patch+json',
          body: {
            status: {
              phase: 'Running',
              podIP: ip,
              podIPs: [{ ip }],
              hostIP: '172.30.0.1',
              conditions: [{ type: 'Ready', status: 'True' }],
            },
          },
        });
        const applied = await view.until(() => view.store.workloadByIp('', ip) !== undefined);
        podLatency.push(applied - start);
      }
      const policyLatency: number[] = [];
      for (let k = 0; k < CHANGES; k++) {
        const port = 1000 + k;
        const start = performance.now();
        await kubeRequestOk(kc, {
          method: 'PATCH',
          path: '/apis/security.istio.io/v1/namespaces/bench-0/authorizationpolicies/bench-policy?fieldManager=bench&force=true',
          contentType: 'application/apply-patch+yaml',
          body: {
            apiVersion: 'security.istio.io/v1',
            kind: 'AuthorizationPolicy',
            metadata: { name: 'bench-policy', namespace: 'bench-0' },
            spec: { action: 'DENY', rules: [{ to: [{ operation: { ports: [String(port)] } }] }] },
          },
        });
        const applied = await view.until(() => view.store.policy('bench-0/bench-policy')?.rules[0]?.[0]?.[0]?.destinationPorts[0] === port);
        policyLatency.push(applied - start);
      }
      view.client.close();
      podLatency.sort((a, b) => a - b);
      policyLatency.sort((a, b) => a - b);
      const cpid = controller.pid as number;
      results.push({
        pods: scale,
        services: SERVICES,
        populateSeconds: populateS,
        podAddedMs: { p50: percentile(podLatency, 50), p99: percentile(podLatency, 99) },
        policyChangedMs: { p50: percentile(policyLatency, 50), p99: percentile(policyLatency, 99) },
        fullPush: { ms: fullPushMs, bytes: fullPushBytes, resources: fullPushResources },
        ztunnel: { startToReadyMs: ztunnelReadyMs, rssBytes: ztunnelRss },
        controllerRssBytes: rssBytes(cpid),
        controllerCpuSeconds: cpuSeconds(cpid),
      });
    }

    const rows: Row[] = results.map((r) => {
      const x = r as {
        pods: number;
        podAddedMs: { p50: number; p99: number };
        policyChangedMs: { p50: number; p99: number };
        fullPush: { ms: number; bytes: number; resources: number };
        ztunnel: { startToReadyMs: number; rssBytes: number };
        controllerRssBytes: number;
      };
      return {
        pods: x.pods,
        services: SERVICES,
        'pod added → applied p50/p99 ms': `${x.podAddedMs.p50.toFixed(1)} / ${x.podAddedMs.p99.toFixed(1)}`,
        'policy changed → applied p50/p99 ms': `${x.policyChangedMs.p50.toFixed(1)} / ${x.policyChangedMs.p99.toFixed(1)}`,
        'full push ms': Math.round(x.fullPush.ms),
        'full push MiB (resources)': `${mib(x.fullPush.bytes)} (${x.fullPush.resources})`,
        'ztunnel start → ready ms, RSS MiB': `${Math.round(x.ztunnel.startToReadyMs)}, ${mib(x.ztunnel.rssBytes)}`,
        'controller RSS MiB': mib(x.controllerRssBytes),
      };
    });
    printTable(`controller on kube-apiserver (${CHANGES} changes per measure; debounce 100 ms)`, rows);
    console.log(`results: ${writeResults('controller', { changes: CHANGES, results })}`);
  } finally {
    controller?.kill('SIGKILL');
    await api.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(`bench:controller failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
