/**
 * Pod → workload Address resource (the pure conversion is ../workloads.ts). The transform reads, through the
 * context, exactly what the conversion needs, so the runtime knows which pods to recompute when something changes:
 * the pod's namespace and node by name, the services that may select it (by one label of their selector, kept
 * when the selector matches), the EndpointSlices that list it and their services, the policies and
 * PeerAuthentications of its namespace that can apply to it, and those of the root namespace (one singleton).
 */
import { makeResource, type XdsResource } from '../../../lib/xds/resource.js';
import type { DerivedCollection, HandlerContext, Index, Runtime, Singleton } from '../../krt/index.js';
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

/**
 * The root namespace's policies that can apply to a workload in any namespace: its selector policies and its
 * selector-less (mesh-wide) PeerAuthentications. One value every pod reads, rather than two reads per pod.
 */
interface MeshWidePolicies {
  readonly selectorPolicies: readonly AuthorizationPolicyRecord[];
  readonly peerAuthentications: readonly PeerAuthenticationRecord[];
}

const NO_MESH_WIDE_POLICIES: MeshWidePolicies = { selectorPolicies: [], peerAuthentications: [] };

interface Selecting {
  readonly selector: Labels | undefined;
}

// The read filters: functions of the value and the pod being computed, so that no closure per pod outlives a run.
const selectsPod = (o: Selecting, pod: PodRecord): boolean => o.selector !== undefined && selects(o.selector, pod.labels);
const appliesToPod = (p: Selecting, pod: PodRecord): boolean => p.selector === undefined || selects(p.selector, pod.labels);
const selectorless = (p: Selecting): boolean => p.selector === undefined;
const selecting = (p: Selecting): boolean => p.selector !== undefined;

function readInputs(
  ctx: HandlerContext<PodRecord>,
  inputs: ClusterInputs,
  meshWide: Singleton<MeshWidePolicies>,
  pod: PodRecord,
  key: string,
  opts: ModelOptions,
): WorkloadInputs {
  const labels = pod.labels;
  const services = new Map<string, ServiceRecord>();
  for (const k in labels) {
    const labelKey = selectorKey(pod.namespace, k, labels[k] as string);
    for (const s of ctx.fetchIndex(inputs.servicesBySelector, labelKey, { where: selectsPod, via: inputs.podsByLabel })) {
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
  const mesh = ctx.fetchSingleton(meshWide) ?? NO_MESH_WIDE_POLICIES;
  const authorizationPolicies = mesh.selectorPolicies.filter((p) => selectsPod(p, pod));
  const peerAuthentications = [...mesh.peerAuthentications];
  if (pod.namespace !== opts.rootNamespace) {
    const inNamespace = inputs.podsByNamespace;
    authorizationPolicies.push(...ctx.fetchIndex(inputs.policiesByNamespace, pod.namespace, { where: selectsPod, via: inNamespace }));
    peerAuthentications.push(
      ...ctx.fetchIndex(inputs.peerAuthenticationsByNamespace, pod.namespace, { where: appliesToPod, via: inNamespace }),
    );
  }
  return {
    pod,
    namespace: ctx.fetchKey(inputs.namespaces, pod.namespace, { via: inputs.podsByNamespace }),
    node: pod.nodeName === '' ? undefined : ctx.fetchKey(inputs.nodes, pod.nodeName, { via: inputs.podsByNode }),
    // In key order, so the services map is built in one order whatever the reads returned first.
    services: [...services.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([, s]) => s),
    endpointSlices,
    authorizationPolicies,
    peerAuthentications,
  };
}

function workloadResource(
  ctx: HandlerContext<PodRecord>,
  inputs: ClusterInputs,
  meshWide: Singleton<MeshWidePolicies>,
  pod: PodRecord,
  key: string,
  opts: ModelOptions,
): XdsResource | undefined {
  // Terminal pods are not workloads: nothing else needs reading to know that.
  if (pod.phase === 'Succeeded' || pod.phase === 'Failed') return undefined;
  const w = buildWorkload(readInputs(ctx, inputs, meshWide, pod, key, opts), opts);
  return w?.uid == null ? undefined : makeResource(w.uid, encodeAddress({ workload: w }));
}

export function workloadCollection(rt: Runtime, inputs: ClusterInputs, opts: ModelOptions): WorkloadCollection {
  const root = opts.rootNamespace;
  // Selector PeerAuthentications of the root namespace apply to no one (Istio); its selector-less ones to everyone.
  const meshWide = rt.singleton(
    'meshWidePolicies',
    (ctx): MeshWidePolicies => ({
      selectorPolicies: ctx.fetchIndex(inputs.policiesByNamespace, root, { where: selecting }),
      peerAuthentications: ctx.fetchIndex(inputs.peerAuthenticationsByNamespace, root, { where: selectorless }),
    }),
  );
  const collection = rt.collection(
    'workloadAddresses',
    inputs.pods,
    (ctx, pod, key) => workloadResource(ctx, inputs, meshWide, pod, key, opts),
    { equals: sameResource },
  );
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
