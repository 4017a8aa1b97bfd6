/** Pods, Services and PeerAuthentications → WDS Workloads and Services, as istiod builds them. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import type { PodRecord } from '../../controller/kube/records.js';
import { ambientEnrollment } from '../../controller/model/enrollment.js';
import { modelOptions } from '../../controller/model/options.js';
import { convertPeerAuthentication, namespacePolicy, workloadPeerAuthentication } from '../../controller/model/peer-authentication.js';
import { appProtocolOf, buildService } from '../../controller/model/services.js';
import { buildWorkload, canonicalService, workloadIdentity, type WorkloadInputs } from '../../controller/model/workloads.js';
import { istio } from '../../lib/proto/index.js';
import { authz, node, ns, peerAuth, pod, slice, svc, type PodSpec } from '../../testbed/fixtures/kube-fixtures.js';

const opts = modelOptions();
const AMBIENT = { 'istio.io/dataplane-mode': 'ambient' };
const T = istio.workload.TunnelProtocol;

function inputs(p: PodRecord, over: Partial<WorkloadInputs> = {}): WorkloadInputs {
  return {
    pod: p,
    namespace: ns(p.namespace, AMBIENT),
    node: undefined,
    services: [],
    endpointSlices: [],
    authorizationPolicies: [],
    peerAuthentications: [],
    ...over,
  };
}

function workload(p: PodSpec, over: Partial<WorkloadInputs> = {}, o = opts): istio.workload.Workload.$Properties {
  const w = buildWorkload(inputs(pod(p), over), o);
  assert.ok(w !== undefined, 'expected a workload');
  return w;
}

describe('ambient enrollment', () => {
  const cases: readonly { name: string; nsLabels: Record<string, string>; pod: PodSpec; enrolled: boolean; reason: string }[] = [
    {
      name: 'enrolls a pod in a namespace labelled ambient',
      nsLabels: AMBIENT,
      pod: { name: 'a' },
      enrolled: true,
      reason: 'namespace-label',
    },
    { name: 'does not enroll a pod in an unlabelled namespace', nsLabels: {}, pod: { name: 'a' }, enrolled: false, reason: 'not-selected' },
    {
      name: 'lets a pod opt out with dataplane-mode none',
      nsLabels: AMBIENT,
      pod: { name: 'a', labels: { 'istio.io/dataplane-mode': 'none' } },
      enrolled: false,
      reason: 'pod-opt-out',
    },
    {
      name: 'enrolls a pod labelled ambient in an unlabelled namespace',
      nsLabels: {},
      pod: { name: 'a', labels: AMBIENT },
      enrolled: true,
      reason: 'pod-label',
    },
    {
      name: 'never enrolls a host-network pod',
      nsLabels: AMBIENT,
      pod: { name: 'a', hostNetwork: true, labels: AMBIENT },
      enrolled: false,
      reason: 'host-network',
    },
    {
      name: 'never enrolls a pod with an injected sidecar',
      nsLabels: AMBIENT,
      pod: { name: 'a', annotations: { 'sidecar.istio.io/status': '{}' } },
      enrolled: false,
      reason: 'sidecar',
    },
    {
      name: 'never enrolls ztunnel itself',
      nsLabels: AMBIENT,
      pod: { namespace: 'istio-system', name: 'ztunnel-x', labels: { app: 'ztunnel' } },
      enrolled: false,
      reason: 'ztunnel',
    },
    {
      name: 'ignores other values of the namespace label',
      nsLabels: { 'istio.io/dataplane-mode': 'sidecar' },
      pod: { name: 'a' },
      enrolled: false,
      reason: 'not-selected',
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const p = pod(c.pod);
      assert.deepEqual(ambientEnrollment(p, ns(p.namespace, c.nsLabels), 'istio-system'), { enrolled: c.enrolled, reason: c.reason });
    });
  }

  it('sends an enrolled pod with HBONE and a not enrolled one with plain TCP (NONE)', () => {
    assert.equal(workload({ name: 'in', ip: '10.0.0.1' }).tunnelProtocol, T.HBONE);
    assert.equal(workload({ name: 'out', ip: '10.0.0.2' }, { namespace: ns('default') }).tunnelProtocol, T.NONE);
    assert.equal(workload({ name: 'host', ip: '192.168.0.1', hostNetwork: true }).tunnelProtocol, T.NONE);
  });

  it('sends a host-network pod with network mode HOST_NETWORK', () => {
    assert.equal(workload({ name: 'host', ip: '192.168.0.1', hostNetwork: true }).networkMode, istio.workload.NetworkMode.HOST_NETWORK);
  });

  it("trusts istio-cni's redirection annotation and the native-tunnel label as HBONE", () => {
    const annotated = workload({ name: 'a', annotations: { 'ambient.istio.io/redirection': 'enabled' } }, { namespace: ns('default') });
    assert.equal(annotated.tunnelProtocol, T.HBONE);
    const native = workload({ name: 'b', labels: { 'networking.istio.io/tunnel': 'http' } }, { namespace: ns('default') });
    assert.equal(native.tunnelProtocol, T.HBONE);
    assert.equal(native.nativeTunnel, true);
  });
});

describe('workload identity fields', () => {
  it("names the workload by Istio's uid and carries its addresses as raw bytes", () => {
    const w = workload({ namespace: 'apps', name: 'web-1', ip: ['10.0.0.5', 'fd00::5'], serviceAccount: 'web', node: 'node-7' });
    assert.equal(w.uid, 'Kubernetes//Pod/apps/web-1');
    assert.deepEqual(w.addresses, [Uint8Array.of(10, 0, 0, 5), Uint8Array.of(0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5)]);
    assert.equal(w.serviceAccount, 'web');
    assert.equal(w.node, 'node-7');
    assert.equal(w.clusterId, 'Kubernetes');
    assert.equal(w.trustDomain, '', 'the default trust domain is left implicit, as istiod does');
  });

  it('uses the configured cluster id, network and a non-default trust domain', () => {
    const w = workload(
      { name: 'p', ip: '10.0.0.1' },
      {},
      modelOptions({ clusterId: 'east', network: 'net-1', trustDomain: 'example.org' }),
    );
    assert.equal(w.uid, 'east//Pod/default/p');
    assert.equal(w.clusterId, 'east');
    assert.equal(w.network, 'net-1');
    assert.equal(w.trustDomain, 'example.org');
  });

  it('keeps a pod without an IP yet as a workload without addresses', () => {
    const w = workload({ name: 'starting', phase: 'Pending', ready: false });
    assert.deepEqual(w.addresses, []);
    assert.equal(w.status, istio.workload.WorkloadStatus.UNHEALTHY);
  });

  it('drops terminal pods', () => {
    assert.equal(buildWorkload(inputs(pod({ name: 'done', phase: 'Succeeded' })), opts), undefined);
    assert.equal(buildWorkload(inputs(pod({ name: 'crashed', phase: 'Failed' })), opts), undefined);
  });

  const health: readonly [string, PodSpec, istio.workload.WorkloadStatus][] = [
    ['ready → HEALTHY', { name: 'a', ip: '10.0.0.1' }, istio.workload.WorkloadStatus.HEALTHY],
    ['not ready → UNHEALTHY', { name: 'a', ip: '10.0.0.1', ready: false }, istio.workload.WorkloadStatus.UNHEALTHY],
    ['ready but terminating → UNHEALTHY', { name: 'a', ip: '10.0.0.1', deleting: true }, istio.workload.WorkloadStatus.UNHEALTHY],
  ];
  for (const [name, p, status] of health) it(`reports health: ${name}`, () => assert.equal(workload(p).status, status));

  const canon: readonly [string, Record<string, string>, string, string][] = [
    [
      'canonical labels win',
      {
        'service.istio.io/canonical-name': 'c',
        'app.kubernetes.io/name': 'k',
        app: 'a',
        'service.istio.io/canonical-revision': 'r1',
        version: 'v9',
      },
      'c',
      'r1',
    ],
    [
      'app.kubernetes.io labels before app/version',
      { 'app.kubernetes.io/name': 'k', app: 'a', 'app.kubernetes.io/version': 'v2', version: 'v9' },
      'k',
      'v2',
    ],
    ['app and version', { app: 'a', version: 'v1' }, 'a', 'v1'],
    ['workload name and latest when unlabelled', {}, 'wl', 'latest'],
  ];
  for (const [name, labels, cn, cr] of canon) {
    it(`derives the canonical service: ${name}`, () => assert.deepEqual(canonicalService(labels, 'wl'), { name: cn, revision: cr }));
  }

  const W = istio.workload.WorkloadType;
  const owners: readonly [string, Parameters<typeof workloadIdentity>[0], string, istio.workload.WorkloadType][] = [
    [
      'a ReplicaSet pod is its Deployment',
      {
        name: 'web-6d9f-abcde',
        generateName: 'web-6d9f-',
        controller: { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-6d9f' },
        labels: { 'pod-template-hash': '6d9f' },
      },
      'web',
      W.DEPLOYMENT,
    ],
    [
      'a pod-template-hash name without ownerReferences is its Deployment',
      { name: 'web-6d9f-abcde', generateName: 'web-6d9f-', controller: undefined, labels: { 'pod-template-hash': '6d9f' } },
      'web',
      W.DEPLOYMENT,
    ],
    [
      "a CronJob's Job pod is its CronJob",
      {
        name: 'backup-29000000-x',
        generateName: 'backup-29000000-',
        controller: { apiVersion: 'batch/v1', kind: 'Job', name: 'backup-29000000' },
        labels: {},
      },
      'backup',
      W.CRONJOB,
    ],
    [
      'a Job pod is its Job',
      { name: 'once-x', generateName: 'once-', controller: { apiVersion: 'batch/v1', kind: 'Job', name: 'once' }, labels: {} },
      'once',
      W.JOB,
    ],
    [
      'a StatefulSet pod is named after the set, typed POD',
      { name: 'db-0', generateName: 'db-', controller: { apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'db' }, labels: {} },
      'db',
      W.POD,
    ],
    ['a bare pod is itself', { name: 'debug', generateName: '', controller: undefined, labels: {} }, 'debug', W.POD],
    [
      'the workload-name label overrides',
      { name: 'debug', generateName: '', controller: undefined, labels: { 'service.istio.io/workload-name': 'tools' } },
      'tools',
      W.POD,
    ],
  ];
  for (const [name, p, wn, wt] of owners)
    it(`names the workload: ${name}`, () => assert.deepEqual(workloadIdentity(p), { name: wn, type: wt }));

  it("carries locality from the node's topology labels", () => {
    const n = node('node-1', { 'topology.kubernetes.io/region': 'eu-west', 'topology.kubernetes.io/zone': 'eu-west-1b' });
    assert.deepEqual(workload({ name: 'p', ip: '10.0.0.1' }, { node: n }).locality, { region: 'eu-west', zone: 'eu-west-1b', subzone: '' });
    assert.equal(workload({ name: 'p', ip: '10.0.0.1' }, { node: node('node-1') }).locality, undefined);
  });

  it('leaves capacity unset', () => assert.equal(workload({ name: 'p' }).capacity, undefined));
});

describe('workload services', () => {
  const web = svc({
    namespace: 'default',
    name: 'web',
    selector: { app: 'web' },
    ports: [
      { name: 'http', port: 80, targetPort: 8080 },
      { name: 'grpc', port: 9090, targetPort: 'grpc' },
    ],
  });

  it('maps the ports of the services whose selector matches', () => {
    const w = workload({ name: 'web-1', labels: { app: 'web' }, ports: [{ name: 'grpc', containerPort: 9999 }] }, { services: [web] });
    assert.deepEqual(w.services, {
      'default/web.default.svc.cluster.local': {
        ports: [
          { servicePort: 80, targetPort: 8080 },
          { servicePort: 9090, targetPort: 9999 },
        ],
      },
    });
  });

  it('leaves out a named target port the pod does not expose', () => {
    const w = workload({ name: 'web-1', labels: { app: 'web' } }, { services: [web] });
    assert.deepEqual(w.services?.['default/web.default.svc.cluster.local'], { ports: [{ servicePort: 80, targetPort: 8080 }] });
  });

  it('resolves a named target port through the EndpointSlice when the pod record has no container ports', () => {
    const es = slice({
      name: 'web-x',
      service: 'web',
      ports: [{ name: 'grpc', port: 7070 }],
      endpoints: [{ ip: '10.0.0.1', pod: 'web-1' }],
    });
    const w = workload({ name: 'web-1', labels: { app: 'web' }, ip: '10.0.0.1' }, { services: [web], endpointSlices: [es] });
    assert.deepEqual(w.services?.['default/web.default.svc.cluster.local'], {
      ports: [
        { servicePort: 80, targetPort: 8080 },
        { servicePort: 9090, targetPort: 7070 },
      ],
    });
  });

  it('adds a selector-less service whose EndpointSlice lists the pod', () => {
    const manual = svc({ name: 'legacy', ports: [{ name: 'tcp', port: 5000, targetPort: 5001 }] });
    const es = slice({ name: 'legacy-1', service: 'legacy', endpoints: [{ ip: '10.0.0.1', pod: 'p' }] });
    const w = workload({ name: 'p', ip: '10.0.0.1' }, { services: [manual], endpointSlices: [es] });
    assert.deepEqual(w.services, { 'default/legacy.default.svc.cluster.local': { ports: [{ servicePort: 5000, targetPort: 5001 }] } });
  });

  it('ignores an EndpointSlice entry for an earlier pod of the same name', () => {
    const manual = svc({ name: 'legacy' });
    const es = slice({ name: 'legacy-1', service: 'legacy', endpoints: [{ ip: '10.0.0.1', pod: 'p', uid: 'old-uid' }] });
    assert.deepEqual(workload({ name: 'p', ip: '10.0.0.1' }, { services: [manual], endpointSlices: [es] }).services, {});
  });

  it('does not apply a service selector across namespaces or from ExternalName services', () => {
    const other = svc({ namespace: 'other', name: 'web', selector: { app: 'web' } });
    const ext = svc({ name: 'ext', type: 'ExternalName', selector: { app: 'web' } });
    assert.deepEqual(workload({ name: 'web-1', labels: { app: 'web' } }, { services: [other, ext] }).services, {});
  });
});

describe('WDS services', () => {
  it('names the service by its cluster-domain hostname and sends its cluster IPs as VIPs', () => {
    const s = buildService(
      svc({ namespace: 'apps', name: 'web', clusterIP: ['10.96.0.7', 'fd00::7'], ports: [{ name: 'http', port: 80, targetPort: 8080 }] }),
      opts,
    );
    assert.deepEqual(s, {
      name: 'web',
      namespace: 'apps',
      hostname: 'web.apps.svc.cluster.local',
      addresses: [
        { network: '', address: Uint8Array.of(10, 96, 0, 7) },
        { network: '', address: Uint8Array.of(0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7) },
      ],
      ports: [{ servicePort: 80, targetPort: 8080, appProtocol: istio.workload.AppProtocol.HTTP11 }],
      subjectAltNames: [],
      ipFamilies: istio.workload.IPFamilies.AUTOMATIC,
      canonical: true,
    });
  });

  it('sends a headless service without VIPs and a named target port as 0', () => {
    const s = buildService(
      svc({ name: 'db', clusterIP: 'None', ports: [{ name: 'tcp-db', port: 5432, targetPort: 'db' }] }),
      modelOptions({ clusterDomain: 'corp.internal' }),
    );
    assert.equal(s?.hostname, 'db.default.svc.corp.internal');
    assert.deepEqual(s?.addresses, []);
    assert.deepEqual(s?.ports, [{ servicePort: 5432, targetPort: 0, appProtocol: istio.workload.AppProtocol.TCP }]);
  });

  it('does not send ExternalName services', () => {
    assert.equal(buildService(svc({ name: 'ext', type: 'ExternalName' }), opts), undefined);
  });

  const A = istio.workload.AppProtocol;
  const protocols: readonly [string, Parameters<typeof appProtocolOf>[0], istio.workload.AppProtocol][] = [
    ['http- prefix', { name: 'http-web', port: 80, protocol: 'TCP', appProtocol: undefined }, A.HTTP11],
    ['appProtocol over the name', { name: 'tcp', port: 80, protocol: 'TCP', appProtocol: 'grpc' }, A.GRPC],
    ['kubernetes.io/h2c', { name: '', port: 80, protocol: 'TCP', appProtocol: 'kubernetes.io/h2c' }, A.HTTP2],
    ['https is TLS', { name: 'https', port: 443, protocol: 'TCP', appProtocol: undefined }, A.TLS],
    ['grpc-web has no WDS protocol', { name: 'grpc-web', port: 80, protocol: 'TCP', appProtocol: undefined }, A.UNKNOWN],
    ['UDP is never an app protocol', { name: 'http', port: 53, protocol: 'UDP', appProtocol: undefined }, A.UNKNOWN],
    ['unnamed well-known port is TCP', { name: '', port: 3306, protocol: 'TCP', appProtocol: undefined }, A.TCP],
    ['unnamed other port is unknown', { name: '', port: 8080, protocol: 'TCP', appProtocol: undefined }, A.UNKNOWN],
  ];
  for (const [name, p, want] of protocols) it(`derives the app protocol: ${name}`, () => assert.equal(appProtocolOf(p), want));

  it('turns internalTrafficPolicy Local into node-strict load balancing', () => {
    const rec = { ...svc({ name: 'local' }), internalTrafficPolicy: 'Local' as const };
    assert.deepEqual(buildService(rec, opts)?.loadBalancing, {
      routingPreference: [istio.workload.LoadBalancing.Scope.NODE],
      mode: istio.workload.LoadBalancing.Mode.STRICT,
    });
  });
});

describe('workload authorization policies', () => {
  const p = pod({ namespace: 'apps', name: 'web-1', labels: { app: 'web' } });
  const policies = (...aps: Parameters<typeof authz>[]): string[] =>
    buildWorkload(inputs(p, { authorizationPolicies: aps.map((a) => authz(...a)) }), opts)?.authorizationPolicies ?? [];

  it('lists the selector policies that select the pod, sorted', () => {
    assert.deepEqual(
      policies(
        ['apps', 'zz', { selector: { matchLabels: { app: 'web' } } }],
        ['apps', 'aa', { selector: { matchLabels: { app: 'web' } } }],
        ['apps', 'other', { selector: { matchLabels: { app: 'db' } } }],
      ),
      ['apps/aa', 'apps/zz'],
    );
  });

  it('lists root-namespace selector policies but not namespace-wide or other-namespace ones', () => {
    assert.deepEqual(
      policies(
        ['istio-system', 'mesh-web', { selector: { matchLabels: { app: 'web' } } }],
        ['apps', 'ns-wide', {}],
        ['other', 'x', { selector: { matchLabels: { app: 'web' } } }],
      ),
      ['istio-system/mesh-web'],
    );
  });

  it('does not list policies ztunnel never receives (targetRefs, AUDIT, CUSTOM)', () => {
    assert.deepEqual(policies(['apps', 'audit', { selector: { matchLabels: { app: 'web' } }, action: 'AUDIT' }]), []);
  });
});

describe('PeerAuthentication → STRICT reference', () => {
  const STATIC = 'istio-system/istio_converted_static_strict';
  const labels = { app: 'web' };
  const sel = { selector: { matchLabels: labels } };
  const cases: readonly { name: string; pas: readonly Parameters<typeof peerAuth>[]; want: readonly string[] }[] = [
    { name: 'no PeerAuthentication: nothing', pas: [], want: [] },
    { name: 'mesh STRICT', pas: [['istio-system', 'mesh', { mtls: { mode: 'STRICT' } }]], want: [STATIC] },
    { name: 'namespace STRICT', pas: [['apps', 'ns', { mtls: { mode: 'STRICT' } }]], want: [STATIC] },
    {
      name: 'namespace PERMISSIVE overrides mesh STRICT',
      pas: [
        ['istio-system', 'mesh', { mtls: { mode: 'STRICT' } }],
        ['apps', 'ns', { mtls: { mode: 'PERMISSIVE' } }],
      ],
      want: [],
    },
    {
      name: 'namespace UNSET inherits mesh STRICT',
      pas: [
        ['istio-system', 'mesh', { mtls: { mode: 'STRICT' } }],
        ['apps', 'ns', {}],
      ],
      want: [STATIC],
    },
    {
      name: 'workload PERMISSIVE overrides namespace STRICT',
      pas: [
        ['apps', 'ns', { mtls: { mode: 'STRICT' } }],
        ['apps', 'wl', { ...sel, mtls: { mode: 'PERMISSIVE' } }],
      ],
      want: [],
    },
    { name: 'workload STRICT', pas: [['apps', 'wl', { ...sel, mtls: { mode: 'STRICT' } }]], want: [STATIC] },
    { name: 'DISABLE is not STRICT', pas: [['apps', 'ns', { mtls: { mode: 'DISABLE' } }]], want: [] },
    {
      name: 'a selector that does not match is ignored',
      pas: [['apps', 'wl', { selector: { matchLabels: { app: 'db' } }, mtls: { mode: 'STRICT' } }]],
      want: [],
    },
    { name: 'another namespace is ignored', pas: [['other', 'ns', { mtls: { mode: 'STRICT' } }]], want: [] },
    {
      name: 'the oldest namespace policy wins',
      pas: [
        ['apps', 'new', { mtls: { mode: 'PERMISSIVE' } }, '2026-02-01T00:00:00Z'],
        ['apps', 'old', { mtls: { mode: 'STRICT' } }, '2026-01-01T00:00:00Z'],
      ],
      want: [STATIC],
    },
    {
      name: 'workload STRICT with a PERMISSIVE port: the converted policy instead of the static one',
      pas: [['apps', 'wl', { ...sel, mtls: { mode: 'STRICT' }, portLevelMtls: { '8080': { mode: 'PERMISSIVE' } } }]],
      want: ['apps/converted_peer_authentication_wl'],
    },
    {
      name: 'workload PERMISSIVE with a STRICT port: the converted policy',
      pas: [['apps', 'wl', { ...sel, mtls: { mode: 'PERMISSIVE' }, portLevelMtls: { '9090': { mode: 'STRICT' } } }]],
      want: ['apps/converted_peer_authentication_wl'],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const w = workload({ namespace: 'apps', name: 'web-1', labels }, { peerAuthentications: c.pas.map((a) => peerAuth(...a)) });
      assert.deepEqual(w.authorizationPolicies, c.want);
    });
  }

  it('reports the effective mode', () => {
    const pas = [peerAuth('apps', 'ns', { mtls: { mode: 'STRICT' } })];
    assert.equal(workloadPeerAuthentication(labels, 'apps', pas, 'istio-system').mode, 'STRICT');
    assert.equal(workloadPeerAuthentication(labels, 'other', pas, 'istio-system').mode, 'PERMISSIVE');
  });

  it('converts a PERMISSIVE port exception of a STRICT workload into one DENY with not_destination_ports', () => {
    const wl = peerAuth('apps', 'wl', {
      ...sel,
      mtls: { mode: 'STRICT' },
      portLevelMtls: { '8080': { mode: 'PERMISSIVE' }, '9000': { mode: 'DISABLE' } },
    });
    assert.deepEqual(convertPeerAuthentication(wl, undefined, undefined, 'istio-system'), {
      name: 'converted_peer_authentication_wl',
      namespace: 'apps',
      scope: istio.security.Scope.WORKLOAD_SELECTOR,
      action: istio.security.Action.DENY,
      rules: [
        {
          clauses: [
            { matches: [{ notPrincipals: [{ presence: {} }] }] },
            { matches: [{ notDestinationPorts: [8080] }] },
            { matches: [{ notDestinationPorts: [9000] }] },
          ],
        },
      ],
    });
  });

  it('converts a STRICT port of a permissive workload into a per-port DENY of plaintext', () => {
    const wl = peerAuth('apps', 'wl', { ...sel, mtls: { mode: 'PERMISSIVE' }, portLevelMtls: { '9090': { mode: 'STRICT' } } });
    assert.deepEqual(convertPeerAuthentication(wl, undefined, undefined, 'istio-system')?.rules, [
      { clauses: [{ matches: [{ notPrincipals: [{ presence: {} }], destinationPorts: [9090] }] }] },
    ]);
  });

  it('merges an inherited STRICT into the exception policy of an UNSET workload', () => {
    const nsStrict = peerAuth('apps', 'ns', { mtls: { mode: 'STRICT' } });
    const wl = peerAuth('apps', 'wl', { ...sel, portLevelMtls: { '8080': { mode: 'PERMISSIVE' } } });
    assert.deepEqual(convertPeerAuthentication(wl, namespacePolicy([nsStrict, wl], 'apps'), undefined, 'istio-system')?.rules, [
      { clauses: [{ matches: [{ notDestinationPorts: [8080] }] }, { matches: [{ notPrincipals: [{ presence: {} }] }] }] },
    ]);
  });

  it('converts nothing for namespace-wide, root-namespace or all-STRICT policies', () => {
    assert.equal(
      convertPeerAuthentication(peerAuth('apps', 'ns', { mtls: { mode: 'STRICT' } }), undefined, undefined, 'istio-system'),
      undefined,
    );
    assert.equal(
      convertPeerAuthentication(
        peerAuth('istio-system', 'x', { ...sel, portLevelMtls: { '80': { mode: 'PERMISSIVE' } } }),
        undefined,
        undefined,
        'istio-system',
      ),
      undefined,
    );
    assert.equal(
      convertPeerAuthentication(
        peerAuth('apps', 'wl', { ...sel, mtls: { mode: 'STRICT' }, portLevelMtls: { '80': { mode: 'STRICT' } } }),
        undefined,
        undefined,
        'istio-system',
      ),
      undefined,
    );
  });
});
