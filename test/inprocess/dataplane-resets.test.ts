/**
 * Clients that reset right after connecting to a mesh destination, at every moment of the outbound path: before
 * the proxy handles the connection, while it fetches the certificate and opens the HBONE stream, once the tunnel
 * carries bytes, and after a half-close; towards an echo app and towards an app that greets with a banner and
 * closes (its bytes and END_STREAM arrive while the client resets). Each accepted connection must end in exactly
 * one "connection complete" record and leave the tracker (regression: about one in 25-80 such connections stayed
 * in config_dump for good, their HBONE stream closed but never released).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { DataPathMesh, type MeshNode, type MeshPod } from '../../testbed/fixtures/datapath.js';
import type { EchoServer } from '../../testbed/fixtures/net.js';
import { eventually } from '../../testbed/fixtures/wait.js';

let mesh: DataPathMesh;
let node1: MeshNode;
let node2: MeshNode;
let client: MeshPod;
let server: MeshPod;
let echo: EchoServer;
let banner: Server;
let bannerPort: number;
const bannerSockets = new Set<Socket>();

before(async () => {
  mesh = await DataPathMesh.start();
  node1 = mesh.addNode('node-1');
  node2 = mesh.addNode('node-2');
  server = await node2.addPod({ name: 'server', serviceAccount: 'server' });
  client = await node1.addPod({ name: 'client', serviceAccount: 'client' });
  echo = await server.startEcho();
  // Greets with more than one DATA frame's worth and closes, like a server that speaks first.
  banner = createServer({ allowHalfOpen: true }, (s) => {
    bannerSockets.add(s);
    s.on('error', () => {});
    s.once('close', () => bannerSockets.delete(s));
    s.resume(); // reads (and drops) what the client sends, so it sees the client's FIN
    s.end('220 banner\r\n'.repeat(2000));
  });
  await new Promise<void>((resolve) => banner.listen(0, server.ip, resolve));
  bannerPort = (banner.address() as AddressInfo).port;
});

after(async () => {
  await new Promise((resolve) => banner?.close(resolve));
  await mesh?.close();
});

type Moment = 'on-connect' | 'on-accept' | 'after-turns' | 'after-timer' | 'after-first-byte' | 'after-half-close';
const MOMENTS: readonly Moment[] = ['on-connect', 'on-accept', 'after-turns', 'after-timer', 'after-first-byte', 'after-half-close'];

const turns = (n: number): Promise<void> =>
  new Promise((resolve) => (n <= 0 ? resolve() : setImmediate(() => void turns(n - 1).then(resolve))));

/** One connection through the mesh to `port` that the client resets at `moment`; resolves when the client socket closed. */
function resetCycle(port: number, moment: Moment, i: number): Promise<void> {
  return new Promise((resolve) => {
    let socket: Socket | undefined;
    const reset = (): void => {
      if (socket && !socket.destroyed) socket.resetAndDestroy();
    };
    const onAccepted = (): void => {
      if (moment === 'on-accept') reset();
      else if (moment === 'after-turns') void turns(i % 40).then(reset);
      else if (moment === 'after-timer') setTimeout(reset, i % 7);
    };
    socket = client.connect({ address: server.ip, port }, onAccepted);
    socket.on('error', () => {});
    socket.once('close', () => resolve());
    socket.once('connect', () => {
      if (moment === 'on-connect') reset();
      else if (moment === 'after-first-byte' || moment === 'after-half-close') {
        socket?.once('data', reset);
        socket?.write('ping');
        if (moment === 'after-half-close') socket?.end();
      }
    });
  });
}

test('every connection a client resets ends in one access-log record and leaves the tracker', async () => {
  const before = { accepted: mesh.network.originalDstReads, records: node1.accessLog('outbound').length };
  const cycles = 480;
  const concurrency = 24;
  for (let start = 0; start < cycles; start += concurrency) {
    await Promise.all(
      Array.from({ length: Math.min(concurrency, cycles - start) }, (_, k) => {
        const i = start + k;
        const port = Math.floor(i / MOMENTS.length) % 2 === 0 ? echo.port : bannerPort;
        return resetCycle(port, MOMENTS[i % MOMENTS.length] as Moment, i);
      }),
    );
  }
  const accepted = mesh.network.originalDstReads - before.accepted;
  assert.ok(accepted > cycles / 2, `only ${accepted} of ${cycles} connections were accepted by the proxy`);
  const records = (): number => node1.accessLog('outbound').length - before.records;
  const appSockets = (): number => echo.sockets.size + bannerSockets.size;
  await eventually(() => records() >= accepted && mesh.liveConnections() === 0 && appSockets() === 0, {
    what: () => `${records()} outbound records for ${accepted} accepted connections; ${mesh.liveConnections()} still tracked`,
  }).catch(() => {});
  assert.equal(mesh.liveConnections(), 0, 'connections left in the trackers (config_dump)');
  assert.equal(records(), accepted, 'one "connection complete" record per accepted connection');
  // Whatever reached the server side ended there too.
  assert.equal(server.proxy.dump().connections.inbound.length, 0);
  assert.equal(appSockets(), 0, `app connections left open: echo ${echo.sockets.size}, banner ${bannerSockets.size}`);
});
