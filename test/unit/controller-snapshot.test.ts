/**
 * ClusterState → WDS resource sets: Istio's resource names, content-hash versions, and incremental rebuilds
 * that touch exactly the resources whose inputs changed (measured at 10k pods).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';

import { objectKey, type PodRecord } from '../../controller/kube/records.js';
import { buildWds, WdsModel, type ClusterState, type WdsSnapshot } from '../../controller/model/snapshot.js';
import { istio } from '../../lib/proto/index.js';
import { contentVersion, type ResourceSet } from '../../lib/xds/resource.js';
import { authz, clusterState, mapWith, node, ns, peerAuth, pod, slice, svc, withState } from '../../testbed/fixtures/kube-fixtures.js';

const AMBIENT = { 'istio.io/dataplane-mode': 'ambient' };

function small(): ClusterState {
  return clusterState({
    namespaces: [ns('apps', AMBIENT), ns('istio-system')],
    nodes: [node('node-1', { 'topology.kubernetes.io/zone': 'z1' }), node('node-2', { 'topology.kubernetes.io/zone': 'z2' })],
    pods: [
      pod({ namespace: 'apps', name: 'web-1', labels: { app: 'web' }, ip: '10.0.0.1', node: 'node-1' }),
      pod({ namespace: 'apps', name: 'web-2', labels: { app: 'web' }, ip: '10.0.0.2', node: 'node-2' }),
      pod({ namespace: 'apps', name: 'db-1', labels: { app: 'db' }, ip: '10.0.0.3', node: 'node-2' }),
      pod({ namespace: 'apps', name: 'legacy-1', labels: { app: 'legacy' }, ip: '10.0.0.4', node: 'node-1' }),
    ],
    services: [
      svc({ namespace: 'apps', name: 'web', selector: { app: 'web' }, clusterIP: '10.96.0.1' }),
      svc({ namespace: 'apps', name: 'db', selector: { app: 'db' }, clusterIP: '10.96.0.2', ports: [{ name: 'tcp', port: 5432 }] }),
      svc({ namespace: 'apps', name: 'legacy', clusterIP: '10.96.0.3', ports: [{ name: 'tcp', port: 7000, targetPort: 7001 }] }),
    ],
    endpointSlices: [slice({ namespace: 'apps', name: 'legacy-abc', service: 'legacy', endpoints: [{ ip: '10.0.0.4', pod: 'legacy-1' }] })],
    authorizationPolicies: [
      authz('apps', 'allow-web', { selector: { matchLabels: { app: 'web' } }, rules: [{ from: [{ source: { namespaces: ['apps'] } }] }] }),
      authz('apps', 'ns-deny', { action: 'DENY', rules: [{ to: [{ operation: { ports: ['22'] } }] }] }),
      authz('apps', 'http-only', { selector: { matchLabels: { app: 'db' } }, rules: [{ to: [{ operation: { methods: ['GET'] } }] }] }),
    ],
    peerAuthentications: [peerAuth('istio-system', 'default', { mtls: { mode: 'STRICT' } })],
  });
}

const WEB1 = 'Kubernetes//Pod/apps/web-1';
const WEB2 = 'Kubernetes//Pod/apps/web-2';
const DB1 = 'Kubernetes//Pod/apps/db-1';
const LEGACY1 = 'Kubernetes//Pod/apps/legacy-1';

/** Names of the resources whose object differs between two sets (added, removed or new version). */
function changed(a: ResourceSet, b: ResourceSet): string[] {
  const out = new Set<string>();
  for (const [k, v] of a) if (b.get(k) !== v) out.add(k);
  for (const k of b.keys()) if (!a.has(k)) out.add(k);
  return [...out].sort();
}

function versions(s: WdsSnapshot): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of [...s.addresses, ...s.authorizations]) out[k] = v.version;
  return out;
}

const decodeWorkload = (s: WdsSnapshot, uid: string): istio.workload.Workload => {
  const body = s.addresses.get(uid)?.body;
  assert.ok(body !== undefined, `no resource ${uid}`);
  const w = istio.workload.Address.decode(body).workload;
  assert.ok(w !== undefined && w !== null);
  return w as istio.workload.Workload;
};

const replacePod = (state: ClusterState, p: PodRecord): ClusterState => withState(state, { pods: mapWith(state.pods, objectKey(p), p) });

describe('WDS snapshot resources', () => {
  it('names resources as Istio does: workload uid, <ns>/<hostname>, <ns>/<name>', () => {
    const s = buildWds(small());
    assert.deepEqual([...s.addresses.keys()].sort(), [
      DB1,
      LEGACY1,
      WEB1,
      WEB2,
      'apps/db.apps.svc.cluster.local',
      'apps/legacy.apps.svc.cluster.local',
      'apps/web.apps.svc.cluster.local',
    ]);
    assert.deepEqual([...s.authorizations.keys()].sort(), [
      'apps/allow-web',
      'apps/http-only',
      'apps/ns-deny',
      'istio-system/istio_converted_static_strict',
    ]);
  });

  it('versions every resource by the hash of its encoded body', () => {
    const s = buildWds(small());
    for (const r of [...s.addresses.values(), ...s.authorizations.values()]) assert.equal(r.version, contentVersion(r.body), r.name);
  });

  it('encodes workloads with their services, policies and STRICT reference', () => {
    const s = buildWds(small());
    const web = decodeWorkload(s, WEB1);
    assert.deepEqual(Object.keys(web.services), ['apps/web.apps.svc.cluster.local']);
    assert.deepEqual(web.authorizationPolicies, ['apps/allow-web', 'istio-system/istio_converted_static_strict']);
    assert.equal(web.tunnelProtocol, istio.workload.TunnelProtocol.HBONE);
    assert.deepEqual(Object.keys(decodeWorkload(s, LEGACY1).services), ['apps/legacy.apps.svc.cluster.local']);
    const svcAddr = istio.workload.Address.decode(s.addresses.get('apps/web.apps.svc.cluster.local')?.body ?? new Uint8Array());
    assert.equal(svcAddr.service?.hostname, 'web.apps.svc.cluster.local');
  });

  it('sends the static STRICT policy only while a PeerAuthentication exists', () => {
    const model = new WdsModel();
    const with1 = model.update(small());
    assert.ok(with1.authorizations.has('istio-system/istio_converted_static_strict'));
    const without = model.update(withState(small(), { peerAuthentications: new Map() }));
    assert.ok(!without.authorizations.has('istio-system/istio_converted_static_strict'));
    assert.deepEqual(decodeWorkload(without, WEB1).authorizationPolicies, ['apps/allow-web']);
  });

  it('surfaces the status messages of policies ztunnel enforces differently', () => {
    const s = buildWds(small());
    assert.deepEqual(
      s.warnings.map((w) => [w.namespace, w.name, w.reason]),
      [['apps', 'http-only', 'UnsupportedValue']],
    );
    assert.match(s.warnings[0]?.message ?? '', /found: methods/);
  });

  it('sends converted port-level PeerAuthentication policies', () => {
    const state = withState(small(), {
      peerAuthentications: new Map(
        [
          peerAuth('apps', 'web-ports', {
            selector: { matchLabels: { app: 'web' } },
            mtls: { mode: 'STRICT' },
            portLevelMtls: { '8080': { mode: 'PERMISSIVE' } },
          }),
        ].map((p) => [objectKey(p), p]),
      ),
    });
    const s = buildWds(state);
    assert.ok(s.authorizations.has('apps/converted_peer_authentication_web-ports'));
    assert.deepEqual(decodeWorkload(s, WEB1).authorizationPolicies, ['apps/allow-web', 'apps/converted_peer_authentication_web-ports']);
  });
});

describe('incremental rebuilds', () => {
  it('gives the same resources built incrementally or at once', () => {
    const model = new WdsModel();
    let state = small();
    model.update(state);
    state = replacePod(state, pod({ namespace: 'apps', name: 'web-3', labels: { app: 'web' }, ip: '10.0.0.9' }));
    state = withState(state, {
      services: mapWith(
        state.services,
        'apps/db',
        svc({ namespace: 'apps', name: 'db', selector: { app: 'web' }, clusterIP: '10.96.0.2' }),
      ),
    });
    state = withState(state, { authorizationPolicies: mapWith(state.authorizationPolicies, 'apps/allow-web', undefined) });
    state = withState(state, { nodes: mapWith(state.nodes, 'node-2', node('node-2', { 'topology.kubernetes.io/zone': 'z9' })) });
    const incremental = model.update(state);
    const fresh = buildWds(state);
    assert.deepEqual(versions(incremental), versions(fresh));
    assert.deepEqual(incremental.warnings, fresh.warnings);
  });

  it('keeps every resource object when rebuilt from equal records', () => {
    const model = new WdsModel();
    const a = model.update(small());
    const b = model.update(small());
    assert.deepEqual(changed(a.addresses, b.addresses), []);
    assert.deepEqual(changed(a.authorizations, b.authorizations), []);
    assert.equal(b.stats.resourcesChanged, 0);
  });

  it('a change to one pod changes only that workload', () => {
    const model = new WdsModel();
    const state = small();
    const a = model.update(state);
    const b = model.update(
      replacePod(state, pod({ namespace: 'apps', name: 'web-2', labels: { app: 'web' }, ip: '10.0.0.2', node: 'node-2', ready: false })),
    );
    assert.deepEqual(changed(a.addresses, b.addresses), [WEB2]);
    assert.deepEqual(changed(a.authorizations, b.authorizations), []);
    assert.equal(b.stats.workloadsRecomputed, 1);
  });

  it('leaves earlier snapshots untouched when later builds change or remove resources', () => {
    const model = new WdsModel();
    const state = small();
    const a = model.update(state);
    const before = new Map(a.addresses);
    const moved = replacePod(state, pod({ namespace: 'apps', name: 'web-2', labels: { app: 'web' }, ip: '10.0.0.22' }));
    const b = model.update(withState(moved, { pods: mapWith(moved.pods, 'apps/db-1', undefined) }));
    assert.deepEqual(new Map(a.addresses), before);
    assert.equal(a.addresses.size, before.size);
    assert.ok(a.addresses.has(DB1) && !b.addresses.has(DB1));
    assert.notEqual(a.addresses.get(WEB2), b.addresses.get(WEB2));
    assert.equal(b.addresses.size, before.size - 1);
    assert.deepEqual([...b.addresses.keys()].sort(), [...b.addresses].map(([k]) => k).sort());
  });

  it('a service port change touches its service and the workloads behind it, by selector or by EndpointSlice', () => {
    const model = new WdsModel();
    const state = small();
    const a = model.update(state);
    const webSvc = svc({
      namespace: 'apps',
      name: 'web',
      selector: { app: 'web' },
      clusterIP: '10.96.0.1',
      ports: [{ name: 'http', port: 80, targetPort: 9090 }],
    });
    const b = model.update(withState(state, { services: mapWith(state.services, 'apps/web', webSvc) }));
    assert.deepEqual(changed(a.addresses, b.addresses), [WEB1, WEB2, 'apps/web.apps.svc.cluster.local']);
    const legacySvc = svc({
      namespace: 'apps',
      name: 'legacy',
      clusterIP: '10.96.0.3',
      ports: [{ name: 'tcp', port: 7000, targetPort: 7002 }],
    });
    const c = model.update(withState(state, { services: mapWith(state.services, 'apps/legacy', legacySvc) }));
    assert.deepEqual(changed(b.addresses, c.addresses), [
      LEGACY1,
      WEB1,
      WEB2,
      'apps/legacy.apps.svc.cluster.local',
      'apps/web.apps.svc.cluster.local',
    ]);
  });

  it('a selector change moves a service between workloads (old and new selections rebuilt)', () => {
    const model = new WdsModel();
    const state = small();
    const a = model.update(state);
    const moved = svc({
      namespace: 'apps',
      name: 'db',
      selector: { app: 'web' },
      clusterIP: '10.96.0.2',
      ports: [{ name: 'tcp', port: 5432 }],
    });
    const b = model.update(withState(state, { services: mapWith(state.services, 'apps/db', moved) }));
    assert.deepEqual(changed(a.addresses, b.addresses), [DB1, WEB1, WEB2]);
    assert.deepEqual(Object.keys(decodeWorkload(b, DB1).services), []);
  });

  it('a selector policy change touches the workloads it selected and selects', () => {
    const model = new WdsModel();
    const state = small();
    const a = model.update(state);
    const p = authz('apps', 'allow-web', { selector: { matchLabels: { app: 'db' } }, rules: [{}] });
    const b = model.update(withState(state, { authorizationPolicies: mapWith(state.authorizationPolicies, 'apps/allow-web', p) }));
    assert.deepEqual(changed(a.addresses, b.addresses), [DB1, WEB1, WEB2]);
    assert.deepEqual(changed(a.authorizations, b.authorizations), ['apps/allow-web']);
  });

  it('a namespace PeerAuthentication touches every workload in its namespace', () => {
    const model = new WdsModel();
    const state = small();
    const a = model.update(state);
    const pa = peerAuth('apps', 'ns', { mtls: { mode: 'PERMISSIVE' } });
    const b = model.update(withState(state, { peerAuthentications: mapWith(state.peerAuthentications, objectKey(pa), pa) }));
    assert.deepEqual(changed(a.addresses, b.addresses), [DB1, LEGACY1, WEB1, WEB2]);
    assert.deepEqual(decodeWorkload(b, WEB1).authorizationPolicies, ['apps/allow-web']);
  });

  it("a node's locality change touches the workloads on it", () => {
    const model = new WdsModel();
    const state = small();
    const a = model.update(state);
    const b = model.update(
      withState(state, { nodes: mapWith(state.nodes, 'node-1', node('node-1', { 'topology.kubernetes.io/zone': 'z7' })) }),
    );
    assert.deepEqual(changed(a.addresses, b.addresses), [LEGACY1, WEB1]);
  });

  it('removing a service removes its resource and its entry in the workloads', () => {
    const model = new WdsModel();
    const state = small();
    const a = model.update(state);
    const b = model.update(withState(state, { services: mapWith(state.services, 'apps/web', undefined) }));
    assert.deepEqual(changed(a.addresses, b.addresses), [WEB1, WEB2, 'apps/web.apps.svc.cluster.local']);
    assert.ok(!b.addresses.has('apps/web.apps.svc.cluster.local'));
    assert.deepEqual(Object.keys(decodeWorkload(b, WEB1).services), []);
  });

  it('removing a pod removes its workload; a terminal pod is removed too', () => {
    const model = new WdsModel();
    const state = small();
    model.update(state);
    const gone = model.update(withState(state, { pods: mapWith(state.pods, 'apps/web-1', undefined) }));
    assert.ok(!gone.addresses.has(WEB1));
    const done = model.update(replacePod(state, pod({ namespace: 'apps', name: 'db-1', labels: { app: 'db' }, phase: 'Succeeded' })));
    assert.ok(!done.addresses.has(DB1) && done.addresses.has(WEB1));
  });

  it('starts over when the options change', () => {
    const model = new WdsModel();
    model.update(small());
    const s = model.update(small(), { clusterId: 'east', clusterDomain: 'corp' });
    assert.ok(s.addresses.has('east//Pod/apps/web-1'));
    assert.ok(s.addresses.has('apps/web.apps.svc.corp'));
    assert.ok(!s.addresses.has(WEB1));
  });
});

describe('a change recomputes only what read it', () => {
  /** The recomputation counts of the build after `change`, from a model that has built `small()`. */
  function recomputed(change: (s: ClusterState) => ClusterState): [number, number, number] {
    const model = new WdsModel();
    const state = small();
    model.update(state);
    const { stats } = model.update(change(state));
    return [stats.workloadsRecomputed, stats.servicesRecomputed, stats.policiesRecomputed];
  }

  it('a namespace label: the workloads of that namespace', () => {
    assert.deepEqual(
      recomputed((s) => withState(s, { namespaces: mapWith(s.namespaces, 'apps', ns('apps', {})) })),
      [4, 0, 0],
    );
    assert.deepEqual(
      recomputed((s) => withState(s, { namespaces: mapWith(s.namespaces, 'other', ns('other', AMBIENT)) })),
      [0, 0, 0],
    );
  });

  it('a node: the workloads on it', () => {
    const n = node('node-1', { 'topology.kubernetes.io/zone': 'z5' });
    assert.deepEqual(
      recomputed((s) => withState(s, { nodes: mapWith(s.nodes, 'node-1', n) })),
      [2, 0, 0],
    );
  });

  it('an equal copy of a record: nothing', () => {
    assert.deepEqual(
      recomputed((s) =>
        withState(s, {
          nodes: new Map([...s.nodes].map(([k]) => [k, node(k, { 'topology.kubernetes.io/zone': k === 'node-1' ? 'z1' : 'z2' })])),
        }),
      ),
      [0, 0, 0],
    );
  });

  it('an EndpointSlice: the pods it lists, before and after', () => {
    const moved = slice({ namespace: 'apps', name: 'legacy-abc', service: 'legacy', endpoints: [{ ip: '10.0.0.3', pod: 'db-1' }] });
    assert.deepEqual(
      recomputed((s) => withState(s, { endpointSlices: mapWith(s.endpointSlices, 'apps/legacy-abc', moved) })),
      [2, 0, 0],
    );
  });

  it('a service: itself and the pods its selector selects or its slices list', () => {
    const db = svc({
      namespace: 'apps',
      name: 'db',
      selector: { app: 'db' },
      clusterIP: '10.96.0.2',
      ports: [{ name: 'tcp', port: 5433 }],
    });
    assert.deepEqual(
      recomputed((s) => withState(s, { services: mapWith(s.services, 'apps/db', db) })),
      [1, 1, 0],
    );
    const legacy = svc({
      namespace: 'apps',
      name: 'legacy',
      clusterIP: '10.96.0.3',
      ports: [{ name: 'tcp', port: 7000, targetPort: 7009 }],
    });
    assert.deepEqual(
      recomputed((s) => withState(s, { services: mapWith(s.services, 'apps/legacy', legacy) })),
      [1, 1, 0],
    );
  });

  it('a selector policy: itself and the pods it selects, before and after', () => {
    const p = authz('apps', 'allow-web', { selector: { matchLabels: { app: 'db' } }, rules: [{}] });
    assert.deepEqual(
      recomputed((s) => withState(s, { authorizationPolicies: mapWith(s.authorizationPolicies, 'apps/allow-web', p) })),
      [3, 0, 1],
    );
  });

  it('a namespace-wide policy: itself only (workloads list selector policies alone)', () => {
    const p = authz('apps', 'ns-deny', { action: 'DENY', rules: [{ to: [{ operation: { ports: ['23'] } }] }] });
    assert.deepEqual(
      recomputed((s) => withState(s, { authorizationPolicies: mapWith(s.authorizationPolicies, 'apps/ns-deny', p) })),
      [0, 0, 1],
    );
  });

  it('a PeerAuthentication: the workloads it can apply to, and the converted policies of its namespace', () => {
    const team = peerAuth('team', 'ports', {
      selector: { matchLabels: { app: 'x' } },
      mtls: { mode: 'STRICT' },
      portLevelMtls: { '8080': { mode: 'PERMISSIVE' } },
    });
    const withTeam = (s: ClusterState): ClusterState =>
      withState(s, { peerAuthentications: mapWith(s.peerAuthentications, 'team/ports', team) });
    const model = new WdsModel();
    const state = withTeam(small());
    model.update(state);
    const pa = peerAuth('apps', 'ns', { mtls: { mode: 'PERMISSIVE' } });
    const { stats } = model.update(withState(state, { peerAuthentications: mapWith(state.peerAuthentications, 'apps/ns', pa) }));
    // Every workload of apps, and the new PeerAuthentication's own conversion; not team/ports, which reads only
    // team's and the root namespace's policies.
    assert.deepEqual([stats.workloadsRecomputed, stats.policiesRecomputed], [4, 1]);
  });

  it('one pod: its workload', () => {
    const p = pod({ namespace: 'apps', name: 'web-2', labels: { app: 'web' }, ip: '10.0.0.2', node: 'node-2', ready: false });
    assert.deepEqual(
      recomputed((s) => replacePod(s, p)),
      [1, 0, 0],
    );
  });
});

describe('incremental rebuilds match full builds', () => {
  /** A small deterministic PRNG (mulberry32), so a failure replays. */
  function rng(seed: number): () => number {
    let a = seed;
    return () => {
      a = (a + 0x6d2b79f5) | 0;
      let t = Math.imul(a ^ (a >>> 15), 1 | a);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  it('after each of 500 random changes, in every collection of the model', () => {
    const r = rng(7);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;
    const apps = ['web', 'db', 'legacy', 'other'];
    const nss = ['apps', 'team'];
    const nodes = ['node-1', 'node-2', 'node-3'];
    const model = new WdsModel();
    let state = small();
    const mutations: (() => ClusterState)[] = [
      () => {
        const namespace = pick([...nss, 'istio-system']);
        const name = `p-${Math.floor(r() * 6)}`;
        const remove = r() < 0.2;
        const p = pod({
          namespace,
          name,
          labels: r() < 0.9 ? { app: pick(apps) } : { app: pick(apps), 'istio.io/dataplane-mode': pick(['none', 'ambient']) },
          ip: r() < 0.9 ? `10.1.0.${Math.floor(r() * 200)}` : [],
          node: pick(nodes),
          ready: r() < 0.8,
          phase: r() < 0.9 ? 'Running' : pick(['Succeeded', 'Pending']),
          ports: r() < 0.5 ? [{ name: 'http', containerPort: 8080 }] : [],
        });
        return withState(state, { pods: mapWith(state.pods, `${namespace}/${name}`, remove ? undefined : p) });
      },
      () => {
        const namespace = pick(nss);
        const name = pick(apps);
        const s =
          r() < 0.15
            ? undefined
            : svc({
                namespace,
                name,
                selector: r() < 0.8 ? (r() < 0.8 ? { app: pick(apps) } : { app: pick(apps), tier: 'x' }) : undefined,
                ports: [{ name: 'http', port: 80, targetPort: pick([8080, 9090, 'http']) }],
                type: r() < 0.9 ? 'ClusterIP' : 'ExternalName',
              });
        return withState(state, { services: mapWith(state.services, `${namespace}/${name}`, s) });
      },
      () => {
        const namespace = pick(nss);
        const name = `sl-${Math.floor(r() * 3)}`;
        const eps = Array.from({ length: Math.floor(r() * 3) }, () => ({
          ip: '10.1.0.1',
          pod: `p-${Math.floor(r() * 6)}`,
          ...(r() < 0.1 ? { uid: 'stale' } : {}),
        }));
        const s =
          r() < 0.2
            ? undefined
            : slice({ namespace, name, service: pick(apps), ports: [{ name: 'http', port: pick([8080, 8081]) }], endpoints: eps });
        return withState(state, { endpointSlices: mapWith(state.endpointSlices, `${namespace}/${name}`, s) });
      },
      () => {
        const namespace = pick([...nss, 'istio-system']);
        const name = `ap-${Math.floor(r() * 3)}`;
        const x = r();
        const spec =
          x < 0.5
            ? { selector: { matchLabels: { app: pick(apps) } }, rules: [{}] }
            : x < 0.6
              ? { selector: { matchLabels: {} }, action: 'DENY', rules: [{ from: [{ source: { namespaces: ['x'] } }] }] }
              : x < 0.7
                ? { targetRefs: [{ kind: 'Gateway', group: 'gateway.networking.k8s.io', name: 'wp' }], rules: [{}] }
                : { action: pick(['DENY', 'AUDIT']), rules: [{ to: [{ operation: { methods: ['GET'] } }] }] };
        const a = r() < 0.2 ? undefined : authz(namespace, name, spec, r() < 0.2 ? { 'istio.io/dry-run': 'true' } : {});
        return withState(state, { authorizationPolicies: mapWith(state.authorizationPolicies, `${namespace}/${name}`, a) });
      },
      () => {
        const namespace = pick([...nss, 'istio-system']);
        const name = `pa-${Math.floor(r() * 2)}`;
        const spec =
          r() < 0.5
            ? { mtls: { mode: pick(['STRICT', 'PERMISSIVE', 'UNSET']) } }
            : {
                selector: { matchLabels: { app: pick(apps) } },
                mtls: { mode: pick(['STRICT', 'PERMISSIVE', 'UNSET']) },
                portLevelMtls: { '8080': { mode: pick(['STRICT', 'PERMISSIVE']) } },
              };
        const created = pick(['2026-01-01T00:00:00Z', '2026-02-01T00:00:00Z']);
        const p = r() < 0.25 ? undefined : peerAuth(namespace, name, spec, created);
        return withState(state, { peerAuthentications: mapWith(state.peerAuthentications, `${namespace}/${name}`, p) });
      },
      () => {
        const name = pick(nss);
        return withState(state, {
          namespaces: mapWith(state.namespaces, name, r() < 0.1 ? undefined : ns(name, r() < 0.5 ? AMBIENT : {})),
        });
      },
      () => {
        const name = pick(nodes);
        return withState(state, {
          nodes: mapWith(
            state.nodes,
            name,
            r() < 0.1 ? undefined : node(name, { 'topology.kubernetes.io/zone': pick(['z1', 'z2', 'z3']) }),
          ),
        });
      },
    ];
    for (let step = 0; step < 500; step++) {
      // Sometimes several changes reach the model in one build, as a debounced push delivers them.
      for (let n = r() < 0.3 ? 3 : 1; n > 0; n--) state = pick(mutations)();
      const incremental = model.update(state);
      const fresh = new WdsModel();
      const once = fresh.update(state);
      assert.deepEqual(model.contents(), fresh.contents(), `collections at step ${step}`);
      assert.deepEqual(versions(incremental), versions(once), `published resources at step ${step}`);
      assert.deepEqual(incremental.warnings, once.warnings, `warnings at step ${step}`);
      assert.deepEqual(versions(buildWds(state)), versions(once));
    }
  });
});

describe('scale', () => {
  /** 10k pods in 20 namespaces on 100 nodes, 1k services (each with a slice of its 10 pods), 100 policies. */
  function bigState(): ClusterState {
    const namespaces = Array.from({ length: 20 }, (_, i) => ns(`ns-${i}`, AMBIENT));
    const nodes = Array.from({ length: 100 }, (_, i) => node(`node-${i}`, { 'topology.kubernetes.io/zone': `z${i % 3}` }));
    const pods: PodRecord[] = [];
    const services = [];
    const slices = [];
    for (let s = 0; s < 1000; s++) {
      const namespace = `ns-${s % 20}`;
      const app = `app-${s}`;
      services.push(
        svc({
          namespace,
          name: app,
          selector: { app },
          clusterIP: `10.96.${s >> 8}.${s & 255}`,
          ports: [{ name: 'http', port: 80, targetPort: 'http' }],
        }),
      );
      const eps = [];
      for (let r = 0; r < 10; r++) {
        const n = s * 10 + r;
        const ip = `10.${n >> 16}.${(n >> 8) & 255}.${n & 255}`;
        const name = `${app}-${r}`;
        pods.push(
          pod({
            namespace,
            name,
            labels: { app, version: 'v1' },
            ip,
            node: `node-${n % 100}`,
            ports: [{ name: 'http', containerPort: 8080 }],
          }),
        );
        eps.push({ ip, pod: name });
      }
      slices.push(slice({ namespace, name: `${app}-x`, service: app, ports: [{ name: 'http', port: 8080 }], endpoints: eps }));
    }
    const policies = Array.from({ length: 100 }, (_, i) =>
      authz(`ns-${i % 20}`, `p-${i}`, {
        action: i % 2 === 0 ? 'ALLOW' : 'DENY',
        selector: { matchLabels: { app: `app-${i * 10 + (i % 20)}` } },
        rules: [{ from: [{ source: { namespaces: [`ns-${(i + 1) % 20}`] } }], to: [{ operation: { ports: ['8080'] } }] }],
      }),
    );
    return clusterState({
      namespaces,
      nodes,
      pods,
      services,
      endpointSlices: slices,
      authorizationPolicies: policies,
      peerAuthentications: [peerAuth('istio-system', 'default', { mtls: { mode: 'STRICT' } })],
    });
  }

  const time = <T>(f: () => T): [T, number] => {
    const t0 = performance.now();
    const r = f();
    return [r, performance.now() - t0];
  };

  it('rebuilds a one-pod change among 10k pods by recomputing that pod only', (t) => {
    const state = bigState();
    const model = new WdsModel();
    const [full, fullMs] = time(() => model.update(state));
    assert.equal(full.addresses.size, 11_000);
    assert.equal(full.authorizations.size, 101);

    // Warm: the first incremental builds pay for JIT; the figure reported is the median of several changes.
    const podMs: number[] = [];
    let cur = state;
    let last = full;
    for (let i = 0; i < 9; i++) {
      const target = pod({
        namespace: 'ns-3',
        name: 'app-3-4',
        labels: { app: 'app-3', version: `v${i + 2}` },
        ip: '10.0.0.34',
        node: 'node-34',
        ports: [{ name: 'http', containerPort: 8080 }],
      });
      cur = replacePod(cur, target);
      const [next, ms] = time(() => model.update(cur));
      podMs.push(ms);
      assert.deepEqual(changed(last.addresses, next.addresses), ['Kubernetes//Pod/ns-3/app-3-4']);
      assert.equal(next.stats.workloadsRecomputed, 1);
      last = next;
    }
    const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;

    const svcChange = svc({
      namespace: 'ns-5',
      name: 'app-5',
      selector: { app: 'app-5' },
      clusterIP: '10.96.0.5',
      ports: [{ name: 'http', port: 81, targetPort: 'http' }],
    });
    cur = withState(cur, { services: mapWith(cur.services, 'ns-5/app-5', svcChange) });
    const [afterSvc, svcMs] = time(() => model.update(cur));
    assert.equal(afterSvc.stats.workloadsRecomputed, 10);
    assert.equal(changed(last.addresses, afterSvc.addresses).length, 11);

    const pol = authz('ns-0', 'p-0', { selector: { matchLabels: { app: 'app-1' } }, rules: [{}] });
    cur = withState(cur, { authorizationPolicies: mapWith(cur.authorizationPolicies, 'ns-0/p-0', pol) });
    const [afterPol, polMs] = time(() => model.update(cur));
    assert.equal(afterPol.stats.policiesRecomputed, 1);

    const [fresh, freshMs] = time(() => buildWds(cur));
    assert.deepEqual(versions(afterPol), versions(fresh));

    t.diagnostic(`full build (10k pods, 1k services, 100 policies): ${fullMs.toFixed(1)} ms; again from scratch: ${freshMs.toFixed(1)} ms`);
    t.diagnostic(
      `one-pod change rebuild: median ${median(podMs).toFixed(2)} ms (first ${podMs[0]?.toFixed(2)} ms, ${podMs.map((x) => x.toFixed(2)).join(' ')})`,
    );
    t.diagnostic(`one-service change (10 workloads): ${svcMs.toFixed(2)} ms; one-policy selector change: ${polMs.toFixed(2)} ms`);
  });
});
