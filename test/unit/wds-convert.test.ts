/**
 * ztunnel's WDS edge: Kubernetes records → controller → WDS protobuf → bytes → ztunnel records equal what the
 * local-config loader reads from the equivalent YAML; every malformed resource is refused with a typed reason.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { buildWds } from '../../controller/model/snapshot.js';
import { hasErrorCode } from '../../lib/errors.js';
import { istio } from '../../lib/proto/index.js';
import { parseLocalConfig } from '../../ztunnel/config/local-config.js';
import type { Authorization, Service, Workload } from '../../ztunnel/state/model.js';
import {
  addressToModel,
  authorizationToModel,
  decodeAddress,
  decodeAuthorization,
  WdsConvertError,
  type WdsRejectReason,
} from '../../ztunnel/sources/wds-convert.js';
import { authz, clusterState, node, ns, peerAuth, pod, svc } from '../../testbed/fixtures/kube-fixtures.js';

type IWorkload = istio.workload.Workload.$Properties;
type IService = istio.workload.Service.$Properties;
type IAuthorization = istio.security.Authorization.$Properties;

describe('round trip: Kubernetes → WDS → ztunnel model = local config', () => {
  const state = clusterState({
    namespaces: [ns('apps', { 'istio.io/dataplane-mode': 'ambient' }), ns('legacy'), ns('istio-system')],
    nodes: [node('node-1', { 'topology.kubernetes.io/region': 'eu', 'topology.kubernetes.io/zone': 'eu-1' })],
    pods: [
      pod({
        namespace: 'apps',
        name: 'web-6d9f-abcde',
        generateName: 'web-6d9f-',
        owner: { kind: 'ReplicaSet', name: 'web-6d9f' },
        labels: { app: 'web', version: 'v1', 'pod-template-hash': '6d9f' },
        ip: ['10.0.0.1', 'fd00::1'],
        serviceAccount: 'web',
        node: 'node-1',
        ports: [{ name: 'grpc', containerPort: 9999 }],
      }),
      pod({ namespace: 'legacy', name: 'db-0', labels: { app: 'db' }, ip: '10.0.0.2', node: 'node-2', ready: false }),
    ],
    services: [
      svc({
        namespace: 'apps',
        name: 'web',
        selector: { app: 'web' },
        clusterIP: '10.96.0.1',
        ports: [
          { name: 'http', port: 80, targetPort: 8080 },
          { name: 'grpc', port: 9090, targetPort: 'grpc' },
        ],
      }),
      svc({ namespace: 'legacy', name: 'db', selector: { app: 'db' }, clusterIP: 'None', ports: [{ name: 'tcp', port: 5432 }] }),
    ],
    authorizationPolicies: [
      authz('apps', 'allow-web', {
        selector: { matchLabels: { app: 'web' } },
        rules: [{ from: [{ source: { namespaces: ['apps'], principals: ['cluster.local/ns/apps/sa/*'] } }] }],
      }),
      authz(
        'apps',
        'deny-ssh',
        { action: 'DENY', rules: [{ to: [{ operation: { ports: ['22'] } }], when: [{ key: 'source.ip', notValues: ['10.0.0.0/8'] }] }] },
        { 'istio.io/dry-run': 'true' },
      ),
    ],
    peerAuthentications: [peerAuth('istio-system', 'default', { mtls: { mode: 'STRICT' } })],
  });

  const yaml = `
workloads:
- uid: Kubernetes//Pod/apps/web-6d9f-abcde
  name: web-6d9f-abcde
  namespace: apps
  serviceAccount: web
  workloadIps: ["10.0.0.1", "fd00::1"]
  protocol: HBONE
  node: node-1
  workloadName: web
  workloadType: deployment
  canonicalName: web
  canonicalRevision: v1
  locality: {region: eu, zone: eu-1}
  authorizationPolicies: [apps/allow-web, istio-system/istio_converted_static_strict]
  services:
    apps/web.apps.svc.cluster.local: {80: 8080, 9090: 9999}
- uid: Kubernetes//Pod/legacy/db-0
  name: db-0
  namespace: legacy
  workloadIps: ["10.0.0.2"]
  protocol: TCP
  node: node-2
  workloadName: db-0
  workloadType: pod
  canonicalName: db
  canonicalRevision: latest
  status: Unhealthy
  authorizationPolicies: [istio-system/istio_converted_static_strict]
  services:
    legacy/db.legacy.svc.cluster.local: {5432: 5432}
services:
- name: web
  namespace: apps
  hostname: web.apps.svc.cluster.local
  vips: ["/10.96.0.1"]
  ports: {80: 8080, 9090: 0}
  canonical: true
- name: db
  namespace: legacy
  hostname: db.legacy.svc.cluster.local
  vips: []
  ports: {5432: 5432}
  canonical: true
policies:
- name: allow-web
  namespace: apps
  scope: WorkloadSelector
  action: Allow
  rules: [[[{namespaces: [{Exact: apps}], principals: [{Prefix: cluster.local/ns/apps/sa/}]}]]]
- name: deny-ssh
  namespace: apps
  scope: Namespace
  action: Deny
  dryRun: true
  rules: [[[{destinationPorts: [22]}], [{notSourceIps: [10.0.0.0/8]}]]]
- name: istio_converted_static_strict
  namespace: istio-system
  scope: WorkloadSelector
  action: Deny
  rules: [[[{notPrincipals: [{Presence: []}]}]]]
`;

  const snapshot = buildWds(state);
  const expected = parseLocalConfig(yaml);
  const workloads: Workload[] = [];
  const services: Service[] = [];
  for (const [name, r] of snapshot.addresses) {
    const m = decodeAddress(name, r.body);
    if (m.kind === 'workload') workloads.push(m.workload);
    else services.push(m.service);
  }
  const policies: Authorization[] = [...snapshot.authorizations].map(([name, r]) => decodeAuthorization(name, r.body));
  const byKey = <T>(xs: readonly T[], key: (x: T) => string): Map<string, T> => new Map(xs.map((x) => [key(x), x]));

  it('reads every workload as the local config does', () => {
    assert.deepEqual([workloads.length, services.length, policies.length], [2, 2, 3]);
    assert.deepEqual(
      byKey(workloads, (w) => w.uid),
      byKey(expected.workloads, (w) => w.uid),
    );
  });

  it('reads every service as the local config does', () => {
    assert.deepEqual(
      byKey(services, (s) => `${s.namespace}/${s.hostname}`),
      byKey(expected.services, (s) => `${s.namespace}/${s.hostname}`),
    );
  });

  it('reads every policy as the local config does', () => {
    assert.deepEqual(
      byKey(policies, (p) => `${p.namespace}/${p.name}`),
      byKey(expected.policies, (p) => `${p.namespace}/${p.name}`),
    );
  });
});

describe('defaults applied at the WDS edge', () => {
  const base: IWorkload = { uid: 'c//Pod/ns/p', name: 'p', namespace: 'ns', tunnelProtocol: istio.workload.TunnelProtocol.HBONE };
  const wl = (over: Partial<IWorkload>): Workload => {
    const m = addressToModel(over.uid ?? base.uid ?? '', { workload: { ...base, ...over } });
    assert.equal(m.kind, 'workload');
    return (m as { workload: Workload }).workload;
  };

  it('defaults trust domain, service account and cluster id as ztunnel does', () => {
    const w = wl({});
    assert.deepEqual([w.trustDomain, w.serviceAccount, w.clusterId], ['cluster.local', 'default', 'Kubernetes']);
  });

  it('reads an unset capacity as 1 and a set one as given', () => {
    assert.equal(wl({}).capacity, 1);
    assert.equal(wl({ capacity: { value: 3 } }).capacity, 3);
    assert.equal(wl({ capacity: {} }).capacity, 0);
  });

  it('reads NONE as plain TCP and IPv4-mapped addresses as IPv4', () => {
    const w = wl({
      tunnelProtocol: istio.workload.TunnelProtocol.NONE,
      addresses: [Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1), Uint8Array.of(10, 0, 0, 1)],
    });
    assert.equal(w.protocol, 'TCP');
    assert.deepEqual(w.workloadIps, ['10.0.0.1']);
  });

  it('reads a gateway without a port as 15008 and an application tunnel port 0 as none', () => {
    const w = wl({
      waypoint: { hostname: { namespace: 'ns', hostname: 'wp.ns.svc.cluster.local' } },
      networkGateway: { address: { network: 'n2', address: Uint8Array.of(1, 2, 3, 4) }, hboneMtlsPort: 15009 },
      applicationTunnel: { protocol: istio.workload.ApplicationTunnel.Protocol.PROXY },
    });
    assert.deepEqual(w.waypoint, {
      destination: { kind: 'hostname', namespace: 'ns', hostname: 'wp.ns.svc.cluster.local' },
      hboneMtlsPort: 15008,
    });
    assert.deepEqual(w.networkGateway, { destination: { kind: 'address', network: 'n2', address: '1.2.3.4' }, hboneMtlsPort: 15009 });
    assert.deepEqual(w.applicationTunnel, { protocol: 'PROXY', port: undefined });
  });

  it('reads an unknown workload type as deployment, as ztunnel does', () =>
    assert.equal(wl({ workloadType: 42 as istio.workload.WorkloadType }).workloadType, 'deployment'));

  it('reads a VIP with a shorter length as a CIDR VIP and an unknown visibility as public', () => {
    const m = addressToModel('ns/s.ns.svc', {
      service: {
        name: 's',
        namespace: 'ns',
        hostname: 's.ns.svc',
        addresses: [
          { network: '', address: Uint8Array.of(10, 96, 0, 1), length: 32 },
          { network: 'n', address: Uint8Array.of(10, 97, 0, 0), length: 16 },
        ],
        visibility: 9 as istio.workload.Service.Visibility,
      },
    });
    assert.equal(m.kind, 'service');
    const s = (m as { service: Service }).service;
    assert.deepEqual(s.vips, [{ network: '', address: '10.96.0.1' }]);
    assert.deepEqual(s.cidrVips, [{ network: 'n', cidr: { address: '10.97.0.0', prefixLength: 16 } }]);
    assert.equal(s.visibility, 'Public');
  });

  it('keeps the last of two entries for one service port (TCP and UDP 53)', () => {
    const m = addressToModel('kube-system/dns', {
      service: {
        name: 'dns',
        namespace: 'kube-system',
        hostname: 'dns',
        ports: [
          { servicePort: 53, targetPort: 53 },
          { servicePort: 53, targetPort: 5353 },
        ],
      },
    });
    assert.deepEqual((m as { service: Service }).service.ports, { 53: 5353 });
  });
});

describe('malformed WDS resources are refused with a typed reason', () => {
  const W: IWorkload = {
    uid: 'K//Pod/ns/p',
    name: 'p',
    namespace: 'ns',
    tunnelProtocol: istio.workload.TunnelProtocol.HBONE,
    addresses: [Uint8Array.of(10, 0, 0, 1)],
  };
  const S: IService = {
    name: 's',
    namespace: 'ns',
    hostname: 's.ns.svc.cluster.local',
    addresses: [{ network: '', address: Uint8Array.of(10, 96, 0, 1) }],
    ports: [{ servicePort: 80, targetPort: 8080 }],
  };
  const P: IAuthorization = {
    name: 'p',
    namespace: 'ns',
    scope: istio.security.Scope.NAMESPACE,
    action: istio.security.Action.ALLOW,
    rules: [],
  };
  const SN = 'ns/s.ns.svc.cluster.local';
  const withMatch = (m: istio.security.Match.$Properties): IAuthorization => ({ ...P, rules: [{ clauses: [{ matches: [m] }] }] });

  const cases: readonly { name: string; convert: () => unknown; reason: WdsRejectReason; field: string }[] = [
    { name: 'an Address with nothing in it', convert: () => addressToModel('x', {}), reason: 'MISSING_FIELD', field: '' },
    {
      name: 'an Address with a workload and a service',
      convert: () => addressToModel('x', { workload: W, service: S }),
      reason: 'MISSING_FIELD',
      field: '',
    },
    {
      name: 'a workload named other than its uid',
      convert: () => addressToModel('K//Pod/ns/q', { workload: W }),
      reason: 'NAME_MISMATCH',
      field: 'workload.uid',
    },
    {
      name: 'a workload without a uid',
      convert: () => addressToModel('', { workload: { ...W, uid: '' } }),
      reason: 'MISSING_FIELD',
      field: 'workload.uid',
    },
    {
      name: 'a 3-byte address',
      convert: () => addressToModel(W.uid ?? '', { workload: { ...W, addresses: [Uint8Array.of(10, 0, 0)] } }),
      reason: 'BAD_ADDRESS',
      field: 'workload.addresses[0]',
    },
    {
      name: 'LEGACY_ISTIO_MTLS',
      convert: () => addressToModel(W.uid ?? '', { workload: { ...W, tunnelProtocol: istio.workload.TunnelProtocol.LEGACY_ISTIO_MTLS } }),
      reason: 'UNSUPPORTED_TUNNEL_PROTOCOL',
      field: 'workload.tunnel_protocol',
    },
    {
      name: 'an unknown tunnel protocol',
      convert: () => addressToModel(W.uid ?? '', { workload: { ...W, tunnelProtocol: 7 as istio.workload.TunnelProtocol } }),
      reason: 'UNKNOWN_ENUM',
      field: 'workload.tunnel_protocol',
    },
    {
      name: 'an unknown status',
      convert: () => addressToModel(W.uid ?? '', { workload: { ...W, status: 4 as istio.workload.WorkloadStatus } }),
      reason: 'UNKNOWN_ENUM',
      field: 'workload.status',
    },
    {
      name: 'an unknown network mode',
      convert: () => addressToModel(W.uid ?? '', { workload: { ...W, networkMode: 2 as istio.workload.NetworkMode } }),
      reason: 'UNKNOWN_ENUM',
      field: 'workload.network_mode',
    },
    {
      name: 'an identity that cannot exist',
      convert: () => addressToModel(W.uid ?? '', { workload: { ...W, serviceAccount: 'a/b' } }),
      reason: 'BAD_IDENTITY',
      field: 'workload',
    },
    {
      name: 'a services key without a namespace',
      convert: () => addressToModel(W.uid ?? '', { workload: { ...W, services: { 'web.svc': { ports: [] } } } }),
      reason: 'BAD_KEY',
      field: 'workload.services["web.svc"]',
    },
    {
      name: 'a workload target port 0',
      convert: () =>
        addressToModel(W.uid ?? '', { workload: { ...W, services: { 'ns/web': { ports: [{ servicePort: 80, targetPort: 0 }] } } } }),
      reason: 'BAD_PORT',
      field: 'workload.services["ns/web"].ports[0].target_port',
    },
    {
      name: 'a policy key that is not <ns>/<name>',
      convert: () => addressToModel(W.uid ?? '', { workload: { ...W, authorizationPolicies: ['p'] } }),
      reason: 'BAD_KEY',
      field: 'workload.authorization_policies[0]',
    },
    {
      name: 'a waypoint without a destination',
      convert: () => addressToModel(W.uid ?? '', { workload: { ...W, waypoint: { hboneMtlsPort: 15008 } } }),
      reason: 'MISSING_GATEWAY_ADDRESS',
      field: 'workload.waypoint',
    },
    {
      name: 'a waypoint address of 5 bytes',
      convert: () => addressToModel(W.uid ?? '', { workload: { ...W, waypoint: { address: { address: Uint8Array.of(1, 2, 3, 4, 5) } } } }),
      reason: 'BAD_ADDRESS',
      field: 'workload.waypoint.address.address',
    },
    {
      name: 'a service named other than <ns>/<hostname>',
      convert: () => addressToModel('ns/s', { service: S }),
      reason: 'NAME_MISMATCH',
      field: '',
    },
    {
      name: 'a hostname with a space',
      convert: () => addressToModel('ns/a b', { service: { ...S, hostname: 'a b' } }),
      reason: 'BAD_HOSTNAME',
      field: 'service.hostname',
    },
    {
      name: 'a service port 0',
      convert: () => addressToModel(SN, { service: { ...S, ports: [{ servicePort: 0 }] } }),
      reason: 'BAD_PORT',
      field: 'service.ports[0].service_port',
    },
    {
      name: 'a VIP prefix longer than the address',
      convert: () => addressToModel(SN, { service: { ...S, addresses: [{ address: Uint8Array.of(10, 0, 0, 0), length: 33 }] } }),
      reason: 'BAD_CIDR',
      field: 'service.addresses[0].length',
    },
    {
      name: 'a subject alt name that is not a SPIFFE ID',
      convert: () => addressToModel(SN, { service: { ...S, subjectAltNames: ['web.example.com'] } }),
      reason: 'BAD_SUBJECT_ALT_NAME',
      field: 'service.subject_alt_names[0]',
    },
    {
      name: 'an unspecified routing preference',
      convert: () =>
        addressToModel(SN, {
          service: { ...S, loadBalancing: { routingPreference: [istio.workload.LoadBalancing.Scope.UNSPECIFIED_SCOPE] } },
        }),
      reason: 'UNKNOWN_ENUM',
      field: 'service.load_balancing.routing_preference[0]',
    },
    {
      name: 'an unknown IP family',
      convert: () => addressToModel(SN, { service: { ...S, ipFamilies: 8 as istio.workload.IPFamilies } }),
      reason: 'UNKNOWN_ENUM',
      field: 'service.ip_families',
    },
    {
      name: 'a weighted waypoint without a destination',
      convert: () => addressToModel(SN, { service: { ...S, weightedWaypoints: [{ weight: 10 }] } }),
      reason: 'MISSING_GATEWAY_ADDRESS',
      field: 'service.weighted_waypoints[0].destination',
    },
    { name: 'a policy named other than <ns>/<name>', convert: () => authorizationToModel('ns/q', P), reason: 'NAME_MISMATCH', field: '' },
    {
      name: 'a policy without a name',
      convert: () => authorizationToModel('ns/', { ...P, name: '' }),
      reason: 'MISSING_FIELD',
      field: 'name',
    },
    {
      name: 'an unknown scope',
      convert: () => authorizationToModel('ns/p', { ...P, scope: 3 as istio.security.Scope }),
      reason: 'UNKNOWN_ENUM',
      field: 'scope',
    },
    {
      name: 'an unknown action',
      convert: () => authorizationToModel('ns/p', { ...P, action: 2 as istio.security.Action }),
      reason: 'UNKNOWN_ENUM',
      field: 'action',
    },
    {
      name: 'a string match with no value',
      convert: () => authorizationToModel('ns/p', withMatch({ principals: [{}] })),
      reason: 'BAD_STRING_MATCH',
      field: 'rules[0].clauses[0].matches[0].principals[0]',
    },
    {
      name: 'a source address of 5 bytes',
      convert: () => authorizationToModel('ns/p', withMatch({ sourceIps: [{ address: Uint8Array.of(1, 2, 3, 4, 5), length: 8 }] })),
      reason: 'BAD_ADDRESS',
      field: 'rules[0].clauses[0].matches[0].source_ips[0].address',
    },
    {
      name: 'a destination prefix longer than the address',
      convert: () => authorizationToModel('ns/p', withMatch({ notDestinationIps: [{ address: Uint8Array.of(1, 2, 3, 4), length: 40 }] })),
      reason: 'BAD_CIDR',
      field: 'rules[0].clauses[0].matches[0].not_destination_ips[0].length',
    },
    {
      name: 'a destination port beyond 65535',
      convert: () => authorizationToModel('ns/p', withMatch({ destinationPorts: [70000] })),
      reason: 'BAD_PORT',
      field: 'rules[0].clauses[0].matches[0].destination_ports[0]',
    },
    {
      name: 'bytes that are not an Address',
      convert: () => decodeAddress('x', Uint8Array.of(0x0a, 0xff, 0xff)),
      reason: 'UNDECODABLE',
      field: '',
    },
    {
      name: 'bytes that are not an Authorization',
      convert: () => decodeAuthorization('ns/p', Uint8Array.of(0x2a, 0x05, 0x01)),
      reason: 'UNDECODABLE',
      field: '',
    },
  ];

  for (const c of cases) {
    it(`refuses ${c.name}`, () => {
      assert.throws(c.convert, (err: unknown) => {
        assert.ok(err instanceof WdsConvertError, String(err));
        assert.ok(hasErrorCode(err, 'XDS_INVALID_RESOURCE'));
        assert.equal(err.reason, c.reason);
        assert.equal(err.field, c.field);
        // The message (the NACK's error_detail) names the resource and the field.
        assert.ok(err.message.startsWith(`resource ${JSON.stringify(err.resource)}: ${c.field === '' ? '' : `${c.field}: `}`), err.message);
        return true;
      });
    });
  }

  it('accepts what the controller sends for every case above once the fault is removed', () => {
    assert.doesNotThrow(() => addressToModel(W.uid ?? '', { workload: W }));
    assert.doesNotThrow(() => addressToModel(SN, { service: S }));
    assert.doesNotThrow(() => authorizationToModel('ns/p', P));
  });
});
