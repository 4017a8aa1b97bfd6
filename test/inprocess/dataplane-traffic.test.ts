/**
 * The data path of two ztunnels in one process: client pods on node-1, server pods on both nodes, real HBONE
 * (mutual TLS 1.3 + HTTP/2 CONNECT) between pod proxies on 127/8 addresses, real apps behind them.
 *
 *   node-1: client (default/sa client), server-2 (default/sa server)     node-2: server (default/sa server)
 *   service echo.default (VIP 10.96.0.10:80 → echo port) backed by server and server-2
 *   outsider: an address outside the mesh (not in the state) with its own echo app
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { decodeProxyV2, PP2_TYPE_PEER_IDENTITY } from '../../lib/net/proxy-protocol.js';
import { DataPathMesh, type AccessRecord, type MeshNode, type MeshPod } from '../../testbed/fixtures/datapath.js';
import { service } from '../../testbed/fixtures/mesh-state.js';
import { closeOf, type EchoServer, exchange, once, startEchoServer } from '../../testbed/fixtures/net.js';
import { eventually } from '../../testbed/fixtures/wait.js';

const VIP = '10.96.0.10';
const CLIENT_ID = 'spiffe://cluster.local/ns/default/sa/client';
const SERVER_ID = 'spiffe://cluster.local/ns/default/sa/server';

let mesh: DataPathMesh;
let node1: MeshNode;
let node2: MeshNode;
let client: MeshPod;
let server: MeshPod;
let server2: MeshPod;
let echo: EchoServer;
let echo2: EchoServer;
let outsiderIp: string;
let outsiderEcho: EchoServer;

/** Records written on `node` after `from` (a count taken before the connection). */
function recordsSince(node: MeshNode, direction: 'inbound' | 'outbound', from: number): AccessRecord[] {
  return node.accessLog(direction).slice(from);
}

/** Waits until every tracker is empty and the records of a finished connection are all written. */
async function settled(what: string, ready: () => boolean = () => true): Promise<void> {
  await eventually(() => mesh.liveConnections() === 0 && ready(), { what: () => `${what}: ${mesh.liveConnections()} still tracked` });
}

before(async () => {
  mesh = await DataPathMesh.start();
  node1 = mesh.addNode('node-1');
  node2 = mesh.addNode('node-2');
  const serverWorkload = { canonicalName: 'echo', canonicalRevision: 'v1' };
  server = await node2.addPod({ name: 'server', serviceAccount: 'server', workload: serverWorkload });
  server2 = await node1.addPod({ name: 'server-2', serviceAccount: 'server', workload: serverWorkload });
  client = await node1.addPod({ name: 'client', serviceAccount: 'client', workload: { canonicalName: 'client' } });
  echo = await server.startEcho();
  echo2 = await server2.startEcho();
  outsiderIp = mesh.allocateIp();
  outsiderEcho = await mesh.track(startEchoServer(outsiderIp));
  // The two replicas use different ports, as named target ports allow: each endpoint maps 80 to its own.
  const svc = service({ name: 'echo', vips: [{ network: '', address: VIP }], ports: { 80: 0 } });
  const key = `default/${svc.hostname}`;
  mesh.apply({
    services: [svc],
    workloads: [
      { ...server.workload, services: { [key]: { 80: echo.port } } },
      { ...server2.workload, services: { [key]: { 80: echo2.port } } },
    ],
  });
});

after(async () => {
  await mesh?.close();
});

describe('traffic through the mesh', () => {
  test('carries bytes both ways to a pod IP through HBONE, with one access-log record on each side', async () => {
    const out0 = node1.accessLog('outbound').length;
    const in0 = node2.accessLog('inbound').length;
    const payload = randomBytes(1 << 20);
    const reply = await exchange(client.connect({ address: server.ip, port: echo.port }), payload);
    assert.equal(createHash('sha256').update(reply).digest('hex'), createHash('sha256').update(payload).digest('hex'));
    await settled('tunnel closed', () => node2.accessLog('inbound').length > in0);

    const out = recordsSince(node1, 'outbound', out0);
    const inb = recordsSince(node2, 'inbound', in0);
    assert.equal(out.length, 1, 'one outbound record');
    assert.equal(inb.length, 1, 'one inbound record');
    assert.deepEqual(
      [out[0]?.['dst.addr'], out[0]?.['dst.hbone_addr'], out[0]?.['src.identity'], out[0]?.['dst.identity']],
      [`${server.ip}:15008`, `${server.ip}:${echo.port}`, CLIENT_ID, SERVER_ID],
    );
    assert.equal(out[0]?.bytes_sent, payload.length);
    assert.equal(out[0]?.bytes_recv, payload.length);
    assert.equal(out[0]?.error, undefined);
    assert.deepEqual(
      [inb[0]?.['src.workload'], inb[0]?.['src.identity'], inb[0]?.['dst.workload'], inb[0]?.['dst.hbone_addr']],
      ['client', CLIENT_ID, 'server', `${server.ip}:${echo.port}`],
    );
    assert.equal(inb[0]?.bytes_sent, payload.length);
    assert.equal(inb[0]?.bytes_recv, payload.length);
  });

  test('reaches every endpoint of a service VIP, on another node and on the same node', async () => {
    const seen = new Set<string>();
    const in1 = node1.accessLog('inbound').length;
    for (let i = 0; i < 40 && seen.size < 2; i++) {
      const reply = await exchange(client.connect({ address: VIP, port: 80 }), `hello ${i}`);
      assert.equal(reply.toString(), `hello ${i}`);
      const last = node1.accessLog('outbound').at(-1);
      seen.add(String(last?.['dst.workload']));
    }
    assert.deepEqual([...seen].sort(), ['server', 'server-2']);
    await settled('VIP connections closed');
    const sameNode = recordsSince(node1, 'inbound', in1);
    assert.ok(sameNode.length > 0, 'the same-node replica served through its own inbound HBONE listener');
    assert.ok(
      sameNode.every((r) => r['dst.service'] === 'echo.default.svc.cluster.local'),
      'the client named the service (forwarded host) and the destination reports it',
    );
  });

  test('metrics carry Istio labels for both reporters, with the bytes of each direction', async () => {
    const labels = {
      source_workload: 'client',
      source_canonical_service: 'client',
      source_workload_namespace: 'default',
      destination_workload: 'server',
      destination_canonical_service: 'echo',
      destination_canonical_revision: 'v1',
      connection_security_policy: 'mutual_tls',
      source_principal: CLIENT_ID,
      destination_principal: SERVER_ID,
    };
    const before = {
      srcOpened: await node1.metric('istio_tcp_connections_opened_total', { ...labels, reporter: 'source' }),
      dstClosed: await node2.metric('istio_tcp_connections_closed_total', { ...labels, reporter: 'destination' }),
      dstReceived: await node2.metric('istio_tcp_received_bytes_total', { ...labels, reporter: 'destination' }),
      dstSent: await node2.metric('istio_tcp_sent_bytes_total', { ...labels, reporter: 'destination' }),
    };
    const in0 = node2.accessLog('inbound').length;
    await exchange(client.connect({ address: server.ip, port: echo.port }), 'x'.repeat(1000));
    await settled('closed', () => node2.accessLog('inbound').length > in0);
    assert.equal(await node1.metric('istio_tcp_connections_opened_total', { ...labels, reporter: 'source' }), before.srcOpened + 1);
    assert.equal(await node2.metric('istio_tcp_connections_closed_total', { ...labels, reporter: 'destination' }), before.dstClosed + 1);
    assert.equal(await node2.metric('istio_tcp_received_bytes_total', { ...labels, reporter: 'destination' }), before.dstReceived + 1000);
    assert.equal(await node2.metric('istio_tcp_sent_bytes_total', { ...labels, reporter: 'destination' }), before.dstSent + 1000);
    assert.equal(await node1.metric('istio_tcp_connections_failed_total', { reporter: 'source' }), 0);
  });

  test('passes a destination outside the mesh through in plain TCP, with no HBONE on the way', async () => {
    const out0 = node1.accessLog('outbound').length;
    const in0 = node1.accessLog('inbound').length + node2.accessLog('inbound').length;
    const reply = await exchange(client.connect({ address: outsiderIp, port: outsiderEcho.port }), 'to the outside');
    assert.equal(reply.toString(), 'to the outside');
    await settled('passthrough closed');
    const out = recordsSince(node1, 'outbound', out0);
    assert.equal(out.length, 1);
    assert.equal(out[0]?.['dst.addr'], `${outsiderIp}:${outsiderEcho.port}`);
    assert.equal(out[0]?.['dst.hbone_addr'], undefined);
    assert.equal(node1.accessLog('inbound').length + node2.accessLog('inbound').length, in0, 'no proxy saw it inbound');
  });

  test('the app sees the client pod IP over HBONE and the outside client IP over plaintext', async () => {
    const app = await server.startHttp((req, res) => res.end(req.socket.remoteAddress));
    const viaMesh = await exchange(
      client.connect({ address: server.ip, port: app.port }),
      `GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n`,
    );
    assert.match(viaMesh.toString(), new RegExp(`\r\n\r\n${client.ip.replaceAll('.', '\\.')}$`));
    const outside = mesh.allocateIp();
    const plain = await exchange(server.plaintextFrom(outside, app.port), `GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n`);
    assert.match(plain.toString(), new RegExp(`\r\n\r\n${outside.replaceAll('.', '\\.')}$`));
    await settled('closed');
    const plainRecord = node2.accessLog('inbound').at(-1);
    assert.equal(plainRecord?.['src.addr']?.toString().split(':')[0], outside);
    assert.equal(plainRecord?.['src.identity'], undefined, 'plaintext carries no identity');
  });

  test('keeps half-close: the client FIN reaches the app and the reply still comes back', async () => {
    // An app that answers only once the request is complete (its FIN), then closes.
    const app = createServer({ allowHalfOpen: true }, (s) => {
      const chunks: Buffer[] = [];
      s.on('data', (c: Buffer) => chunks.push(c));
      s.once('end', () => s.end(`got ${Buffer.concat(chunks).length} bytes`));
    });
    await new Promise<void>((resolve) => app.listen(0, server.ip, resolve));
    try {
      const reply = await exchange(client.connect({ address: server.ip, port: (app.address() as AddressInfo).port }), 'y'.repeat(70_000));
      assert.equal(reply.toString(), 'got 70000 bytes');
    } finally {
      await new Promise((resolve) => app.close(resolve));
    }
    await settled('closed');
  });

  test('a reset on either side resets the other, and the record says so', async () => {
    // The app resets: the client sees a reset, not a clean end.
    const resetting = createServer((s) => {
      s.once('data', () => s.resetAndDestroy());
    });
    await new Promise<void>((resolve) => resetting.listen(0, server.ip, resolve));
    const socket = client.connect({ address: server.ip, port: (resetting.address() as AddressInfo).port });
    await once(socket, 'connect');
    const ended = closeOf(socket);
    socket.write('trigger');
    assert.equal((await ended).hadError, true, 'the client is reset');
    await new Promise((resolve) => resetting.close(resolve));

    // The client resets: the app sees it.
    const accepted = new Promise<Socket>((resolve) => echo.server.once('connection', resolve));
    const c2 = client.connect({ address: server.ip, port: echo.port });
    c2.on('error', () => {});
    await once(c2, 'connect');
    c2.write('hello');
    await once(c2, 'data');
    const appEnded = closeOf(await accepted);
    c2.resetAndDestroy();
    assert.equal((await appEnded).hadError, true, 'the app is reset');
    await settled('closed');
    assert.match(String(node1.accessLog('outbound').at(-1)?.error), /ECONNRESET/);
  });

  test('tells the destination which of its services the client meant (forwarded host)', async () => {
    // server backs two services on the same target port; without the client's word the guess is the first.
    const first = service({ name: 'alpha', vips: [{ network: '', address: '10.96.0.21' }], ports: { 80: echo.port } });
    const second = service({ name: 'beta', vips: [{ network: '', address: '10.96.0.22' }], ports: { 80: echo.port } });
    const current = node2.store.workloadByIp('', server.ip);
    assert.ok(current);
    mesh.apply({
      services: [first, second],
      workloads: [{ ...current, services: { ...current.services, [`default/${first.hostname}`]: {}, [`default/${second.hostname}`]: {} } }],
    });
    try {
      for (const svc of [second, first]) {
        const in0 = node2.accessLog('inbound').length;
        await exchange(client.connect({ address: svc.vips[0]?.address ?? '', port: 80 }), 'which one');
        await settled('closed', () => node2.accessLog('inbound').length > in0);
        assert.equal(node2.accessLog('inbound').at(-1)?.['dst.service'], svc.hostname);
      }
    } finally {
      mesh.apply({ removedServices: [`default/${first.hostname}`, `default/${second.hostname}`], workloads: [current] });
    }
  });
});

describe('application tunnel', () => {
  test('a PROXY app tunnel gets a PROXY v2 header with the client and its identity, then the payload', async () => {
    const tunnelPod = await node2.addPod({ name: 'tunnel', serviceAccount: 'tunnel' });
    // The app takes PROXY protocol on one port (as a waypoint does on 15088); ztunnel sends everything there.
    let received: (b: Buffer) => void = () => {};
    const got = new Promise<Buffer>((resolve) => {
      received = resolve;
    });
    const app = createServer((s) => {
      const chunks: Buffer[] = [];
      s.on('data', (c: Buffer) => chunks.push(c));
      s.once('end', () => {
        received(Buffer.concat(chunks));
        s.end();
      });
    });
    await new Promise<void>((resolve) => app.listen(0, tunnelPod.ip, resolve));
    try {
      const port = (app.address() as AddressInfo).port;
      mesh.apply({ workloads: [{ ...tunnelPod.workload, applicationTunnel: { protocol: 'PROXY', port } }] });
      await exchange(client.connect({ address: tunnelPod.ip, port: 8080 }), 'payload after the header');
      const bytes = await got;
      const decoded = decodeProxyV2(bytes);
      assert.equal(decoded.kind, 'header');
      if (decoded.kind !== 'header') return;
      assert.equal(decoded.header.source.address, client.ip);
      assert.deepEqual(decoded.header.destination, { address: tunnelPod.ip, port: 8080 });
      assert.equal(decoded.header.tlvs.get(PP2_TYPE_PEER_IDENTITY)?.toString(), CLIENT_ID);
      assert.equal(bytes.subarray(decoded.bytes).toString(), 'payload after the header');
      await settled('closed');
      const rec = node2.accessLog('inbound').at(-1);
      assert.equal(rec?.bytes_sent, 'payload after the header'.length, 'the header is not counted as request bytes');
    } finally {
      await new Promise((resolve) => app.close(resolve));
      await node2.removePod(tunnelPod);
    }
  });
});
