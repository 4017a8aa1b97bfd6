/** The controller's Kubernetes edge: objects become readonly records; malformed objects become rejections, never throws. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { V1Pod } from '@kubernetes/client-node';

import {
  authorizationPolicyRecord,
  endpointSliceRecord,
  namespaceRecord,
  nodeRecord,
  peerAuthenticationRecord,
  podRecord,
  serviceRecord,
  type KubeRejection,
  type RecordResult,
} from '../../controller/kube/records.js';
import { authzJson, namespaceJson, ok, peerAuthJson, podJson, serviceJson, sliceJson } from '../../testbed/fixtures/kube-fixtures.js';

describe('namespace and node records', () => {
  it('keeps a namespace name and labels', () => {
    assert.deepEqual(ok(namespaceRecord(namespaceJson('apps', { 'istio.io/dataplane-mode': 'ambient' }))), {
      name: 'apps',
      labels: { 'istio.io/dataplane-mode': 'ambient' },
    });
  });

  it('keeps only the topology labels of a node', () => {
    const rec = ok(
      nodeRecord({
        metadata: {
          name: 'n1',
          labels: {
            'topology.kubernetes.io/region': 'eu',
            'topology.kubernetes.io/zone': 'eu-1a',
            'topology.istio.io/subzone': 'rack7',
            'kubernetes.io/os': 'linux',
          },
        },
      }),
    );
    assert.deepEqual(rec, {
      name: 'n1',
      labels: { 'topology.kubernetes.io/region': 'eu', 'topology.kubernetes.io/zone': 'eu-1a', 'topology.istio.io/subzone': 'rack7' },
    });
  });
});

describe('pod records', () => {
  it('reads the fields the model uses from plain JSON', () => {
    const json = podJson({
      namespace: 'apps',
      name: 'web-7d4b9c8f6-x2x9z',
      generateName: 'web-7d4b9c8f6-',
      owner: { kind: 'ReplicaSet', name: 'web-7d4b9c8f6' },
      labels: { app: 'web', 'pod-template-hash': '7d4b9c8f6' },
      annotations: { a: 'b' },
      ip: ['10.0.0.5', 'fd00::0005'],
      serviceAccount: 'web-sa',
      node: 'node-2',
      ports: [
        { name: 'http', containerPort: 8080 },
        { name: 'dns', containerPort: 53, protocol: 'UDP' },
      ],
    });
    (json.spec as { initContainers: unknown[] }).initContainers = [
      { name: 'init', ports: [{ name: 'ignored', containerPort: 1 }] },
      { name: 'native-sidecar', restartPolicy: 'Always', ports: [{ name: 'admin', containerPort: 9901 }] },
    ];
    assert.deepEqual(ok(podRecord(json)), {
      namespace: 'apps',
      name: 'web-7d4b9c8f6-x2x9z',
      uid: 'uid-web-7d4b9c8f6-x2x9z',
      generateName: 'web-7d4b9c8f6-',
      controller: { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-7d4b9c8f6' },
      labels: { app: 'web', 'pod-template-hash': '7d4b9c8f6' },
      annotations: { a: 'b' },
      serviceAccount: 'web-sa',
      nodeName: 'node-2',
      podIPs: ['10.0.0.5', 'fd00::5'],
      hostNetwork: false,
      phase: 'Running',
      ready: true,
      deleting: false,
      containerPorts: [
        { name: 'http', containerPort: 8080, protocol: 'TCP' },
        { name: 'dns', containerPort: 53, protocol: 'UDP' },
        { name: 'admin', containerPort: 9901, protocol: 'TCP' },
      ],
    });
  });

  it('reads a @kubernetes/client-node V1Pod, dates as Date objects', () => {
    const p = new V1Pod();
    p.metadata = { namespace: 'apps', name: 'db-0', deletionTimestamp: new Date('2026-11-22T10:00:00Z') };
    p.spec = { containers: [{ name: 'db' }], hostNetwork: true };
    p.status = { podIP: '10.0.0.9', phase: 'Running', conditions: [{ type: 'Ready', status: 'False' }] };
    const rec = ok(podRecord(p));
    assert.equal(rec.deleting, true);
    assert.equal(rec.ready, false);
    assert.equal(rec.hostNetwork, true);
    assert.deepEqual(rec.podIPs, ['10.0.0.9']);
  });

  it('reads a pod without an IP yet as one with no podIPs', () => {
    const rec = ok(podRecord(podJson({ name: 'pending', phase: 'Pending', ready: false })));
    assert.deepEqual(rec.podIPs, []);
    assert.equal(rec.phase, 'Pending');
  });

  it('freezes records so that the model can key caches on them', () => {
    const rec = ok(podRecord(podJson({ name: 'p', labels: { a: 'b' } })));
    assert.ok(Object.isFrozen(rec) && Object.isFrozen(rec.labels) && Object.isFrozen(rec.podIPs));
  });
});

describe('service records', () => {
  it('defaults protocol and targetPort as the API server does and keeps named target ports', () => {
    const rec = ok(
      serviceRecord(
        serviceJson({
          namespace: 'apps',
          name: 'web',
          selector: { app: 'web' },
          clusterIP: ['10.96.0.1', 'fd00:96::1'],
          ports: [
            { name: 'http', port: 80, appProtocol: 'http' },
            { name: 'grpc', port: 9090, targetPort: 'grpc-port' },
            { port: 9000, targetPort: '9001' },
          ],
        }),
      ),
    );
    assert.deepEqual(rec.ports, [
      { name: 'http', port: 80, targetPort: 80, protocol: 'TCP', appProtocol: 'http' },
      { name: 'grpc', port: 9090, targetPort: 'grpc-port', protocol: 'TCP', appProtocol: undefined },
      { name: '', port: 9000, targetPort: 9001, protocol: 'TCP', appProtocol: undefined },
    ]);
    assert.deepEqual(rec.clusterIPs, ['10.96.0.1', 'fd00:96::1']);
    assert.deepEqual(rec.selector, { app: 'web' });
    assert.equal(rec.type, 'ClusterIP');
  });

  it('reads a headless service and treats an empty selector as none', () => {
    const json = serviceJson({ name: 'db', clusterIP: 'None', selector: {} });
    const rec = ok(serviceRecord(json));
    assert.deepEqual(rec.clusterIPs, ['None']);
    assert.equal(rec.selector, undefined);
  });
});

describe('endpoint slice records', () => {
  it('keeps the service name, ports and pod target refs; readiness defaults to ready', () => {
    const json = sliceJson({ namespace: 'apps', name: 'web-abc', service: 'web', endpoints: [{ ip: '10.0.0.5', pod: 'web-1' }] });
    (json.endpoints as unknown[]).push({ addresses: ['10.0.0.6'], targetRef: { kind: 'Node', name: 'n1' } }, { addresses: ['10.0.0.7'] });
    const rec = ok(endpointSliceRecord(json));
    assert.equal(rec.serviceName, 'web');
    assert.deepEqual(rec.ports, [{ name: 'http', port: 8080, protocol: 'TCP' }]);
    assert.deepEqual(rec.endpoints, [
      { addresses: ['10.0.0.5'], ready: true, targetRef: { namespace: 'apps', name: 'web-1', uid: 'uid-web-1' }, nodeName: '' },
      { addresses: ['10.0.0.6'], ready: true, targetRef: undefined, nodeName: '' },
      { addresses: ['10.0.0.7'], ready: true, targetRef: undefined, nodeName: '' },
    ]);
  });
});

describe('authorization policy records', () => {
  it('reads the spec, merges targetRef and targetRefs and keeps only the dry-run annotation', () => {
    const rec = ok(
      authorizationPolicyRecord(
        authzJson(
          'apps',
          'waypoint-only',
          {
            targetRef: { kind: 'Gateway', group: 'gateway.networking.k8s.io', name: 'wp' },
            targetRefs: [{ kind: 'Service', group: '', name: 'web' }],
            action: 'DENY',
            rules: [
              {
                from: [{ source: { namespaces: ['a'], ipBlocks: ['10.0.0.0/8'] } }],
                to: [{ operation: { ports: ['80'], methods: ['GET'] } }],
                when: [{ key: 'destination.port', values: ['8080'] }],
              },
            ],
          },
          { 'istio.io/dry-run': 'true', 'kubectl.kubernetes.io/last-applied-configuration': '{}' },
        ),
      ),
    );
    assert.deepEqual(rec.annotations, { 'istio.io/dry-run': 'true' });
    assert.deepEqual(rec.targetRefs, [
      { group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'wp', namespace: undefined },
      { group: '', kind: 'Service', name: 'web', namespace: undefined },
    ]);
    assert.equal(rec.action, 'DENY');
    assert.deepEqual(rec.rules[0]?.from[0]?.source.namespaces, ['a']);
    assert.deepEqual(rec.rules[0]?.to[0]?.operation.methods, ['GET']);
    assert.deepEqual(rec.rules[0]?.when, [{ key: 'destination.port', values: ['8080'], notValues: [] }]);
  });

  it('defaults the action to ALLOW and an absent selector to undefined', () => {
    const rec = ok(authorizationPolicyRecord(authzJson('apps', 'p', {})));
    assert.equal(rec.action, 'ALLOW');
    assert.equal(rec.selector, undefined);
    assert.deepEqual(rec.rules, []);
  });
});

describe('peer authentication records', () => {
  it('reads the mode, sorts port-level modes and takes the creation time', () => {
    const rec = ok(
      peerAuthenticationRecord(
        peerAuthJson(
          'apps',
          'pa',
          {
            selector: { matchLabels: { app: 'web' } },
            mtls: { mode: 'STRICT' },
            portLevelMtls: { '9090': { mode: 'PERMISSIVE' }, '80': { mode: 'DISABLE' } },
          },
          '2026-03-04T05:06:07Z',
        ),
      ),
    );
    assert.deepEqual(rec, {
      namespace: 'apps',
      name: 'pa',
      createdAt: Date.parse('2026-03-04T05:06:07Z'),
      selector: { app: 'web' },
      mtlsMode: 'STRICT',
      portLevelMtls: [
        { port: 80, mode: 'DISABLE' },
        { port: 9090, mode: 'PERMISSIVE' },
      ],
    });
  });

  it('treats an empty selector as namespace-wide and a missing mode as UNSET', () => {
    const rec = ok(peerAuthenticationRecord(peerAuthJson('apps', 'pa', { selector: { matchLabels: {} } })));
    assert.equal(rec.selector, undefined);
    assert.equal(rec.mtlsMode, 'UNSET');
  });
});

describe('malformed objects are rejected with the field path, never thrown', () => {
  const pod = (over: (j: Record<string, unknown>) => void): unknown => {
    const j = podJson({ name: 'p' });
    over(j);
    return j;
  };
  const cases: readonly { name: string; convert: () => RecordResult<unknown>; path: string; says: RegExp }[] = [
    { name: 'not an object', convert: () => podRecord('pod'), path: '', says: /expected a map/ },
    { name: 'null', convert: () => serviceRecord(null), path: '', says: /expected a map/ },
    { name: 'no metadata', convert: () => namespaceRecord({}), path: 'metadata', says: /expected a map/ },
    { name: 'pod without a name', convert: () => podRecord({ metadata: { namespace: 'a' } }), path: 'metadata.name', says: /is required/ },
    {
      name: 'pod without a namespace',
      convert: () => podRecord({ metadata: { name: 'a' } }),
      path: 'metadata.namespace',
      says: /is required/,
    },
    {
      name: 'label that is not a string',
      convert: () => namespaceRecord({ metadata: { name: 'a', labels: { x: 1 } } }),
      path: 'metadata.labels["x"]',
      says: /expected a string/,
    },
    {
      name: 'pod IP that is not an IP',
      convert: () => podRecord(pod((j) => ((j.status as Record<string, unknown>).podIPs = [{ ip: '10.0.0.300' }]))),
      path: 'status.podIPs[0].ip',
      says: /not an IP/,
    },
    {
      name: 'container port out of range',
      convert: () => podRecord(podJson({ name: 'p', ports: [{ containerPort: 70000 }] })),
      path: 'spec.containers[0].ports[0].containerPort',
      says: /not a port/,
    },
    {
      name: 'unknown pod phase',
      convert: () => podRecord(pod((j) => ((j.status as Record<string, unknown>).phase = 'Exploded'))),
      path: 'status.phase',
      says: /not one of/,
    },
    {
      name: 'service port 0',
      convert: () => serviceRecord(serviceJson({ name: 's', ports: [{ port: 0 }] })),
      path: 'spec.ports[0].port',
      says: /not a port/,
    },
    {
      name: 'target port of the wrong type',
      convert: () => serviceRecord(serviceJson({ name: 's', ports: [{ port: 80, targetPort: true as unknown as number }] })),
      path: 'spec.ports[0].targetPort',
      says: /port number or a port name/,
    },
    {
      name: 'cluster IP that is not an IP',
      convert: () => serviceRecord(serviceJson({ name: 's', clusterIP: 'ten' })),
      path: 'spec.clusterIPs[0]',
      says: /not an IP/,
    },
    {
      name: 'slice without addressType',
      convert: () => endpointSliceRecord({ metadata: { namespace: 'a', name: 's' }, endpoints: [] }),
      path: 'addressType',
      says: /is required/,
    },
    {
      name: 'slice address that is not an IP',
      convert: () => endpointSliceRecord(sliceJson({ name: 's', service: 'x', endpoints: [{ ip: 'nope' }] })),
      path: 'endpoints[0].addresses[0]',
      says: /not an IP/,
    },
    {
      name: 'unknown action',
      convert: () => authorizationPolicyRecord(authzJson('a', 'p', { action: 'MAYBE' })),
      path: 'spec.action',
      says: /not one of/,
    },
    {
      name: 'selector with targetRef',
      convert: () =>
        authorizationPolicyRecord(
          authzJson('a', 'p', { selector: { matchLabels: { a: 'b' } }, targetRef: { kind: 'Gateway', name: 'w' } }),
        ),
      path: 'spec',
      says: /mutually exclusive/,
    },
    {
      name: 'ipBlock that is not a CIDR',
      convert: () => authorizationPolicyRecord(authzJson('a', 'p', { rules: [{ from: [{ source: { ipBlocks: ['10.0.0.0/33'] } }] }] })),
      path: 'spec.rules[0].from[0].source.ipBlocks[0]',
      says: /not an IP address or CIDR/,
    },
    {
      name: 'operation port that is not a port',
      convert: () => authorizationPolicyRecord(authzJson('a', 'p', { rules: [{ to: [{ operation: { ports: ['http'] } }] }] })),
      path: 'spec.rules[0].to[0].operation.ports[0]',
      says: /not a port/,
    },
    {
      name: 'when without values',
      convert: () => authorizationPolicyRecord(authzJson('a', 'p', { rules: [{ when: [{ key: 'source.namespace' }] }] })),
      path: 'spec.rules[0].when[0]',
      says: /values or notValues/,
    },
    {
      name: 'when destination.ip that is not an IP',
      convert: () => authorizationPolicyRecord(authzJson('a', 'p', { rules: [{ when: [{ key: 'destination.ip', values: ['x'] }] }] })),
      path: 'spec.rules[0].when[0].values[0]',
      says: /not an IP/,
    },
    {
      name: 'serviceAccounts mixed with principals',
      convert: () =>
        authorizationPolicyRecord(
          authzJson('a', 'p', { rules: [{ from: [{ source: { serviceAccounts: ['a/b'], principals: ['x'] } }] }] }),
        ),
      path: 'spec.rules[0].from[0].source',
      says: /serviceAccounts with namespaces or principals/,
    },
    {
      name: 'unknown mTLS mode',
      convert: () => peerAuthenticationRecord(peerAuthJson('a', 'p', { mtls: { mode: 'ON' } })),
      path: 'spec.mtls.mode',
      says: /not one of/,
    },
    {
      name: 'port-level key that is not a port',
      convert: () =>
        peerAuthenticationRecord(
          peerAuthJson('a', 'p', { selector: { matchLabels: { a: 'b' } }, portLevelMtls: { http: { mode: 'STRICT' } } }),
        ),
      path: 'spec.portLevelMtls["http"]',
      says: /not a port/,
    },
    {
      name: 'creation timestamp that is not a time',
      convert: () => peerAuthenticationRecord(peerAuthJson('a', 'p', {}, 'yesterday')),
      path: 'metadata.creationTimestamp',
      says: /not a timestamp/,
    },
  ];
  for (const c of cases) {
    it(`rejects ${c.name}`, () => {
      let r: RecordResult<unknown> | undefined;
      assert.doesNotThrow(() => {
        r = c.convert();
      });
      assert.ok(r !== undefined && !r.ok, 'expected a rejection');
      const rej: KubeRejection = r.rejection;
      assert.equal(rej.code, 'CONTROLLER_INVALID_OBJECT');
      assert.equal(rej.path, c.path);
      assert.match(rej.reason, c.says);
      if (c.path !== '') assert.ok(rej.reason.startsWith(`${c.path}: `), rej.reason);
    });
  }

  it('names the object a rejection is about', () => {
    const r = podRecord(podJson({ namespace: 'apps', name: 'broken', ports: [{ containerPort: -1 }] }));
    assert.ok(!r.ok);
    assert.deepEqual([r.rejection.kind, r.rejection.namespace, r.rejection.name], ['Pod', 'apps', 'broken']);
  });
});
