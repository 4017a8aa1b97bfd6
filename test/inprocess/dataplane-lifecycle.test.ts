/**
 * A pod proxy's life around its connections: drain on stop, a certificate that comes only after the CA failed,
 * an identity that changes under a running pod, and a peer whose 15008 never answers.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import type { CertificateProvider } from '../../lib/identity/cert-manager.js';
import { LocalCaProvider } from '../../lib/identity/local-ca-provider.js';
import { formatSpiffeId, type Identity } from '../../lib/identity/spiffe.js';
import { NativeError, NativeErrorCode } from '../../lib/native/index.js';
import { INBOUND_PLAINTEXT_PORT, OUTBOUND_PORT } from '../../ztunnel/config/ports.js';
import { PodProxy } from '../../ztunnel/proxy/pod-proxy.js';
import type { PodSockets } from '../../ztunnel/proxy/sockets.js';
import { DataPathMesh, type MeshPod } from '../../testbed/fixtures/datapath.js';
import { closeOf, exchange, once } from '../../testbed/fixtures/net.js';
import { eventually } from '../../testbed/fixtures/wait.js';

const meshes: DataPathMesh[] = [];
async function newMesh(...args: Parameters<typeof DataPathMesh.start>): Promise<DataPathMesh> {
  const m = await DataPathMesh.start(...args);
  meshes.push(m);
  return m;
}

after(async () => {
  for (const m of meshes) await m.close();
});

/** A live, echoing connection from `from` to `to`'s echo app. */
async function liveConnection(from: MeshPod, to: MeshPod, port: number): Promise<Socket> {
  const s = from.connect({ address: to.ip, port });
  s.on('error', () => {});
  await once(s, 'connect');
  s.write('up');
  await once(s, 'data');
  return s;
}

describe('drain', () => {
  test('stopping a pod closes what is still open at the deadline, each connection with its one record', async () => {
    const mesh = await newMesh();
    const node1 = mesh.addNode('node-1');
    const node2 = mesh.addNode('node-2');
    const server = await node2.addPod({ name: 'server', serviceAccount: 'server' });
    const client = await node1.addPod({ name: 'client', serviceAccount: 'client' });
    const echo = await server.startEcho();
    const live = await liveConnection(client, server, echo.port);
    const closed = closeOf(live);
    const count = node2.accessLog('inbound').length;
    await node2.removePod(server, 50);
    assert.equal((await closed).hadError, true, 'the client connection is reset by the drain');
    const records = node2.accessLog('inbound').slice(count);
    assert.equal(records.length, 1);
    assert.match(String(records[0]?.error), /PROXY_DRAINED/);
    assert.equal(records[0]?.flags, undefined, 'a drain is not a failed connection');
    await eventually(() => mesh.liveConnections() === 0, { what: () => `${mesh.liveConnections()} still tracked` });
  });

  test('stopping a pod returns as soon as its last connection ends, without waiting for the deadline', { timeout: 20_000 }, async () => {
    const mesh = await newMesh();
    const node = mesh.addNode('node-1');
    const server = await node.addPod({ name: 'server', serviceAccount: 'server' });
    const client = await node.addPod({ name: 'client', serviceAccount: 'client' });
    const echo = await server.startEcho();
    const live = await liveConnection(client, server, echo.port);
    // A deadline far beyond the test's timeout: only the connection ending can let stop() return in time.
    const stopped = node.removePod(server, 600_000);
    live.end();
    await stopped;
    assert.equal(server.proxy.dump().connections.inbound.length, 0);
    assert.doesNotMatch(String(node.accessLog('inbound').at(-1)?.error), /PROXY_DRAINED/);
  });
});

describe('start', () => {
  test('a start that fails half-way frees the listening sockets it had reserved', async () => {
    const mesh = await newMesh();
    const node = mesh.addNode('node-1');
    const ip = mesh.allocateIp();
    const loopback = mesh.network.podSockets(ip);
    const released: number[] = [];
    const sockets: PodSockets = {
      ...loopback,
      listen: (port) => {
        if (port === INBOUND_PLAINTEXT_PORT) throw new NativeError(NativeErrorCode.LISTEN_FAILED, 'port taken (test)');
        const l = loopback.listen(port);
        return { target: l.target, release: () => released.push(port) };
      },
    };
    const info = { uid: 'uid-half', name: 'half', namespace: 'default', serviceAccount: 'default', netns: { device: 0, inode: 1 } };
    const proxy = new PodProxy(info, -1, { ...node.context, sockets: () => sockets });
    await assert.rejects(proxy.start(), /port taken/);
    await proxy.stop(0); // what the worker's pod registry does after a failed start
    assert.deepEqual(released, [OUTBOUND_PORT]);
  });
});

describe('certificates and identity', () => {
  test('a pod whose CA fails at first serves HBONE as soon as a retry of the certificate manager succeeds', async () => {
    let calls = 0;
    let failuresLeft = 2;
    const mesh = await newMesh({
      certificateProvider: (ca) => {
        const real = new LocalCaProvider(ca);
        const flaky: CertificateProvider = {
          fetch: (identity: Identity) => {
            if (identity.serviceAccount === 'late') {
              calls++;
              if (failuresLeft-- > 0) return Promise.reject(new Error('CA unavailable (test)'));
            }
            return real.fetch(identity);
          },
        };
        return flaky;
      },
      certificateBackoff: { initialMs: 10, multiplier: 2, jitter: 0, maxMs: 40 },
    });
    const node = mesh.addNode('node-1');
    const late = await node.addPod({ name: 'late', serviceAccount: 'late' }); // resolves once serving
    assert.equal(late.proxy.state, 'Up');
    assert.equal(calls, 3, 'two failed fetches, then the manager retry that succeeded');
    assert.ok(node.logLines.some((l) => l.msg === 'no certificate for the pod yet; inbound HBONE waits for it'));
    const client = await node.addPod({ name: 'client', serviceAccount: 'client' });
    const echo = await late.startEcho();
    assert.equal((await exchange(client.connect({ address: late.ip, port: echo.port }), 'hi')).toString(), 'hi');
  });

  test('a pod whose service account changes serves new handshakes with the new identity', async () => {
    const mesh = await newMesh();
    const node = mesh.addNode('node-1');
    const server = await node.addPod({ name: 'server', serviceAccount: 'server' });
    const client = await node.addPod({ name: 'client', serviceAccount: 'client' });
    const echo = await server.startEcho();
    assert.equal((await exchange(client.connect({ address: server.ip, port: echo.port }), 'v1')).toString(), 'v1');
    const renamed = { ...server.workload, serviceAccount: 'server-v2' };
    mesh.apply({ workloads: [renamed] });
    // The client now expects server-v2 (from the state): only the new certificate passes its check.
    await eventually(() => formatSpiffeId(server.proxy.identity).endsWith('/sa/server-v2'), { what: () => 'identity switched' });
    // Until the new certificate is in, a handshake may still present the old one and be refused: try again.
    let reply = '';
    for (let i = 0; i < 50 && reply !== 'v2'; i++) {
      reply = (await exchange(client.connect({ address: server.ip, port: echo.port }), 'v2').catch(() => Buffer.alloc(0))).toString();
    }
    assert.equal(reply, 'v2');
    assert.equal(node.accessLog('inbound').at(-1)?.['dst.identity'], 'spiffe://cluster.local/ns/default/sa/server-v2');
  });
});

describe('unreachable peers', () => {
  test('a peer whose 15008 never answers is flagged NETWORK_POLICY, as ztunnel flags a likely NetworkPolicy drop', async () => {
    const mesh = await newMesh();
    const node = mesh.addNode('node-1', { hbone: { connectTimeoutMs: 200 } });
    const client = await node.addPod({ name: 'client', serviceAccount: 'client' });
    // A mesh workload whose 15008 takes the connection and never says a word (no TLS).
    const silentIp = mesh.allocateIp();
    const silent = createServer((s) => s.on('error', () => {}));
    await new Promise<void>((resolve) => silent.listen(15008, silentIp, resolve));
    mesh.closers.push(() => new Promise((resolve) => silent.close(() => resolve())));
    mesh.apply({ workloads: [{ ...client.workload, uid: 'Kubernetes//Pod/default/silent', name: 'silent', workloadIps: [silentIp] }] });
    const count = node.accessLog('outbound').length;
    const ended = await closeOf(client.connect({ address: silentIp, port: 80 }));
    assert.equal(ended.hadError, true, 'the client is reset');
    await eventually(() => node.accessLog('outbound').length > count, { what: () => 'the outbound record' });
    const rec = node.accessLog('outbound').at(-1);
    assert.equal(rec?.flags, 'NETWORK_POLICY');
    assert.match(String(rec?.error), /HBONE_CONNECT_TIMEOUT.*NetworkPolicy/);
    assert.equal(await node.metric('istio_tcp_connections_failed_total', { response_flags: 'NETWORK_POLICY' }), 1);
  });
});
