/**
 * The model's inputs: one input collection per kind of cluster record, and the indexes the transforms read
 * through. (The options are not an input: they are fixed for a model's life, and a change of them starts a new one.) A ClusterState is fed in by handing each map over as it is: the input
 * diffs it against the previous one by identity (records are immutable; an unchanged object is the same object),
 * so a change of one pod costs one pass over the pod map and a recomputation of what read that pod.
 */
import type { Index, InputCollection, Runtime } from '../../krt/index.js';
import {
  objectKey,
  type AuthorizationPolicyRecord,
  type EndpointSliceRecord,
  type Labels,
  type NamespaceRecord,
  type NodeRecord,
  type PeerAuthenticationRecord,
  type PodRecord,
  type ServiceRecord,
} from '../../kube/records.js';
import type { ClusterState } from '../snapshot.js';

export interface ClusterInputs {
  readonly namespaces: InputCollection<NamespaceRecord>;
  readonly nodes: InputCollection<NodeRecord>;
  readonly pods: InputCollection<PodRecord>;
  readonly services: InputCollection<ServiceRecord>;
  readonly endpointSlices: InputCollection<EndpointSliceRecord>;
  readonly authorizationPolicies: InputCollection<AuthorizationPolicyRecord>;
  readonly peerAuthentications: InputCollection<PeerAuthenticationRecord>;
  /** Services by one label of their selector (selectorKey); a pod finds the services that may select it by its own labels. */
  readonly servicesBySelector: Index<ServiceRecord>;
  /** EndpointSlices by `<ns>/<name>` of every pod one of their endpoints targets. */
  readonly slicesByPod: Index<EndpointSliceRecord>;
  readonly policiesByNamespace: Index<AuthorizationPolicyRecord>;
  readonly peerAuthenticationsByNamespace: Index<PeerAuthenticationRecord>;
  /**
   * Pods by namespace, by node and by label (selectorKey): the joins workloads read through, so that what every
   * pod reads alike (its namespace, its node, selectors on its labels) is recorded once, not once per pod.
   */
  readonly podsByNamespace: Index<PodRecord>;
  readonly podsByNode: Index<PodRecord>;
  readonly podsByLabel: Index<PodRecord>;
}

/** The index key of a label in a namespace. */
export const selectorKey = (namespace: string, label: string, value: string): string => `${namespace}\u0000${label}\u0000${value}`;

/**
 * The one label a selector is indexed under: its smallest key, so that the same selector always gives the same
 * entry. Every label of a selector must match, so any one of them finds every pod it can select.
 */
function selectorIndexKeys(namespace: string, selector: Labels | undefined): readonly string[] {
  if (selector === undefined) return [];
  let first: string | undefined;
  for (const k in selector) if (first === undefined || k < first) first = k;
  return first === undefined ? [] : [selectorKey(namespace, first, selector[first] as string)];
}

function labelKeys(pod: PodRecord): readonly string[] {
  const keys: string[] = [];
  for (const k in pod.labels) keys.push(selectorKey(pod.namespace, k, pod.labels[k] as string));
  return keys;
}

function targetedPods(slice: EndpointSliceRecord): readonly string[] {
  const keys = new Set<string>();
  for (const e of slice.endpoints) if (e.targetRef !== undefined) keys.add(objectKey(e.targetRef));
  return [...keys];
}

export function clusterInputs(rt: Runtime): ClusterInputs {
  // Records are compared by value: a re-sent object with nothing new in it (a node heartbeat) changes nothing.
  const namespaces = rt.input<NamespaceRecord>('namespaces');
  const nodes = rt.input<NodeRecord>('nodes');
  const pods = rt.input<PodRecord>('pods');
  const services = rt.input<ServiceRecord>('services');
  const endpointSlices = rt.input<EndpointSliceRecord>('endpointSlices');
  const authorizationPolicies = rt.input<AuthorizationPolicyRecord>('authorizationPolicies');
  const peerAuthentications = rt.input<PeerAuthenticationRecord>('peerAuthentications');
  return {
    namespaces,
    nodes,
    pods,
    services,
    endpointSlices,
    authorizationPolicies,
    peerAuthentications,
    servicesBySelector: services.index('selector', (s) => selectorIndexKeys(s.namespace, s.selector)),
    slicesByPod: endpointSlices.index('pod', targetedPods),
    policiesByNamespace: authorizationPolicies.index('namespace', (p) => [p.namespace]),
    peerAuthenticationsByNamespace: peerAuthentications.index('namespace', (p) => [p.namespace]),
    podsByNamespace: pods.index('namespace', (p) => [p.namespace]),
    podsByNode: pods.index('node', (p) => (p.nodeName === '' ? [] : [p.nodeName])),
    podsByLabel: pods.index('label', labelKeys),
  };
}

/** Makes `state` the inputs' contents (nothing is propagated until a derived collection is read). */
export function feedClusterState(inputs: ClusterInputs, state: ClusterState): void {
  inputs.namespaces.replaceAll(state.namespaces);
  inputs.nodes.replaceAll(state.nodes);
  inputs.pods.replaceAll(state.pods);
  inputs.services.replaceAll(state.services);
  inputs.endpointSlices.replaceAll(state.endpointSlices);
  inputs.authorizationPolicies.replaceAll(state.authorizationPolicies);
  inputs.peerAuthentications.replaceAll(state.peerAuthentications);
}
