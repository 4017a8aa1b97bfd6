/**
 * Kubernetes objects as the API server serves them (plain JSON), their records, and ClusterStates built from
 * them, for the controller's table tests. Builders take the fields a test cares about; the rest is a plausible
 * default (a Deployment pod, Running and Ready, on node-1).
 */
import {
  authorizationPolicyRecord,
  endpointSliceRecord,
  namespaceRecord,
  nodeRecord,
  objectKey,
  peerAuthenticationRecord,
  podRecord,
  serviceRecord,
  type AuthorizationPolicyRecord,
  type EndpointSliceRecord,
  type NamespaceRecord,
  type NodeRecord,
  type PeerAuthenticationRecord,
  type PodRecord,
  type RecordResult,
  type ServiceRecord,
} from '../../controller/kube/records.js';
import type { ClusterState } from '../../controller/model/snapshot.js';

type Json = Record<string, unknown>;

/** The record of a result that must be ok; a rejection fails the test with its reason. */
export function ok<T>(r: RecordResult<T>): T {
  if (!r.ok) throw new Error(`unexpected rejection: ${r.rejection.reason}`);
  return r.record;
}

export function namespaceJson(name: string, labels: Record<string, string> = {}): Json {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } };
}

export interface PodSpec {
  readonly namespace?: string;
  readonly name: string;
  readonly uid?: string;
  readonly labels?: Record<string, string>;
  readonly annotations?: Record<string, string>;
  readonly ip?: string | readonly string[];
  readonly node?: string;
  readonly serviceAccount?: string;
  readonly ready?: boolean;
  readonly phase?: string;
  readonly hostNetwork?: boolean;
  readonly deleting?: boolean;
  readonly ports?: readonly { name?: string; containerPort: number; protocol?: string }[];
  readonly owner?: { kind: string; name: string; apiVersion?: string };
  readonly generateName?: string;
}

export function podJson(p: PodSpec): Json {
  const ips = p.ip === undefined ? [] : typeof p.ip === 'string' ? [p.ip] : p.ip;
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      namespace: p.namespace ?? 'default',
      name: p.name,
      uid: p.uid ?? `uid-${p.name}`,
      labels: p.labels ?? {},
      annotations: p.annotations ?? {},
      ...(p.generateName !== undefined ? { generateName: p.generateName } : {}),
      ...(p.owner !== undefined
        ? { ownerReferences: [{ apiVersion: p.owner.apiVersion ?? 'apps/v1', kind: p.owner.kind, name: p.owner.name, uid: 'owner', controller: true }] }
        : {}),
      ...(p.deleting === true ? { deletionTimestamp: '2026-11-22T10:00:00Z' } : {}),
    },
    spec: {
      serviceAccountName: p.serviceAccount ?? 'default',
      nodeName: p.node ?? 'node-1',
      hostNetwork: p.hostNetwork ?? false,
      containers: [{ name: 'app', image: 'app', ports: p.ports ?? [] }],
    },
    status: {
      phase: p.phase ?? 'Running',
      ...(ips.length > 0 ? { podIP: ips[0], podIPs: ips.map((ip) => ({ ip })) } : {}),
      conditions: [{ type: 'Ready', status: p.ready === false ? 'False' : 'True' }],
    },
  };
}

export interface ServiceSpec {
  readonly namespace?: string;
  readonly name: string;
  readonly selector?: Record<string, string>;
  readonly clusterIP?: string | readonly string[];
  readonly ports?: readonly { name?: string; port: number; targetPort?: number | string; protocol?: string; appProtocol?: string }[];
  readonly type?: string;
}

export function serviceJson(s: ServiceSpec): Json {
  const cips = s.clusterIP === undefined ? ['10.96.0.10'] : typeof s.clusterIP === 'string' ? [s.clusterIP] : s.clusterIP;
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { namespace: s.namespace ?? 'default', name: s.name },
    spec: {
      type: s.type ?? 'ClusterIP',
      clusterIP: cips[0],
      clusterIPs: cips,
      ...(s.selector !== undefined ? { selector: s.selector } : {}),
      ports: s.ports ?? [{ name: 'http', port: 80, targetPort: 8080 }],
    },
  };
}

export interface SliceSpec {
  readonly namespace?: string;
  readonly name: string;
  readonly service: string;
  readonly ports?: readonly { name?: string; port: number; protocol?: string }[];
  readonly endpoints: readonly { ip: string; pod?: string; uid?: string; ready?: boolean }[];
}

export function sliceJson(s: SliceSpec): Json {
  const namespace = s.namespace ?? 'default';
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { namespace, name: s.name, labels: { 'kubernetes.io/service-name': s.service } },
    addressType: 'IPv4',
    ports: s.ports ?? [{ name: 'http', port: 8080, protocol: 'TCP' }],
    endpoints: s.endpoints.map((e) => ({
      addresses: [e.ip],
      conditions: { ready: e.ready ?? true },
      ...(e.pod !== undefined ? { targetRef: { kind: 'Pod', namespace, name: e.pod, uid: e.uid ?? `uid-${e.pod}` } } : {}),
    })),
  };
}

export function nodeJson(name: string, labels: Record<string, string> = {}): Json {
  return { apiVersion: 'v1', kind: 'Node', metadata: { name, labels } };
}

export function authzJson(namespace: string, name: string, spec: Json, annotations: Record<string, string> = {}): Json {
  return { apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { namespace, name, annotations }, spec };
}

export function peerAuthJson(namespace: string, name: string, spec: Json, created = '2026-01-01T00:00:00Z'): Json {
  return { apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: { namespace, name, creationTimestamp: created }, spec };
}

export const ns = (name: string, labels: Record<string, string> = {}): NamespaceRecord => ok(namespaceRecord(namespaceJson(name, labels)));
export const pod = (p: PodSpec): PodRecord => ok(podRecord(podJson(p)));
export const svc = (s: ServiceSpec): ServiceRecord => ok(serviceRecord(serviceJson(s)));
export const slice = (s: SliceSpec): EndpointSliceRecord => ok(endpointSliceRecord(sliceJson(s)));
export const node = (name: string, labels: Record<string, string> = {}): NodeRecord => ok(nodeRecord(nodeJson(name, labels)));
export const authz = (namespace: string, name: string, spec: Json, annotations: Record<string, string> = {}): AuthorizationPolicyRecord =>
  ok(authorizationPolicyRecord(authzJson(namespace, name, spec, annotations)));
export const peerAuth = (namespace: string, name: string, spec: Json, created?: string): PeerAuthenticationRecord =>
  ok(peerAuthenticationRecord(peerAuthJson(namespace, name, spec, created)));

export interface StateParts {
  readonly namespaces?: readonly NamespaceRecord[];
  readonly nodes?: readonly NodeRecord[];
  readonly pods?: readonly PodRecord[];
  readonly services?: readonly ServiceRecord[];
  readonly endpointSlices?: readonly EndpointSliceRecord[];
  readonly authorizationPolicies?: readonly AuthorizationPolicyRecord[];
  readonly peerAuthentications?: readonly PeerAuthenticationRecord[];
}

export function clusterState(parts: StateParts): ClusterState {
  const byKey = <T extends { namespace: string; name: string }>(xs: readonly T[] | undefined): Map<string, T> =>
    new Map((xs ?? []).map((x) => [objectKey(x), x]));
  return {
    namespaces: new Map((parts.namespaces ?? []).map((n) => [n.name, n])),
    nodes: new Map((parts.nodes ?? []).map((n) => [n.name, n])),
    pods: byKey(parts.pods),
    services: byKey(parts.services),
    endpointSlices: byKey(parts.endpointSlices),
    authorizationPolicies: byKey(parts.authorizationPolicies),
    peerAuthentications: byKey(parts.peerAuthentications),
  };
}

/** A copy of `state` with one map replaced: how a watch delivers a change. */
export function withState(state: ClusterState, over: Partial<ClusterState>): ClusterState {
  return { ...state, ...over };
}

export function mapWith<V>(m: ReadonlyMap<string, V>, key: string, value: V | undefined): Map<string, V> {
  const out = new Map(m);
  if (value === undefined) out.delete(key);
  else out.set(key, value);
  return out;
}
