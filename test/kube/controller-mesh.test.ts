/**
 * The controller on a real API server, feeding ztunnels on fake nodes. Objects are applied to kube-apiserver;
 * pods are API objects whose sandboxes run on the fake nodes (same uid, status written back as a kubelet does).
 *
 * Layout:  namespace shop (ambient): client (node-1, sa client), other (node-1, sa other), server (node-2, sa server:
 *          nginx 8080, echo 9090) behind service server (10.96.0.80:80 → 8080)
 *          namespace blue (ambient until a test removes the label): blue-server (node-2, nginx 8080)
 *          namespace legacy (not in the mesh): outsider (node-1)
 */
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import { curl, startEchoServer, startNginx, type CurlResult, type FakeNode, type Pod } from '../../testbed/fakenode/index.js';
import { CaClient, tokenFromFile } from '../../lib/identity/ca-client.js';
import { CaError } from '../../lib/identity/errors.js';
import { makeIdentity } from '../../lib/identity/spiffe.js';
import { applyManifest, waitFor } from '../../testbed/kubeapi/index.js';
import { TypeUrl } from '../../lib/proto/index.js';
import { XdsClient } from '../../lib/xds/client.js';
import { ztunnelNode } from '../../lib/xds/node.js';
import { KubeMesh, SYSTEM_NAMESPACE } from '../../localmesh/kube-mesh.js';

const run = promisify(execFile);
const VIP = '10.96.0.80';

let mesh: KubeMesh;
let node1: FakeNode;
let node2: FakeNode;
let client: Pod;
let other: Pod;
let server: Pod;
let blueServer: Pod;
let outsider: Pod;

const get = (from: Pod, url: string): Promise<CurlResult> => curl(from, url, { maxTimeSeconds: 5 });

function assertServed(r: CurlResult, what: string): void {
  assert.equal(r.exitCode, 0, `${what}: curl failed (${r.exitCode}) ${r.errorMessage ?? r.stderr}`);
  assert.equal(r.status, 200, what);
}

function assertRefused(r: CurlResult, what: string): void {
  assert.notEqual(r.exitCode, 0, `${what}: expected a refusal, got HTTP ${r.status}`);
}

/** Waits until a policy is (or is no longer) in a ztunnel's state. */
async function waitForPolicy(node: FakeNode, key: string, present: boolean): Promise<void> {
  await mesh.runtime(node).waitForDump(`policy ${key} ${present ? 'present' : 'gone'}`, (d) => {
    const has = d.policies.some((p) => `${p.namespace}/${p.name}` === key);
    return has === present ? '' : `policies: ${d.policies.map((p) => `${p.namespace}/${p.name}`).join(', ') || 'none'}`;
  });
}

before(async () => {
  if (process.getuid?.() !== 0) throw new Error('this tier runs kube-apiserver and fake nodes and must run as root');
  mesh = await KubeMesh.start({ name: `kc${process.pid % 10000}`, nodes: 2, controllerEnv: { PILOT_DEBOUNCE_AFTER: '50ms' } });
  node1 = mesh.node(1);
  node2 = mesh.node(2);
  await mesh.addNamespace('shop', true, ['client', 'server', 'other']);
  await mesh.addNamespace('blue', true);
  await mesh.addNamespace('legacy', false);
  [server, client, other, blueServer, outsider] = await Promise.all([
    mesh.addPod(node2, { namespace: 'shop', name: 'server', serviceAccount: 'server', expectProxy: true }),
    mesh.addPod(node1, { namespace: 'shop', name: 'client', serviceAccount: 'client', expectProxy: true }),
    mesh.addPod(node1, { namespace: 'shop', name: 'other', serviceAccount: 'other', expectProxy: true }),
    mesh.addPod(node2, { namespace: 'blue', name: 'blue-server', expectProxy: true }),
    mesh.addPod(node1, { namespace: 'legacy', name: 'outsider' }),
  ]);
  await Promise.all([
    startNginx(server, { port: 8080 }),
    startNginx(blueServer, { port: 8080 }),
    startEchoServer(server, 9090, { greeting: false }),
  ]);
  await mesh.addService({
    namespace: 'shop',
    name: 'server',
    clusterIP: VIP,
    port: 80,
    targetPort: 8080,
    endpoints: [{ pod: server, node: node2 }],
  });
  await mesh.runtime(node1).waitForDump('service shop/server with its endpoint', (d) => {
    const svc = d.services.find((s) => s.hostname === 'server.shop.svc.cluster.local');
    const ep = d.workloads.find((w) => w.name === 'server' && w.workloadIps.includes(server.ip));
    return svc && ep && Object.hasOwn(ep.services, 'shop/server.shop.svc.cluster.local') ? '' : 'service or endpoint missing';
  });
});

after(async () => {
  if (mesh) await mesh.destroy();
});

const custom = (): CustomObjectsApi => mesh.kc.makeApiClient(CustomObjectsApi);

afterEach(async () => {
  // Policies are per test.
  for (const plural of ['authorizationpolicies', 'peerauthentications']) {
    for (const ns of ['shop', 'blue']) {
      const list = (await custom().listNamespacedCustomObject({ group: 'security.istio.io', version: 'v1', namespace: ns, plural })) as {
        items: { metadata: { name: string } }[];
      };
      for (const item of list.items)
        await custom().deleteNamespacedCustomObject({
          group: 'security.istio.io',
          version: 'v1',
          namespace: ns,
          plural,
          name: item.metadata.name,
        });
    }
  }
});

describe('workload discovery from Kubernetes', () => {
  test('ztunnels learn workloads, services and policies from the controller', async () => {
    const dump = await mesh.runtime(node2).configDump();
    const byUid = new Map(dump.workloads.map((w) => [w.uid, w]));
    assert.equal(byUid.get('Kubernetes//Pod/shop/client')?.protocol, 'HBONE');
    assert.equal(byUid.get('Kubernetes//Pod/shop/client')?.serviceAccount, 'client');
    assert.deepEqual(byUid.get('Kubernetes//Pod/shop/server')?.workloadIps, [server.ip]);
    assert.equal(byUid.get('Kubernetes//Pod/shop/server')?.node, node2.name);
    assert.equal(byUid.get('Kubernetes//Pod/legacy/outsider')?.protocol, 'TCP', 'a pod outside the mesh is a plain workload');
    const svc = dump.services.find((s) => s.hostname === 'server.shop.svc.cluster.local');
    assert.deepEqual(
      svc?.vips.map((v) => v.address),
      [VIP],
    );
    await applyManifest(mesh.kc, {
      apiVersion: 'security.istio.io/v1',
      kind: 'AuthorizationPolicy',
      metadata: { name: 'allow-all', namespace: 'shop' },
      spec: { action: 'ALLOW', rules: [{}] },
    });
    await waitForPolicy(node1, 'shop/allow-all', true);
    await waitForPolicy(node2, 'shop/allow-all', true);
  });

  test('traffic flows over HBONE with certificates issued by the controller CA', async () => {
    assertServed(await get(client, `http://${VIP}/`), 'client -> service VIP');
    const dump = await mesh.runtime(node1).configDump();
    const cert = dump.certificates.find((c) => c.identity === 'spiffe://cluster.local/ns/shop/sa/client');
    assert.equal(cert?.state, 'Available');
    const published = await readFile(mesh.rootCertPath, 'utf8');
    const rootPem = Buffer.from(cert?.rootCerts[0]?.pem ?? '', 'base64').toString();
    assert.equal(rootPem.trim(), published.trim(), 'the workload certificate chains to the root the controller published');
  });

  test('proxy-status shows both ztunnels SYNCED for addresses and authorizations', async () => {
    const { stdout } = await run(process.execPath, [
      'dist/meshctl/main.js',
      'proxy-status',
      '--controller',
      `127.0.0.1:${mesh.controller(0).httpPort}`,
    ]);
    const rows = stdout.trim().split('\n').slice(1);
    assert.equal(rows.length, 2, stdout);
    for (const row of rows)
      assert.match(row, /ztunnel-node-\d\.istio-system\s+Kubernetes\s+node-\d\s+ztunnel\s+SYNCED \(\d+\)\s+SYNCED \(\d+\)/, stdout);
  });
});

describe('policy from Kubernetes', () => {
  test('a DENY AuthorizationPolicy applied to the API server stops the traffic, and deleting it restores it', async () => {
    assertServed(await get(client, `http://${VIP}/`), 'before the policy');
    await applyManifest(mesh.kc, {
      apiVersion: 'security.istio.io/v1',
      kind: 'AuthorizationPolicy',
      metadata: { name: 'deny-client', namespace: 'shop' },
      spec: {
        selector: { matchLabels: { app: 'server' } },
        action: 'DENY',
        rules: [{ from: [{ source: { principals: ['cluster.local/ns/shop/sa/client'] } }] }],
      },
    });
    await waitForPolicy(node2, 'shop/deny-client', true);
    assertRefused(await get(client, `http://${VIP}/`), 'client under DENY');
    assertServed(await get(other, `http://${VIP}/`), 'another identity is unaffected');
    await custom().deleteNamespacedCustomObject({
      group: 'security.istio.io',
      version: 'v1',
      namespace: 'shop',
      plural: 'authorizationpolicies',
      name: 'deny-client',
    });
    await waitForPolicy(node2, 'shop/deny-client', false);
    assertServed(await get(client, `http://${VIP}/`), 'after the policy is gone');
  });

  test('PeerAuthentication STRICT refuses plaintext from outside the mesh but not mTLS', async () => {
    assertServed(await get(outsider, `http://${server.ip}:8080/`), 'outsider before STRICT');
    await applyManifest(mesh.kc, {
      apiVersion: 'security.istio.io/v1',
      kind: 'PeerAuthentication',
      metadata: { name: 'strict', namespace: 'shop' },
      spec: { mtls: { mode: 'STRICT' } },
    });
    await waitForPolicy(node2, 'istio-system/istio_converted_static_strict', true);
    await mesh
      .runtime(node2)
      .waitForDump('server references the STRICT policy', (d) =>
        d.workloads.find((w) => w.name === 'server')?.authorizationPolicies.includes('istio-system/istio_converted_static_strict')
          ? ''
          : 'not yet',
      );
    assertRefused(await get(outsider, `http://${server.ip}:8080/`), 'outsider under STRICT');
    assertServed(await get(client, `http://${VIP}/`), 'mesh client under STRICT');
  });

  test('an invalid AuthorizationPolicy is logged and skipped; the controller keeps serving', async () => {
    await applyManifest(mesh.kc, {
      apiVersion: 'security.istio.io/v1',
      kind: 'AuthorizationPolicy',
      metadata: { name: 'broken', namespace: 'shop' },
      spec: { action: 'DENY', rules: [{ from: [{ source: { ipBlocks: ['not-a-cidr'] } }] }] },
    });
    const rejected = await waitFor(
      async () => {
        const list = JSON.parse((await mesh.controllerGet(0, '/debug/rejections')).body) as { name: string; reason: string }[];
        return list.find((r) => r.name === 'broken');
      },
      10_000,
      { description: 'the controller to reject shop/broken' },
    );
    assert.match(rejected.reason, /not-a-cidr/);
    assert.equal((await mesh.controllerGet(0, '/ready')).status, 200);
    assertServed(await get(client, `http://${VIP}/`), 'traffic unaffected by the broken policy');
    const dump = await mesh.runtime(node2).configDump();
    assert.ok(!dump.policies.some((p) => p.name === 'broken'), 'the broken policy never reaches ztunnel');
  });
});

describe('enrollment from Kubernetes', () => {
  test('removing the namespace label takes its pods out of the mesh: rules removed, plain TCP on the wire', async () => {
    assert.match(await blueServer.execChecked('iptables-save', ['-t', 'nat']), /ISTIO_OUTPUT/);
    await mesh.kc
      .makeApiClient(CoreV1Api)
      .patchNamespace({ name: 'blue', body: [{ op: 'remove', path: '/metadata/labels/istio.io~1dataplane-mode' }] });
    await mesh.runtime(node2).waitForDump('blue-server out of the mesh', (d) => {
      const w = d.workloads.find((x) => x.name === 'blue-server');
      if (w?.protocol !== 'TCP') return `protocol ${w?.protocol}`;
      return d.workloadState[blueServer.uid] ? 'its proxy still runs' : '';
    });
    await waitFor(async () => !/ISTIO_OUTPUT/.test(await blueServer.execChecked('iptables-save', ['-t', 'nat'])), 10_000, {
      description: 'the agent to remove the rules',
    });
    const capture = await mesh.cluster.captureOnNodeLink(node1, 'tcp');
    assertServed(await get(client, `http://${blueServer.ip}:8080/`), 'mesh client -> pod outside the mesh');
    const seen = await capture.stop();
    assert.ok(seen.onPort(8080).length > 0, 'plain TCP to the app port crossed the link');
    assert.equal(seen.onPort(15008).length, 0, 'no HBONE to a pod outside the mesh');
  });
});

describe('the CA', () => {
  test('refuses to impersonate a pod on another node, and issues for pods on the caller node', async () => {
    const rootCertPem = await readFile(mesh.rootCertPath, 'utf8');
    const make = (node: FakeNode, tokenPath?: string): CaClient =>
      new CaClient({
        address: `127.0.0.1:${mesh.controller(0).grpcPort}`,
        transport: { kind: 'tls', rootCertPem, serverName: 'istiod.istio-system.svc' },
        token: tokenFromFile(tokenPath ?? mesh.ztunnelTokenPath(node)),
        impersonate: true,
      });
    const fromNode1 = make(node1);
    try {
      const ok = await fromNode1.fetch(makeIdentity('shop', 'client'));
      assert.equal(ok.identity.serviceAccount, 'client');
      const err = await fromNode1.fetch(makeIdentity('shop', 'server')).then(
        () => assert.fail('impersonating a pod of node-2 from node-1 must fail'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof CaError, String(err));
      assert.match(String((err as Error).message), /UNAUTHENTICATED|impersonation/i);
      assert.match(String((err as Error).message), /node-1/);
    } finally {
      fromNode1.close();
    }
  });
});

describe('controller lifecycle', () => {
  test('the root certificate is published in every namespace and restored when deleted', async () => {
    const core = mesh.kc.makeApiClient(CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: 'fresh' } } });
    await waitFor(() => core.readNamespacedConfigMap({ name: 'istio-ca-root-cert', namespace: 'fresh' }).catch(() => undefined), 10_000, {
      description: 'ConfigMap in a new namespace',
    });
    await core.deleteNamespacedConfigMap({ name: 'istio-ca-root-cert', namespace: 'shop' });
    const restored = await waitFor(
      () => core.readNamespacedConfigMap({ name: 'istio-ca-root-cert', namespace: 'shop' }).catch(() => undefined),
      10_000,
      { description: 'ConfigMap restored' },
    );
    assert.equal(restored.data?.['root-cert.pem']?.trim(), (await readFile(mesh.rootCertPath, 'utf8')).trim());
  });

  test('restarting the controller breaks no established connection, and new connections work after it', async () => {
    const script = `const s=require('net').connect(9090,'${server.ip}');let n=0;s.on('connect',()=>{console.log('connected');setInterval(()=>s.write('x'),100)});s.on('data',()=>{if(++n%5===0)console.log('echo',n)});s.on('close',()=>{console.log('closed');process.exit(0)})`;
    const proc = client.spawn(process.execPath, ['-e', script]);
    await proc.waitForOutput(/echo 5/, { timeoutMs: 5000 });
    await mesh.stopController(0, 'SIGKILL');
    const echoes = (): number => (proc.stdout.match(/echo \d+/g) ?? []).length;
    const before = echoes();
    await new Promise((r) => setTimeout(r, 1500));
    assert.ok(echoes() > before, 'the connection keeps flowing while the controller is down');
    assert.equal((await mesh.runtime(node1).readiness()).status, 200, 'ztunnel keeps serving with its last state');
    await mesh.startController(0);
    await waitFor(
      async () => {
        const status = JSON.parse((await mesh.controllerGet(0, '/debug/syncz')).body) as unknown[];
        return status.length === 2 ? true : undefined;
      },
      30_000,
      { description: 'both ztunnels reconnected' },
    );
    assertServed(await get(client, `http://${VIP}/`), 'a new connection after the restart');
    assert.ok(proc.running && !/closed/.test(proc.stdout), 'the established connection survived');
    proc.signal('SIGTERM');
  });

  test('a second replica serves xDS while only the leader writes; it takes over when the leader leaves', async () => {
    await mesh.startController(1);
    const leaders = async (): Promise<boolean[]> =>
      Promise.all([0, 1].map(async (i) => (JSON.parse((await mesh.controllerGet(i, '/debug/leader')).body) as { leader: boolean }).leader));
    assert.deepEqual((await leaders()).sort(), [false, true], 'exactly one leader');
    assert.equal((await leaders())[0], true, 'the first replica kept leadership');

    // The follower serves workload discovery to a ztunnel-shaped client.
    const rootCertPem = await readFile(mesh.rootCertPath, 'utf8');
    const names: string[] = [];
    const xds = new XdsClient({
      address: `127.0.0.1:${mesh.controller(1).grpcPort}`,
      transport: { kind: 'tls', rootCertPem, serverName: 'istiod.istio-system.svc' },
      node: ztunnelNode({ podName: 'probe', podNamespace: SYSTEM_NAMESPACE, nodeName: node1.name }),
      token: tokenFromFile(mesh.ztunnelTokenPath(node1)),
      watches: [
        { typeUrl: TypeUrl.Address, handler: (u) => void names.push(...u.resources.map((r) => r.name)) },
        { typeUrl: TypeUrl.Authorization, handler: () => undefined },
      ],
    });
    xds.start();
    try {
      await xds.whenSynced();
      assert.ok(names.includes('Kubernetes//Pod/shop/server'), `follower sent: ${names.join(', ')}`);
    } finally {
      xds.close();
    }

    // Only the leader writes: it alone restores the ConfigMap.
    const core = mesh.kc.makeApiClient(CoreV1Api);
    await mesh.stopController(0, 'SIGTERM'); // releases the lease
    await waitFor(async () => ((await mesh.controllerGet(1, '/debug/leader')).body.includes('"leader": true') ? true : undefined), 20_000, {
      description: 'replica 1 to lead',
    });
    await core.deleteNamespacedConfigMap({ name: 'istio-ca-root-cert', namespace: 'blue' });
    await waitFor(() => core.readNamespacedConfigMap({ name: 'istio-ca-root-cert', namespace: 'blue' }).catch(() => undefined), 10_000, {
      description: 'the new leader restores the ConfigMap',
    });
  });
});
