/**
 * A local ambient mesh on fake nodes: the fake-node cluster (testbed/fakenode) plus, on every node, the node agent
 * (`mesh-cni-agent`) and a ztunnel, both running in the node's network namespace; pods created through the
 * CNI chain bridge → host-local → loopback → `mesh-cni`; and the mesh state every ztunnel reads from one
 * local-config file (LOCAL_XDS_PATH), written here as workloads, services and policies are added.
 *
 * Used by the fake-node tests, the local-mesh program (the README's run command) and the ztunnel benchmark.
 */
import { rename, writeFile, mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { CertificateAuthority } from '../lib/identity/ca.js';
import { type Cluster, type FakeNode, type NsProcess, type Pod, createCluster } from '../testbed/fakenode/index.js';
import { toLocalConfigYaml } from '../ztunnel/config/local-config.js';
import {
  EMPTY_RBAC_MATCH,
  workloadWithDefaults,
  type Authorization,
  type PortMap,
  type Service,
  type Workload,
} from '../ztunnel/state/model.js';
import { NodeRuntime, poll, type ConfigDumpView } from './node-runtime.js';

export { PROGRAMS, type ConfigDumpView } from './node-runtime.js';

export interface MeshClusterOptions {
  readonly name: string;
  readonly nodes: number;
  /** Namespaces whose pods join the mesh (stands in for the `istio.io/dataplane-mode=ambient` label). */
  readonly ambientNamespaces: readonly string[];
  readonly trustDomain?: string;
  /** LOG_LEVEL of ztunnels and agents (default warn; access logs are info). */
  readonly logLevel?: string;
  readonly ztunnelEnv?: Readonly<Record<string, string>>;
  readonly hostLink?: boolean;
}

export interface MeshPodOptions {
  readonly namespace: string;
  readonly name: string;
  readonly serviceAccount?: string;
  /** `app` and `version` labels: canonical service name and revision. */
  readonly app?: string;
  readonly version?: string;
  /**
   * Runs once the pod's workload is published, right before the kubelet's CNI ADD: lets a test act while the
   * add is in flight (e.g. pause ztunnel so the agent's AddWorkload stays unanswered, then restart the agent).
   */
  readonly beforeSandbox?: () => void | Promise<void>;
}

export interface MeshServiceOptions {
  readonly namespace: string;
  readonly name: string;
  readonly vip: string;
  /** servicePort → targetPort */
  readonly ports: PortMap;
  readonly endpoints: readonly Pod[];
}

/** What istiod sends for PeerAuthentication STRICT (istio pilot/pkg/serviceregistry/ambient/policies.go). */
export const STRICT_POLICY: Authorization = {
  name: 'istio_converted_static_strict',
  namespace: 'istio-system',
  scope: 'WorkloadSelector',
  action: 'Deny',
  dryRun: false,
  rules: [[[{ ...EMPTY_RBAC_MATCH, notPrincipals: [{ kind: 'presence' }] }]]],
};

export class MeshCluster {
  readonly cluster: Cluster;
  readonly configPath: string;
  readonly caDir: string;
  readonly trustDomain: string;
  readonly #opts: MeshClusterOptions;
  readonly #runtimes = new Map<number, NodeRuntime>();
  readonly #workloads = new Map<string, Workload>();
  readonly #services = new Map<string, Service>();
  #policies: Authorization[] = [];
  #generation = 0;
  #writes: Promise<void> = Promise.resolve();

  private constructor(cluster: Cluster, opts: MeshClusterOptions) {
    this.cluster = cluster;
    this.#opts = opts;
    this.trustDomain = opts.trustDomain ?? 'cluster.local';
    this.configPath = join(cluster.stateDir, 'mesh', 'local-config.yaml');
    this.caDir = join(cluster.stateDir, 'mesh', 'ca');
  }

  static async start(opts: MeshClusterOptions): Promise<MeshCluster> {
    const cluster = await createCluster({ name: opts.name, nodes: opts.nodes, ...(opts.hostLink ? { hostLink: true } : {}) });
    const mesh = new MeshCluster(cluster, opts);
    try {
      await mkdir(dirname(mesh.configPath), { recursive: true });
      // One root for every node's fake CA, or the ztunnels could not verify each other.
      await CertificateAuthority.writeSelfSignedDirectory(mesh.caDir, { trustDomain: mesh.trustDomain });
      await mesh.#writeConfig();
      await Promise.all(cluster.nodes.map((n) => mesh.#startNode(n)));
      return mesh;
    } catch (err) {
      await cluster.destroy();
      throw err;
    }
  }

  node(which: number | string): FakeNode {
    return this.cluster.node(which);
  }

  /** The agent and ztunnel of a node. */
  runtime(node: FakeNode): NodeRuntime {
    const r = this.#runtimes.get(node.index);
    if (!r) throw new Error(`no mesh runtime on ${node.name}`);
    return r;
  }

  ztunnelProcess(node: FakeNode): NsProcess {
    return this.runtime(node).ztunnel;
  }

  /**
   * Creates a pod the way Kubernetes does: the pod object (here: its workload, with its service account) exists
   * first, then the kubelet makes the sandbox through the CNI chain (mesh-cni last), then the pod IP is
   * published. ztunnel needs the workload to pick the pod's identity, so this order matters.
   */
  async addPod(node: FakeNode, opts: MeshPodOptions): Promise<Pod> {
    const key = `${opts.namespace}/${opts.name}`;
    const inMesh = this.isAmbient(opts.namespace);
    const app = opts.app ?? opts.name;
    this.#workloads.set(
      key,
      workloadWithDefaults({
        name: opts.name,
        namespace: opts.namespace,
        protocol: inMesh ? 'HBONE' : 'TCP',
        trustDomain: this.trustDomain,
        serviceAccount: opts.serviceAccount ?? 'default',
        node: node.name,
        canonicalName: app,
        canonicalRevision: opts.version ?? 'latest',
        workloadName: app,
      }),
    );
    await this.apply();
    let pod: Pod;
    try {
      await opts.beforeSandbox?.();
      pod = await this.cluster.createPod(node, {
        namespace: opts.namespace,
        name: opts.name,
        ...(opts.serviceAccount ? { serviceAccount: opts.serviceAccount } : {}),
        chainPlugins: [this.runtime(node).meshCniPlugin()],
      });
    } catch (err) {
      this.#workloads.delete(key);
      await this.apply();
      throw err;
    }
    const w = this.#workloads.get(key) as Workload;
    this.#workloads.set(key, { ...w, workloadIps: [pod.ip] });
    await this.apply();
    if (inMesh) await this.runtime(node).waitForPodProxy(pod);
    return pod;
  }

  isAmbient(namespace: string): boolean {
    return this.#opts.ambientNamespaces.includes('*') || this.#opts.ambientNamespaces.includes(namespace);
  }

  workloadOf(pod: Pod): Workload {
    const w = this.#workloads.get(`${pod.namespace}/${pod.name}`);
    if (!w) throw new Error(`pod ${pod.namespace}/${pod.name} is not in the mesh state`);
    return w;
  }

  /** A Service with a VIP whose endpoints are the given pods (the EndpointSlice). */
  async addService(opts: MeshServiceOptions): Promise<Service> {
    const hostname = `${opts.name}.${opts.namespace}.svc.cluster.local`;
    const key = `${opts.namespace}/${hostname}`;
    const svc: Service = {
      name: opts.name,
      namespace: opts.namespace,
      hostname,
      vips: [{ network: '', address: opts.vip }],
      ports: opts.ports,
      subjectAltNames: [],
      waypoint: undefined,
      loadBalancer: undefined,
      ipFamilies: 'IPv4',
      canonical: true,
      visibility: 'Public',
    };
    this.#services.set(key, svc);
    for (const pod of opts.endpoints) {
      const w = this.workloadOf(pod);
      this.#workloads.set(`${pod.namespace}/${pod.name}`, { ...w, services: { ...w.services, [key]: opts.ports } });
    }
    await this.apply();
    return svc;
  }

  async setPolicies(policies: readonly Authorization[]): Promise<void> {
    this.#policies = [...policies];
    await this.apply();
  }

  /**
   * PeerAuthentication STRICT for the namespaces given, as istiod delivers it to ztunnel: the static policy
   * istio-system/istio_converted_static_strict (DENY when the peer has no principal), listed on each workload
   * of those namespaces. An empty list turns it off.
   */
  async setStrict(namespaces: readonly string[]): Promise<void> {
    const key = `${STRICT_POLICY.namespace}/${STRICT_POLICY.name}`;
    for (const [podKey, w] of this.#workloads) {
      const others = w.authorizationPolicies.filter((k) => k !== key);
      const strict = w.protocol === 'HBONE' && namespaces.includes(w.namespace);
      this.#workloads.set(podKey, { ...w, authorizationPolicies: strict ? [...others, key] : others });
    }
    this.#policies = [
      ...this.#policies.filter((p) => `${p.namespace}/${p.name}` !== key),
      ...(namespaces.length > 0 ? [STRICT_POLICY] : []),
    ];
    await this.apply();
  }

  /** Writes the state and waits until every ztunnel serves it. */
  async apply(): Promise<void> {
    await this.#writeConfig();
    await Promise.all(this.cluster.nodes.map((n) => this.#waitForState(n)));
  }

  async deletePod(pod: Pod): Promise<void> {
    await this.cluster.deletePod(pod);
    // Its workload record carries its service memberships, so the endpoints go with it.
    this.#workloads.delete(`${pod.namespace}/${pod.name}`);
    await this.apply();
  }

  /** Kills a node's ztunnel (SIGKILL: no drain) or stops it (SIGTERM), then starts a new one. */
  restartZtunnel(node: FakeNode, how: 'kill' | 'stop' = 'stop'): Promise<void> {
    return this.runtime(node).restartZtunnel(how);
  }

  /**
   * Stops a node's agent (SIGTERM, or SIGKILL: a crash), starts a new one, and waits until that node's ztunnel
   * has applied the new agent's snapshot.
   */
  restartAgent(node: FakeNode, how: 'kill' | 'stop' = 'stop'): Promise<void> {
    return this.runtime(node).restartAgent(how);
  }

  configDump(node: FakeNode): Promise<ConfigDumpView> {
    return this.runtime(node).configDump();
  }

  metrics(node: FakeNode): Promise<string> {
    return this.runtime(node).metrics();
  }

  waitForPodProxy(node: FakeNode, pod: Pod): Promise<void> {
    return this.runtime(node).waitForPodProxy(pod);
  }

  async destroy(): Promise<void> {
    for (const r of this.#runtimes.values()) await r.stop();
    await this.cluster.destroy();
  }

  async #startNode(node: FakeNode): Promise<void> {
    const runtime = new NodeRuntime(node, {
      logLevel: this.#opts.logLevel ?? 'warn',
      agentEnv: { ENROLLMENT: 'static', AMBIENT_NAMESPACES: this.#opts.ambientNamespaces.join(',') },
      ztunnelEnv: {
        LOCAL_XDS_PATH: this.configPath,
        XDS_ADDRESS: '',
        FAKE_CA: 'true',
        FAKE_CA_DIR: this.caDir,
        TRUST_DOMAIN: this.trustDomain,
        ...(this.#opts.ztunnelEnv ?? {}),
      },
    });
    this.#runtimes.set(node.index, runtime);
    await runtime.start();
  }

  /**
   * Writes the current state. Writes are serialized and each one serializes the state as it is when its turn
   * comes, so concurrent callers (pods added in parallel) can never leave an older snapshot on disk.
   */
  #writeConfig(): Promise<void> {
    this.#writes = this.#writes.then(async () => {
      this.#generation++;
      const yaml = toLocalConfigYaml({
        workloads: [...this.#workloads.values()],
        services: [...this.#services.values()],
        policies: this.#policies,
      });
      // Write then rename, so a ztunnel reloading mid-write never reads half a file.
      const tmp = `${this.configPath}.${this.#generation}.tmp`;
      await writeFile(tmp, yaml);
      await rename(tmp, this.configPath);
    });
    return this.#writes;
  }

  async #waitForState(node: FakeNode): Promise<void> {
    let differs = '';
    await poll(
      `ztunnel on ${node.name} applied the local config`,
      async () => {
        // The state as it is now: concurrent callers all wait for the newest write, not the one they started.
        const want = {
          workloads: [...this.#workloads.values()]
            .map((w) => `${w.uid}=${w.workloadIps.join(',')}=${Object.keys(w.services).sort().join(',')}`)
            .sort()
            .join('|'),
          services: [...this.#services.keys()].sort().join('|'),
          policies: this.#policies
            .map((p) => `${p.namespace}/${p.name}=${JSON.stringify(p.rules)}`)
            .sort()
            .join('|'),
        };
        const d = await this.runtime(node).configDump();
        const got = {
          workloads: d.workloads
            .map((w) => `${w.uid}=${w.workloadIps.join(',')}=${Object.keys(w.services).sort().join(',')}`)
            .sort()
            .join('|'),
          services: d.services
            .map((s) => `${s.namespace}/${s.hostname}`)
            .sort()
            .join('|'),
          policies: d.policies
            .map((p) => `${p.namespace}/${p.name}=${JSON.stringify(p.rules)}`)
            .sort()
            .join('|'),
        };
        differs = (['workloads', 'services', 'policies'] as const)
          .filter((k) => got[k] !== want[k])
          .map((k) => `${k}: has [${got[k]}], want [${want[k]}]`)
          .join('; ');
        return differs === '';
      },
      () => differs,
    );
  }
}
