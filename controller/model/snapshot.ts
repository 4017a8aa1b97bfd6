/**
 * ClusterState (readonly maps of edge records) → the WDS resource sets ztunnels subscribe to: every
 * istio.workload.Address (workloads by uid, services by `<ns>/<hostname>`) and istio.security.Authorization
 * (`<ns>/<name>`), each an XdsResource whose version is a hash of its encoded body.
 *
 * WdsModel is that function made incremental on the derived-collection runtime (../krt): the ClusterState is fed
 * into input collections (diffed by identity), and the resources are collections derived from them by the pure
 * conversions of this folder. Each transform reads its inputs through the runtime, which records the reads, so a
 * change recomputes exactly the outputs that read what changed, with no index kept by hand:
 *
 *   namespaces nodes pods services endpointSlices authorizationPolicies peerAuthentications   (inputs)
 *        └───────┴────┴─────┴───────────┴───────────────┴──────────────────┴──▶ workloadAddresses
 *                           services ───────────────────────────────────────────▶ serviceAddresses
 *                                            authorizationPolicies ─▶ policyConversions ─▶ authorizations
 *                                                                                       └─▶ policyWarnings
 *                                                          peerAuthentications ─▶ convertedPeerAuthentications
 *                                                                              └─▶ staticStrictPolicy
 *
 * An output whose encoding is byte-identical keeps its previous resource object and version, so subscribers see
 * no change. The published sets share unchanged parts with the previous snapshot (resource-set.ts). `buildWds`
 * is the same model built once: the results are the same either way (the tests check this).
 */
import type { ResourceSet, XdsResource } from '../../lib/xds/resource.js';
import { type Collection, type CollectionEvent, Runtime } from '../krt/index.js';
import type {
  AuthorizationPolicyRecord,
  EndpointSliceRecord,
  NamespaceRecord,
  NodeRecord,
  PeerAuthenticationRecord,
  PodRecord,
  ServiceRecord,
} from '../kube/records.js';
import { type AddressLookup, addressLookup } from './address-lookup.js';
import { type AuthorizationCollections, authorizationCollections, type PolicyConversion } from './collections/authorizations.js';
import { type ClusterInputs, clusterInputs, feedClusterState } from './collections/inputs.js';
import { type PeerAuthenticationCollections, peerAuthenticationCollections } from './collections/peer-authentications.js';
import { type ServiceCollection, serviceCollection } from './collections/services.js';
import { type WorkloadCollection, workloadCollection } from './collections/workloads.js';
import { modelOptions, sameOptions, type ModelOptions } from './options.js';
import { ResourceSetBuilder } from './resource-set.js';

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

/** The contents of every derived collection, by key; resources as `<name>@<version>`. */
export interface WdsContents {
  readonly workloadAddresses: Readonly<Record<string, string>>;
  readonly serviceAddresses: Readonly<Record<string, string>>;
  readonly policyConversions: Readonly<Record<string, PolicyConversion>>;
  readonly authorizations: Readonly<Record<string, string>>;
  readonly policyWarnings: readonly WdsWarning[];
  readonly convertedPeerAuthentications: Readonly<Record<string, string>>;
  readonly staticStrictPolicy: string | undefined;
}

/** Counts of transform runs, to report per build. */
interface Recomputed {
  readonly workloads: number;
  readonly services: number;
  readonly policies: number;
}

/** The collection graph for one set of options, and the resource sets it publishes. */
class WdsGraph {
  readonly options: ModelOptions;
  readonly runtime = new Runtime();
  readonly inputs: ClusterInputs;
  readonly workloads: WorkloadCollection;
  readonly services: ServiceCollection;
  readonly authorizations: AuthorizationCollections;
  readonly peerAuthentications: PeerAuthenticationCollections;
  // The published sets (by resource name); each snapshot shares what did not change with the previous one.
  readonly addresses = new ResourceSetBuilder();
  readonly authorizationSet = new ResourceSetBuilder();
  resourcesChanged = 0;

  constructor(options: ModelOptions) {
    const rt = this.runtime;
    this.options = options;
    this.inputs = clusterInputs(rt);
    this.workloads = workloadCollection(rt, this.inputs, options);
    this.services = serviceCollection(rt, this.inputs, options);
    this.authorizations = authorizationCollections(rt, this.inputs, options);
    this.peerAuthentications = peerAuthenticationCollections(rt, this.inputs, options);
    this.workloads.collection.subscribe(this.#publish(this.addresses, (r) => r));
    this.services.collection.subscribe(this.#publish(this.addresses, (r) => r));
    this.authorizations.resources.subscribe(this.#publish(this.authorizationSet, (r) => r));
    this.peerAuthentications.converted.subscribe(this.#publish(this.authorizationSet, (r) => r));
    this.peerAuthentications.staticStrict.subscribe(this.#publish(this.authorizationSet, (r) => r));
  }

  /** Applies the changes of a collection to a published set. */
  #publish<O>(set: ResourceSetBuilder, resourceOf: (o: O) => XdsResource): (events: readonly CollectionEvent<O>[]) => void {
    return (events) => {
      for (const e of events) {
        const before = e.before === undefined ? undefined : resourceOf(e.before);
        const after = e.after === undefined ? undefined : resourceOf(e.after);
        if (before === after) continue;
        this.resourcesChanged++;
        if (before !== undefined && (after === undefined || after.name !== before.name)) set.delete(before.name);
        if (after !== undefined) set.set(after);
      }
    };
  }

  contents(): WdsContents {
    const versions = (c: Collection<XdsResource>): Record<string, string> =>
      Object.fromEntries(c.entries().map(([k, r]) => [k, `${r.name}@${r.version}`]));
    const strict = this.peerAuthentications.staticStrict.get();
    return {
      workloadAddresses: versions(this.workloads.collection),
      serviceAddresses: versions(this.services.collection),
      policyConversions: Object.fromEntries(this.authorizations.conversions.entries()),
      authorizations: versions(this.authorizations.resources),
      policyWarnings: this.authorizations.warnings.get() ?? [],
      convertedPeerAuthentications: versions(this.peerAuthentications.converted),
      staticStrictPolicy: strict === undefined ? undefined : `${strict.name}@${strict.version}`,
    };
  }

  recomputed(): Recomputed {
    return {
      workloads: this.workloads.collection.stats.recomputed,
      services: this.services.collection.stats.recomputed,
      policies: this.authorizations.conversions.stats.recomputed + this.peerAuthentications.converted.stats.recomputed,
    };
  }
}

const NOTHING_RECOMPUTED: Recomputed = { workloads: 0, services: 0, policies: 0 };

/**
 * The incremental WDS model: feed it successive ClusterStates, get snapshots. Opaque; one per stream of states
 * (it keeps the previous state to diff against). The options are fixed for the graph's life: when they change,
 * the model starts over with a new graph (they change only with the controller's configuration).
 */
export class WdsModel {
  #graph: WdsGraph | undefined;
  #counted: Recomputed = NOTHING_RECOMPUTED;

  update(state: ClusterState, options: Partial<ModelOptions> = {}): WdsSnapshot {
    const opts = modelOptions(options);
    if (this.#graph === undefined || !sameOptions(this.#graph.options, opts)) {
      this.#graph = new WdsGraph(opts);
      this.#counted = NOTHING_RECOMPUTED;
    }
    const g = this.#graph;
    feedClusterState(g.inputs, state);
    const changedBefore = g.resourcesChanged;
    g.runtime.flush();
    const now = g.recomputed();
    const stats: WdsBuildStats = {
      workloadsRecomputed: now.workloads - this.#counted.workloads,
      servicesRecomputed: now.services - this.#counted.services,
      policiesRecomputed: now.policies - this.#counted.policies,
      resourcesChanged: g.resourcesChanged - changedBefore,
    };
    this.#counted = now;
    return {
      addresses: g.addresses.snapshot(),
      authorizations: g.authorizationSet.snapshot(),
      warnings: g.authorizations.warnings.get() ?? [],
      stats,
    };
  }

  /** What every collection of the model holds (resources as `<name>@<version>`), for tests and debugging. */
  contents(): WdsContents | undefined {
    return this.#graph?.contents();
  }

  /** On-demand resolution of Address names for a proxy on `nodeName`, against the last update (nothing before one). */
  addressLookup(nodeName: string | undefined): AddressLookup | undefined {
    const g = this.#graph;
    return g === undefined ? undefined : addressLookup(g.workloads, g.services, nodeName);
  }
}

/** The WDS snapshot of one state, built from scratch. */
export function buildWds(state: ClusterState, options: Partial<ModelOptions> = {}): WdsSnapshot {
  return new WdsModel().update(state, options);
}
