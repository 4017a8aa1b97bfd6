/**
 * What the xDS server serves to ztunnels: the WDS snapshot (istio.workload.Address, istio.security.Authorization)
 * built from the watched cluster state, and the on-demand resolution of Address names for ztunnels that subscribe
 * by name (XDS_ON_DEMAND). A change only marks the snapshot stale; the rebuild happens once per debounced push,
 * when the server first asks, and recomputes only what read the changed objects (model/snapshot.ts).
 */
import { TypeUrl } from '../lib/proto/index.js';
import type { ResourceSet } from '../lib/xds/resource.js';
import { type ClusterState, WdsModel, type WdsSnapshot } from './model/snapshot.js';
import type { ModelOptions } from './model/options.js';
import type { ProxyInfo } from './xds/proxy.js';
import type { OnDemandNames, ResourceSource } from './xds/source.js';

export class WdsSource implements ResourceSource {
  readonly #state: () => ClusterState;
  readonly #options: Partial<ModelOptions>;
  readonly #model = new WdsModel();
  #snapshot: WdsSnapshot | undefined;
  #stale = true;
  #builds = 0;
  #lastBuildMs = 0;

  constructor(state: () => ClusterState, options: Partial<ModelOptions>) {
    this.#state = state;
    this.#options = options;
  }

  /** Something in the cluster changed: rebuild before the next read. */
  invalidate(): void {
    this.#stale = true;
  }

  snapshot(): WdsSnapshot {
    if (this.#stale || !this.#snapshot) {
      const t0 = performance.now();
      this.#snapshot = this.#model.update(this.#state(), this.#options);
      this.#lastBuildMs = performance.now() - t0;
      this.#builds++;
      this.#stale = false;
    }
    return this.#snapshot;
  }

  get stats(): { builds: number; lastBuildMs: number; addresses: number; authorizations: number } {
    const s = this.#snapshot;
    return {
      builds: this.#builds,
      lastBuildMs: this.#lastBuildMs,
      addresses: s?.addresses.size ?? 0,
      authorizations: s?.authorizations.size ?? 0,
    };
  }

  resources(typeUrl: string): ResourceSet | undefined {
    if (typeUrl === TypeUrl.Address) return this.snapshot().addresses;
    if (typeUrl === TypeUrl.Authorization) return this.snapshot().authorizations;
    return undefined;
  }

  /** Address names resolve on demand; Authorization is never on demand (ztunnel always subscribes to all of it). */
  onDemand(typeUrl: string, proxy: ProxyInfo): OnDemandNames | undefined {
    if (typeUrl !== TypeUrl.Address) return undefined;
    this.snapshot();
    return this.#model.addressLookup(proxy.nodeName);
  }
}
