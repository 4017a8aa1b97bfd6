/**
 * The mesh with its control plane: a real kube-apiserver (testbed/kubeapi), the controller as a process, and fake
 * nodes whose ztunnels get their state over xDS and their certificates from the controller's CA, and whose
 * node agents enroll pods from Kubernetes labels. Pods exist twice, as in a real cluster: an API object (the
 * source of truth for the controller) and a sandbox on a fake node (its network); the fixture keeps the two
 * together (same uid; status written back as a kubelet would).
 *
 * Used by the Kubernetes test tier and the controller benchmark.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import { CoreV1Api } from '@kubernetes/client-node';
import { type Cluster, type FakeNode, type Pod, createCluster } from '../testbed/fakenode/index.js';
import {
  applyManifest,
  createNamespace,
  createNode,
  createPod,
  createServiceAccount,
  installCrds,
  setPodStatus,
  startApiServer,
  type ApiServer,
} from '../testbed/kubeapi/index.js';
import { NodeRuntime, PROGRAMS, poll } from './node-runtime.js';
import { childEnv } from '../testbed/env.js';

export const SYSTEM_NAMESPACE = 'istio-system';
const CONTROLLER_SAN = 'istiod.istio-system.svc';

export interface KubeMeshOptions {
  readonly name: string;
  readonly nodes: number;
  readonly logLevel?: string;
  /** Extra controller environment (debounce, ...). */
  readonly controllerEnv?: Readonly<Record<string, string>>;
}

export interface ControllerProcess {
  readonly index: number;
  readonly child: ChildProcess;
  readonly grpcPort: number;
  readonly httpPort: number;
  readonly monitoringPort: number;
  output(): string;
}

export interface KubePodOptions {
  readonly namespace: string;
  readonly name: string;
  readonly serviceAccount?: string;
  readonly labels?: Readonly<Record<string, string>>;
  /** Wait until the node's ztunnel runs the pod's proxy (default: when its namespace is labelled ambient). */
  readonly expectProxy?: boolean;
}

export class KubeMesh {
  readonly api: ApiServer;
  readonly cluster: Cluster;
  readonly #opts: KubeMeshOptions;
  readonly #runtimes = new Map<number, NodeRuntime>();
  readonly #controllers = new Map<number, ControllerProcess>();
  readonly #dir: string;
  #rootCertPath = '';
  readonly #nodeKubeconfig: string;

  private constructor(api: ApiServer, cluster: Cluster, opts: KubeMeshOptions) {
    this.api = api;
    this.cluster = cluster;
    this.#opts = opts;
    this.#dir = join(cluster.stateDir, 'kube-mesh');
    this.#nodeKubeconfig = join(this.#dir, 'node-kubeconfig');
  }

  static async start(opts: KubeMeshOptions): Promise<KubeMesh> {
    // hostLink: the API server and the controller run in the host namespace; programs on the nodes (ztunnels,
    // node agents) reach them at the host end of the cluster's link, as nodes reach a control plane.
    const cluster = await createCluster({ name: opts.name, nodes: opts.nodes, hostLink: true });
    let api: ApiServer;
    try {
      api = await startApiServer({ name: opts.name, extraAddresses: [cluster.hostIp as string] });
    } catch (err) {
      await cluster.destroy().catch(() => undefined);
      throw err;
    }
    try {
      await installCrds(api.kubeConfig);
      const mesh = new KubeMesh(api, cluster, opts);
      try {
        await mesh.#bootstrap();
      } catch (err) {
        await mesh.destroy();
        throw err;
      }
      return mesh;
    } catch (err) {
      await cluster.destroy().catch(() => undefined);
      await api.stop();
      throw err;
    }
  }

  get kc() {
    return this.api.kubeConfig;
  }

  node(which: number | string): FakeNode {
    return this.cluster.node(which);
  }

  runtime(node: FakeNode): NodeRuntime {
    const r = this.#runtimes.get(node.index);
    if (!r) throw new Error(`no mesh runtime on ${node.name}`);
    return r;
  }

  controller(index = 0): ControllerProcess {
    const c = this.#controllers.get(index);
    if (!c) throw new Error(`no controller replica ${index}`);
    return c;
  }

  /** The controller's root certificate, as published in ConfigMap istio-ca-root-cert. */
  get rootCertPath(): string {
    return this.#rootCertPath;
  }

  /** Address ztunnels dial: the host end of the fake cluster's link. */
  get controllerAddress(): string {
    return `${this.cluster.hostIp}:${this.controller(0).grpcPort}`;
  }

  async #bootstrap(): Promise<void> {
    await mkdir(this.#dir, { recursive: true });
    const kc = this.kc;
    await createNamespace(kc, SYSTEM_NAMESPACE);
    await createServiceAccount(kc, SYSTEM_NAMESPACE, 'ztunnel');
    for (const node of this.cluster.nodes) await createNode(kc, node.name, { internalIP: node.ip });
    await this.startController(0);
    // The root certificate reaches ztunnels the way it does in a cluster: the ConfigMap the leader publishes.
    const core = kc.makeApiClient(CoreV1Api);
    let root = '';
    await poll('ConfigMap istio-ca-root-cert in istio-system', async () => {
      const cm = await core.readNamespacedConfigMap({ name: 'istio-ca-root-cert', namespace: SYSTEM_NAMESPACE }).catch(() => undefined);
      root = cm?.data?.['root-cert.pem'] ?? '';
      return root !== '';
    });
    this.#rootCertPath = join(this.#dir, 'root-cert.pem');
    await writeFile(this.#rootCertPath, root);
    // The same credentials, pointed at the address nodes can reach.
    const kubeconfig = await readFile(this.api.kubeconfigPath, 'utf8');
    await writeFile(
      this.#nodeKubeconfig,
      kubeconfig.replace(/server: https:\/\/127\.0\.0\.1:/g, `server: https://${this.cluster.hostIp}:`),
      { mode: 0o600 },
    );
    await Promise.all(this.cluster.nodes.map((n) => this.#startNode(n)));
  }

  /** Starts controller replica `index` (ports 15012/8080/15014 shifted by 100 per replica) and waits for /ready. */
  async startController(index: number): Promise<ControllerProcess> {
    const shift = index * 100;
    const grpcPort = 15012 + shift;
    const httpPort = 8080 + shift;
    const monitoringPort = 15014 + shift;
    let out = '';
    const child = spawn(process.execPath, [PROGRAMS.controller, '--kubeconfig', this.api.kubeconfigPath], {
      env: childEnv({
        POD_NAMESPACE: SYSTEM_NAMESPACE,
        POD_NAME: `controller-${index}`,
        SECURE_GRPC_ADDR: `0.0.0.0:${grpcPort}`,
        HTTP_ADDR: `0.0.0.0:${httpPort}`,
        MONITORING_ADDR: `0.0.0.0:${monitoringPort}`,
        LOG_LEVEL: this.#opts.logLevel ?? 'warn',
        ...(this.#opts.controllerEnv ?? {}),
      }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout?.on('data', (c: Buffer) => (out = (out + c.toString()).slice(-200_000)));
    child.stderr?.on('data', (c: Buffer) => (out = (out + c.toString()).slice(-200_000)));
    const proc: ControllerProcess = { index, child, grpcPort, httpPort, monitoringPort, output: () => out };
    this.#controllers.set(index, proc);
    await poll(`controller ${index} ready`, async () => {
      if (child.exitCode !== null) throw new Error(`controller ${index} exited with ${child.exitCode}: ${out.slice(-2000)}`);
      return (await this.controllerGet(index, '/ready')).status === 200;
    });
    return proc;
  }

  /** SIGKILL (a crash) or SIGTERM (releases the lease). */
  async stopController(index: number, signal: 'SIGKILL' | 'SIGTERM' = 'SIGTERM'): Promise<void> {
    const c = this.#controllers.get(index);
    if (!c) return;
    this.#controllers.delete(index);
    if (c.child.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => c.child.once('exit', () => resolve()));
    c.child.kill(signal);
    await exited;
  }

  controllerGet(index: number, path: string): Promise<{ status: number; body: string }> {
    const c = this.controller(index);
    return new Promise((resolve) => {
      const req = request({ host: '127.0.0.1', port: c.httpPort, path, timeout: 5000 }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', () => resolve({ status: 0, body: '' }));
      req.end();
    });
  }

  async #startNode(node: FakeNode): Promise<void> {
    // ztunnel's identity: its ServiceAccount token bound to a ztunnel pod on this node (what a DaemonSet pod gets).
    const podName = `ztunnel-${node.name}`;
    const pod = await createPod(this.kc, {
      namespace: SYSTEM_NAMESPACE,
      name: podName,
      serviceAccountName: 'ztunnel',
      nodeName: node.name,
      labels: { app: 'ztunnel', 'istio.io/dataplane-mode': 'none' },
    });
    await setPodStatus(this.kc, SYSTEM_NAMESPACE, podName, { podIP: node.ip, hostIP: node.ip });
    const { token } = await this.api.createServiceAccountToken(SYSTEM_NAMESPACE, 'ztunnel', {
      audiences: ['istio-ca'],
      boundPod: { name: podName, uid: String((pod.metadata as { uid?: string } | undefined)?.uid ?? '') },
      expirationSeconds: 24 * 3600,
    });
    const tokenPath = this.ztunnelTokenPath(node);
    await writeFile(tokenPath, token, { mode: 0o600 });
    const runtime = new NodeRuntime(node, {
      logLevel: this.#opts.logLevel ?? 'warn',
      agentEnv: { ENROLLMENT: 'kubernetes', KUBECONFIG: this.#nodeKubeconfig, POD_NAMESPACE: SYSTEM_NAMESPACE },
      ztunnelEnv: {
        XDS_ADDRESS: `https://${this.controllerAddress}`,
        CA_ADDRESS: `https://${this.controllerAddress}`,
        XDS_ROOT_CA: this.#rootCertPath,
        ALT_XDS_HOSTNAME: CONTROLLER_SAN,
        AUTH_TOKEN: tokenPath,
        POD_NAME: podName,
      },
    });
    this.#runtimes.set(node.index, runtime);
    await runtime.start();
  }

  /** The pod-bound ServiceAccount token (audience istio-ca) a node's ztunnel authenticates with. */
  ztunnelTokenPath(node: FakeNode): string {
    return join(this.#dir, `${node.name}-istio-token`);
  }

  /** A namespace, with `istio.io/dataplane-mode=ambient` when `ambient`. */
  async addNamespace(name: string, ambient: boolean, serviceAccounts: readonly string[] = []): Promise<void> {
    await createNamespace(this.kc, name, ambient ? { labels: { 'istio.io/dataplane-mode': 'ambient' } } : {});
    for (const sa of serviceAccounts) await createServiceAccount(this.kc, name, sa);
  }

  /**
   * A pod: the API object (scheduled to `node`), then its sandbox through the CNI chain with the object's uid,
   * then its status (podIP, hostIP, Running, Ready) written back as the kubelet would.
   */
  async addPod(node: FakeNode, opts: KubePodOptions): Promise<Pod> {
    const obj = await createPod(this.kc, {
      namespace: opts.namespace,
      name: opts.name,
      nodeName: node.name,
      ...(opts.serviceAccount ? { serviceAccountName: opts.serviceAccount } : {}),
      labels: { app: opts.name, ...(opts.labels ?? {}) },
    });
    const uid = String((obj.metadata as { uid?: string } | undefined)?.uid ?? '');
    const pod = await this.cluster.createPod(node, {
      namespace: opts.namespace,
      name: opts.name,
      uid,
      ...(opts.serviceAccount ? { serviceAccount: opts.serviceAccount } : {}),
      chainPlugins: [this.runtime(node).meshCniPlugin()],
    });
    await setPodStatus(this.kc, opts.namespace, opts.name, { podIP: pod.ip, hostIP: node.ip });
    if (opts.expectProxy) await this.runtime(node).waitForPodProxy(pod);
    return pod;
  }

  /** A ClusterIP Service and its EndpointSlice listing `endpoints` (there is no endpoints controller here). */
  async addService(opts: {
    namespace: string;
    name: string;
    clusterIP: string;
    port: number;
    targetPort: number;
    endpoints: readonly { pod: Pod; node: FakeNode }[];
  }): Promise<void> {
    await applyManifest(this.kc, [
      {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: opts.name, namespace: opts.namespace },
        spec: {
          clusterIP: opts.clusterIP,
          ports: [{ name: 'http', port: opts.port, targetPort: opts.targetPort, protocol: 'TCP' }],
          selector: { app: opts.name },
        },
      },
      {
        apiVersion: 'discovery.k8s.io/v1',
        kind: 'EndpointSlice',
        metadata: { name: `${opts.name}-slice`, namespace: opts.namespace, labels: { 'kubernetes.io/service-name': opts.name } },
        addressType: 'IPv4',
        ports: [{ name: 'http', port: opts.targetPort, protocol: 'TCP' }],
        endpoints: opts.endpoints.map(({ pod, node }) => ({
          addresses: [pod.ip],
          conditions: { ready: true },
          nodeName: node.name,
          targetRef: { kind: 'Pod', namespace: pod.namespace, name: pod.name, uid: pod.uid },
        })),
      },
    ]);
  }

  async destroy(): Promise<void> {
    for (const r of this.#runtimes.values()) await r.stop();
    for (const i of [...this.#controllers.keys()]) await this.stopController(i);
    await this.cluster.destroy().catch(() => undefined);
    await this.api.stop();
  }
}
