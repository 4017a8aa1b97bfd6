/**
 * The cluster's names and addresses, computed up front as plain data (no I/O), so that creation, teardown,
 * stale cleanup and tests all agree on them.
 *
 * Naming: every network namespace is `<prefix>.<role>`, where `<prefix>` is `fn-<cluster name>` and the
 * role is `switch`, `node-<i>` or `pod.<k8s namespace>.<pod name>`. Cluster names may contain '-', never
 * '.', so the owning cluster of any leftover is the text before the first '.'. Kubernetes namespaces cannot
 * contain '.', so a pod's netns name is unambiguous too. Link names live inside our namespaces (the switch's
 * ports are named after the node they lead to), so they never collide with the host's links; the only host
 * link (the optional host uplink) carries the cluster prefix as its alias.
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { FakeNodeError, FakeNodeErrorCode } from './errors.js';

/** Every name this library creates starts with this, so its leftovers are recognisable (`ip netns list`). */
export const FAKENODE_PREFIX = 'fn-';
/** Where cluster state (IPAM data, CNI cache, app prefixes) lives unless createCluster says otherwise. */
export const DEFAULT_STATE_ROOT = '/run/fakenode';
export const DEFAULT_POD_CIDR_BASE = '10.244.0.0/16';
export const DEFAULT_NODE_SUBNET = '172.30.0.0/24';
/** The host's address on the node subnet when hostLink is on: the last usable address of a /24. */
const HOST_OFFSET = 254;

export interface NodePlan {
  /** 1-based; node i has IP <subnet>.i and pod CIDR = the i-th /24 of the pod CIDR base. */
  readonly index: number;
  /** Kubernetes-style node name, e.g. "node-1". */
  readonly name: string;
  readonly netns: string;
  /** The node's address on the switch, e.g. 172.30.0.1. */
  readonly ip: string;
  readonly ipPrefixLength: number;
  /** The node's uplink interface (inside the node netns), joined to the switch bridge. */
  readonly uplink: string;
  /** The switch-side end of the uplink (inside the switch netns). */
  readonly switchPort: string;
  readonly podCidr: string;
  /** The first address of the pod CIDR: the bridge plugin puts it on cni0 (isGateway) and pods route via it. */
  readonly podGateway: string;
  /** Routes to every other node's pods through that node (the "flat pod network" a CNI would provide). */
  readonly routes: readonly { readonly dst: string; readonly via: string }[];
}

export interface ClusterPlan {
  readonly name: string;
  readonly prefix: string;
  readonly stateDir: string;
  readonly switchNetns: string;
  /** The Linux bridge in the switch netns that all node uplinks join. */
  readonly switchBridge: string;
  readonly nodeSubnet: string;
  readonly podCidrBase: string;
  readonly nodes: readonly NodePlan[];
  /** Present when the host is joined to the switch too. */
  readonly host?: { readonly ifName: string; readonly ip: string; readonly switchPort: string };
}

export interface PlanOptions {
  readonly name: string;
  readonly nodes: number;
  readonly podCidrBase?: string;
  readonly nodeSubnet?: string;
  readonly stateRoot?: string;
  readonly hostLink?: boolean;
}

const CLUSTER_NAME = /^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$/;
const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/;

function invalid(message: string): FakeNodeError {
  return new FakeNodeError(FakeNodeErrorCode.INVALID_ARGUMENT, message);
}

export function ipv4ToInt(ip: string): number {
  const parts = ip.split('.');
  if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255)) throw invalid(`"${ip}" is not an IPv4 address`);
  return parts.reduce((acc, p) => acc * 256 + Number(p), 0);
}

export function intToIpv4(n: number): string {
  return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');
}

export function parseIpv4Cidr(cidr: string): { network: number; prefixLength: number } {
  const [ip, len, extra] = cidr.split('/');
  const prefixLength = Number(len);
  if (ip === undefined || extra !== undefined || !/^\d{1,2}$/.test(len ?? '') || prefixLength > 32) {
    throw invalid(`"${cidr}" is not an IPv4 CIDR`);
  }
  const addr = ipv4ToInt(ip);
  const size = 2 ** (32 - prefixLength);
  if (addr % size !== 0) throw invalid(`"${cidr}" has host bits set; use ${intToIpv4(addr - (addr % size))}/${prefixLength}`);
  return { network: addr, prefixLength };
}

/** Throws unless `name` is a valid Kubernetes namespace (a DNS-1123 label). */
export function validateK8sNamespace(name: string): void {
  if (!DNS_LABEL.test(name)) throw invalid(`"${name}" is not a valid Kubernetes namespace (lowercase DNS label)`);
}

/** Throws unless `name` is a valid pod name (a DNS-1123 subdomain). */
export function validatePodName(name: string): void {
  if (!DNS_SUBDOMAIN.test(name)) throw invalid(`"${name}" is not a valid pod name (lowercase DNS subdomain)`);
}

export function clusterPrefix(name: string): string {
  return `${FAKENODE_PREFIX}${name}`;
}

export function podNetnsName(prefix: string, namespace: string, name: string): string {
  return `${prefix}.pod.${namespace}.${name}`;
}

/** The cluster prefix that owns a namespace / link alias / directory name made by this library. */
export function ownerPrefix(resourceName: string): string {
  const dot = resourceName.indexOf('.');
  return dot < 0 ? resourceName : resourceName.slice(0, dot);
}

/** A host interface name for the cluster: ≤ 15 bytes (IFNAMSIZ), stable for the prefix, unlikely to collide. */
export function hostIfName(prefix: string): string {
  return `fnh${createHash('sha256').update(prefix).digest('hex').slice(0, 8)}`;
}

export function planCluster(opts: PlanOptions): ClusterPlan {
  if (!CLUSTER_NAME.test(opts.name)) {
    throw invalid(`cluster name "${opts.name}" must be 1-40 lowercase letters, digits or '-' (no '.'), e.g. "harness-${process.pid}"`);
  }
  if (!Number.isInteger(opts.nodes) || opts.nodes < 1 || opts.nodes > 200)
    throw invalid(`nodes must be an integer in 1..200, got ${opts.nodes}`);
  const podCidrBase = opts.podCidrBase ?? DEFAULT_POD_CIDR_BASE;
  const nodeSubnet = opts.nodeSubnet ?? DEFAULT_NODE_SUBNET;
  const pods = parseIpv4Cidr(podCidrBase);
  const subnet = parseIpv4Cidr(nodeSubnet);
  // Node i takes the i-th /24 of the base (10.244.i.0/24 for 10.244.0.0/16), so the base must hold them all.
  if (pods.prefixLength > 24 || 2 ** (24 - pods.prefixLength) <= opts.nodes) {
    throw invalid(
      `podCidrBase ${podCidrBase} has room for ${Math.max(0, 2 ** (24 - pods.prefixLength) - 1)} node /24s, ${opts.nodes} needed`,
    );
  }
  if (subnet.prefixLength > 24)
    throw invalid(`nodeSubnet ${nodeSubnet} must be a /24 or larger (nodes take .1-.${opts.nodes}, the host .${HOST_OFFSET})`);
  const prefix = clusterPrefix(opts.name);
  const nodeIp = (i: number): string => intToIpv4(subnet.network + i);
  const podCidr = (i: number): string => `${intToIpv4(pods.network + i * 256)}/24`;
  const nodes: NodePlan[] = [];
  for (let i = 1; i <= opts.nodes; i++) {
    const routes = [];
    for (let j = 1; j <= opts.nodes; j++) if (j !== i) routes.push({ dst: podCidr(j), via: nodeIp(j) });
    nodes.push({
      index: i,
      name: `node-${i}`,
      netns: `${prefix}.node-${i}`,
      ip: nodeIp(i),
      ipPrefixLength: subnet.prefixLength,
      uplink: 'eth0',
      switchPort: `node-${i}`,
      podCidr: podCidr(i),
      podGateway: intToIpv4(pods.network + i * 256 + 1),
      routes,
    });
  }
  return {
    name: opts.name,
    prefix,
    stateDir: join(opts.stateRoot ?? DEFAULT_STATE_ROOT, prefix),
    switchNetns: `${prefix}.switch`,
    switchBridge: 'br0',
    nodeSubnet,
    podCidrBase,
    nodes,
    ...(opts.hostLink === true
      ? { host: { ifName: hostIfName(prefix), ip: intToIpv4(subnet.network + HOST_OFFSET), switchPort: 'host' } }
      : {}),
  };
}
