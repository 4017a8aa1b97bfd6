/**
 * The proxy's state: workloads, services and policies with the indexes the data path looks them up by
 * (ztunnel src/state/workload.rs `WorkloadStore`, src/state/service.rs `ServiceStore`, src/state/policy.rs).
 * Every index is maintained incrementally on upsert and removal, so a lookup never scans the whole mesh.
 *
 * Records are treated as immutable: an upsert replaces the record and its index entries; an upsert equal to
 * the stored record is not a change (no version bump, no event), so listeners hear only about real changes.
 */
import { isDeepStrictEqual } from 'node:util';

import { canonicalIp, cidrContains } from '../../lib/net/ip.js';
import { policyKey, serviceKey, type Authorization, type Service, type StateDelta, type StateSnapshot, type Workload } from './model.js';

export interface ChangedKeys {
  /** Keys added or replaced by a different record. */
  readonly upserted: readonly string[];
  readonly removed: readonly string[];
}

export interface StoreChange {
  /** The store's version after the change. */
  readonly version: number;
  /** True when the change came from replaceAll (a file reload or a full resync). */
  readonly replaced: boolean;
  readonly workloads: ChangedKeys;
  readonly services: ChangedKeys;
  readonly policies: ChangedKeys;
  /**
   * True when a live connection's authorization may have changed: a policy changed, or a workload now selects
   * different policies or moved namespace. The proxy re-checks its connections then (ztunnel's PolicyWatcher).
   */
  readonly authorizationChanged: boolean;
}

export type StoreListener = (change: StoreChange) => void;

class ChangeSet {
  readonly upserted = { workloads: new Set<string>(), services: new Set<string>(), policies: new Set<string>() };
  readonly removed = { workloads: new Set<string>(), services: new Set<string>(), policies: new Set<string>() };
  authorizationChanged = false;

  upsert(kind: 'workloads' | 'services' | 'policies', key: string): void {
    this.removed[kind].delete(key);
    this.upserted[kind].add(key);
  }

  remove(kind: 'workloads' | 'services' | 'policies', key: string): void {
    this.upserted[kind].delete(key);
    this.removed[kind].add(key);
  }

  get empty(): boolean {
    return Object.values(this.upserted).every((s) => s.size === 0) && Object.values(this.removed).every((s) => s.size === 0);
  }

  keys(kind: 'workloads' | 'services' | 'policies'): ChangedKeys {
    return { upserted: [...this.upserted[kind]], removed: [...this.removed[kind]] };
  }
}

// (network, ip) as one map key; the canonical IP never contains "/", so the split is unambiguous.
const addrKey = (network: string, canonical: string): string => `${network}/${canonical}`;

function addTo<K, V>(index: Map<K, Map<string, V>>, key: K, id: string, value: V): void {
  let m = index.get(key);
  if (!m) {
    m = new Map();
    index.set(key, m);
  }
  m.set(id, value);
}

function removeFrom<K, V>(index: Map<K, Map<string, V>>, key: K, id: string): void {
  const m = index.get(key);
  if (m?.delete(id) && m.size === 0) index.delete(key);
}

/**
 * Istio's choice when several workloads claim one address (workload.rs `WorkloadByAddr::get`): a Pod over
 * other kinds (not spoofable), then one in the mesh; the last inserted wins a tie.
 */
function addressRank(w: Workload): number {
  return (w.uid.includes('//Pod/') ? 2 : 0) + (w.protocol === 'HBONE' ? 1 : 0);
}

/**
 * ServiceMatch::find_best_match: a service in the client's namespace wins at once; otherwise a canonical one
 * (the last seen), otherwise the first seen.
 */
function bestService(candidates: Iterable<Service>, clientNamespace: string | undefined): Service | undefined {
  let canonical: Service | undefined;
  let first: Service | undefined;
  for (const s of candidates) {
    if (clientNamespace !== undefined && s.namespace === clientNamespace) return s;
    if (s.canonical) canonical = s;
    else first ??= s;
  }
  return canonical ?? first;
}

/** A NAMESPACE-visibility service is only visible to clients in its own namespace; no client = no filter. */
const visibleTo = (s: Service, clientNamespace: string | undefined): boolean =>
  clientNamespace === undefined || s.visibility !== 'Namespace' || s.namespace === clientNamespace;

export class WorkloadStore {
  #version = 0;
  readonly #listeners = new Set<StoreListener>();

  readonly #workloads = new Map<string, Workload>();
  /** addrKey → uid → workload (HostNetwork workloads are not indexed: their IP is the node's). */
  readonly #workloadsByAddr = new Map<string, Map<string, Workload>>();
  /** "<namespace>/<hostname>" → uid → workload, for waypoints and gateways named by hostname. */
  readonly #workloadsByHostname = new Map<string, Map<string, Workload>>();
  /** "<namespace>/<name>" → uid → workload, to find the workload of a pod the node agent announces. */
  readonly #workloadsByName = new Map<string, Map<string, Workload>>();
  /** service key → uid → workload: the endpoints, from each workload's `services`. */
  readonly #endpoints = new Map<string, Map<string, Workload>>();
  readonly #endpointLists = new Map<string, readonly Workload[]>();

  readonly #services = new Map<string, Service>();
  readonly #servicesByVip = new Map<string, Map<string, Service>>();
  /** lowercased hostname → service key → service (ServiceEntry allows one hostname in several namespaces). */
  readonly #servicesByHostname = new Map<string, Map<string, Service>>();
  /** Services with CIDR VIPs; few in practice, so the fallback scans them. */
  readonly #servicesWithCidrs = new Map<string, Service>();

  readonly #policies = new Map<string, Authorization>();
  /** namespace → keys of NAMESPACE-scoped policies; GLOBAL ones live under #globalPolicies. */
  readonly #policiesByNamespace = new Map<string, Map<string, Authorization>>();
  readonly #globalPolicies = new Map<string, Authorization>();

  /** Incremented on every effective change. */
  get version(): number {
    return this.#version;
  }

  get counts(): { readonly workloads: number; readonly services: number; readonly policies: number } {
    return { workloads: this.#workloads.size, services: this.#services.size, policies: this.#policies.size };
  }

  /** Removals first, then upserts (so a key in both ends up upserted). Listeners hear one event per call. */
  apply(delta: StateDelta): void {
    const ch = new ChangeSet();
    for (const k of delta.removedWorkloads ?? []) this.#removeWorkload(k, ch);
    for (const k of delta.removedServices ?? []) this.#removeService(k, ch);
    for (const k of delta.removedPolicies ?? []) this.#removePolicy(k, ch);
    for (const w of delta.workloads ?? []) this.#upsertWorkload(w, ch);
    for (const s of delta.services ?? []) this.#upsertService(s, ch);
    for (const p of delta.policies ?? []) this.#upsertPolicy(p, ch);
    this.#commit(ch, false);
  }

  /** Makes the store hold exactly `state`; reports only what differs from before. */
  replaceAll(state: StateSnapshot): void {
    const ch = new ChangeSet();
    const keep = {
      workloads: new Set(state.workloads.map((w) => w.uid)),
      services: new Set(state.services.map(serviceKey)),
      policies: new Set(state.policies.map(policyKey)),
    };
    for (const k of [...this.#workloads.keys()]) if (!keep.workloads.has(k)) this.#removeWorkload(k, ch);
    for (const k of [...this.#services.keys()]) if (!keep.services.has(k)) this.#removeService(k, ch);
    for (const k of [...this.#policies.keys()]) if (!keep.policies.has(k)) this.#removePolicy(k, ch);
    for (const w of state.workloads) this.#upsertWorkload(w, ch);
    for (const s of state.services) this.#upsertService(s, ch);
    for (const p of state.policies) this.#upsertPolicy(p, ch);
    this.#commit(ch, true);
  }

  /** Subscribes to changes; returns the unsubscribe function. */
  onChange(listener: StoreListener): () => void {
    this.#listeners.add(listener);
    return () => void this.#listeners.delete(listener);
  }

  // --- lookups ---

  workload(uid: string): Workload | undefined {
    return this.#workloads.get(uid);
  }

  /** The workload at (network, ip); IPv4-mapped and non-canonical IPv6 spellings are accepted. */
  workloadByIp(network: string, ip: string): Workload | undefined {
    const c = canonicalIp(ip);
    const m = c === undefined ? undefined : this.#workloadsByAddr.get(addrKey(network, c));
    if (!m) return undefined;
    let best: Workload | undefined;
    for (const w of m.values()) if (!best || addressRank(w) >= addressRank(best)) best = w;
    return best;
  }

  workloadByHostname(namespace: string, hostname: string): Workload | undefined {
    const m = this.#workloadsByHostname.get(`${namespace}/${hostname.toLowerCase()}`);
    return m?.values().next().value;
  }

  /** Workloads named `name` in `namespace` (usually one; several while a pod is replaced across clusters). */
  workloadsByName(namespace: string, name: string): readonly Workload[] {
    const m = this.#workloadsByName.get(`${namespace}/${name}`);
    return m ? [...m.values()] : [];
  }

  service(key: string): Service | undefined {
    return this.#services.get(key);
  }

  /**
   * The service with VIP (network, ip). Several services may share a VIP: one in `clientNamespace` wins, then a
   * canonical one, then the first stored; services not visible to `clientNamespace` are skipped. Without an
   * exact VIP, the CIDR VIPs are tried, ranked by (in client namespace, longest prefix, canonical).
   */
  serviceByVip(network: string, ip: string, clientNamespace?: string): Service | undefined {
    const c = canonicalIp(ip);
    if (c === undefined) return undefined;
    const exact = this.#servicesByVip.get(addrKey(network, c));
    if (exact) {
      const best = bestService(
        [...exact.values()].filter((s) => visibleTo(s, clientNamespace)),
        clientNamespace,
      );
      if (best) return best;
    }
    let found: Service | undefined;
    let foundRank: [number, number, number] = [-1, -1, -1];
    for (const s of this.#servicesWithCidrs.values()) {
      if (!visibleTo(s, clientNamespace)) continue;
      for (const nc of s.cidrVips ?? []) {
        if (nc.network !== network || !cidrContains(nc.cidr, c)) continue;
        const rank: [number, number, number] = [s.namespace === clientNamespace ? 1 : 0, nc.cidr.prefixLength, s.canonical ? 1 : 0];
        if (
          rank[0] > foundRank[0] ||
          (rank[0] === foundRank[0] && (rank[1] > foundRank[1] || (rank[1] === foundRank[1] && rank[2] > foundRank[2])))
        ) {
          found = s;
          foundRank = rank;
        }
      }
    }
    return found;
  }

  /** The service named `hostname` (case-insensitive), preferring `preferNamespace`, then a canonical one. */
  serviceByHostname(hostname: string, preferNamespace?: string): Service | undefined {
    const m = this.#servicesByHostname.get(hostname.toLowerCase());
    if (!m) return undefined;
    return bestService(
      [...m.values()].filter((s) => visibleTo(s, preferNamespace)),
      preferNamespace,
    );
  }

  /** Workloads that list `serviceKey` in their `services`, in insertion order. Cached until the set changes. */
  endpoints(serviceKey: string): readonly Workload[] {
    let list = this.#endpointLists.get(serviceKey);
    if (!list) {
      const m = this.#endpoints.get(serviceKey);
      if (!m) return [];
      list = Object.freeze([...m.values()]);
      this.#endpointLists.set(serviceKey, list);
    }
    return list;
  }

  policy(key: string): Authorization | undefined {
    return this.#policies.get(key);
  }

  /**
   * The policies enforced for `w` (ztunnel state.rs `assert_rbac`): NAMESPACE-scoped ones of its namespace,
   * GLOBAL ones, and the selector policies it lists. Listed keys that are unknown (not received yet, or just
   * removed) are skipped; each policy appears once.
   */
  policiesForWorkload(w: Workload): readonly Authorization[] {
    const out = new Map<string, Authorization>(this.#policiesByNamespace.get(w.namespace));
    for (const [k, p] of this.#globalPolicies) out.set(k, p);
    for (const k of w.authorizationPolicies) {
      const p = this.#policies.get(k);
      if (p) out.set(k, p);
    }
    return [...out.values()];
  }

  workloads(): IterableIterator<Workload> {
    return this.#workloads.values();
  }

  services(): IterableIterator<Service> {
    return this.#services.values();
  }

  policies(): IterableIterator<Authorization> {
    return this.#policies.values();
  }

  /** Everything, sorted by key (as ztunnel's /config_dump lists it). */
  snapshot(): StateSnapshot {
    const byKey = <T>(m: Map<string, T>): T[] => [...m.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, v]) => v);
    return { workloads: byKey(this.#workloads), services: byKey(this.#services), policies: byKey(this.#policies) };
  }

  // --- mutation ---

  #upsertWorkload(w: Workload, ch: ChangeSet): void {
    const old = this.#workloads.get(w.uid);
    if (old && isDeepStrictEqual(old, w)) return;
    if (old) {
      this.#unindexWorkload(old);
      if (old.namespace !== w.namespace || !isDeepStrictEqual(old.authorizationPolicies, w.authorizationPolicies)) {
        ch.authorizationChanged = true;
      }
    }
    this.#workloads.set(w.uid, w);
    if (w.networkMode !== 'HostNetwork') {
      for (const ip of w.workloadIps) {
        const c = canonicalIp(ip);
        if (c !== undefined) addTo(this.#workloadsByAddr, addrKey(w.network, c), w.uid, w);
      }
    }
    if (w.hostname !== '') addTo(this.#workloadsByHostname, `${w.namespace}/${w.hostname.toLowerCase()}`, w.uid, w);
    addTo(this.#workloadsByName, `${w.namespace}/${w.name}`, w.uid, w);
    for (const key of Object.keys(w.services)) {
      addTo(this.#endpoints, key, w.uid, w);
      this.#endpointLists.delete(key);
    }
    ch.upsert('workloads', w.uid);
  }

  #removeWorkload(uid: string, ch: ChangeSet): void {
    const old = this.#workloads.get(uid);
    if (!old) return;
    this.#unindexWorkload(old);
    this.#workloads.delete(uid);
    ch.remove('workloads', uid);
  }

  #unindexWorkload(w: Workload): void {
    for (const ip of w.workloadIps) {
      const c = canonicalIp(ip);
      if (c !== undefined) removeFrom(this.#workloadsByAddr, addrKey(w.network, c), w.uid);
    }
    if (w.hostname !== '') removeFrom(this.#workloadsByHostname, `${w.namespace}/${w.hostname.toLowerCase()}`, w.uid);
    removeFrom(this.#workloadsByName, `${w.namespace}/${w.name}`, w.uid);
    for (const key of Object.keys(w.services)) {
      removeFrom(this.#endpoints, key, w.uid);
      this.#endpointLists.delete(key);
    }
  }

  #upsertService(s: Service, ch: ChangeSet): void {
    const key = serviceKey(s);
    const old = this.#services.get(key);
    if (old && isDeepStrictEqual(old, s)) return;
    if (old) this.#unindexService(old);
    this.#services.set(key, s);
    for (const vip of s.vips) {
      const c = canonicalIp(vip.address);
      if (c !== undefined) addTo(this.#servicesByVip, addrKey(vip.network, c), key, s);
    }
    addTo(this.#servicesByHostname, s.hostname.toLowerCase(), key, s);
    if (s.cidrVips?.length) this.#servicesWithCidrs.set(key, s);
    ch.upsert('services', key);
  }

  #removeService(key: string, ch: ChangeSet): void {
    const old = this.#services.get(key);
    if (!old) return;
    this.#unindexService(old);
    this.#services.delete(key);
    ch.remove('services', key);
  }

  #unindexService(s: Service): void {
    const key = serviceKey(s);
    for (const vip of s.vips) {
      const c = canonicalIp(vip.address);
      if (c !== undefined) removeFrom(this.#servicesByVip, addrKey(vip.network, c), key);
    }
    removeFrom(this.#servicesByHostname, s.hostname.toLowerCase(), key);
    this.#servicesWithCidrs.delete(key);
  }

  #upsertPolicy(p: Authorization, ch: ChangeSet): void {
    const key = policyKey(p);
    const old = this.#policies.get(key);
    if (old && isDeepStrictEqual(old, p)) return;
    if (old) this.#unindexPolicy(old);
    this.#policies.set(key, p);
    if (p.scope === 'Global') this.#globalPolicies.set(key, p);
    else if (p.scope === 'Namespace') addTo(this.#policiesByNamespace, p.namespace, key, p);
    ch.upsert('policies', key);
    ch.authorizationChanged = true;
  }

  #removePolicy(key: string, ch: ChangeSet): void {
    const old = this.#policies.get(key);
    if (!old) return;
    this.#unindexPolicy(old);
    this.#policies.delete(key);
    ch.remove('policies', key);
    ch.authorizationChanged = true;
  }

  #unindexPolicy(p: Authorization): void {
    const key = policyKey(p);
    this.#globalPolicies.delete(key);
    removeFrom(this.#policiesByNamespace, p.namespace, key);
  }

  /**
   * Bumps the version and tells the listeners, after the state is fully applied. A throwing listener does not
   * stop the others; the first error is rethrown once all have run.
   */
  #commit(ch: ChangeSet, replaced: boolean): void {
    if (ch.empty) return;
    this.#version++;
    const change: StoreChange = {
      version: this.#version,
      replaced,
      workloads: ch.keys('workloads'),
      services: ch.keys('services'),
      policies: ch.keys('policies'),
      authorizationChanged: ch.authorizationChanged,
    };
    let firstError: unknown;
    for (const l of [...this.#listeners]) {
      try {
        l(change);
      } catch (err) {
        firstError ??= err;
      }
    }
    if (firstError !== undefined) throw firstError;
  }
}
