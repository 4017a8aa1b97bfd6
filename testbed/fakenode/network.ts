/**
 * The cluster network: a "switch" namespace holding a Linux bridge, and one namespace per node joined to it
 * by a veth pair. Each node forwards IPv4, owns a /24 pod CIDR (served to its pods by the bridge CNI plugin
 * on cni0) and routes every other node's pod CIDR via that node's address, so pod-to-pod traffic across
 * nodes is routed by the node namespaces and crosses the switch, where it can be captured.
 *
 *   host netns                 fn-<name>.switch             fn-<name>.node-<i>          fn-<name>.pod.<ns>.<pod>
 *   [fnhXXXXXXXX 172.30.0.254]─[host]┐                                                  (created by bridge CNI)
 *    (only with hostLink)            br0 ─[node-<i>]═══════[eth0 172.30.0.<i>/24]
 *                                                          cni0 10.244.<i>.1/24 ═══════[eth0 10.244.<i>.x/24]
 *                                                          route 10.244.<j>.0/24 via 172.30.0.<j>
 */
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { componentLogger, type Logger } from '../../lib/telemetry/logger.js';
import { startCapture, type Capture, type CaptureOptions } from './capture.js';
import { FakeNodeError, FakeNodeErrorCode } from './errors.js';
import { findExecutable, requireTool, runChecked } from './exec.js';
import { DEFAULT_STATE_ROOT, planCluster, type ClusterPlan, type NodePlan } from './plan.js';
import {
  createPod,
  deletePod,
  ipamDir,
  loopbackNetworkList,
  podNetworkList,
  type ChainedPlugin,
  type Pod,
  type PodHost,
  type PodOptions,
} from './pod.js';
import { NetworkNamespace, type ClusterContext } from './process.js';
import { registerForExit, ResourceTracker, stopChildren, teardown, teardownSync, unregisterForExit } from './resources.js';
import { cleanupStale, writeOwner } from './stale.js';

export interface ClusterOptions {
  /** 1-40 lowercase letters, digits or '-'; every name made starts with `fn-<name>`. Include the pid to run in parallel. */
  readonly name: string;
  /** Number of nodes (1-200). */
  readonly nodes: number;
  /** Node i gets the i-th /24 of this as its pod CIDR. Default 10.244.0.0/16 (node 1: 10.244.1.0/24). */
  readonly podCidrBase?: string;
  /** The switch subnet: node i is .i, the host (hostLink) .254. Default 172.30.0.0/24. */
  readonly nodeSubnet?: string;
  /** Parent of the cluster's state directory (IPAM data, CNI cache, app files). Default /run/fakenode. */
  readonly stateRoot?: string;
  /** Where the reference CNI plugins are. Default /usr/lib/cni (Debian's containernetworking-plugins). */
  readonly cniBinDir?: string;
  /**
   * Also join the host namespace to the switch (host IP .254, routes to every pod CIDR), so processes in this
   * process's namespace (an in-process control plane) and pods can reach each other. Changes the host's
   * routing table: two clusters with hostLink and the same addresses cannot coexist.
   */
  readonly hostLink?: boolean;
  /** Plugins chained after bridge on every node until FakeNode.setChainedPlugins changes it. */
  readonly chainPlugins?: readonly ChainedPlugin[];
  /** Grace period between SIGTERM and SIGKILL when stopping processes. Default 2 s. */
  readonly stopGraceMs?: number;
  readonly logger?: Logger;
}

/**
 * Like Promise.all, but waits for every operation to settle before rejecting with the first error, so that
 * nothing is still being created (and registered) while createCluster's failure path tears down.
 */
async function settleAll(ops: readonly Promise<unknown>[]): Promise<void> {
  const results = await Promise.allSettled(ops);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed !== undefined) throw failed.reason;
}

/** A fake Kubernetes node: a network namespace with an uplink to the switch, a pod bridge and IPAM state. */
export class FakeNode extends NetworkNamespace implements PodHost {
  readonly cluster: Cluster;
  /** 1-based position in the cluster. */
  readonly index: number;
  /** The Kubernetes node name, e.g. "node-1". */
  readonly name: string;
  /** Address on the switch, e.g. "172.30.0.1". */
  readonly ip: string;
  /** e.g. "10.244.1.0/24". */
  readonly podCidr: string;
  /** The cni0 address pods route through, e.g. "10.244.1.1". */
  readonly podGateway: string;
  /** The uplink interface in this namespace (joined to the switch): "eth0". */
  readonly uplink: string;
  /** This node's state: <stateDir>/<node name>. */
  readonly stateDir: string;
  /** host-local's dataDir; it keeps one file per allocated IP under <ipamDataDir>/fakenode. */
  readonly ipamDataDir: string;
  /** The runtime's cache of CNI results (one JSON file per attachment). */
  readonly cniCacheDir: string;
  /** The node's CNI configuration directory, written for inspection (like /etc/cni/net.d). */
  readonly cniConfDir: string;
  readonly cniBinDir: string;
  private chain: readonly ChainedPlugin[];

  constructor(cluster: Cluster, ctx: ClusterContext, plan: NodePlan, cniBinDir: string, chain: readonly ChainedPlugin[]) {
    super(ctx, plan.netns);
    this.cluster = cluster;
    this.index = plan.index;
    this.name = plan.name;
    this.ip = plan.ip;
    this.podCidr = plan.podCidr;
    this.podGateway = plan.podGateway;
    this.uplink = plan.uplink;
    this.stateDir = join(ctx.stateDir, plan.name);
    this.ipamDataDir = join(this.stateDir, 'ipam');
    this.cniCacheDir = join(this.stateDir, 'cni-cache');
    this.cniConfDir = join(this.stateDir, 'net.d');
    this.cniBinDir = cniBinDir;
    this.chain = chain;
  }

  /** Plugins chained after bridge for pods created from now on without their own `chainPlugins`. */
  get defaultChain(): readonly ChainedPlugin[] {
    return this.chain;
  }

  /**
   * Changes the node's chained plugins, as a CNI installer (Istio's install-cni) edits the node's conflist.
   * Existing pods keep the configuration they were added with (their DEL uses it, CNI spec §3: "the network
   * configuration should not change between add and delete").
   */
  async setChainedPlugins(plugins: readonly ChainedPlugin[]): Promise<void> {
    this.chain = [...plugins];
    await this.writeCniConfig();
  }

  /** @internal writes the node's conflists (informational: pods are created from the in-memory config). */
  async writeCniConfig(): Promise<void> {
    await mkdir(this.cniConfDir, { recursive: true });
    await writeFile(join(this.cniConfDir, '10-fakenode.conflist'), `${JSON.stringify(podNetworkList(this, this.chain), null, 2)}\n`);
    await writeFile(join(this.cniConfDir, '99-loopback.conflist'), `${JSON.stringify(loopbackNetworkList(), null, 2)}\n`);
  }

  /** The pod IPs host-local has allocated on this node. */
  async allocatedPodIps(): Promise<string[]> {
    const entries = await readdir(ipamDir(this.ipamDataDir)).catch(() => [] as string[]);
    return entries.filter((e) => isIP(e) !== 0).sort();
  }

  createPod(opts: PodOptions): Promise<Pod> {
    return this.cluster.createPod(this, opts);
  }
}

/** A cluster of fake nodes. Make one with createCluster(); always destroy() it (the exit hook is the safety net). */
export class Cluster {
  readonly name: string;
  /** `fn-<name>`: the first part of every namespace name and the alias of the host link. */
  readonly prefix: string;
  readonly stateDir: string;
  readonly plan: ClusterPlan;
  /** The switch namespace (bridge br0, one port per node). */
  readonly switch: NetworkNamespace;
  readonly nodes: readonly FakeNode[];
  /** The host's address on the switch when hostLink is on. */
  readonly hostIp: string | undefined;
  private readonly ctx: ClusterContext;
  private readonly podsByKey = new Map<string, Pod | 'creating'>();
  private readonly pending = new Set<Promise<unknown>>();
  private destroying: Promise<void> | undefined;
  private readonly graceMs: number;
  private readonly logger: Logger;

  /** @internal use createCluster() */
  constructor(plan: ClusterPlan, opts: ClusterOptions) {
    this.plan = plan;
    this.name = plan.name;
    this.prefix = plan.prefix;
    this.stateDir = plan.stateDir;
    this.hostIp = plan.host?.ip;
    this.graceMs = opts.stopGraceMs ?? 2_000;
    this.logger = (opts.logger ?? componentLogger('fakenode')).child({ cluster: plan.prefix });
    const tracker = new ResourceTracker();
    this.ctx = {
      prefix: plan.prefix,
      stateDir: plan.stateDir,
      logger: this.logger,
      tracker,
      assertUsable: () => {
        if (this.destroying !== undefined) {
          throw new FakeNodeError(FakeNodeErrorCode.CLUSTER_DESTROYED, `cluster ${plan.prefix} has been destroyed`);
        }
      },
    };
    this.switch = new NetworkNamespace(this.ctx, plan.switchNetns);
    const cniBinDir = opts.cniBinDir ?? '/usr/lib/cni';
    this.nodes = plan.nodes.map((n) => new FakeNode(this, this.ctx, n, cniBinDir, opts.chainPlugins ?? []));
    registerForExit(this);
  }

  get destroyed(): boolean {
    return this.destroying !== undefined;
  }

  /** A node by name ("node-1") or 1-based index. */
  node(which: string | number): FakeNode {
    const n = this.nodes.find((x) => x.name === which || x.index === which);
    if (n === undefined) throw new FakeNodeError(FakeNodeErrorCode.INVALID_ARGUMENT, `cluster ${this.prefix} has no node ${String(which)}`);
    return n;
  }

  /** The pods that exist now. */
  get pods(): readonly Pod[] {
    return [...this.podsByKey.values()].filter((p): p is Pod => p !== 'creating');
  }

  findPod(namespace: string, name: string): Pod | undefined {
    const p = this.podsByKey.get(`${namespace}/${name}`);
    return p === 'creating' ? undefined : p;
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.pending.add(p);
    const forget = (): void => void this.pending.delete(p);
    p.then(forget, forget);
    return p;
  }

  /** @internal builds the network; on failure createCluster destroys what was made. */
  async build(): Promise<void> {
    const { plan, ctx } = this;
    const t = ctx.tracker;
    await mkdir(plan.stateDir, { recursive: true });
    t.dirs.push(plan.stateDir);
    await writeOwner(plan.stateDir);

    const namespaces = [plan.switchNetns, ...plan.nodes.map((n) => n.netns)];
    await settleAll(
      namespaces.map(async (ns) => {
        ctx.assertUsable();
        await runChecked('ip', ['netns', 'add', ns]);
        t.addNamespace(ns);
      }),
    );

    // The switch: a bridge, and per node a veth whose other end is created directly in the node namespace.
    // STP stays off (the default), so ports forward at once.
    const sw = [`link set lo up`, `link add ${plan.switchBridge} type bridge`, `link set ${plan.switchBridge} up`];
    for (const n of plan.nodes) {
      sw.push(
        `link add ${n.switchPort} type veth peer name ${n.uplink} netns ${n.netns}`,
        `link set ${n.switchPort} master ${plan.switchBridge}`,
        `link set ${n.switchPort} up`,
      );
    }
    await runChecked('ip', ['-n', plan.switchNetns, '-batch', '-'], { input: `${sw.join('\n')}\n` });

    await settleAll(
      plan.nodes.map(async (n) => {
        const cmds = [`link set lo up`, `addr add ${n.ip}/${n.ipPrefixLength} dev ${n.uplink}`, `link set ${n.uplink} up`];
        for (const r of n.routes) cmds.push(`route add ${r.dst} via ${r.via} dev ${n.uplink}`);
        await runChecked('ip', ['-n', n.netns, '-batch', '-'], { input: `${cmds.join('\n')}\n` });
        // A node routes for its pods (the bridge plugin would also turn this on for isGateway, but only on first ADD).
        await runChecked('sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1'], { netns: n.netns });
      }),
    );

    if (plan.host !== undefined) await this.buildHostLink(plan.host);

    await settleAll(
      this.nodes.map(async (node) => {
        await Promise.all([node.ipamDataDir, node.cniCacheDir].map((d) => mkdir(d, { recursive: true })));
        await node.writeCniConfig();
      }),
    );
    this.logger.debug({ nodes: plan.nodes.length, host: plan.host?.ifName }, 'cluster created');
  }

  private async buildHostLink(host: NonNullable<ClusterPlan['host']>): Promise<void> {
    const { plan, ctx } = this;
    await runChecked('ip', ['link', 'add', host.ifName, 'type', 'veth', 'peer', 'name', host.switchPort, 'netns', plan.switchNetns]);
    ctx.tracker.hostLinks.push(host.ifName);
    // The alias names the owning cluster, so cleanupStale can find the link after a crash.
    const len = plan.nodes[0]?.ipPrefixLength ?? 24;
    const cmds = [
      `link set ${host.ifName} alias ${plan.prefix}`,
      `addr add ${host.ip}/${len} dev ${host.ifName}`,
      `link set ${host.ifName} up`,
    ];
    for (const n of plan.nodes) cmds.push(`route add ${n.podCidr} via ${n.ip} dev ${host.ifName}`);
    await runChecked('ip', ['-batch', '-'], { input: `${cmds.join('\n')}\n` });
    await runChecked('ip', ['-n', plan.switchNetns, 'link', 'set', host.switchPort, 'master', plan.switchBridge, 'up']);
  }

  /**
   * Creates a pod on `node` the way a kubelet's runtime does (pod.ts): netns, loopback, then bridge +
   * host-local + the chained plugins per CNI spec 1.0.0. Rejects with FAKENODE_POD_EXISTS for a duplicate
   * namespace/name, with a CniError when a plugin fails (after undoing everything).
   */
  async createPod(node: FakeNode, opts: PodOptions): Promise<Pod> {
    // Everything up to the reservation runs synchronously (before the first await), so two concurrent
    // calls for the same namespace/name cannot both pass the check.
    this.ctx.assertUsable();
    if (node.cluster !== this) throw new FakeNodeError(FakeNodeErrorCode.INVALID_ARGUMENT, `node ${node.name} belongs to another cluster`);
    const key = `${opts.namespace}/${opts.name}`;
    if (this.podsByKey.has(key))
      throw new FakeNodeError(FakeNodeErrorCode.POD_EXISTS, `pod ${key} already exists in cluster ${this.prefix}`);
    this.podsByKey.set(key, 'creating');
    return this.track(
      (async () => {
        try {
          const pod = await createPod(this.ctx, node, opts);
          this.podsByKey.set(key, pod);
          return pod;
        } catch (e) {
          this.podsByKey.delete(key);
          throw e;
        }
      })(),
    );
  }

  /**
   * Deletes a pod (pod.ts): stops its processes, CNI DEL in reverse order with the cached results, deletes
   * its namespace. Idempotent.
   */
  async deletePod(pod: Pod): Promise<void> {
    if (this.findPod(pod.namespace, pod.name) !== pod) return;
    this.ctx.assertUsable();
    return this.track(
      (async () => {
        try {
          await deletePod(this.ctx, this.node(pod.nodeName), pod, this.graceMs);
        } finally {
          this.podsByKey.delete(pod.key);
        }
      })(),
    );
  }

  /**
   * Starts tcpdump on a node's uplink (its link to the switch), which carries all traffic between the node
   * (and its pods) and the other nodes. `filter` is a pcap-filter(7) expression, e.g. "tcp port 80".
   * Call `stop()` on the result to get the packets and their payloads.
   */
  captureOnNodeLink(node: FakeNode, filter: string, opts: CaptureOptions = {}): Promise<Capture> {
    return startCapture(node, node.uplink, filter, opts);
  }

  /**
   * Removes everything the cluster made: stops its processes, deletes pod, node and switch namespaces (and
   * with them every link and bridge), the host link and the state directory. No CNI DEL is run for pods that
   * still exist: the nodes vanish as a whole, as when a machine is deleted. Idempotent; continues past
   * failures and then rejects with FAKENODE_CLEANUP_FAILED listing them.
   */
  destroy(): Promise<void> {
    this.destroying ??= (async () => {
      // Stopping the processes first also fails any CNI plugin an in-flight createPod is waiting on.
      await stopChildren(this.ctx.tracker.children, this.graceMs);
      await Promise.allSettled([...this.pending]);
      const failures = await teardown(this.ctx.tracker, this.graceMs);
      this.podsByKey.clear();
      unregisterForExit(this);
      this.logger.debug({ failures }, 'cluster destroyed');
      if (failures.length > 0) {
        throw new FakeNodeError(FakeNodeErrorCode.CLEANUP_FAILED, `destroying cluster ${this.prefix} left: ${failures.join('; ')}`);
      }
    })();
    return this.destroying;
  }

  /** Synchronous, SIGKILL-only teardown for the process-exit hook. */
  destroySync(): void {
    this.destroying ??= Promise.resolve();
    teardownSync(this.ctx.tracker);
    this.podsByKey.clear();
    unregisterForExit(this);
  }
}

/**
 * Builds a cluster of `nodes` fake nodes. Requires root. A leftover cluster of the same name whose owner
 * process died is removed first; one whose owner is alive makes this fail (pick another name).
 */
export async function createCluster(opts: ClusterOptions): Promise<Cluster> {
  const plan = planCluster(opts);
  if (process.getuid?.() !== 0) {
    throw new FakeNodeError(
      FakeNodeErrorCode.NOT_ROOT,
      'fake-node clusters create network namespaces and veth links and must run as root (e.g. sudo npm test)',
    );
  }
  requireTool('ip', 'iproute2');
  requireTool('sysctl', 'procps');
  const cniBinDir = opts.cniBinDir ?? '/usr/lib/cni';
  for (const plugin of ['bridge', 'host-local', 'loopback']) {
    if (findExecutable(plugin, [cniBinDir]) === undefined) {
      throw new FakeNodeError(
        FakeNodeErrorCode.MISSING_TOOL,
        `CNI plugin ${plugin} not found in ${cniBinDir} (Debian: apt-get install containernetworking-plugins)`,
      );
    }
  }
  const stale = await cleanupStale(plan.prefix, { exact: true, stateRoot: opts.stateRoot ?? DEFAULT_STATE_ROOT });
  if (stale.skippedLive.length > 0) {
    throw new FakeNodeError(
      FakeNodeErrorCode.INVALID_ARGUMENT,
      `a cluster named "${opts.name}" exists and its owner process is alive (see ${plan.stateDir}/owner.json); destroy it or choose another name`,
    );
  }
  const cluster = new Cluster(plan, opts);
  try {
    await cluster.build();
  } catch (e) {
    await cluster.destroy().catch(() => undefined);
    throw e;
  }
  return cluster;
}
