/** Routing decisions: outbound (ztunnel src/proxy/outbound.rs, src/state.rs) and inbound CONNECT resolution (src/proxy/inbound.rs). */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { parseAuthority, type HboneTarget } from '../../lib/hbone/authority.js';
import { formatSpiffeId, makeIdentity } from '../../lib/identity/spiffe.js';
import { identityOf, isInMesh, resolveInbound, routeOutbound, type OutboundRoute } from '../../ztunnel/proxy/route.js';
import type { GatewayAddress, Service, Workload } from '../../ztunnel/state/model.js';
import { WorkloadStore } from '../../ztunnel/state/store.js';
import { service, workload } from '../../testbed/fixtures/mesh-state.js';

const WEB = 'default/web.default.svc.cluster.local';
const WAYPOINT_SVC = 'default/waypoint.default.svc.cluster.local';
const waypointByHost: GatewayAddress = {
  destination: { kind: 'hostname', namespace: 'default', hostname: 'waypoint.default.svc.cluster.local' },
  hboneMtlsPort: 15008,
};
const waypointByIp: GatewayAddress = { destination: { kind: 'address', network: '', address: '10.0.9.1' }, hboneMtlsPort: 15008 };

const sleep = workload({ name: 'sleep', workloadIps: ['10.0.0.1'], serviceAccount: 'sleep' });
const web1 = workload({ name: 'web-1', workloadIps: ['10.0.1.1'], serviceAccount: 'web', services: { [WEB]: { 80: 8080, 81: 9081 } } });
const web2 = workload({ name: 'web-2', workloadIps: ['10.0.1.2'], serviceAccount: 'web', capacity: 3, services: { [WEB]: { 80: 9090 } } });
const web3 = workload({
  name: 'web-3',
  workloadIps: ['10.0.1.3'],
  serviceAccount: 'web',
  status: 'Unhealthy',
  services: { [WEB]: { 80: 8080 } },
});
const web = service({
  name: 'web',
  vips: [{ network: '', address: '10.96.0.10' }],
  ports: { 80: 8080, 81: 0 },
  subjectAltNames: ['spiffe://cluster.local/ns/default/sa/web-svc', 'not-a-spiffe-id'],
});
const legacyPod = workload({
  name: 'legacy-1',
  workloadIps: ['10.0.2.1'],
  protocol: 'TCP',
  services: { 'default/legacy.default.svc.cluster.local': { 80: 8000 } },
});
const legacy = service({ name: 'legacy', vips: [{ network: '', address: '10.96.0.20' }], ports: { 80: 8000 } });
const waypointPod = workload({
  name: 'waypoint-1',
  workloadIps: ['10.0.9.1'],
  serviceAccount: 'waypoint',
  services: { [WAYPOINT_SVC]: { 15008: 15008 } },
});
const waypointSvc = service({ name: 'waypoint', vips: [{ network: '', address: '10.96.0.99' }], ports: { 15008: 15008 } });
const reviewsPod = workload({
  name: 'reviews-1',
  workloadIps: ['10.0.5.1'],
  services: { 'default/reviews.default.svc.cluster.local': { 9080: 9080 } },
});
const reviews = service({
  name: 'reviews',
  vips: [{ network: '', address: '10.96.0.30' }],
  ports: { 9080: 9080 },
  waypoint: waypointByHost,
});
const db = workload({
  name: 'db',
  workloadIps: ['10.0.3.1'],
  waypoint: waypointByIp,
  services: { 'default/db.default.svc.cluster.local': { 5432: 5432 } },
});
const dbSvc = service({ name: 'db', vips: [{ network: '', address: '10.96.0.40' }], ports: { 5432: 5432 } });
const dual = workload({
  name: 'dual',
  workloadIps: ['10.0.4.1', 'fd00::4:1'],
  services: { 'default/dual.default.svc.cluster.local': { 80: 80 } },
});
const dualSvc = service({
  name: 'dual',
  vips: [
    { network: '', address: '10.96.0.50' },
    { network: '', address: 'fd00::96:50' },
  ],
  ports: { 80: 80 },
});
const v4only = service({ name: 'v4only', vips: [{ network: '', address: 'fd00::96:51' }], ports: { 80: 80 }, ipFamilies: 'IPv4' });
const dualForV4only = workload({
  name: 'dual-b',
  workloadIps: ['10.0.4.2', 'fd00::4:2'],
  services: { 'default/v4only.default.svc.cluster.local': { 80: 80 } },
});
const empty = service({ name: 'empty', vips: [{ network: '', address: '10.96.0.60' }], ports: { 80: 80 } });
const external = service({
  name: 'external',
  vips: [{ network: '', address: '10.96.0.70' }],
  ports: { 443: 443 },
  loadBalancer: { routingPreferences: [], mode: 'Passthrough', healthPolicy: 'OnlyHealthy' },
});
const lost = service({
  name: 'lost',
  vips: [{ network: '', address: '10.96.0.80' }],
  ports: { 80: 80 },
  waypoint: { destination: { kind: 'hostname', namespace: 'default', hostname: 'gone' }, hboneMtlsPort: 15008 },
});
const remotePod = workload({
  name: 'remote-1',
  workloadIps: ['10.1.0.1'],
  network: 'other',
  services: { 'default/remote.default.svc.cluster.local': { 80: 80 } },
});
const remote = service({ name: 'remote', vips: [{ network: '', address: '10.96.0.90' }], ports: { 80: 80 } });

function mesh(extra: { workloads?: Workload[]; services?: Service[] } = {}): WorkloadStore {
  const s = new WorkloadStore();
  s.replaceAll({
    workloads: [
      sleep,
      web1,
      web2,
      web3,
      legacyPod,
      waypointPod,
      reviewsPod,
      db,
      dual,
      dualForV4only,
      remotePod,
      ...(extra.workloads ?? []),
    ],
    services: [web, legacy, waypointSvc, reviews, dbSvc, dualSvc, v4only, empty, external, lost, remote, ...(extra.services ?? [])],
    policies: [],
  });
  return s;
}

const fixed = (r: number) => (): number => r;
const id = (w: Workload): string => formatSpiffeId(identityOf(w));
function expectKind<K extends OutboundRoute['kind']>(r: OutboundRoute, kind: K): Extract<OutboundRoute, { kind: K }> {
  assert.equal(
    r.kind,
    kind,
    JSON.stringify(r, (k, v) => (k === 'destination' || k === 'service' ? undefined : v)),
  );
  return r as Extract<OutboundRoute, { kind: K }>;
}

describe('routeOutbound: services', () => {
  it('tunnels to an endpoint of a VIP with its own target port and the service SANs', () => {
    const r = expectKind(routeOutbound(mesh(), sleep, { ip: '10.96.0.10', port: 80 }, fixed(0)), 'hbone');
    assert.equal(r.destination, web1);
    assert.deepEqual([r.address, r.port, r.authority, r.targetPort, r.viaWaypoint], ['10.0.1.1', 15008, '10.0.1.1:8080', 8080, false]);
    assert.equal(r.service, web);
    assert.deepEqual(r.expectedIdentities.map(formatSpiffeId), [
      'spiffe://cluster.local/ns/default/sa/web',
      'spiffe://cluster.local/ns/default/sa/web-svc',
    ]);
  });

  it("prefers the endpoint's port mapping over the service target port", () => {
    const r = expectKind(routeOutbound(mesh(), sleep, { ip: '10.96.0.10', port: 80 }, fixed(0.9)), 'hbone');
    assert.equal(r.destination, web2);
    assert.equal(r.authority, '10.0.1.2:9090');
  });

  it('chooses endpoints weighted by capacity, deterministically for an injected random', () => {
    // web-1 has capacity 1 and web-2 capacity 3: [0, 0.25) picks web-1, [0.25, 1) picks web-2.
    const picks = [0, 0.2, 0.249, 0.25, 0.5, 0.999].map(
      (r) => expectKind(routeOutbound(mesh(), sleep, { ip: '10.96.0.10', port: 80 }, fixed(r)), 'hbone').destination.name,
    );
    assert.deepEqual(picks, ['web-1', 'web-1', 'web-1', 'web-2', 'web-2', 'web-2']);
  });

  it('never picks an unhealthy endpoint, unless the service allows all', () => {
    const store = mesh();
    for (let i = 0; i < 20; i++) {
      const r = expectKind(routeOutbound(store, sleep, { ip: '10.96.0.10', port: 80 }, fixed(i / 20)), 'hbone');
      assert.notEqual(r.destination, web3);
    }
    const allowAll = { ...web, loadBalancer: { routingPreferences: [], mode: 'Standard', healthPolicy: 'AllowAll' } as const };
    const r = expectKind(routeOutbound(mesh({ services: [allowAll] }), sleep, { ip: '10.96.0.10', port: 80 }, fixed(0.99)), 'hbone');
    assert.equal(r.destination, web3);
  });

  it('uses only endpoints that map a named service port (target 0)', () => {
    for (const r of [0, 0.5, 0.99]) {
      const route = expectKind(routeOutbound(mesh(), sleep, { ip: '10.96.0.10', port: 81 }, fixed(r)), 'hbone');
      assert.equal(route.destination, web1);
      assert.equal(route.targetPort, 9081);
    }
  });

  it('connects in plain TCP to an endpoint outside the mesh', () => {
    const r = expectKind(routeOutbound(mesh(), sleep, { ip: '10.96.0.20', port: 80 }), 'tcp');
    assert.deepEqual([r.address, r.port, r.destination, r.service], ['10.0.2.1', 8000, legacyPod, legacy]);
  });

  const rejects: ReadonlyArray<[string, { ip: string; port: number }, string]> = [
    ['a service without endpoints', { ip: '10.96.0.60', port: 80 }, 'NO_HEALTHY_UPSTREAM'],
    ['a port the service does not have', { ip: '10.96.0.10', port: 443 }, 'NO_HEALTHY_UPSTREAM'],
    ['a service whose endpoints are all on another network', { ip: '10.96.0.90', port: 80 }, 'NO_HEALTHY_UPSTREAM'],
    ['a service whose waypoint is unknown', { ip: '10.96.0.80', port: 80 }, 'UNKNOWN_WAYPOINT'],
    ['ztunnel outbound port on loopback', { ip: '127.0.0.1', port: 15001 }, 'SELF_CALL'],
    ['ztunnel inbound plaintext port on loopback', { ip: '127.0.0.1', port: 15006 }, 'SELF_CALL'],
    ['ztunnel HBONE port on IPv6 loopback', { ip: '::1', port: 15008 }, 'SELF_CALL'],
    ['a destination that is not an IP', { ip: 'web', port: 80 }, 'INVALID_DESTINATION'],
  ];
  for (const [what, dst, code] of rejects) {
    it(`rejects ${what} with ${code}`, () => {
      const r = expectKind(routeOutbound(mesh(), sleep, dst, fixed(0)), 'reject');
      assert.equal(r.code, code);
      assert.ok(r.reason.length > 0);
    });
  }

  it('passes a Passthrough service through to the original destination', () => {
    const r = expectKind(routeOutbound(mesh(), sleep, { ip: '10.96.0.70', port: 443 }), 'passthrough');
    assert.deepEqual([r.address, r.port, r.service], ['10.96.0.70', 443, external]);
  });

  it('picks the endpoint address of the family the client dialled', () => {
    const v6 = expectKind(routeOutbound(mesh(), sleep, { ip: 'fd00::96:50', port: 80 }), 'hbone');
    assert.equal(v6.address, 'fd00::4:1');
    assert.equal(v6.authority, '[fd00::4:1]:80');
    const v4 = expectKind(routeOutbound(mesh(), sleep, { ip: '10.96.0.50', port: 80 }), 'hbone');
    assert.equal(v4.address, '10.0.4.1');
  });

  it("honours the service's IP families over the dialled family", () => {
    const r = expectKind(routeOutbound(mesh(), sleep, { ip: 'fd00::96:51', port: 80 }), 'hbone');
    assert.equal(r.address, '10.0.4.2');
  });

  it('keeps to the best locality under Failover and drops others under Strict', () => {
    const here = { region: 'r1', zone: 'z1', subzone: '' };
    const src = workload({ ...sleep, name: 'sleep', locality: here });
    const near = workload({
      name: 'near',
      workloadIps: ['10.0.6.1'],
      locality: here,
      services: { 'default/geo.default.svc.cluster.local': { 80: 80 } },
    });
    const far = workload({
      name: 'far',
      workloadIps: ['10.0.6.2'],
      locality: { region: 'r2', zone: 'z9', subzone: '' },
      services: { 'default/geo.default.svc.cluster.local': { 80: 80 } },
    });
    const geo = (mode: 'Failover' | 'Strict'): Service =>
      service({
        name: 'geo',
        vips: [{ network: '', address: '10.96.1.1' }],
        ports: { 80: 80 },
        loadBalancer: { routingPreferences: ['Region', 'Zone'], mode, healthPolicy: 'OnlyHealthy' },
      });
    for (const r of [0, 0.99]) {
      const route = expectKind(
        routeOutbound(mesh({ workloads: [near, far], services: [geo('Failover')] }), src, { ip: '10.96.1.1', port: 80 }, fixed(r)),
        'hbone',
      );
      assert.equal(route.destination.name, 'near');
    }
    const onlyFar = mesh({ workloads: [far], services: [geo('Failover')] });
    assert.equal(
      expectKind(routeOutbound(onlyFar, src, { ip: '10.96.1.1', port: 80 }), 'hbone').destination.name,
      'far',
      'Failover falls back',
    );
    const strict = mesh({ workloads: [far], services: [geo('Strict')] });
    assert.equal(expectKind(routeOutbound(strict, src, { ip: '10.96.1.1', port: 80 }), 'reject').code, 'NO_HEALTHY_UPSTREAM');
  });
});

describe('routeOutbound: workloads and passthrough', () => {
  it('tunnels directly to a workload addressed by its IP', () => {
    const r = expectKind(routeOutbound(mesh(), sleep, { ip: '10.0.1.1', port: 8080 }), 'hbone');
    assert.deepEqual(
      [r.address, r.port, r.authority, r.targetPort, r.service, r.viaWaypoint],
      ['10.0.1.1', 15008, '10.0.1.1:8080', 8080, undefined, false],
    );
    assert.deepEqual(r.expectedIdentities.map(formatSpiffeId), [id(web1)]);
  });

  it('connects in plain TCP to a TCP workload addressed by its IP', () => {
    const r = expectKind(routeOutbound(mesh(), sleep, { ip: '10.0.2.1', port: 8000 }), 'tcp');
    assert.deepEqual([r.address, r.port, r.destination], ['10.0.2.1', 8000, legacyPod]);
  });

  it('keeps the IP the client dialled on a dual-stack workload', () => {
    const r = expectKind(routeOutbound(mesh(), sleep, { ip: 'fd00:0:0::4:1', port: 80 }), 'hbone');
    assert.equal(r.address, 'fd00::4:1');
  });

  it('passes an unknown destination through unchanged', () => {
    assert.deepEqual(routeOutbound(mesh(), sleep, { ip: '8.8.8.8', port: 443 }), { kind: 'passthrough', address: '8.8.8.8', port: 443 });
  });

  it('passes loopback traffic to other ports through (not a self-call)', () => {
    assert.equal(routeOutbound(mesh(), sleep, { ip: '127.0.0.1', port: 8080 }).kind, 'passthrough');
  });

  it('does not find a workload on another network by IP', () => {
    assert.equal(routeOutbound(mesh(), sleep, { ip: '10.1.0.1', port: 80 }).kind, 'passthrough');
  });
});

describe('routeOutbound: waypoints', () => {
  it("sends service traffic to the service's waypoint with the original VIP as authority", () => {
    const r = expectKind(routeOutbound(mesh(), sleep, { ip: '10.96.0.30', port: 9080 }), 'hbone');
    assert.equal(r.viaWaypoint, true);
    assert.equal(r.destination, waypointPod);
    assert.deepEqual([r.address, r.port, r.authority, r.targetPort], ['10.0.9.1', 15008, '10.96.0.30:9080', 9080]);
    assert.equal(r.service, reviews);
    assert.deepEqual(r.expectedIdentities.map(formatSpiffeId), [id(waypointPod)]);
  });

  it('reaches a waypoint named by address', () => {
    const byIp = service({ ...reviews, name: 'reviews', waypoint: waypointByIp });
    const r = expectKind(routeOutbound(mesh({ services: [byIp] }), sleep, { ip: '10.96.0.30', port: 9080 }), 'hbone');
    assert.deepEqual([r.address, r.port, r.authority, r.viaWaypoint], ['10.0.9.1', 15008, '10.96.0.30:9080', true]);
  });

  it("sends workload-addressed traffic to the workload's waypoint", () => {
    const r = expectKind(routeOutbound(mesh(), sleep, { ip: '10.0.3.1', port: 5432 }), 'hbone');
    assert.deepEqual([r.address, r.authority, r.viaWaypoint, r.service], ['10.0.9.1', '10.0.3.1:5432', true, undefined]);
  });

  it('lets the waypoint itself reach the workload directly (no loop through itself)', () => {
    const r = expectKind(routeOutbound(mesh(), waypointPod, { ip: '10.0.3.1', port: 5432 }), 'hbone');
    assert.deepEqual([r.address, r.authority, r.viaWaypoint], ['10.0.3.1', '10.0.3.1:5432', false]);
  });

  it("does not apply a workload's waypoint to traffic addressed to its service", () => {
    const r = expectKind(routeOutbound(mesh(), sleep, { ip: '10.96.0.40', port: 5432 }), 'hbone');
    assert.deepEqual([r.address, r.viaWaypoint], ['10.0.3.1', false]);
  });

  it('uses the waypoint of a Passthrough service', () => {
    const ext = service({ ...external, waypoint: waypointByIp });
    const r = expectKind(routeOutbound(mesh({ services: [ext] }), sleep, { ip: '10.96.0.70', port: 443 }), 'hbone');
    assert.deepEqual([r.address, r.authority], ['10.0.9.1', '10.96.0.70:443']);
  });

  it('samples weighted waypoints by weight', () => {
    const canary = workload({ name: 'waypoint-canary', workloadIps: ['10.0.9.2'], serviceAccount: 'waypoint' });
    const weighted = service({
      ...reviews,
      weightedWaypoints: [
        { destination: waypointByIp, weight: 90 },
        { destination: { destination: { kind: 'address', network: '', address: '10.0.9.2' }, hboneMtlsPort: 15008 }, weight: 10 },
      ],
    });
    const store = mesh({ workloads: [canary], services: [weighted] });
    const at = (r: number): string => expectKind(routeOutbound(store, sleep, { ip: '10.96.0.30', port: 9080 }, fixed(r)), 'hbone').address;
    assert.deepEqual([at(0), at(0.89), at(0.9), at(0.99)], ['10.0.9.1', '10.0.9.1', '10.0.9.2', '10.0.9.2']);
  });
});

describe('resolveInbound', () => {
  const target = (authority: string): HboneTarget => {
    const t = parseAuthority(authority);
    assert.ok(t, authority);
    return t;
  };

  it('accepts an authority of the pod IP and keeps its port', () => {
    const r = resolveInbound(mesh(), web1, '10.0.1.1', target('10.0.1.1:8080'));
    assert.equal(r.kind, 'ok');
    if (r.kind !== 'ok') return;
    assert.deepEqual([r.address, r.port], ['10.0.1.1', 8080]);
    assert.equal(r.service, web, 'the service is guessed from the target port, for telemetry');
  });

  it('treats an IPv4-mapped local address as the pod IP', () => {
    assert.equal(resolveInbound(mesh(), web1, '::ffff:10.0.1.1', target('10.0.1.1:8080')).kind, 'ok');
  });

  it('rejects with 400 an authority for another IP', () => {
    const r = resolveInbound(mesh(), web1, '10.0.1.1', target('10.0.1.2:8080'));
    assert.deepEqual(r.kind === 'reject' ? [r.status, r.code] : r, [400, 'IP_MISMATCH']);
  });

  it('accepts another IP at the waypoint of that workload', () => {
    const r = resolveInbound(mesh(), waypointPod, '10.0.9.1', target('10.0.3.1:5432'));
    assert.deepEqual(r.kind === 'ok' ? [r.address, r.port] : r, ['10.0.9.1', 5432]);
  });

  it('accepts another IP at the waypoint of that service (a VIP)', () => {
    const r = resolveInbound(mesh(), waypointPod, '10.0.9.1', target('10.96.0.30:9080'));
    assert.equal(r.kind, 'ok');
  });

  it('accepts another IP at a workload with an application tunnel, sending to the tunnel port', () => {
    const tunnelled = workload({ ...waypointPod, applicationTunnel: { protocol: 'PROXY', port: 15088 } });
    const r = resolveInbound(mesh({ workloads: [tunnelled] }), tunnelled, '10.0.9.1', target('10.0.1.2:8080'));
    assert.equal(r.kind, 'ok');
    if (r.kind !== 'ok') return;
    assert.equal(r.port, 15088);
    assert.deepEqual(r.tunnel, { protocol: 'PROXY', target: { address: '10.0.1.2', port: 8080 } });
  });

  it("maps a hostname authority's service port to the pod's target port", () => {
    const r = resolveInbound(mesh(), web2, '10.0.1.2', target('web.default.svc.cluster.local:80'));
    assert.deepEqual(r.kind === 'ok' ? [r.address, r.port, r.service] : r, ['10.0.1.2', 9090, web]);
  });

  it('falls back to the service target port when the pod has no mapping', () => {
    const r = resolveInbound(mesh(), sleep, '10.0.0.1', target('legacy.default.svc.cluster.local:80'));
    assert.deepEqual(r.kind === 'ok' ? r.port : r, 8000);
  });

  it("prefers the service in the pod's namespace when a hostname exists in several", () => {
    const mine = service({ name: 'api', namespace: 'team', hostname: 'api.example.com', canonical: false, ports: { 443: 8443 } });
    const theirs = service({ name: 'api', namespace: 'default', hostname: 'api.example.com', canonical: true, ports: { 443: 9443 } });
    const pod = workload({ name: 'api-1', namespace: 'team', workloadIps: ['10.0.7.1'] });
    const r = resolveInbound(mesh({ workloads: [pod], services: [theirs, mine] }), pod, '10.0.7.1', target('api.example.com:443'));
    assert.deepEqual(r.kind === 'ok' ? [r.port, r.service] : r, [8443, mine]);
  });

  const rejects: ReadonlyArray<[string, Workload, string, string, number, string]> = [
    ['an unknown hostname', web1, '10.0.1.1', 'nope.default.svc.cluster.local:80', 503, 'UNKNOWN_SERVICE'],
    ['a service port the service lacks', web1, '10.0.1.1', 'web.default.svc.cluster.local:443', 503, 'NO_PORT_FOR_SERVICE'],
    ['a named port the pod does not map', web2, '10.0.1.2', 'web.default.svc.cluster.local:81', 503, 'NO_PORT_FOR_SERVICE'],
    ['the HBONE port itself', web1, '10.0.1.1', '10.0.1.1:15008', 503, 'SELF_CALL'],
    ['the outbound capture port', web1, '10.0.1.1', '10.0.1.1:15001', 503, 'SELF_CALL'],
  ];
  for (const [what, local, localIp, authority, status, code] of rejects) {
    it(`rejects ${what} with ${status} ${code}`, () => {
      const r = resolveInbound(mesh(), local, localIp, target(authority));
      assert.deepEqual(r.kind === 'reject' ? [r.status, r.code] : r, [status, code]);
    });
  }

  it('rejects a service port that maps onto a ztunnel port with 503 SELF_CALL', () => {
    const loop = service({ name: 'loop', ports: { 80: 15006 } });
    const r = resolveInbound(mesh({ services: [loop] }), web1, '10.0.1.1', target('loop.default.svc.cluster.local:80'));
    assert.deepEqual(r.kind === 'reject' ? [r.status, r.code] : r, [503, 'SELF_CALL']);
  });
});

describe('identityOf / isInMesh', () => {
  it("builds the workload's SPIFFE identity from trust domain, namespace and service account", () => {
    const w = workload({ name: 'a', namespace: 'shop', serviceAccount: 'cart', trustDomain: 'corp.example' });
    assert.deepEqual({ ...identityOf(w) }, { ...makeIdentity('shop', 'cart', 'corp.example') });
    assert.equal(identityOf(w), identityOf(w), 'cached per record');
  });

  it('counts HBONE and native-tunnel workloads as in the mesh', () => {
    assert.equal(isInMesh(workload({ name: 'a', protocol: 'HBONE' })), true);
    assert.equal(isInMesh(workload({ name: 'b', protocol: 'TCP' })), false);
    assert.equal(isInMesh(workload({ name: 'c', protocol: 'TCP', nativeTunnel: true })), true);
  });
});
