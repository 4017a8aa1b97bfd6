/** ztunnel's local-config YAML (LOCAL_XDS_PATH): parsing into domain records, rejections with YAML paths, round trip. */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { hasErrorCode } from '../../lib/errors.js';
import {
  LocalConfigError,
  LocalConfigErrorCode,
  loadLocalConfigFile,
  parseLocalConfig,
  toLocalConfigYaml,
} from '../../ztunnel/config/local-config.js';
import type { StateSnapshot } from '../../ztunnel/state/model.js';

/** istio/ztunnel examples/localhost.yaml, verbatim. */
const ZTUNNEL_EXAMPLE = `workloads:
- uid: cluster1//v1/Pod/default/local
  name: local
  namespace: default
  serviceAccount: default
  workloadIps: ["127.0.0.1"]
  protocol: HBONE
  node: local
  network: ""
  services:
    "default/example.com":
      80: 8080
    "default/example2.com":
      80: 8080
- uid: cluster1//v1/Pod/default/local-tcp
  name: local-tcp
  namespace: default
  serviceAccount: default
  workloadIps: ["127.0.0.2"]
  protocol: TCP
  node: local
  network: ""
  services:
    "default/example.com":
      80: 8080
    "default/example2.com":
      80: 8080
policies:
  - action: Allow
    rules:
    - - - notDestinationPorts:
          - 9999
    name: deny-9999
    namespace: default
    scope: Namespace
    dryRun: false
services:
- name: local
  namespace: default
  hostname: example.com
  vips:
    - /127.10.0.1
  ports:
    80: 8080
  subjectAltNames:
   - spiffe://cluster.local/ns/default/sa/local
  canonical: true
- name: remote
  namespace: default
  hostname: example2.com
  vips:
    - remote/127.10.0.2
  ports:
    80: 8080
  canonical: true
`;

/** Every field the schema has, in a non-default form. */
const FULL = `trustDomain: example.org
workloads:
- uid: Kubernetes//Pod/apps/web-1
  name: web-1
  namespace: apps
  serviceAccount: web
  trustDomain: other.td
  workloadIps: ["10.0.0.5", "FD00:0:0::5", "::ffff:10.0.0.6"]
  protocol: HBONE
  networkMode: Standard
  network: net-a
  node: node-2
  hostname: web-1.example
  workloadName: web
  workloadType: pod
  canonicalName: web
  canonicalRevision: v2
  clusterId: c2
  nativeTunnel: true
  waypoint: {destination: "net-a/10.0.0.50", hboneMtlsPort: 15008}
  networkGateway: {destination: "istio-system/eastwest.example", hboneMtlsPort: 15009}
  applicationTunnel: {protocol: PROXY, port: 15088}
  authorizationPolicies: ["apps/only-frontend"]
  status: Unhealthy
  locality: {region: r1, zone: z1, subzone: s1}
  capacity: 3
  services:
    "apps/web.apps.svc.cluster.local": {80: 8080, 443: 8443}
- name: plain
  namespace: apps
  workloadIps: []
services:
- name: web
  namespace: apps
  hostname: web.apps.svc.cluster.local
  vips: ["net-a/10.96.0.10", "/fd00::a"]
  cidrVips: [{network: net-a, cidr: "10.200.0.0/16"}]
  ports: {80: 0, 443: 8443}
  subjectAltNames: ["spiffe://example.org/ns/apps/sa/web"]
  waypoint: {destination: "apps/waypoint.apps.svc.cluster.local", hboneMtlsPort: 15008}
  weightedWaypoints:
  - {destination: {destination: "apps/wp-a.apps.svc.cluster.local", hboneMtlsPort: 15008}, weight: 90}
  - {destination: {destination: "/10.0.0.51", hboneMtlsPort: 15008}, weight: 10}
  loadBalancer: {routingPreferences: [Network, Region, Zone], mode: Failover, healthPolicy: AllowAll}
  ipFamilies: Dual
  canonical: false
  visibility: Namespace
policies:
- name: only-frontend
  namespace: apps
  scope: WorkloadSelector
  action: Deny
  dryRun: true
  rules:
  - - - namespaces: [{Exact: apps}]
        notNamespaces: [{Prefix: kube-}]
        serviceAccounts: [{namespace: apps, serviceAccount: frontend}]
        notServiceAccounts: [{namespace: apps, serviceAccount: batch}]
        principals: [{Suffix: /sa/frontend}]
        notPrincipals: [{Presence: []}]
        sourceIps: ["10.0.0.0/8", "10.1.2.3"]
        notSourceIps: ["fd00::/8"]
        destinationIps: ["::ffff:192.168.0.0/112"]
        notDestinationIps: ["2001:DB8::1"]
        destinationPorts: [80, 443]
        notDestinationPorts: [9999]
    - []
  - []
`;

function parseFails(yaml: string): LocalConfigError {
  try {
    parseLocalConfig(yaml);
  } catch (err) {
    assert.ok(err instanceof LocalConfigError, `expected LocalConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected the config to be rejected');
}

describe('local config: valid input', () => {
  it('parses the ztunnel repository example (examples/localhost.yaml)', () => {
    const c = parseLocalConfig(ZTUNNEL_EXAMPLE);
    assert.equal(c.workloads.length, 2);
    const [local, tcp] = c.workloads;
    assert.ok(local && tcp);
    assert.equal(local.uid, 'cluster1//v1/Pod/default/local');
    assert.deepEqual(local.workloadIps, ['127.0.0.1']);
    assert.equal(local.protocol, 'HBONE');
    assert.equal(tcp.protocol, 'TCP');
    assert.equal(local.node, 'local');
    assert.deepEqual(local.services, { 'default/example.com': { 80: 8080 }, 'default/example2.com': { 80: 8080 } });
    // ztunnel's defaults: trust domain cluster.local, cluster Kubernetes, status Healthy, capacity 1.
    assert.equal(local.trustDomain, 'cluster.local');
    assert.equal(local.clusterId, 'Kubernetes');
    assert.equal(local.status, 'Healthy');
    assert.equal(local.capacity, 1);
    assert.equal(local.waypoint, undefined);

    assert.deepEqual(
      c.services.map((s) => [s.name, s.hostname, s.vips, s.ports, s.canonical]),
      [
        ['local', 'example.com', [{ network: '', address: '127.10.0.1' }], { 80: 8080 }, true],
        ['remote', 'example2.com', [{ network: 'remote', address: '127.10.0.2' }], { 80: 8080 }, true],
      ],
    );
    assert.deepEqual(c.services[0]?.subjectAltNames, ['spiffe://cluster.local/ns/default/sa/local']);

    assert.equal(c.policies.length, 1);
    const p = c.policies[0];
    assert.ok(p);
    assert.deepEqual([p.name, p.namespace, p.scope, p.action, p.dryRun], ['deny-9999', 'default', 'Namespace', 'Allow', false]);
    assert.equal(p.rules.length, 1);
    assert.deepEqual(p.rules[0]?.[0]?.[0]?.notDestinationPorts, [9999]);
    assert.deepEqual(p.rules[0]?.[0]?.[0]?.destinationPorts, []);
  });

  it('parses every field of the schema, canonicalising addresses', () => {
    const c = parseLocalConfig(FULL);
    assert.equal(c.trustDomain, 'example.org');
    const web = c.workloads[0];
    assert.ok(web);
    assert.deepEqual(web.workloadIps, ['10.0.0.5', 'fd00::5', '10.0.0.6']);
    assert.equal(web.trustDomain, 'other.td');
    assert.equal(web.network, 'net-a');
    assert.deepEqual(web.waypoint, { destination: { kind: 'address', network: 'net-a', address: '10.0.0.50' }, hboneMtlsPort: 15008 });
    assert.deepEqual(web.networkGateway, {
      destination: { kind: 'hostname', namespace: 'istio-system', hostname: 'eastwest.example' },
      hboneMtlsPort: 15009,
    });
    assert.deepEqual(web.applicationTunnel, { protocol: 'PROXY', port: 15088 });
    assert.deepEqual(web.authorizationPolicies, ['apps/only-frontend']);
    assert.deepEqual(web.locality, { region: 'r1', zone: 'z1', subzone: 's1' });
    assert.deepEqual([web.status, web.capacity, web.nativeTunnel, web.workloadType, web.clusterId], ['Unhealthy', 3, true, 'pod', 'c2']);
    assert.deepEqual(web.services, { 'apps/web.apps.svc.cluster.local': { 80: 8080, 443: 8443 } });

    const plain = c.workloads[1];
    assert.ok(plain);
    assert.equal(plain.uid, 'Kubernetes//Pod/apps/plain', 'a workload without uid gets the Istio pod uid');
    assert.equal(plain.trustDomain, 'example.org', 'top-level trustDomain is the default');
    assert.equal(plain.serviceAccount, 'default');
    assert.equal(plain.protocol, 'TCP');

    const svc = c.services[0];
    assert.ok(svc);
    assert.deepEqual(svc.vips, [
      { network: 'net-a', address: '10.96.0.10' },
      { network: '', address: 'fd00::a' },
    ]);
    assert.deepEqual(svc.cidrVips, [{ network: 'net-a', cidr: { address: '10.200.0.0', prefixLength: 16 } }]);
    assert.deepEqual(svc.ports, { 80: 0, 443: 8443 });
    assert.deepEqual(
      svc.weightedWaypoints?.map((w) => w.weight),
      [90, 10],
    );
    assert.deepEqual(svc.loadBalancer, { routingPreferences: ['Network', 'Region', 'Zone'], mode: 'Failover', healthPolicy: 'AllowAll' });
    assert.deepEqual([svc.ipFamilies, svc.canonical, svc.visibility], ['Dual', false, 'Namespace']);

    const pol = c.policies[0];
    assert.ok(pol);
    assert.deepEqual([pol.scope, pol.action, pol.dryRun, pol.rules.length], ['WorkloadSelector', 'Deny', true, 2]);
    assert.deepEqual(pol.rules[1], [], 'an empty rule is kept');
    assert.deepEqual(pol.rules[0]?.[1], [], 'an empty clause is kept');
    const m = pol.rules[0]?.[0]?.[0];
    assert.ok(m);
    assert.deepEqual(m.namespaces, [{ kind: 'exact', value: 'apps' }]);
    assert.deepEqual(m.notNamespaces, [{ kind: 'prefix', value: 'kube-' }]);
    assert.deepEqual(m.principals, [{ kind: 'suffix', value: '/sa/frontend' }]);
    assert.deepEqual(m.notPrincipals, [{ kind: 'presence' }]);
    assert.deepEqual(m.serviceAccounts, [{ namespace: 'apps', serviceAccount: 'frontend' }]);
    assert.deepEqual(m.sourceIps, [
      { address: '10.0.0.0', prefixLength: 8 },
      { address: '10.1.2.3', prefixLength: 32 },
    ]);
    assert.deepEqual(m.notSourceIps, [{ address: 'fd00::', prefixLength: 8 }]);
    assert.deepEqual(m.destinationIps, [{ address: '192.168.0.0', prefixLength: 16 }], 'an IPv4-mapped block is an IPv4 block');
    assert.deepEqual(m.notDestinationIps, [{ address: '2001:db8::1', prefixLength: 128 }]);
    assert.deepEqual([m.destinationPorts, m.notDestinationPorts], [[80, 443], [9999]]);
  });

  it('returns deeply frozen records', () => {
    const c = parseLocalConfig(FULL);
    assert.ok(Object.isFrozen(c.workloads));
    assert.ok(Object.isFrozen(c.workloads[0]?.services));
    assert.ok(Object.isFrozen(c.policies[0]?.rules[0]?.[0]?.[0]?.sourceIps[0]));
  });

  it('reads an empty document as an empty state', () => {
    for (const text of ['', '# nothing\n', 'workloads: []\n', 'workloads:\nservices:\npolicies:\n']) {
      const c = parseLocalConfig(text);
      assert.deepEqual([c.workloads.length, c.services.length, c.policies.length], [0, 0, 0], JSON.stringify(text));
    }
  });

  it('treats a key written without a value as unset', () => {
    const c = parseLocalConfig('workloads:\n- name: a\n  namespace: ns\n  workloadIps: ["10.0.0.1"]\n  network:\n  serviceAccount:\n');
    assert.equal(c.workloads[0]?.network, '');
    assert.equal(c.workloads[0]?.serviceAccount, 'default');
  });

  it('uses the trust domain given by the caller when the file sets none', () => {
    const c = parseLocalConfig('workloads:\n- {name: a, namespace: ns, workloadIps: []}\n', { trustDomain: 'corp.example' });
    assert.equal(c.workloads[0]?.trustDomain, 'corp.example');
  });
});

describe('local config: rejections name the YAML path', () => {
  const w = (fields: string): string =>
    `workloads:\n- {name: a, namespace: ns, workloadIps: ["10.0.0.1"]}\n- {name: b, namespace: ns, workloadIps: ["10.0.0.2"]}\n- {name: c, namespace: ns, ${fields}}\n`;
  const s = (fields: string): string => `services:\n- {name: web, namespace: ns, hostname: web.ns, ${fields}}\n`;
  const p = (fields: string): string => `policies:\n- {name: p, namespace: ns, scope: Namespace, action: Allow, ${fields}}\n`;
  const cases: ReadonlyArray<[string, string, string, string]> = [
    ['an address that is not an IP', w('workloadIps: ["10.0.0.300"]'), 'workloads[2].workloadIps[0]', '"10.0.0.300" is not an IP address'],
    ['a hostname where an IP belongs', w('workloadIps: ["pod.example"]'), 'workloads[2].workloadIps[0]', 'is not an IP address'],
    ['an IPv6 zone id', w('workloadIps: ["fe80::1%eth0"]'), 'workloads[2].workloadIps[0]', 'is not an IP address'],
    ['a missing workloadIps', w('protocol: TCP'), 'workloads[2].workloadIps', 'is required'],
    ['a missing namespace', 'workloads:\n- {name: a, workloadIps: []}\n', 'workloads[0].namespace', 'is required'],
    ['a workload with neither uid nor name', 'workloads:\n- {namespace: ns, workloadIps: []}\n', 'workloads[0]', 'needs a uid or a name'],
    ['an unknown workload field', w('workloadIps: [], serviceaccount: x'), 'workloads[2].serviceaccount', 'unknown field'],
    ['an unknown top-level field', 'workload: []\n', 'workload', 'unknown field'],
    ['an unknown protocol', w('workloadIps: [], protocol: TLS'), 'workloads[2].protocol', '"TLS" is not one of: TCP, HBONE'],
    ['a workload type not in lowercase', w('workloadIps: [], workloadType: Deployment'), 'workloads[2].workloadType', 'is not one of'],
    ['an unknown status', w('workloadIps: [], status: Ready'), 'workloads[2].status', 'is not one of: Healthy, Unhealthy'],
    ['a negative capacity', w('workloadIps: [], capacity: -1'), 'workloads[2].capacity', 'is not a capacity'],
    ['a fractional capacity', w('workloadIps: [], capacity: 1.5'), 'workloads[2].capacity', 'is not a capacity'],
    ['a string where a bool belongs', w('workloadIps: [], nativeTunnel: "yes"'), 'workloads[2].nativeTunnel', 'expected true or false'],
    [
      'a service key without namespace',
      w('workloadIps: [], services: {"web": {80: 8080}}'),
      'workloads[2].services["web"]',
      'is not of the form "<namespace>/<hostname>"',
    ],
    [
      'a named port in a port map',
      w('workloadIps: [], services: {"ns/web": {http: 8080}}'),
      'workloads[2].services["ns/web"]["http"]',
      'is not a port',
    ],
    [
      'a target port out of range',
      w('workloadIps: [], services: {"ns/web": {80: 70000}}'),
      'workloads[2].services["ns/web"][80]',
      'is not a target port',
    ],
    [
      'a waypoint destination that is neither form',
      w('workloadIps: [], waypoint: {destination: nope, hboneMtlsPort: 15008}'),
      'workloads[2].waypoint.destination',
      'is not of the form',
    ],
    [
      'a waypoint without destination',
      w('workloadIps: [], waypoint: {hboneMtlsPort: 15008}'),
      'workloads[2].waypoint.destination',
      'is required',
    ],
    [
      'an unknown waypoint field',
      w('workloadIps: [], waypoint: {destination: "/10.0.0.9", port: 15008}'),
      'workloads[2].waypoint.port',
      'unknown field',
    ],
    [
      'an unknown app tunnel protocol',
      w('workloadIps: [], applicationTunnel: {protocol: HTTP}'),
      'workloads[2].applicationTunnel.protocol',
      'is not one of: NONE, PROXY',
    ],
    [
      'a policy reference without namespace',
      w('workloadIps: [], authorizationPolicies: ["p"]'),
      'workloads[2].authorizationPolicies[0]',
      '"<namespace>/<name>"',
    ],
    ['a service account that cannot be in a SPIFFE ID', w('workloadIps: [], serviceAccount: "a/b"'), 'workloads[2]', 'SPIFFE identity'],
    ['an invalid top-level trust domain', 'trustDomain: Cluster.Local\n', 'trustDomain', 'is not a trust domain'],
    ['a VIP without network', s('vips: ["10.96.0.1"]'), 'services[0].vips[0]', '"10.96.0.1" is not of the form "<network>/<ip>"'],
    ['a VIP that is not an IP', s('vips: ["/10.96.0.999"]'), 'services[0].vips[0]', 'is not an IP address'],
    ['service port 0', s('ports: {0: 80}'), 'services[0].ports[0]', 'is not a port'],
    ['a SAN that is not a SPIFFE identity', s('subjectAltNames: ["web.ns"]'), 'services[0].subjectAltNames[0]', 'is not a SPIFFE identity'],
    ['explicit service endpoints', s('endpoints: {"uid-1": {workloadUid: uid-1}}'), 'services[0].endpoints', 'is not supported'],
    ['an unknown load-balancer mode', s('loadBalancer: {mode: RoundRobin}'), 'services[0].loadBalancer.mode', 'is not one of'],
    [
      'an unknown routing preference',
      s('loadBalancer: {routingPreferences: [Rack]}'),
      'services[0].loadBalancer.routingPreferences[0]',
      'is not one of',
    ],
    ['a service without hostname', 'services:\n- {name: web, namespace: ns}\n', 'services[0].hostname', 'is required'],
    ['a policy without action', 'policies:\n- {name: p, namespace: ns, scope: Global}\n', 'policies[0].action', 'is required'],
    [
      'an action in the wrong case',
      'policies:\n- {name: p, namespace: ns, scope: Global, action: ALLOW}\n',
      'policies[0].action',
      'is not one of: Allow, Deny',
    ],
    [
      'rules that are not three nested lists',
      p('rules: [{notDestinationPorts: [1]}]'),
      'policies[0].rules[0]',
      'expected a list, found a map',
    ],
    [
      'an unknown string match',
      p('rules: [[[{principals: [{Regex: ".*"}]}]]]'),
      'policies[0].rules[0][0][0].principals[0].Regex',
      'unknown string match',
    ],
    [
      'a string match with two kinds',
      p('rules: [[[{namespaces: [{Exact: a, Prefix: b}]}]]]'),
      'policies[0].rules[0][0][0].namespaces[0]',
      'expected one of',
    ],
    [
      'a presence match with a value',
      p('rules: [[[{notPrincipals: [{Presence: x}]}]]]'),
      'policies[0].rules[0][0][0].notPrincipals[0].Presence',
      'expected []',
    ],
    [
      'a prefix longer than the address',
      p('rules: [[[{sourceIps: ["10.0.0.0/33"]}]]]'),
      'policies[0].rules[0][0][0].sourceIps[0]',
      'is not an IP address or CIDR block',
    ],
    ['an unknown match field', p('rules: [[[{principal: [{Exact: a}]}]]]'), 'policies[0].rules[0][0][0].principal', 'unknown field'],
    ['port 0 in a match', p('rules: [[[{destinationPorts: [0]}]]]'), 'policies[0].rules[0][0][0].destinationPorts[0]', 'is not a port'],
    [
      'a service account match without name',
      p('rules: [[[{serviceAccounts: [{namespace: ns}]}]]]'),
      'policies[0].rules[0][0][0].serviceAccounts[0].serviceAccount',
      'is required',
    ],
    [
      'two workloads with one uid',
      'workloads:\n- {uid: u, namespace: a, workloadIps: []}\n- {uid: u, namespace: b, workloadIps: []}\n',
      'workloads[1]',
      'duplicate uid "u" (also workloads[0])',
    ],
    [
      'two services with one key',
      'services:\n- {name: a, namespace: ns, hostname: h}\n- {name: b, namespace: ns, hostname: h}\n',
      'services[1]',
      'duplicate service "ns/h"',
    ],
    [
      'two policies with one key',
      `${p('rules: []')}- {name: p, namespace: ns, scope: Global, action: Deny}\n`,
      'policies[1]',
      'duplicate policy "ns/p"',
    ],
    ['a top-level list', '- workloads\n', '', 'expected a map, found a list'],
    ['workloads that are not a list', 'workloads: {a: 1}\n', 'workloads', 'expected a list, found a map'],
    ['a YAML syntax error', 'workloads: [\n', '', 'not valid YAML'],
    ['a key written twice', 'workloads: []\nworkloads: []\n', '', 'Map keys must be unique'],
  ];
  for (const [what, yaml, path, fragment] of cases) {
    it(`rejects ${what}`, () => {
      const err = parseFails(yaml);
      assert.equal(err.code, LocalConfigErrorCode.INVALID);
      assert.ok(hasErrorCode(err, 'CONFIG_INVALID_LOCAL_CONFIG'));
      assert.equal(err.path, path);
      assert.ok(err.message.startsWith(path === '' ? '' : `${path}: `), err.message);
      assert.ok(err.message.includes(fragment), `"${err.message}" should include "${fragment}"`);
    });
  }

  it('says exactly what is wrong and where', () => {
    const err = parseFails(w('workloadIps: ["10.0.0.300"]'));
    assert.equal(err.message, 'workloads[2].workloadIps[0]: "10.0.0.300" is not an IP address');
  });
});

describe('local config: round trip', () => {
  const roundTrip = (s: StateSnapshot): StateSnapshot => parseLocalConfig(toLocalConfigYaml(s));
  const strip = (c: StateSnapshot): StateSnapshot => ({ workloads: c.workloads, services: c.services, policies: c.policies });

  it('reads back the ztunnel example as the same records', () => {
    const c = parseLocalConfig(ZTUNNEL_EXAMPLE);
    assert.deepEqual(strip(roundTrip(c)), strip(c));
  });

  it('reads back every field as the same records', () => {
    const c = parseLocalConfig(FULL);
    assert.deepEqual(strip(roundTrip(c)), strip(c));
  });

  it('writes what ztunnel requires: trust domain, services, dry run, and ports as YAML integers', () => {
    const yaml = toLocalConfigYaml(parseLocalConfig(ZTUNNEL_EXAMPLE));
    assert.match(yaml, /trustDomain: cluster\.local/);
    assert.match(yaml, /dryRun: false/);
    assert.match(yaml, /\n +80: 8080\n/);
    assert.match(yaml, /- \/127\.10\.0\.1\n/);
    assert.match(yaml, /- - - notDestinationPorts:/);
  });
});

describe('local config: files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'local-config-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('loads a file', async () => {
    const file = join(dir, 'ok.yaml');
    writeFileSync(file, ZTUNNEL_EXAMPLE);
    const c = await loadLocalConfigFile(file);
    assert.equal(c.workloads.length, 2);
  });

  it('names the file and the YAML path when the content is invalid', async () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, 'services:\n- {name: a, namespace: ns, hostname: h, vips: ["x"]}\n');
    await assert.rejects(loadLocalConfigFile(file), (err: unknown) => {
      assert.ok(err instanceof LocalConfigError);
      assert.equal(err.code, LocalConfigErrorCode.INVALID);
      assert.equal(err.path, 'services[0].vips[0]');
      assert.ok(err.message.includes(file) && err.message.includes('services[0].vips[0]'), err.message);
      return true;
    });
  });

  it('refuses a FIFO or a directory at the path as unreadable, without blocking on it', async () => {
    const fifo = join(dir, 'fifo.yaml');
    execFileSync('mkfifo', [fifo]);
    for (const path of [fifo, dir]) {
      await assert.rejects(loadLocalConfigFile(path), (err: unknown) => {
        assert.ok(hasErrorCode(err, LocalConfigErrorCode.UNREADABLE), String(err));
        return true;
      });
    }
  });

  it('reports a missing file as unreadable', async () => {
    await assert.rejects(loadLocalConfigFile(join(dir, 'missing.yaml')), (err: unknown) => {
      assert.ok(hasErrorCode(err, LocalConfigErrorCode.UNREADABLE));
      assert.match((err as Error).message, /missing\.yaml/);
      return true;
    });
  });
});
