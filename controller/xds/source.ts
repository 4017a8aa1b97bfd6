/**
 * Where the xDS server gets resources: a ResourceSource answers, per type and proxy, the full set that proxy may
 * see. The server diffs it against what each proxy holds, so sources only need to produce sets, not deltas.
 */
import type { ResourceSet, XdsResource } from '../../lib/xds/resource.js';
import type { ProxyInfo } from './proxy.js';

/**
 * What explicitly subscribed names stand for, for a type proxies may subscribe to by name on demand (ztunnel's
 * XDS_ON_DEMAND for istio.workload.Address; istiod pilot/pkg/xds/workload.go `generateDeltasOndemand`). Answers
 * are about the set `resources()` returned last for the same proxy.
 */
export interface OnDemandNames {
  /** The resource names `name` stands for (itself when it names a resource); empty when it matches nothing. */
  resolve(name: string): readonly string[];
  /** Resources the proxy receives without asking (istiod `AdditionalPodSubscriptions`: the workloads of its node). */
  unasked(): readonly string[];
  /** The other names a resource answers to (`Resource.aliases` in the response). */
  aliases(name: string): readonly string[];
}

export interface ResourceSource {
  /**
   * Every resource of `typeUrl` that `proxy` may see, by name; `undefined` when this type is not served to this
   * proxy (a request for it is refused with INVALID_ARGUMENT). Called on every subscription and, per proxy, on
   * every push that names the type, so it must be cheap: return a cached, immutable set. A throw closes that
   * proxy's stream with INTERNAL (it reconnects and tries again).
   */
  resources(typeUrl: string, proxy: ProxyInfo): ResourceSet | undefined;
  /**
   * How names subscribed by `proxy` resolve, for types served on demand; undefined (or absent) when a name is
   * just a resource name. Consulted only for subscriptions that are not wildcard.
   */
  onDemand?(typeUrl: string, proxy: ProxyInfo): OnDemandNames | undefined;
}

/**
 * A source that serves the same sets to every proxy, replaced wholesale per type. For tests, local mode, and
 * types that are not scoped per proxy. Callers push after set() to tell connected proxies.
 */
export class MemoryResourceSource implements ResourceSource {
  readonly #sets = new Map<string, ResourceSet>();

  constructor(initial: Iterable<readonly [string, Iterable<XdsResource>]> = []) {
    for (const [typeUrl, resources] of initial) this.set(typeUrl, resources);
  }

  /** Replaces all resources of `typeUrl`. */
  set(typeUrl: string, resources: Iterable<XdsResource>): void {
    this.#sets.set(typeUrl, new Map([...resources].map((r) => [r.name, r] as const)));
  }

  /** Adds or replaces one resource. */
  upsert(typeUrl: string, resource: XdsResource): void {
    const next = new Map(this.#sets.get(typeUrl) ?? []);
    next.set(resource.name, resource);
    this.#sets.set(typeUrl, next);
  }

  /** Removes one resource; true if it existed. */
  remove(typeUrl: string, name: string): boolean {
    const cur = this.#sets.get(typeUrl);
    if (!cur?.has(name)) return false;
    const next = new Map(cur);
    next.delete(name);
    this.#sets.set(typeUrl, next);
    return true;
  }

  get typeUrls(): readonly string[] {
    return [...this.#sets.keys()];
  }

  resources(typeUrl: string): ResourceSet | undefined {
    return this.#sets.get(typeUrl);
  }
}
