/**
 * Pod → workload Address resource (the pure conversion is ../workloads.ts). The transform reads, through the
 * context, exactly what the conversion needs, so the runtime knows which pods to recompute when something changes:
 * the pod's namespace and node by name, the services that may select it (by one label of their selector, kept
 * when the selector matches), the EndpointSlices that list it and their services, and the policies and
 * PeerAuthentications of its namespace and of the root namespace that can apply to it.
 */
import { makeResource, type XdsResource } from '../../../lib/xds/resource.js';
import type { DerivedCollection, HandlerContext, Index, Runtime } from '../../krt/index.js';
import {
  objectKey,
  type AuthorizationPolicyRecord,
  type Labels,
  type PeerAuthenticationRecord,
  type PodRecord,
  type ServiceRecord,
} from '../../kube/records.js';
import type { ModelOptions } from '../options.js';
import { selects } from '../selectors.js';
import { buildWorkload, type WorkloadInputs } from '../workloads.js';
import { type ClusterInputs, selectorKey } from './inputs.js';
import { addressMeta, encodeAddress, sameResource } from './resources.js';

/** Workload resources by what on-demand clients ask for (decoded from the resources, see resources.ts). */
export interface WorkloadIndexes {
  readonly byName: Index<XdsResource>;
  readonly byAddress: Index<XdsResource>;
  readonly byService: Index<XdsResource>;
  readonly byNode: Index<XdsResource>;
}

export interface WorkloadCollection {
  /** Address resources named by workload uid, by pod key (`<ns>/<name>`). */
  readonly collection: DerivedCollection<PodRecord, XdsResource>;
  /** What on-demand lookups need; made on first use (a mesh without on-demand clients does not pay for it). */
  indexes(): WorkloadIndexes;
}

/** The namespaces whose policies can apply to a pod: its own and the root namespace. */
const policyNamespaces = (pod: PodRecord, opts: ModelOptions): readonly string[] =>
  pod.namespace === opts.rootNamespace ? [pod.namespace] : [pod.namespace, opts.rootNamespace];

interface Selecting {
  readonly selector: Labels | undefined;
}

const selectorless = (p: Selecting): boolean => p.selector === undefined;

function readInputs(ctx: HandlerContext, inputs: ClusterInputs, pod: PodRecord, key: string, opts: ModelOptions): WorkloadInputs {
  const labels = pod.labels;
  // The read filters; two closures per pod (they outlive the run, in the reads they filter).
  const selectsPod = (o: Selecting): boolean => o.selector !== undefined && selects(o.selector, labels);
  const appliesToPod = (p: Selecting): boolean => p.selector === undefined || selects(p.selector, labels);
  const services = new Map<string, ServiceRecord>();
  for (const k in labels) {
    for (const s of ctx.fetchIndex(inputs.servicesBySelector, selectorKey(pod.namespace, k, labels[k] as string), { where: selectsPod })) {
      services.set(objectKey(s), s);
    }
  }
  // `key` is the pod's objectKey (the input's key): the same string, not another copy of it.
  const endpointSlices = ctx.fetchIndex(inputs.slicesByPod, key);
  for (const slice of endpointSlices) {
    if (slice.serviceName === undefined) continue;
    // Pods listed by a service's slices back it even without a selector.
    const serviceKey = `${slice.namespace}/${slice.serviceName}`;
    const s = ctx.fetchKey(inputs.services, serviceKey);
    if (s !== undefined) services.set(serviceKey, s);
  }
  const authorizationPolicies: AuthorizationPolicyRecord[] = [];
  const peerAuthentications: PeerAuthenticationRecord[] = [];
  for (const ns of policyNamespaces(pod, opts)) {
    authorizationPolicies.push(...ctx.fetchIndex(inputs.policiesByNamespace, ns, { where: selectsPod }));
    // Selector PeerAuthentications of the root namespace apply to no one (Istio); mesh-wide ones to everyone.
    const applies = ns === opts.rootNamespace ? selectorless : appliesToPod;
    peerAuthentications.push(...ctx.fetchIndex(inputs.peerAuthenticationsByNamespace, ns, { where: applies }));
  }
  return {
    pod,
    namespace: ctx.fetchKey(inputs.namespaces, pod.namespace),
    node: pod.nodeName === '' ? undefined : ctx.fetchKey(inputs.nodes, pod.nodeName),
    // In key order, so the services map is built in one order whatever the reads returned first.
    services: [...services.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([, s]) => s),
    endpointSlices,
    authorizationPolicies,
    peerAuthentications,
  };
}

function workloadResource(
  ctx: HandlerContext,
  inputs: ClusterInputs,
  pod: PodRecord,
  key: string,
  opts: ModelOptions,
): XdsResource | undefined {
  // Terminal pods are not workloads: nothing else needs reading to know that.
  if (pod.phase === 'Succeeded' || pod.phase === 'Failed') return undefined;
  const w = buildWorkload(readInputs(ctx, inputs, pod, key, opts), opts);
  return w?.uid == null ? undefined : makeResource(w.uid, encodeAddress({ workload: w }));
}

export function workloadCollection(rt: Runtime, inputs: ClusterInputs, opts: ModelOptions): WorkloadCollection {
  const collection = rt.collection('workloadAddresses', inputs.pods, (ctx, pod, key) => workloadResource(ctx, inputs, pod, key, opts), {
    equals: sameResource,
  });
  let indexes: WorkloadIndexes | undefined;
  return {
    collection,
    indexes: () =>
      (indexes ??= {
        byName: collection.index('name', (r) => [r.name]),
        byAddress: collection.index('address', (r) => addressMeta(r).addresses),
        byService: collection.index('service', (r) => addressMeta(r).services),
        byNode: collection.index('node', (r) => {
          const node = addressMeta(r).node;
          return node === '' ? [] : [node];
        }),
      }),
  };
}
