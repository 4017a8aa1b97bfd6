/**
 * The chart's CRDs (charts/ambient/crds/) in a real API server: they install and become Established, accept the
 * objects Istio users write (and that the controller reads), reject malformed ones with a message that says why,
 * and take status only through the status subresource. Fails, never skips, when the server cannot start.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ApiextensionsV1Api, CustomObjectsApi, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { describeError } from '../../lib/errors.js';
import {
  apiStatusOf,
  createNamespace,
  installCrds,
  loadCrds,
  startApiServer,
  type ApiServer,
  type KubeObject,
  type KubeStatus,
} from '../../testbed/kubeapi/index.js';
import { silentLogger } from '../../testbed/fixtures/log.js';

const NS = 'crd-test';
const SECURITY = 'security.istio.io';
const GATEWAY = 'gateway.networking.k8s.io';

interface Kind {
  readonly group: string;
  readonly version: string;
  readonly plural: string;
  readonly kind: string;
}
const AP: Kind = { group: SECURITY, version: 'v1', plural: 'authorizationpolicies', kind: 'AuthorizationPolicy' };
const PA: Kind = { group: SECURITY, version: 'v1', plural: 'peerauthentications', kind: 'PeerAuthentication' };
const GW: Kind = { group: GATEWAY, version: 'v1', plural: 'gateways', kind: 'Gateway' };
const GWC: Kind = { group: GATEWAY, version: 'v1', plural: 'gatewayclasses', kind: 'GatewayClass' };
const ROUTE: Kind = { group: GATEWAY, version: 'v1', plural: 'httproutes', kind: 'HTTPRoute' };

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Reads a nested field of a JSON object by path, for assertions. */
function at(obj: unknown, ...path: Array<string | number>): unknown {
  let v: unknown = obj;
  for (const p of path) {
    if (typeof p === 'number') v = Array.isArray(v) ? v[p] : undefined;
    else v = isRecord(v) ? v[p] : undefined;
  }
  return v;
}

describe('CRDs of charts/ambient/crds in a real API server', () => {
  let api: ApiServer;
  let custom: CustomObjectsApi;
  let counter = 0;

  function manifest(k: Kind, spec: unknown, name = `obj-${++counter}`, version = k.version): Record<string, unknown> {
    return { apiVersion: `${k.group}/${version}`, kind: k.kind, metadata: { name, ...(k === GWC ? {} : { namespace: NS }) }, spec };
  }

  async function create(k: Kind, spec: unknown, name?: string, version = k.version): Promise<Record<string, unknown>> {
    const body = manifest(k, spec, name, version);
    const meta = body.metadata as { name: string };
    const created: unknown =
      k === GWC
        ? await custom.createClusterCustomObject({ group: k.group, version, plural: k.plural, body })
        : await custom.createNamespacedCustomObject({ group: k.group, version, namespace: NS, plural: k.plural, body });
    assert.ok(isRecord(created), `${k.kind} ${meta.name} created`);
    return created;
  }

  async function get(k: Kind, name: string, version = k.version): Promise<Record<string, unknown>> {
    const obj: unknown =
      k === GWC
        ? await custom.getClusterCustomObject({ group: k.group, version, plural: k.plural, name })
        : await custom.getNamespacedCustomObject({ group: k.group, version, namespace: NS, plural: k.plural, name });
    assert.ok(isRecord(obj));
    return obj;
  }

  /** Creating `spec` must fail with 422 Invalid and a message matching `why`. */
  async function rejected(k: Kind, spec: unknown, why: RegExp): Promise<KubeStatus> {
    try {
      await create(k, spec);
    } catch (e) {
      const status = apiStatusOf(e);
      assert.ok(status, `expected a Status from the API server, got ${describeError(e)}`);
      assert.equal(status.code, 422, status.message);
      assert.equal(status.reason, 'Invalid');
      assert.match(status.message, why);
      return status;
    }
    assert.fail(`the API server accepted an invalid ${k.kind}: ${JSON.stringify(spec)}`);
  }

  before(async () => {
    api = await startApiServer({ name: 'crds-test', logger: silentLogger() });
    custom = api.kubeConfig.makeApiClient(CustomObjectsApi);
    await installCrds(api.kubeConfig);
    await createNamespace(api.kubeConfig, NS);
  });

  after(async () => {
    await api?.stop();
  });

  test('all CRDs install, become Established, store v1 and have a status subresource', async () => {
    const files = loadCrds()
      .map((c: KubeObject) => c.metadata.name)
      .sort();
    assert.deepEqual(files, [
      'authorizationpolicies.security.istio.io',
      'gatewayclasses.gateway.networking.k8s.io',
      'gateways.gateway.networking.k8s.io',
      'httproutes.gateway.networking.k8s.io',
      'peerauthentications.security.istio.io',
    ]);
    const ext = api.kubeConfig.makeApiClient(ApiextensionsV1Api);
    for (const name of files) {
      const crd = await ext.readCustomResourceDefinition({ name });
      const cond = (t: string): string | undefined => crd.status?.conditions?.find((c) => c.type === t)?.status;
      assert.equal(cond('Established'), 'True', name);
      assert.equal(cond('NamesAccepted'), 'True', name);
      assert.notEqual(cond('NonStructuralSchema'), 'True', `${name} has a structural schema`);
      assert.notEqual(cond('KubernetesAPIApprovalPolicyConformant'), 'False', `${name} approval annotation`);
      const storage = crd.spec.versions.filter((v) => v.storage).map((v) => v.name);
      assert.deepEqual(storage, ['v1'], name);
      for (const v of crd.spec.versions) assert.ok(v.subresources?.status !== undefined, `${name} ${v.name} has status`);
    }
    const ap = await ext.readCustomResourceDefinition({ name: 'authorizationpolicies.security.istio.io' });
    assert.deepEqual(
      ap.spec.versions.map((v) => `${v.name}:${v.served}`),
      ['v1:true', 'v1beta1:true'],
    );
  });

  test('valid AuthorizationPolicies and PeerAuthentications are accepted, in v1 and v1beta1', async () => {
    const policy = await create(
      AP,
      {
        selector: { matchLabels: { app: 'httpbin', version: 'v1' } },
        action: 'ALLOW',
        rules: [
          {
            from: [{ source: { principals: ['cluster.local/ns/default/sa/sleep'] } }, { source: { namespaces: ['test'] } }],
            to: [
              { operation: { methods: ['GET'], paths: ['/info*'], ports: ['8080'] } },
              { operation: { methods: ['POST'], paths: ['/data'] } },
            ],
            when: [{ key: 'request.auth.claims[iss]', values: ['https://accounts.google.com'] }],
          },
        ],
      },
      'httpbin',
    );
    assert.equal(at(policy, 'spec', 'rules', 0, 'from', 1, 'source', 'namespaces', 0), 'test');
    // The same object through the other served version.
    const beta = await get(AP, 'httpbin', 'v1beta1');
    assert.equal(beta.apiVersion, 'security.istio.io/v1beta1');
    assert.deepEqual(at(beta, 'spec', 'selector'), { matchLabels: { app: 'httpbin', version: 'v1' } });

    await create(AP, {}, 'allow-nothing');
    await create(AP, { rules: [{}] }, 'allow-all');
    await create(
      AP,
      { action: 'DENY', rules: [{ from: [{ source: { notNamespaces: ['prod'] } }], to: [{ operation: { ports: ['15008'] } }] }] },
      'deny-v1beta1',
      'v1beta1',
    );
    await create(
      AP,
      { targetRefs: [{ kind: 'Gateway', group: GATEWAY, name: 'waypoint' }], rules: [{ to: [{ operation: { methods: ['GET'] } }] }] },
      'on-waypoint',
    );
    await create(AP, { targetRefs: [{ kind: 'Service', group: '', name: 'reviews' }], action: 'AUDIT', rules: [{}] }, 'on-service');
    await create(
      AP,
      { action: 'CUSTOM', provider: { name: 'ext-authz' }, rules: [{ to: [{ operation: { paths: ['/admin/*'] } }] }] },
      'custom',
    );
    await create(AP, { rules: [{ from: [{ source: { serviceAccounts: ['default/sleep', 'curl'] } }] }] }, 'by-service-account');
    // Istio's extended-channel fields are stored, not pruned: an ALLOW rule must never silently lose a condition.
    const td = await create(
      AP,
      { rules: [{ from: [{ source: { trustDomains: ['cluster.local'], notTrustDomains: ['evil.example'] } }] }] },
      'by-trust-domain',
    );
    assert.deepEqual(at(td, 'spec', 'rules', 0, 'from', 0, 'source'), {
      trustDomains: ['cluster.local'],
      notTrustDomains: ['evil.example'],
    });
    assert.equal(at(await get(AP, 'allow-all'), 'spec', 'rules', 0) !== undefined, true);

    const strict = await create(PA, { mtls: { mode: 'STRICT' } }, 'default');
    assert.equal(at(strict, 'spec', 'mtls', 'mode'), 'STRICT');
    await create(
      PA,
      { selector: { matchLabels: { app: 'db' } }, mtls: { mode: 'STRICT' }, portLevelMtls: { 5432: { mode: 'PERMISSIVE' } } },
      'db',
    );
    await create(PA, { mtls: { mode: 'PERMISSIVE' } }, 'old-api', 'v1beta1');
  });

  test('a waypoint GatewayClass and Gateway (mesh/15008/HBONE) and an HTTPRoute are accepted, with Gateway API defaults', async () => {
    const gc = await create(
      GWC,
      { controllerName: 'istio.io/mesh-controller', description: 'The default Istio waypoint GatewayClass' },
      'istio-waypoint',
    );
    assert.equal(at(gc, 'status', 'conditions', 0, 'reason'), 'Pending', 'a class nobody handled yet is Pending');

    const gw = await create(
      GW,
      { gatewayClassName: 'istio-waypoint', listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }] },
      'waypoint',
    );
    assert.deepEqual(at(gw, 'spec', 'listeners', 0), {
      name: 'mesh',
      port: 15008,
      protocol: 'HBONE',
      allowedRoutes: { namespaces: { from: 'Same' } },
    });
    assert.deepEqual(
      (at(gw, 'status', 'conditions') as Array<Record<string, unknown>>).map(
        (c) => `${String(c.type)}=${String(c.status)}/${String(c.reason)}`,
      ),
      ['Accepted=Unknown/Pending', 'Programmed=Unknown/Pending'],
    );

    await create(
      GW,
      {
        gatewayClassName: 'istio-waypoint',
        listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE', allowedRoutes: { namespaces: { from: 'All' } } }],
        infrastructure: {
          labels: { 'istio.io/waypoint-for': 'all' },
          parametersRef: { group: '', kind: 'ConfigMap', name: 'waypoint-overrides' },
        },
      },
      'shared-waypoint',
    );

    const route = await create(
      ROUTE,
      {
        parentRefs: [{ group: '', kind: 'Service', name: 'reviews', port: 9080 }],
        rules: [
          {
            matches: [{ path: { type: 'PathPrefix', value: '/v2' }, headers: [{ name: 'x-user', value: 'jason' }] }, { method: 'GET' }],
            filters: [
              { type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'x-routed', value: 'yes' }], remove: ['x-debug'] } },
            ],
            backendRefs: [
              { name: 'reviews-v2', port: 9080, weight: 90 },
              { name: 'reviews-v1', port: 9080, weight: 10 },
            ],
            timeouts: { request: '10s' },
          },
          {
            backendRefs: [{ name: 'reviews-v1', port: 9080 }],
          },
        ],
      },
      'reviews',
    );
    assert.deepEqual(
      at(route, 'spec', 'rules', 1, 'matches'),
      [{ path: { type: 'PathPrefix', value: '/' } }],
      'rule matches default to PathPrefix /',
    );
    assert.equal(at(route, 'spec', 'rules', 1, 'backendRefs', 0, 'weight'), 1, 'weight defaults to 1');
    assert.equal(at(route, 'spec', 'rules', 0, 'matches', 1, 'path', 'value'), '/', 'path defaults inside a match');
    assert.equal(at(route, 'spec', 'parentRefs', 0, 'kind'), 'Service');
  });

  test('invalid AuthorizationPolicies are rejected with a message', async () => {
    await rejected(
      AP,
      { action: 'REJECT', rules: [{}] },
      /spec\.action: Unsupported value: "REJECT": supported values: "ALLOW", "DENY", "AUDIT", "CUSTOM"/,
    );
    await rejected(
      AP,
      { selector: { matchLabels: { app: 'a' } }, targetRefs: [{ kind: 'Gateway', group: GATEWAY, name: 'waypoint' }] },
      /only one of targetRefs or selector can be set/,
    );
    await rejected(
      AP,
      { selector: { matchLabels: { app: 'a' } }, targetRef: { kind: 'Gateway', group: GATEWAY, name: 'waypoint' } },
      /only one of targetRefs or selector can be set/,
    );
    const tooMany = Array.from({ length: 513 }, () => ({ to: [{ operation: { ports: ['80'] } }] }));
    await rejected(AP, { rules: tooMany }, /spec\.rules: Too many: 513: must have at most 512 items/);
    await rejected(
      AP,
      { rules: [{ from: [{ source: { serviceAccounts: ['default/sleep'], principals: ['cluster.local/ns/default/sa/sleep'] } }] }] },
      /Cannot set serviceAccounts with namespaces or principals/,
    );
    await rejected(AP, { rules: [{ when: [{ key: 'source.ip' }] }] }, /spec\.rules\[0\]\.when\[0\]/);
    await rejected(AP, { rules: [{ when: [{ values: ['10.0.0.1'] }] }] }, /spec\.rules\[0\]\.when\[0\]\.key: Required value/);
    await rejected(AP, { rules: [{ from: [{}] }] }, /spec\.rules\[0\]\.from\[0\]\.source: Required value/);
    await rejected(
      AP,
      { rules: [{ to: [{ operation: {} }] }] },
      /spec\.rules\[0\]\.to\[0\]\.operation: Invalid value: 0: spec\.rules\[0\]\.to\[0\]\.operation in body should have at least 1 properties/,
    );
    await rejected(
      AP,
      { rules: [{ to: [{ operation: { ports: ['http'] } }] }] },
      /spec\.rules\[0\]\.to\[0\]\.operation\.ports\[0\]: Invalid value: "http"/,
    );
    await rejected(AP, { action: 'DENY', provider: { name: 'x' }, rules: [{}] }, /`provider` must not be with non CUSTOM action/);
    await rejected(AP, { action: 'CUSTOM', rules: [{}] }, /`provider\.name` must not be empty/);
    await rejected(AP, { action: 'DENY' }, /DENY action without `rules` is meaningless/);
    await rejected(AP, { targetRefs: [{ kind: 'Pod', name: 'p' }] }, /supported targets are Gateway and GatewayClass/);
    await rejected(
      AP,
      { targetRefs: [{ kind: 'Gateway', group: GATEWAY, name: 'w', namespace: 'other' }] },
      /cross namespace referencing is not currently supported/,
    );
    await rejected(AP, { selector: { matchLabels: { 'app*': 'x' } } }, /wildcard not allowed in label key match/);
    await rejected(AP, { selector: { matchLabels: { app: 'x*' } } }, /wildcard not allowed in label value match/);
    await rejected(
      AP,
      { rules: [{ from: [{ source: { serviceAccounts: Array.from({ length: 17 }, (_, i) => `ns/sa${i}`) } }] }] },
      /must have at most 16 items/,
    );
  });

  test('invalid PeerAuthentications are rejected with a message', async () => {
    await rejected(
      PA,
      { mtls: { mode: 'STRICTT' } },
      /spec\.mtls\.mode: Unsupported value: "STRICTT": supported values: "UNSET", "DISABLE", "PERMISSIVE", "STRICT"/,
    );
    await rejected(
      PA,
      { selector: { matchLabels: { app: 'db' } }, portLevelMtls: { 5432: { mode: 'strict' } } },
      /Unsupported value: "strict"/,
    );
    await rejected(PA, { mtls: { mode: 'STRICT' }, portLevelMtls: { 5432: { mode: 'DISABLE' } } }, /portLevelMtls requires selector/);
    await rejected(
      PA,
      { selector: { matchLabels: { app: 'db' } }, portLevelMtls: { 70000: { mode: 'DISABLE' } } },
      /port must be between 1-65535/,
    );
    await rejected(PA, { selector: { matchLabels: { app: 'db' } }, portLevelMtls: {} }, /should have at least 1 properties/);
  });

  test('invalid Gateways, GatewayClasses and HTTPRoutes are rejected with a message', async () => {
    await rejected(
      GW,
      { gatewayClassName: 'istio-waypoint', listeners: [{ name: 'mesh', protocol: 'HBONE' }] },
      /spec\.listeners\[0\]\.port: Required value/,
    );
    await rejected(
      GW,
      { gatewayClassName: 'istio-waypoint', listeners: [{ name: 'mesh', port: 70000, protocol: 'HBONE' }] },
      /spec\.listeners\[0\]\.port: Invalid value: 70000/,
    );
    await rejected(
      GW,
      { gatewayClassName: 'istio-waypoint', listeners: [] },
      /spec\.listeners: Invalid value: 0: spec\.listeners in body should have at least 1 items|spec\.listeners: Required value/,
    );
    await rejected(GW, { listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }] }, /spec\.gatewayClassName: Required value/);
    await rejected(
      GW,
      {
        gatewayClassName: 'istio-waypoint',
        listeners: [
          { name: 'mesh', port: 15008, protocol: 'HBONE' },
          { name: 'mesh', port: 15009, protocol: 'HBONE' },
        ],
      },
      /spec\.listeners\[1\]: Duplicate value/,
    );
    await rejected(
      GW,
      {
        gatewayClassName: 'istio-waypoint',
        listeners: [
          { name: 'a', port: 15008, protocol: 'HBONE' },
          { name: 'b', port: 15008, protocol: 'HBONE' },
        ],
      },
      /each listener needs its own combination of port, protocol and hostname/,
    );
    await rejected(
      GW,
      { gatewayClassName: 'istio-waypoint', listeners: [{ name: 'Mesh_1', port: 15008, protocol: 'HBONE' }] },
      /spec\.listeners\[0\]\.name: Invalid value: "Mesh_1"/,
    );
    await rejected(
      GW,
      { gatewayClassName: 'x', listeners: [{ name: 'tcp', port: 80, protocol: 'TCP', hostname: 'a.example.com' }] },
      /hostname must not be set for TCP or UDP listeners/,
    );
    await rejected(GWC, { controllerName: 'no-slash' }, /spec\.controllerName: Invalid value: "no-slash"/);
    await rejected(ROUTE, { rules: [{ backendRefs: [{ name: 'svc' }] }] }, /a Service backend needs a port/);
    await rejected(ROUTE, { rules: [{ matches: [{ path: { type: 'Exact', value: 'no-slash' } }] }] }, /must be absolute/);
    await rejected(
      ROUTE,
      { rules: [{ filters: [{ type: 'RequestHeaderModifier' }] }] },
      /requestHeaderModifier must be set exactly when type is RequestHeaderModifier/,
    );
    await rejected(ROUTE, { rules: Array.from({ length: 17 }, () => ({})) }, /spec\.rules: Too many: 17: must have at most 16 items/);
  });

  test('status is written through the status subresource only', async () => {
    await create(GW, { gatewayClassName: 'istio-waypoint', listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }] }, 'status-gw');
    const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    const condition = (type: string, reason: string, message: string): Record<string, unknown> => ({
      type,
      status: 'True',
      reason,
      message,
      observedGeneration: 1,
      lastTransitionTime: now,
    });
    const status = {
      conditions: [
        condition('Accepted', 'Accepted', 'Resource accepted'),
        condition('Programmed', 'Programmed', 'Resource programmed, assigned to service(s) status-gw.crd-test.svc.cluster.local:15008'),
      ],
      addresses: [
        { type: 'IPAddress', value: '10.96.0.20' },
        { type: 'Hostname', value: 'status-gw.crd-test.svc.cluster.local' },
      ],
      listeners: [
        { name: 'mesh', attachedRoutes: 0, supportedKinds: [], conditions: [condition('Accepted', 'Accepted', 'No errors found')] },
      ],
    };
    // A JSON merge patch of the status subresource (client-node sends JSON Patch unless told otherwise).
    const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
    const patched: unknown = await custom.patchNamespacedCustomObjectStatus(
      {
        group: GATEWAY,
        version: 'v1',
        namespace: NS,
        plural: 'gateways',
        name: 'status-gw',
        body: { status, spec: { gatewayClassName: 'changed-through-status' } },
      },
      mergePatch,
    );
    assert.deepEqual(at(patched, 'status', 'addresses', 1), { type: 'Hostname', value: 'status-gw.crd-test.svc.cluster.local' });
    assert.equal(at(patched, 'spec', 'gatewayClassName'), 'istio-waypoint', 'spec cannot change through /status');
    const read = await get(GW, 'status-gw');
    assert.equal(at(read, 'status', 'conditions', 1, 'type'), 'Programmed');
    assert.equal(at(read, 'status', 'conditions', 1, 'status'), 'True');

    // Status sent to the main resource is ignored.
    await custom.patchNamespacedCustomObject(
      {
        group: GATEWAY,
        version: 'v1',
        namespace: NS,
        plural: 'gateways',
        name: 'status-gw',
        body: { metadata: { labels: { touched: 'yes' } }, status: { addresses: [] } },
      },
      mergePatch,
    );
    const after = await get(GW, 'status-gw');
    assert.equal(at(after, 'metadata', 'labels', 'touched'), 'yes');
    assert.equal((at(after, 'status', 'addresses') as unknown[]).length, 2, 'status unchanged by a write to the main resource');

    // Status is validated too.
    try {
      await custom.patchNamespacedCustomObjectStatus(
        {
          group: GATEWAY,
          version: 'v1',
          namespace: NS,
          plural: 'gateways',
          name: 'status-gw',
          body: { status: { conditions: [{ ...condition('Accepted', 'Accepted', 'x'), status: 'Maybe' }] } },
        },
        mergePatch,
      );
      assert.fail('an invalid condition status was accepted');
    } catch (e) {
      const s = apiStatusOf(e);
      assert.ok(s, describeError(e));
      assert.equal(s.code, 422);
      assert.match(s.message, /status\.conditions\[0\]\.status: Unsupported value: "Maybe"/);
    }

    // The Istio kinds: the controller's conditions on an AuthorizationPolicy.
    await create(AP, { targetRefs: [{ kind: 'Gateway', group: GATEWAY, name: 'status-gw' }], rules: [{}] }, 'status-ap');
    await custom.replaceNamespacedCustomObjectStatus({
      group: SECURITY,
      version: 'v1',
      namespace: NS,
      plural: 'authorizationpolicies',
      name: 'status-ap',
      body: {
        ...(await get(AP, 'status-ap')),
        status: {
          observedGeneration: 1,
          conditions: [{ type: 'WaypointAccepted', status: 'True', reason: 'Accepted', message: 'bound to crd-test/status-gw' }],
        },
      },
    });
    assert.equal(at(await get(AP, 'status-ap'), 'status', 'conditions', 0, 'message'), 'bound to crd-test/status-gw');
  });
});
