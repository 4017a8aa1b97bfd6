/**
 * L4 authorization on the in-process data path: the server pod's ztunnel decides with the peer identity the
 * HBONE handshake proved, or with none for plaintext, and a policy change closes live connections it now denies.
 *
 *   node-1: client (default/sa client), client-b (other/sa other)      node-2: server (default/sa server)
 */
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { EMPTY_RBAC_MATCH, type Authorization, type RbacMatch } from '../../ztunnel/state/model.js';
import { DataPathMesh, type MeshNode, type MeshPod } from '../../testbed/fixtures/datapath.js';
import { closeOf, type EchoServer, exchange, once } from '../../testbed/fixtures/net.js';
import { eventually } from '../../testbed/fixtures/wait.js';

let mesh: DataPathMesh;
let node1: MeshNode;
let node2: MeshNode;
let client: MeshPod;
let clientB: MeshPod;
let server: MeshPod;
let echo: EchoServer;
let policies: Authorization[] = [];

function policy(name: string, action: 'Allow' | 'Deny', match: Partial<RbacMatch>): Authorization {
  return { name, namespace: 'default', scope: 'Namespace', action, dryRun: false, rules: [[[{ ...EMPTY_RBAC_MATCH, ...match }]]] };
}

function setPolicies(next: Authorization[]): void {
  mesh.apply({ removedPolicies: policies.map((p) => `${p.namespace}/${p.name}`), policies: next });
  policies = next;
}

/** Whether `from` gets its bytes echoed by the server app (false: the connection was refused). */
async function echoes(from: MeshPod): Promise<boolean> {
  const reply = await exchange(from.connect({ address: server.ip, port: echo.port }), 'ping').catch(() => Buffer.alloc(0));
  return reply.toString() === 'ping';
}

async function lastInboundRecord(count: number): Promise<Record<string, unknown> | undefined> {
  await eventually(() => node2.accessLog('inbound').length > count, { what: () => 'the inbound record' });
  return node2.accessLog('inbound').at(-1);
}

before(async () => {
  mesh = await DataPathMesh.start();
  node1 = mesh.addNode('node-1');
  node2 = mesh.addNode('node-2');
  server = await node2.addPod({ name: 'server', serviceAccount: 'server' });
  client = await node1.addPod({ name: 'client', serviceAccount: 'client' });
  clientB = await node1.addPod({ name: 'client-b', namespace: 'other', serviceAccount: 'other' });
  echo = await server.startEcho();
});

after(async () => {
  await mesh?.close();
});

beforeEach(() => setPolicies([]));

describe('L4 authorization', () => {
  test('ALLOW by principal admits the named identity and refuses others, flagged DENY and counted', async () => {
    setPolicies([policy('allow-client', 'Allow', { principals: [{ kind: 'exact', value: 'cluster.local/ns/default/sa/client' }] })]);
    assert.equal(await echoes(client), true, 'allowed principal');
    const failedBefore = await node2.metric('istio_tcp_connections_failed_total', { response_flags: 'DENY', source_workload: 'client-b' });
    const count = node2.accessLog('inbound').length;
    assert.equal(await echoes(clientB), false, 'other principal refused');
    const rec = await lastInboundRecord(count);
    assert.equal(rec?.flags, 'DENY');
    assert.equal(rec?.['src.identity'], 'spiffe://cluster.local/ns/other/sa/other');
    assert.match(String(rec?.error), /policy rejection/);
    assert.equal(
      await node2.metric('istio_tcp_connections_failed_total', { response_flags: 'DENY', source_workload: 'client-b' }),
      failedBefore + 1,
    );
    // The client's ztunnel heard 401 and flags its own record the same way.
    const out = node1.accessLog('outbound').at(-1);
    assert.equal(out?.['src.workload'], 'client-b');
    assert.equal(out?.flags, 'DENY');
    assert.match(String(out?.error), /HBONE_UNAUTHORIZED/);
  });

  test('DENY by principal refuses that identity and leaves others alone', async () => {
    setPolicies([policy('deny-client', 'Deny', { principals: [{ kind: 'exact', value: 'cluster.local/ns/default/sa/client' }] })]);
    assert.equal(await echoes(client), false);
    assert.equal(await echoes(clientB), true);
  });

  test('plaintext without an identity is refused where an identity is required (STRICT)', async () => {
    setPolicies([policy('strict', 'Deny', { notPrincipals: [{ kind: 'presence' }] })]);
    const outside = mesh.allocateIp();
    const count = node2.accessLog('inbound').length;
    const reply = await exchange(server.plaintextFrom(outside, echo.port), 'plain').catch(() => Buffer.alloc(0));
    assert.equal(reply.length, 0);
    assert.equal((await lastInboundRecord(count))?.flags, 'DENY');
    assert.equal(await echoes(client), true, 'mTLS traffic still passes');
  });

  test('a policy change closes a live connection it now denies, and only that one', async () => {
    const open = async (from: MeshPod) => {
      const s = from.connect({ address: server.ip, port: echo.port });
      await once(s, 'connect');
      s.write('up');
      await once(s, 'data');
      return s;
    };
    const denied = await open(client);
    const kept = await open(clientB);
    const deniedClosed = closeOf(denied);
    const count = node2.accessLog('inbound').length;
    setPolicies([policy('deny-client', 'Deny', { principals: [{ kind: 'exact', value: 'cluster.local/ns/default/sa/client' }] })]);
    assert.equal((await deniedClosed).hadError, true, 'the denied connection is reset');
    const rec = await lastInboundRecord(count);
    assert.equal(rec?.flags, 'DENY');
    assert.match(String(rec?.error), /policy change/);
    kept.write('still');
    assert.equal(String(await once(kept, 'data')), 'still', 'the other connection lives on');
    kept.end();
    await eventually(() => mesh.liveConnections() === 0, { what: () => `${mesh.liveConnections()} still tracked` });
  });
});
