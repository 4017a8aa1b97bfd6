/**
 * The L4 mesh on fake nodes: two node namespaces joined by a switch, each running a node agent and a ztunnel;
 * pods made through the CNI chain with mesh-cni; real nginx, curl and TCP clients as apps.
 *
 * Layout:  node-1: client (default/sa client), client-b (other/sa other), outsider (legacy: not in the mesh), server-2
 *          node-2: server (default/sa server), external (legacy: not in the mesh)
 *          service server.default (VIP 10.96.0.10:80 → 8080) backed by server and server-2
 */
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { curl, startEchoServer, startNginx, tcpRequest, type CurlResult, type FakeNode, type Pod } from '../../testbed/fakenode/index.js';
import { MeshCluster } from '../../localmesh/mesh-cluster.js';
import { EMPTY_RBAC_MATCH, type Authorization, type RbacMatch } from '../../ztunnel/state/model.js';

const run = promisify(execFile);
const VIP = '10.96.0.10';
const APP_PORT = 8080;
const ECHO_PORT = 9090;

let mesh: MeshCluster;
let node1: FakeNode;
let node2: FakeNode;
let client: Pod;
let clientB: Pod;
let outsider: Pod;
let server: Pod;
let server2: Pod;
let external: Pod;

function policy(name: string, action: 'Allow' | 'Deny', match: Partial<RbacMatch>, namespace = 'default'): Authorization {
  return { name, namespace, scope: 'Namespace', action, dryRun: false, rules: [[[{ ...EMPTY_RBAC_MATCH, ...match }]]] };
}

async function get(from: Pod, url: string): Promise<CurlResult> {
  return curl(from, url, { maxTimeSeconds: 5 });
}

function assertServed(r: CurlResult, what: string): void {
  assert.equal(r.exitCode, 0, `${what}: curl failed (${r.exitCode}) ${r.errorMessage ?? r.stderr}`);
  assert.equal(r.status, 200, what);
}

function assertRefused(r: CurlResult, what: string): void {
  // A denied connection is reset by ztunnel: curl sees "empty reply" (52) or "recv failure" (56), never a response.
  assert.notEqual(r.exitCode, 0, `${what}: expected the connection to be refused, got HTTP ${r.status}`);
  assert.equal(r.status, 0, what);
}

/** The sum of a counter's samples whose labels include all of `labels`. */
function counter(metricsText: string, name: string, labels: Record<string, string>): number {
  let sum = 0;
  for (const line of metricsText.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

before(async () => {
  if (process.getuid?.() !== 0) throw new Error('the fake-node tier creates network namespaces and must run as root');
  mesh = await MeshCluster.start({
    name: `mesh${process.pid % 10000}`,
    nodes: 2,
    ambientNamespaces: ['default', 'other'],
    // A short drain so the SIGTERM scenario does not wait Istio's default 5 s.
    ztunnelEnv: { CONNECTION_TERMINATION_DEADLINE: '2s' },
  });
  node1 = mesh.node(1);
  node2 = mesh.node(2);
  [server, server2, client, clientB, outsider, external] = await Promise.all([
    mesh.addPod(node2, { namespace: 'default', name: 'server', serviceAccount: 'server', app: 'server', version: 'v1' }),
    mesh.addPod(node1, { namespace: 'default', name: 'server-2', serviceAccount: 'server', app: 'server', version: 'v2' }),
    mesh.addPod(node1, { namespace: 'default', name: 'client', serviceAccount: 'client', app: 'client' }),
    mesh.addPod(node1, { namespace: 'other', name: 'client-b', serviceAccount: 'other' }),
    mesh.addPod(node1, { namespace: 'legacy', name: 'outsider' }),
    mesh.addPod(node2, { namespace: 'legacy', name: 'external' }),
  ]);
  await Promise.all([
    startNginx(server, { port: APP_PORT }),
    startNginx(server2, { port: APP_PORT }),
    startNginx(external, { port: APP_PORT }),
    startEchoServer(server, ECHO_PORT, { greeting: false }),
  ]);
  await mesh.addService({ namespace: 'default', name: 'server', vip: VIP, ports: { 80: APP_PORT }, endpoints: [server, server2] });
});

after(async () => {
  if (mesh && !mesh.cluster.destroyed) await mesh.destroy();
});

beforeEach(async () => {
  await mesh.setPolicies([]);
  await mesh.setStrict([]);
});

describe('traffic through the mesh', () => {
  test('pod to pod IP across nodes goes through HBONE: the node link carries TLS to 15008, never the payload', async () => {
    const capture = await mesh.cluster.captureOnNodeLink(node1, 'tcp');
    const r = await get(client, `http://${server.ip}:${APP_PORT}/`);
    const seen = await capture.stop();
    assertServed(r, 'client -> server');
    assert.match(r.body, /hello from default\/server/);
    assert.ok(seen.onPort(15008).length > 0, 'the request crossed the link to port 15008');
    assert.equal(seen.onPort(APP_PORT).length, 0, 'nothing crossed the link to the app port in the clear');
    assert.ok(!seen.contains('hello from default/server'), 'the response body must not be visible on the wire');
    assert.ok(!seen.contains('GET / HTTP/1.1'), 'the request must not be visible on the wire');
    // TLS records: content type 0x17 (application data), version 0x0303, on the 15008 flow.
    const tls = [...seen.flows].filter(([k]) => k.endsWith(`>${server.ip}:15008`)).map(([, b]) => b);
    assert.ok(
      tls.some((b) => b[0] === 0x16 && b[1] === 0x03),
      'the 15008 flow starts with a TLS handshake record',
    );
  });

  test('pod to service VIP reaches replicas on the same node and across nodes, both through HBONE', async () => {
    const bodies = new Set<string>();
    for (let i = 0; i < 24 && bodies.size < 2; i++) {
      const r = await get(client, `http://${VIP}/`);
      assertServed(r, 'client -> VIP');
      bodies.add(r.body.trim());
    }
    assert.deepEqual([...bodies].sort(), ['hello from default/server', 'hello from default/server-2']);
    const dump = await mesh.configDump(node1);
    assert.equal(dump.services.length, 1);
    const m2 = await mesh.metrics(node2);
    assert.ok(
      counter(m2, 'istio_tcp_connections_opened_total', {
        reporter: 'destination',
        destination_service: 'server.default.svc.cluster.local',
      }) > 0,
      'destination ztunnel counted service traffic',
    );
  });

  test('the app sees the client pod IP as the source address', async () => {
    const r = await get(client, `http://${server.ip}:${APP_PORT}/`);
    assertServed(r, 'client -> server');
    assert.equal(r.headers['x-client-addr'], client.ip);
    const viaVip = await get(client, `http://${VIP}/`);
    assert.equal(viaVip.headers['x-client-addr'], client.ip);
  });

  test('metrics carry Istio labels for both reporters', async () => {
    await get(client, `http://${server.ip}:${APP_PORT}/`);
    const src = await mesh.metrics(node1);
    const dst = await mesh.metrics(node2);
    const labels = {
      source_workload: 'client',
      source_workload_namespace: 'default',
      destination_workload: 'server',
      connection_security_policy: 'mutual_tls',
    };
    assert.ok(counter(src, 'istio_tcp_connections_opened_total', { ...labels, reporter: 'source' }) > 0, src);
    assert.ok(
      counter(dst, 'istio_tcp_connections_closed_total', {
        ...labels,
        reporter: 'destination',
        source_principal: 'spiffe://cluster.local/ns/default/sa/client',
      }) > 0,
    );
    assert.ok(counter(dst, 'istio_tcp_received_bytes_total', { ...labels, reporter: 'destination' }) > 0);
    assert.ok(counter(dst, 'istio_tcp_sent_bytes_total', { ...labels, reporter: 'destination' }) > 0);
    assert.match(src, /istio_build\{component="ztunnel",tag="[^"]+"\} 1/);
  });

  test('passthrough: a destination outside the mesh is reached in plain TCP', async () => {
    const r = await get(client, `http://${external.ip}:${APP_PORT}/`);
    assertServed(r, 'client -> external (not in the mesh)');
    assert.match(r.body, /hello from legacy\/external/);
    // An address ztunnel knows nothing about at all: the node's own IP.
    const nodeEcho = await startEchoServer(node2, 7777);
    try {
      const r = await tcpRequest(client, node2.ip, 7777, { send: 'hi', timeoutMs: 3000 });
      assert.ok(r.ok, `unknown destination unreachable: ${r.error}`);
      assert.match(r.received, /hi/);
    } finally {
      await nodeEcho.stop();
    }
  });
});

describe('L4 authorization', () => {
  test('ALLOW by principal admits the named identity and refuses others, counting the denial', async () => {
    await mesh.setPolicies([
      policy('allow-client', 'Allow', { principals: [{ kind: 'exact', value: 'cluster.local/ns/default/sa/client' }] }),
    ]);
    assertServed(await get(client, `http://${server.ip}:${APP_PORT}/`), 'allowed principal');
    const before = counter(await mesh.metrics(node2), 'istio_tcp_connections_failed_total', { response_flags: 'DENY' });
    assertRefused(await get(clientB, `http://${server.ip}:${APP_PORT}/`), 'other principal');
    const afterDeny = counter(await mesh.metrics(node2), 'istio_tcp_connections_failed_total', {
      response_flags: 'DENY',
      source_workload: 'client-b',
    });
    assert.ok(afterDeny > 0 && afterDeny >= before, 'the denial is counted on the destination ztunnel');
  });

  test('DENY by namespace refuses that namespace and leaves others alone', async () => {
    await mesh.setPolicies([policy('deny-other', 'Deny', { namespaces: [{ kind: 'exact', value: 'other' }] })]);
    assertRefused(await get(clientB, `http://${server.ip}:${APP_PORT}/`), 'namespace other');
    assertServed(await get(client, `http://${server.ip}:${APP_PORT}/`), 'namespace default');
  });

  test('ALLOW by port admits one port of the workload and refuses another', async () => {
    const echoed = await tcpRequest(client, server.ip, ECHO_PORT, { send: 'ping', timeoutMs: 3000 });
    assert.equal(echoed.received, 'ping', 'the echo port works before the policy');
    await mesh.setPolicies([policy('allow-8080', 'Allow', { destinationPorts: [APP_PORT] })]);
    assertServed(await get(client, `http://${server.ip}:${APP_PORT}/`), 'port 8080');
    const refused = await tcpRequest(client, server.ip, ECHO_PORT, { send: 'ping', timeoutMs: 3000 });
    assert.equal(refused.received, '', 'nothing comes back from a denied port');
    const m = await mesh.metrics(node2);
    assert.ok(
      counter(m, 'istio_tcp_connections_failed_total', { response_flags: 'DENY', source_workload: 'client' }) > 0,
      'port 9090 denied and counted',
    );
  });

  test('a new DENY closes a live connection it now forbids', async () => {
    const script = `const s=require('net').connect(${ECHO_PORT},'${server.ip}');s.on('connect',()=>{console.log('connected');setInterval(()=>s.write('x'),100)});s.on('error',e=>console.log('error',e.code));s.on('close',()=>{console.log('closed');process.exit(0)})`;
    const proc = client.spawn(process.execPath, ['-e', script]);
    await proc.waitForOutput(/connected/, { timeoutMs: 5000 });
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(proc.running, 'the connection is up before the policy');
    await mesh.setPolicies([
      policy('deny-client', 'Deny', { principals: [{ kind: 'exact', value: 'cluster.local/ns/default/sa/client' }] }),
    ]);
    await proc.waitForOutput(/closed/, { timeoutMs: 10_000 });
  });
});

describe('outside the mesh', () => {
  test('a client outside the mesh reaches a mesh pod in plaintext, and is refused once STRICT applies', async () => {
    const plain = await get(outsider, `http://${server.ip}:${APP_PORT}/`);
    assertServed(plain, 'outsider -> mesh pod (PERMISSIVE)');
    assert.equal(plain.headers['x-client-addr'], outsider.ip, 'the app sees the outsider as the source');
    await mesh.setStrict(['default']);
    assertRefused(await get(outsider, `http://${server.ip}:${APP_PORT}/`), 'outsider under STRICT');
    assertServed(await get(client, `http://${server.ip}:${APP_PORT}/`), 'mesh client under STRICT');
    const dump = await mesh.configDump(node2);
    assert.ok(dump.policies.some((p) => p.name === 'istio_converted_static_strict' && p.namespace === 'istio-system'));
  });
});

describe('lifecycle', () => {
  test('SIGTERM drains: live connections keep flowing until the deadline, then close, and ztunnel exits 0', async () => {
    const script = `const s=require('net').connect(${ECHO_PORT},'${server.ip}');let n=0;s.on('connect',()=>{console.log('connected');setInterval(()=>s.write('x'),100)});s.on('data',()=>{if(++n%5===0)console.log('echo',n)});s.on('error',e=>console.log('error',e.code));s.on('close',()=>{console.log('closed');process.exit(0)})`;
    const proc = client.spawn(process.execPath, ['-e', script]);
    await proc.waitForOutput(/echo 5/, { timeoutMs: 5000 });
    const ztunnel = mesh.ztunnelProcess(node1);
    const t0 = Date.now();
    ztunnel.signal('SIGTERM');
    // Still echoing during the drain...
    const countNow = (): number => Number(/echo (\d+)\n(?![\s\S]*echo)/.exec(proc.stdout)?.[1] ?? 0);
    const atSignal = countNow();
    await new Promise((r) => setTimeout(r, 1000));
    assert.ok(countNow() > atSignal, 'the live connection keeps working while ztunnel drains');
    // ...closed at the deadline, not before.
    await proc.waitForOutput(/closed/, { timeoutMs: 6000 });
    const closedAfter = Date.now() - t0;
    assert.ok(closedAfter >= 1500, `closed after ${closedAfter} ms, before the 2 s deadline`);
    assert.equal((await ztunnel.exited).code, 0);
    await mesh.restartZtunnel(node1);
    await mesh.waitForPodProxy(node1, client);
  });

  test('ztunnel restart: pods are re-adopted from the agent snapshot and new connections work', async () => {
    await mesh.restartZtunnel(node2, 'kill');
    await mesh.waitForPodProxy(node2, server);
    const dump = await mesh.configDump(node2);
    assert.deepEqual(Object.keys(dump.workloadState).sort(), [server.uid].sort(), 'only mesh pods of node-2 are proxied');
    assertServed(await get(client, `http://${server.ip}:${APP_PORT}/`), 'after restart');
  });

  test('pod deletion stops its proxy; the node agent and ztunnel keep serving the others', async () => {
    const temp = await mesh.addPod(node1, { namespace: 'default', name: 'temp' });
    assert.equal((await mesh.configDump(node1)).workloadState[temp.uid]?.state, 'Up');
    const rules = await temp.execChecked('iptables-save', ['-t', 'nat']);
    assert.match(rules, /-A ISTIO_OUTPUT .* -j REDIRECT --to-ports 15001/);
    await mesh.deletePod(temp);
    const dump = await mesh.configDump(node1);
    assert.equal(dump.workloadState[temp.uid], undefined);
    assertServed(await get(client, `http://${server.ip}:${APP_PORT}/`), 'others unaffected');
  });

  test('meshctl shows what a ztunnel knows', async () => {
    const { stdout } = await run(process.execPath, ['dist/meshctl/main.js', 'ztunnel-config', 'workloads', '--netns', node1.netnsName]);
    assert.match(stdout, /NAMESPACE\s+POD NAME\s+ADDRESS\s+NODE\s+WAYPOINT\s+PROTOCOL/);
    assert.match(stdout, new RegExp(`default\\s+client\\s+${client.ip.replace(/\./g, '\\.')}\\s+node-1\\s+None\\s+HBONE`));
    assert.match(stdout, /legacy\s+outsider\s+\S+\s+node-1\s+None\s+TCP/);
    const certs = await run(process.execPath, ['dist/meshctl/main.js', 'ztunnel-config', 'certificates', '--netns', node1.netnsName]);
    assert.match(certs.stdout, /spiffe:\/\/cluster\.local\/ns\/default\/sa\/client\s+Leaf\s+Available\s+true/);
  });

  test('destroying the mesh leaves no namespaces, links or processes behind', async () => {
    const prefix = mesh.cluster.prefix;
    await mesh.destroy();
    const { stdout: netns } = await run('ip', ['netns', 'list']);
    assert.ok(!netns.includes(prefix), `namespaces left: ${netns}`);
    const { stdout: links } = await run('ip', ['-o', 'link']);
    assert.ok(!links.includes(prefix), 'links left');
    const { stdout: ps } = await run('ps', ['-eo', 'args']);
    assert.ok(!ps.split('\n').some((l) => l.includes(mesh.configPath)), 'ztunnel processes left');
  });
});
