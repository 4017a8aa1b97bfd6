/**
 * Pods made the way a kubelet and its container runtime make a pod sandbox:
 *   1. create the pod's network namespace (CNI spec 1.0.0 §3: "the container runtime must create a new
 *      network namespace for the container before invoking any plugins");
 *   2. attach the loopback network: its own one-plugin list `cni-loopback` on ifname `lo`, as containerd's
 *      go-cni configures it (listed before the pod network). We attach it first and serially, so `lo` is up
 *      before any chained plugin (which may install in-pod rules or listeners on 127.0.0.1) runs;
 *   3. attach the pod network: the list `fakenode` = bridge (+ host-local IPAM) followed by the caller's
 *      chained plugins (e.g. the project's mesh-cni), on ifname `eth0`;
 *   4. read the pod IP from the final result (the interface named eth0 whose sandbox is the pod's netns).
 * Deleting a pod stops its processes (the containers), runs DEL for the attachments in reverse order with
 * their cached results, and deletes the namespace (§3: "the container runtime is responsible for cleanup of
 * the container's network namespace").
 */
import type { ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  addNetworkList,
  CNI_VERSION,
  delNetworkList,
  removeCachedResult,
  writeCachedResult,
  type AttachmentParams,
  type CniAttachment,
  type CniResult,
  type NetworkConfigList,
  type PluginConfig,
} from './cni.js';
import { FakeNodeError, FakeNodeErrorCode } from './errors.js';
import { runChecked } from './exec.js';
import { podNetnsName, validateK8sNamespace, validatePodName } from './plan.js';
import { NetworkNamespace, type ClusterContext } from './process.js';
import { removeNamespace, stopChildren } from './resources.js';

/** A plugin appended to the pod network's list after bridge, e.g. the project's mesh-cni. */
export interface ChainedPlugin {
  /** The plugin's `type`: the executable's name in CNI_PATH (CNI spec §1). */
  readonly type: string;
  /** The executable, when it is not in the CNI bin directory; its directory is appended to CNI_PATH. */
  readonly path?: string;
  /** Extra keys of the plugin's configuration object, passed through unchanged (e.g. cni_event_address). */
  readonly config?: Readonly<Record<string, unknown>>;
}

export interface PodOptions {
  /** The pod's Kubernetes namespace (DNS label). */
  readonly namespace: string;
  /** The pod's name (DNS subdomain). */
  readonly name: string;
  /** Default: a random UUID, as the API server would assign. */
  readonly uid?: string;
  /** Default "default"; carried for identity (spiffe://<td>/ns/<ns>/sa/<sa>), not used by CNI. */
  readonly serviceAccount?: string;
  /** Plugins chained after bridge for this pod; default: the node's (FakeNode.setChainedPlugins). */
  readonly chainPlugins?: readonly ChainedPlugin[];
  /** Per-plugin time limit; default 30 s. */
  readonly cniTimeoutMs?: number;
}

/** What pod.ts needs from the node a pod is created on. */
export interface PodHost {
  readonly name: string;
  readonly netnsName: string;
  readonly podCidr: string;
  readonly podGateway: string;
  /** host-local's dataDir for this node. */
  readonly ipamDataDir: string;
  /** Where the runtime caches CNI results for this node. */
  readonly cniCacheDir: string;
  readonly cniBinDir: string;
  readonly defaultChain: readonly ChainedPlugin[];
}

/** The pod network's name (`name` of the list, and host-local's subdirectory under dataDir). */
export const POD_NETWORK_NAME = 'fakenode';
/** containerd's name for the loopback network. */
export const LOOPBACK_NETWORK_NAME = 'cni-loopback';
/** The bridge the bridge plugin creates in each node namespace. */
export const POD_BRIDGE = 'cni0';
export const POD_IFNAME = 'eth0';

/** The loopback network (containerd's default), a list with one plugin. */
export function loopbackNetworkList(): NetworkConfigList {
  return { cniVersion: CNI_VERSION, name: LOOPBACK_NETWORK_NAME, plugins: [{ type: 'loopback' }] };
}

/**
 * The pod network for a node: bridge `cni0` as the pods' gateway (isGateway puts the first address of the
 * range on it), no masquerade (pod IPs must reach other nodes unchanged so a mesh can see them), host-local
 * IPAM over the node's pod CIDR with a default route via the gateway, then the chained plugins.
 */
export function podNetworkList(
  host: Pick<PodHost, 'podCidr' | 'podGateway' | 'ipamDataDir'>,
  chain: readonly ChainedPlugin[],
): NetworkConfigList {
  const bridge: PluginConfig = {
    type: 'bridge',
    bridge: POD_BRIDGE,
    isGateway: true,
    ipMasq: false,
    ipam: {
      type: 'host-local',
      ranges: [[{ subnet: host.podCidr, gateway: host.podGateway }]],
      routes: [{ dst: '0.0.0.0/0' }],
      dataDir: host.ipamDataDir,
    },
  };
  return {
    cniVersion: CNI_VERSION,
    name: POD_NETWORK_NAME,
    plugins: [bridge, ...chain.map((p): PluginConfig => ({ ...p.config, type: p.type }))],
  };
}

/** CNI_PATH for a pod: the reference plugins' directory, then the chained plugins' own directories. */
export function pluginSearch(cniBinDir: string, chain: readonly ChainedPlugin[]): { cniPath: string[]; pluginPaths: Map<string, string> } {
  const cniPath = [cniBinDir];
  const pluginPaths = new Map<string, string>();
  for (const p of chain) {
    if (p.path === undefined) continue;
    const prior = pluginPaths.get(p.type);
    if (prior !== undefined && prior !== p.path) {
      throw new FakeNodeError(
        FakeNodeErrorCode.INVALID_ARGUMENT,
        `chained plugin type "${p.type}" given two executables: ${prior} and ${p.path}`,
      );
    }
    pluginPaths.set(p.type, p.path);
    const dir = p.path.slice(0, Math.max(p.path.lastIndexOf('/'), 1));
    if (!cniPath.includes(dir)) cniPath.push(dir);
  }
  return { cniPath, pluginPaths };
}

/** The IPv4 address (CIDR) the result assigned to the pod's eth0. */
export function podAddressFromResult(result: CniResult, netnsPath: string): { address: string; gateway: string | undefined } | undefined {
  const interfaces = result.interfaces ?? [];
  const ips = result.ips ?? [];
  const isPodIf = (idx: number | undefined): boolean => {
    const i = idx === undefined ? undefined : interfaces[idx];
    return i !== undefined && i.name === POD_IFNAME && i.sandbox === netnsPath;
  };
  const v4 = ips.filter((ip) => ip.address.includes('.'));
  const chosen = v4.find((ip) => isPodIf(ip.interface)) ?? v4[0];
  return chosen === undefined ? undefined : { address: chosen.address, gateway: chosen.gateway };
}

/** A pod: its network namespace, identity and CNI attachments. */
export class Pod extends NetworkNamespace {
  /** Kubernetes namespace. */
  readonly namespace: string;
  readonly name: string;
  readonly uid: string;
  readonly serviceAccount: string;
  /** The node's name (e.g. "node-1"). */
  readonly nodeName: string;
  /** The sandbox id: CNI_CONTAINERID and K8S_POD_INFRA_CONTAINER_ID. */
  readonly containerId: string;
  /** The pod IP, e.g. "10.244.1.2". */
  readonly ip: string;
  /** The pod IP with its prefix, e.g. "10.244.1.2/24". */
  readonly ipCidr: string;
  /** The default gateway (the node's cni0 address). */
  readonly gateway: string | undefined;
  readonly ifName = POD_IFNAME;
  /** The loopback and pod-network attachments, in ADD order. */
  readonly attachments: readonly CniAttachment[];
  private deletedFlag = false;

  constructor(
    ctx: ClusterContext,
    init: {
      netnsName: string;
      namespace: string;
      name: string;
      uid: string;
      serviceAccount: string;
      nodeName: string;
      containerId: string;
      ipCidr: string;
      gateway: string | undefined;
      attachments: readonly CniAttachment[];
    },
  ) {
    super(ctx, init.netnsName);
    this.namespace = init.namespace;
    this.name = init.name;
    this.uid = init.uid;
    this.serviceAccount = init.serviceAccount;
    this.nodeName = init.nodeName;
    this.containerId = init.containerId;
    this.ipCidr = init.ipCidr;
    this.ip = init.ipCidr.split('/')[0] ?? init.ipCidr;
    this.gateway = init.gateway;
    this.attachments = init.attachments;
  }

  /** "namespace/name". */
  get key(): string {
    return `${this.namespace}/${this.name}`;
  }

  /** The final result of the pod network's ADD (what the last chained plugin returned). */
  get cniResult(): CniResult {
    const last = this.attachments[this.attachments.length - 1];
    if (last === undefined) throw new Error('pod has no attachments');
    return last.result;
  }

  get deleted(): boolean {
    return this.deletedFlag;
  }

  /** @internal set by deletePod */
  markDeleted(): void {
    this.deletedFlag = true;
  }
}

function newContainerId(): string {
  // containerd's sandbox ids are 64 hex characters (CNI §2: alphanumeric start, then [A-Za-z0-9_.-]).
  return randomBytes(32).toString('hex');
}

/** Creates a pod on `host`; on any failure, undoes what was done and throws. */
export async function createPod(ctx: ClusterContext, host: PodHost, opts: PodOptions): Promise<Pod> {
  validateK8sNamespace(opts.namespace);
  validatePodName(opts.name);
  const uid = opts.uid ?? randomUUID();
  if (/[;=\s]/.test(uid))
    throw new FakeNodeError(
      FakeNodeErrorCode.INVALID_ARGUMENT,
      `pod uid "${uid}" may not contain ';', '=' or spaces (it goes into CNI_ARGS)`,
    );
  const chain = opts.chainPlugins ?? host.defaultChain;
  const netnsName = podNetnsName(ctx.prefix, opts.namespace, opts.name);
  const netnsPath = `/run/netns/${netnsName}`;
  const containerId = newContainerId();
  const { cniPath, pluginPaths } = pluginSearch(host.cniBinDir, chain);
  const lists = [loopbackNetworkList(), podNetworkList(host, chain)];
  const base = {
    containerId,
    netnsPath,
    // The CNI_ARGS a kubelet's runtime passes (IgnoreUnknown lets plugins that do not know a key accept it).
    args: [
      ['IgnoreUnknown', '1'],
      ['K8S_POD_NAMESPACE', opts.namespace],
      ['K8S_POD_NAME', opts.name],
      ['K8S_POD_INFRA_CONTAINER_ID', containerId],
      ['K8S_POD_UID', uid],
    ] as const,
    cniPath,
    pluginPaths,
    execNetns: host.netnsName,
    timeoutMs: opts.cniTimeoutMs,
    onSpawn: (child: ChildProcess) => void ctx.tracker.trackChild(child, host.netnsName),
  };
  const paramsFor = (list: NetworkConfigList): AttachmentParams => ({
    ...base,
    ifName: list.name === LOOPBACK_NETWORK_NAME ? 'lo' : POD_IFNAME,
  });

  ctx.assertUsable();
  await runChecked('ip', ['netns', 'add', netnsName]);
  ctx.tracker.addNamespace(netnsName);
  const done: CniAttachment[] = [];
  try {
    for (const list of lists) {
      ctx.assertUsable();
      const attachment = await addNetworkList(list, paramsFor(list));
      done.push(attachment);
      await writeCachedResult(host.cniCacheDir, attachment);
    }
    const final = done[done.length - 1]?.result;
    const addr = final === undefined ? undefined : podAddressFromResult(final, netnsPath);
    if (addr === undefined) {
      throw new FakeNodeError(
        FakeNodeErrorCode.CNI_BAD_RESULT,
        `the pod network's result has no IPv4 address for ${POD_IFNAME}: ${JSON.stringify(final)}`,
      );
    }
    const pod = new Pod(ctx, {
      netnsName,
      namespace: opts.namespace,
      name: opts.name,
      uid,
      serviceAccount: opts.serviceAccount ?? 'default',
      nodeName: host.name,
      containerId,
      ipCidr: addr.address,
      gateway: addr.gateway,
      attachments: done,
    });
    ctx.logger.debug({ pod: pod.key, node: host.name, ip: pod.ip, netns: netnsName }, 'pod created');
    return pod;
  } catch (e) {
    // §3: a delete must still follow a failed add. Completed attachments get DEL with their cached results.
    for (const a of [...done].reverse()) {
      await delNetworkList(a.list, a.params, a.result).catch(() => undefined);
      await removeCachedResult(host.cniCacheDir, a).catch(() => undefined);
    }
    await removeNamespace(netnsName).catch(() => undefined);
    ctx.tracker.forgetNamespace(netnsName);
    throw e;
  }
}

/**
 * Deletes a pod: stops its processes (SIGTERM, SIGKILL after graceMs), runs DEL for each attachment in
 * reverse order with its cached result, and deletes the namespace. Every step runs even if an earlier one
 * failed (so a broken chained plugin cannot leak the IP or the namespace); the first failure is thrown.
 */
export async function deletePod(ctx: ClusterContext, host: PodHost, pod: Pod, graceMs = 2_000): Promise<void> {
  if (pod.deleted) return;
  pod.markDeleted();
  const failures: unknown[] = [];
  const mine = [...ctx.tracker.children].filter((c) => c.netns === pod.netnsName);
  await stopChildren(mine, graceMs);
  for (const a of [...pod.attachments].reverse()) {
    try {
      await delNetworkList(a.list, a.params, a.result);
      await removeCachedResult(host.cniCacheDir, a);
    } catch (e) {
      failures.push(e);
    }
  }
  try {
    await removeNamespace(pod.netnsName);
    ctx.tracker.forgetNamespace(pod.netnsName);
    await rm(pod.workDir, { recursive: true, force: true });
  } catch (e) {
    failures.push(e);
  }
  ctx.logger.debug({ pod: pod.key, node: host.name, failures: failures.length }, 'pod deleted');
  if (failures.length > 0) throw failures[0];
}

/** The IPs host-local currently has allocated on a node (one file per IP under <dataDir>/<network>). */
export function ipamDir(ipamDataDir: string): string {
  return join(ipamDataDir, POD_NETWORK_NAME);
}
