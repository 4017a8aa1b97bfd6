/**
 * ClusterState (readonly maps of edge records) → the WDS resource sets ztunnels subscribe to: every
 * istio.workload.Address (workloads by uid, services by `<ns>/<hostname>`) and istio.security.Authorization
 * (`<ns>/<name>`), each an XdsResource whose version is a hash of its encoded body.
 *
 * `buildWds` is a pure function of (state, options); a `WdsCache` passed in the options makes it incremental in
 * the way Istio's krt collections are: the cache remembers the previous state, diffs the new one against it by
 * record identity (records are immutable, so an unchanged object is the same object), and recomputes only the
 * outputs whose inputs changed. A workload's inputs are its pod, its namespace, its node, the services that may
 * select it (by label index) or list it (EndpointSlices), and the policies and PeerAuthentications of its
 * namespace and the root namespace; reverse indexes (pods by namespace, node and label; services by label;
 * slices by pod and by service) turn a change of any of those into the set of pods to rebuild. A rebuilt output
 * whose encoding is byte-identical keeps its previous resource object and version, so subscribers see no change.
 * The published sets share unchanged parts with the previous snapshot (resource-set.ts), so a one-pod change
 * costs about a millisecond at 10k pods, mostly the identity diff of the pod map.
 *
 * The result is the same with or without a cache (the tests check this); the cache only saves work. It starts
 * over when the options change.
 */
import { istio } from '../../lib/proto/index.js';
import { makeResource, type ResourceSet, type XdsResource } from '../../lib/xds/resource.js';
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
} from '../kube/records.js';
import { convertAuthorizationPolicy, policyResourceName } from './authorization.js';
import { ResourceSetBuilder } from './resource-set.js';
import { modelOptions, sameOptions, type ModelOptions } from './options.js';
import { convertPeerAuthentication, namespacePolicy, staticStrictPolicy } from './peer-authentication.js';
import { selects } from './selectors.js';
import { buildService, serviceResourceName } from './services.js';
import { buildWorkload, workloadUid, type WorkloadInputs } from './workloads.js';

/** Everything the WDS transforms read. Namespaced maps are keyed `<namespace>/<name>` (objectKey), others by name. */
export interface ClusterState {
  readonly namespaces: ReadonlyMap<string, NamespaceRecord>;
  readonly nodes: ReadonlyMap<string, NodeRecord>;
  readonly pods: ReadonlyMap<string, PodRecord>;
  readonly services: ReadonlyMap<string, ServiceRecord>;
  readonly endpointSlices: ReadonlyMap<string, EndpointSliceRecord>;
  readonly authorizationPolicies: ReadonlyMap<string, AuthorizationPolicyRecord>;
  readonly peerAuthentications: ReadonlyMap<string, PeerAuthenticationRecord>;
}

/** One value per kind of object the cluster state holds (a map per kind, a counter per kind, ...). */
export function perKind<V>(make: (kind: keyof ClusterState) => V): { [K in keyof ClusterState]: V } {
  return {
    namespaces: make('namespaces'),
    nodes: make('nodes'),
    pods: make('pods'),
    services: make('services'),
    endpointSlices: make('endpointSlices'),
    authorizationPolicies: make('authorizationPolicies'),
    peerAuthentications: make('peerAuthentications'),
  };
}

export function emptyClusterState(): ClusterState {
  return perKind(() => new Map<string, never>());
}

/** A policy accepted with a caveat or not sent; the caller writes it as a status condition (reason UnsupportedValue). */
export interface WdsWarning {
  readonly kind: 'AuthorizationPolicy';
  readonly namespace: string;
  readonly name: string;
  readonly reason: 'UnsupportedValue';
  readonly message: string;
}

/** How much one build recomputed and how many resources it changed (diagnostics; not part of the WDS result). */
export interface WdsBuildStats {
  readonly workloadsRecomputed: number;
  readonly servicesRecomputed: number;
  readonly policiesRecomputed: number;
  readonly resourcesChanged: number;
}

export interface WdsSnapshot {
  /** istio.workload.Address resources by name (workload uid, or `<ns>/<hostname>`). */
  readonly addresses: ResourceSet;
  /** istio.security.Authorization resources by `<ns>/<name>`. */
  readonly authorizations: ResourceSet;
  /** Sorted by namespace, then name. */
  readonly warnings: readonly WdsWarning[];
  readonly stats: WdsBuildStats;
}

export interface WdsBuildOptions extends Partial<ModelOptions> {
  /** Memo of the previous build; reuse one per resource stream to make rebuilds proportional to the change. */
  readonly cache?: WdsCache;
}

export function buildWds(state: ClusterState, options: WdsBuildOptions = {}): WdsSnapshot {
  const { cache, ...rest } = options;
  return (cache ?? new WdsCache()).build(state, modelOptions(rest));
}

// --- the memo ------------------------------------------------------------------------------------------------

const EMPTY: ClusterState = emptyClusterState();

function addTo<K, V>(m: Map<K, Set<V>>, k: K, v: V): void {
  let s = m.get(k);
  if (s === undefined) {
    s = new Set();
    m.set(k, s);
  }
  s.add(v);
}

function removeFrom<K, V>(m: Map<K, Set<V>>, k: K, v: V): void {
  const s = m.get(k);
  if (s === undefined) return;
  s.delete(v);
  if (s.size === 0) m.delete(k);
}

/** Calls `f` for every key whose record differs by identity (added, replaced or removed). */
function diff<V>(
  prev: ReadonlyMap<string, V>,
  next: ReadonlyMap<string, V>,
  f: (key: string, old: V | undefined, now: V | undefined) => void,
): void {
  if (prev === next) return;
  let kept = 0;
  for (const [k, v] of next) {
    const o = prev.get(k);
    if (o !== undefined) kept++;
    if (o !== v) f(k, o, v);
  }
  // Every previous key is still there: nothing was removed, and the second pass can be skipped.
  if (kept === prev.size) return;
  for (const [k, o] of prev) if (!next.has(k)) f(k, o, undefined);
}

const labelKey = (k: string, v: string): string => `${k}\u0000${v}`;

/** One label of a non-empty selector, the same every time for the same (immutable) selector. */
function firstPair(selector: Labels): string | undefined {
  for (const k in selector) return labelKey(k, selector[k] as string);
  return undefined;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.length).equals(b);
}

/** A resource for `body`, or `prev` itself when the body did not change (same version, nothing to push). */
function resourceFor(name: string, body: Uint8Array, prev: XdsResource | undefined): XdsResource {
  return prev !== undefined && prev.name === name && sameBytes(prev.body, body) ? prev : makeResource(name, body);
}

const encodeAddress = (a: istio.workload.Address.$Properties): Uint8Array => istio.workload.Address.encode(a).finish();
const encodeAuthorization = (a: istio.security.Authorization.$Properties): Uint8Array => istio.security.Authorization.encode(a).finish();

/**
 * The incremental state of `buildWds`. Opaque: create one, pass it to every build of one stream of states, and
 * drop it to start over. Not shared between concurrent streams.
 */
export class WdsCache {
  #opts: ModelOptions | undefined;
  #state: ClusterState = EMPTY;

  // Reverse indexes over the current state.
  readonly #podsByNs = new Map<string, Set<string>>();
  readonly #podsByNode = new Map<string, Set<string>>();
  readonly #podsByLabel = new Map<string, Set<string>>();
  /** `<ns>\0<label pair>` of each selector service. */
  readonly #servicesByLabel = new Map<string, Set<string>>();
  readonly #slicesByPod = new Map<string, Set<string>>();
  readonly #slicesByService = new Map<string, Set<string>>();
  readonly #policiesByNs = new Map<string, Set<string>>();
  readonly #peerAuthsByNs = new Map<string, Set<string>>();

  // Outputs, by source key.
  readonly #workloads = new Map<string, XdsResource>();
  readonly #services = new Map<string, XdsResource>();
  readonly #policies = new Map<string, XdsResource>();
  readonly #policyWarnings = new Map<string, WdsWarning>();
  readonly #peerAuthPolicies = new Map<string, XdsResource>();
  #staticStrict: XdsResource | undefined;

  // The published sets (by resource name); each snapshot shares what did not change with the previous one.
  readonly #addresses = new ResourceSetBuilder();
  readonly #authorizations = new ResourceSetBuilder();
  #warnings: readonly WdsWarning[] = [];

  build(state: ClusterState, opts: ModelOptions): WdsSnapshot {
    if (this.#opts === undefined || !sameOptions(this.#opts, opts)) this.#reset(opts);
    try {
      return this.#build(state, opts);
    } catch (err) {
      // A build that stopped half way left the indexes ahead of the outputs: the next build starts over.
      this.#opts = undefined;
      throw err;
    }
  }

  #build(state: ClusterState, opts: ModelOptions): WdsSnapshot {
    const prev = this.#state;
    const dirtyPods = new Set<string>();
    const dirtyServices = new Set<string>();
    const dirtyPolicies = new Set<string>();
    let peerAuthsChanged = false;
    const markAll = (keys: Iterable<string> | undefined): void => {
      if (keys !== undefined) for (const k of keys) dirtyPods.add(k);
    };

    // Pods first: the label index must describe the new pods before selectors are evaluated against it.
    diff(prev.pods, state.pods, (key, old, now) => {
      if (old !== undefined) this.#unindexPod(key, old);
      if (now !== undefined) this.#indexPod(key, now);
      dirtyPods.add(key);
    });
    diff(prev.namespaces, state.namespaces, (name) => markAll(this.#podsByNs.get(name)));
    diff(prev.nodes, state.nodes, (name) => markAll(this.#podsByNode.get(name)));
    diff(prev.endpointSlices, state.endpointSlices, (key, old, now) => {
      for (const s of [old, now]) {
        if (s === undefined) continue;
        for (const e of s.endpoints) if (e.targetRef !== undefined) dirtyPods.add(objectKey(e.targetRef));
      }
      if (old !== undefined) this.#indexSlice(key, old, false);
      if (now !== undefined) this.#indexSlice(key, now, true);
    });
    diff(prev.services, state.services, (key, old, now) => {
      dirtyServices.add(key);
      for (const s of [old, now]) {
        if (s?.selector !== undefined) this.#podsSelectedBy(s.selector, s.namespace, state, dirtyPods);
      }
      // Pods listed by the service's slices reference it even without a selector.
      for (const sliceKey of this.#slicesByService.get(key) ?? []) {
        for (const e of state.endpointSlices.get(sliceKey)?.endpoints ?? [])
          if (e.targetRef !== undefined) dirtyPods.add(objectKey(e.targetRef));
      }
      if (old !== undefined) this.#indexService(key, old, false);
      if (now !== undefined) this.#indexService(key, now, true);
    });
    diff(prev.authorizationPolicies, state.authorizationPolicies, (key, old, now) => {
      dirtyPolicies.add(key);
      for (const p of [old, now]) {
        if (p?.selector === undefined) continue;
        this.#podsSelectedBy(p.selector, p.namespace === opts.rootNamespace ? undefined : p.namespace, state, dirtyPods);
      }
      if (old !== undefined) removeFrom(this.#policiesByNs, old.namespace, key);
      if (now !== undefined) addTo(this.#policiesByNs, now.namespace, key);
    });
    diff(prev.peerAuthentications, state.peerAuthentications, (key, old, now) => {
      peerAuthsChanged = true;
      for (const p of [old, now]) {
        if (p === undefined) continue;
        if (p.namespace === opts.rootNamespace) {
          // The mesh-wide policy reaches every workload; root-namespace selector policies reach none.
          if (p.selector === undefined) markAll(state.pods.keys());
        } else if (p.selector === undefined) markAll(this.#podsByNs.get(p.namespace));
        else this.#podsSelectedBy(p.selector, p.namespace, state, dirtyPods);
      }
      if (old !== undefined) removeFrom(this.#peerAuthsByNs, old.namespace, key);
      if (now !== undefined) addTo(this.#peerAuthsByNs, now.namespace, key);
    });
    this.#state = state;

    let changed = 0;
    const publish = (set: ResourceSetBuilder, oldRes: XdsResource | undefined, newRes: XdsResource | undefined): void => {
      if (oldRes === newRes) return;
      changed++;
      if (oldRes !== undefined && (newRes === undefined || newRes.name !== oldRes.name)) set.delete(oldRes.name);
      if (newRes !== undefined) set.set(newRes);
    };

    for (const key of dirtyPods) {
      const old = this.#workloads.get(key);
      const pod = state.pods.get(key);
      const w = pod === undefined ? undefined : buildWorkload(this.#workloadInputs(key, pod, state, opts), opts);
      const res =
        w === undefined
          ? undefined
          : resourceFor(workloadUid(opts.clusterId, w.namespace ?? '', w.name ?? ''), encodeAddress({ workload: w }), old);
      if (res === undefined) this.#workloads.delete(key);
      else this.#workloads.set(key, res);
      publish(this.#addresses, old, res);
    }
    for (const key of dirtyServices) {
      const old = this.#services.get(key);
      const rec = state.services.get(key);
      const svc = rec === undefined ? undefined : buildService(rec, opts);
      const res =
        svc === undefined
          ? undefined
          : resourceFor(serviceResourceName(svc.namespace ?? '', svc.hostname ?? ''), encodeAddress({ service: svc }), old);
      if (res === undefined) this.#services.delete(key);
      else this.#services.set(key, res);
      publish(this.#addresses, old, res);
    }
    for (const key of dirtyPolicies) {
      const old = this.#policies.get(key);
      const rec = state.authorizationPolicies.get(key);
      const conv = rec === undefined ? undefined : convertAuthorizationPolicy(rec, opts);
      const res = conv?.authorization === undefined ? undefined : resourceFor(key, encodeAuthorization(conv.authorization), old);
      if (res === undefined) this.#policies.delete(key);
      else this.#policies.set(key, res);
      const message = conv?.warnings[0];
      if (rec !== undefined && message !== undefined) {
        this.#policyWarnings.set(key, {
          kind: 'AuthorizationPolicy',
          namespace: rec.namespace,
          name: rec.name,
          reason: 'UnsupportedValue',
          message,
        });
      } else this.#policyWarnings.delete(key);
      publish(this.#authorizations, old, res);
    }
    if (peerAuthsChanged) changed += this.#rebuildPeerAuthPolicies(state, opts);

    if (dirtyPolicies.size > 0) {
      this.#warnings = [...this.#policyWarnings.values()].sort((a, b) =>
        a.namespace !== b.namespace ? (a.namespace < b.namespace ? -1 : 1) : a.name < b.name ? -1 : a.name > b.name ? 1 : 0,
      );
    }
    const stats: WdsBuildStats = {
      workloadsRecomputed: dirtyPods.size,
      servicesRecomputed: dirtyServices.size,
      policiesRecomputed: dirtyPolicies.size + (peerAuthsChanged ? state.peerAuthentications.size : 0),
      resourcesChanged: changed,
    };
    return { addresses: this.#addresses.snapshot(), authorizations: this.#authorizations.snapshot(), warnings: this.#warnings, stats };
  }

  #reset(opts: ModelOptions): void {
    this.#opts = opts;
    this.#state = EMPTY;
    for (const m of [
      this.#podsByNs,
      this.#podsByNode,
      this.#podsByLabel,
      this.#servicesByLabel,
      this.#slicesByPod,
      this.#slicesByService,
      this.#policiesByNs,
      this.#peerAuthsByNs,
    ])
      m.clear();
    for (const m of [this.#workloads, this.#services, this.#policies, this.#peerAuthPolicies]) m.clear();
    this.#addresses.clear();
    this.#authorizations.clear();
    this.#policyWarnings.clear();
    this.#warnings = [];
    this.#staticStrict = undefined;
  }

  #indexPod(key: string, pod: PodRecord): void {
    addTo(this.#podsByNs, pod.namespace, key);
    if (pod.nodeName !== '') addTo(this.#podsByNode, pod.nodeName, key);
    for (const k in pod.labels) addTo(this.#podsByLabel, labelKey(k, pod.labels[k] as string), key);
  }

  #unindexPod(key: string, pod: PodRecord): void {
    removeFrom(this.#podsByNs, pod.namespace, key);
    if (pod.nodeName !== '') removeFrom(this.#podsByNode, pod.nodeName, key);
    for (const k in pod.labels) removeFrom(this.#podsByLabel, labelKey(k, pod.labels[k] as string), key);
  }

  #indexService(key: string, svc: ServiceRecord, add: boolean): void {
    const op = add ? addTo : removeFrom;
    const pair = svc.selector === undefined ? undefined : firstPair(svc.selector);
    if (pair !== undefined) op(this.#servicesByLabel, `${svc.namespace}\u0000${pair}`, key);
  }

  #indexSlice(key: string, slice: EndpointSliceRecord, add: boolean): void {
    const op = add ? addTo : removeFrom;
    if (slice.serviceName !== undefined) op(this.#slicesByService, `${slice.namespace}/${slice.serviceName}`, key);
    for (const e of slice.endpoints) if (e.targetRef !== undefined) op(this.#slicesByPod, objectKey(e.targetRef), key);
  }

  /** Adds the pods a selector selects (in `namespace`, or anywhere when undefined) to `out`. */
  #podsSelectedBy(selector: Labels, namespace: string | undefined, state: ClusterState, out: Set<string>): void {
    const pair = firstPair(selector);
    const candidates =
      pair !== undefined ? this.#podsByLabel.get(pair) : namespace !== undefined ? this.#podsByNs.get(namespace) : state.pods.keys();
    for (const key of candidates ?? []) {
      const pod = state.pods.get(key);
      if (pod !== undefined && (namespace === undefined || pod.namespace === namespace) && selects(selector, pod.labels)) out.add(key);
    }
  }

  #workloadInputs(key: string, pod: PodRecord, state: ClusterState, opts: ModelOptions): WorkloadInputs {
    const services = new Set<ServiceRecord>();
    for (const k in pod.labels) {
      for (const sk of this.#servicesByLabel.get(`${pod.namespace}\u0000${labelKey(k, pod.labels[k] as string)}`) ?? []) {
        const s = state.services.get(sk);
        if (s !== undefined) services.add(s);
      }
    }
    const slices: EndpointSliceRecord[] = [];
    for (const sk of this.#slicesByPod.get(key) ?? []) {
      const slice = state.endpointSlices.get(sk);
      if (slice === undefined) continue;
      slices.push(slice);
      const svc = slice.serviceName === undefined ? undefined : state.services.get(`${slice.namespace}/${slice.serviceName}`);
      if (svc !== undefined) services.add(svc);
    }
    const inNamespaces = <T>(index: Map<string, Set<string>>, records: ReadonlyMap<string, T>): T[] => {
      const out: T[] = [];
      for (const ns of pod.namespace === opts.rootNamespace ? [pod.namespace] : [pod.namespace, opts.rootNamespace]) {
        for (const k of index.get(ns) ?? []) {
          const r = records.get(k);
          if (r !== undefined) out.push(r);
        }
      }
      return out;
    };
    return {
      pod,
      namespace: state.namespaces.get(pod.namespace),
      node: pod.nodeName === '' ? undefined : state.nodes.get(pod.nodeName),
      // Sorted by key so that the services map is built in one order whatever the index order was.
      services: [...services].sort((a, b) => (objectKey(a) < objectKey(b) ? -1 : 1)),
      endpointSlices: slices,
      authorizationPolicies: inNamespaces(this.#policiesByNs, state.authorizationPolicies),
      peerAuthentications: inNamespaces(this.#peerAuthsByNs, state.peerAuthentications),
    };
  }

  /** The static STRICT policy and the converted port-level policies; there are few, so all are redone. */
  #rebuildPeerAuthPolicies(state: ClusterState, opts: ModelOptions): number {
    const byNs = new Map<string, PeerAuthenticationRecord[]>();
    for (const pa of state.peerAuthentications.values()) {
      const list = byNs.get(pa.namespace);
      if (list === undefined) byNs.set(pa.namespace, [pa]);
      else list.push(pa);
    }
    const rootPolicy = namespacePolicy(byNs.get(opts.rootNamespace) ?? [], opts.rootNamespace);
    const next = new Map<string, XdsResource>();
    for (const [ns, list] of byNs) {
      const nsPolicy = namespacePolicy(list, ns);
      for (const pa of list) {
        const converted = convertPeerAuthentication(pa, nsPolicy, rootPolicy, opts.rootNamespace);
        if (converted === undefined) continue;
        const name = policyResourceName(pa.namespace, converted.name ?? '');
        next.set(name, resourceFor(name, encodeAuthorization(converted), this.#peerAuthPolicies.get(name)));
      }
    }
    let changed = 0;
    for (const name of this.#peerAuthPolicies.keys()) {
      if (!next.has(name)) {
        this.#authorizations.delete(name);
        changed++;
      }
    }
    for (const [name, res] of next) {
      if (this.#peerAuthPolicies.get(name) !== res) {
        this.#authorizations.set(res);
        changed++;
      }
    }
    this.#peerAuthPolicies.clear();
    for (const [k, v] of next) this.#peerAuthPolicies.set(k, v);

    // Sent iff any PeerAuthentication exists; it is enforced only where a workload lists it.
    const strictPolicy = staticStrictPolicy(opts.rootNamespace);
    const name = policyResourceName(opts.rootNamespace, strictPolicy.name ?? '');
    const res = state.peerAuthentications.size === 0 ? undefined : resourceFor(name, encodeAuthorization(strictPolicy), this.#staticStrict);
    if (res !== this.#staticStrict) {
      changed++;
      if (res === undefined) this.#authorizations.delete(name);
      else this.#authorizations.set(res);
      this.#staticStrict = res;
    }
    return changed;
  }
}
