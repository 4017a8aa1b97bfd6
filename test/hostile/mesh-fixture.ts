/**
 * The target of the hostile-input tier: the local mesh on two fake nodes (localmesh/mesh-cluster.ts), each with a
 * real node agent and a real ztunnel, and the sockets an attacker uses, made inside a pod's (or a node's) network
 * namespace from this process so that every byte is the test's own (lib/native dialFrom + raw HTTP / HTTP/2).
 *
 *   node-1: client (default/sa client, in the mesh), outsider (legacy, not in the mesh: what attacks come from)
 *   node-2: server (default/sa server, nginx on 8080)
 *
 * After every attack a test calls `assertServes()`: the component attacked still answers, and a real request
 * from client to server still crosses both ztunnels over HBONE.
 */
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { CertificateAuthority } from '../../lib/identity/ca.js';
import type { WorkloadCertificate } from '../../lib/identity/certificate.js';
import type { Identity } from '../../lib/identity/spiffe.js';
import { closeFd, dialFrom, openNetns } from '../../lib/native/index.js';
import { MeshCluster } from '../../localmesh/mesh-cluster.js';
import { curl, startNginx, type FakeNode, type NetworkNamespace, type Pod } from '../../testbed/fakenode/index.js';
import { issueCertificate } from '../../testbed/fixtures/pki.js';

export const APP_PORT = 8080;

export interface HostileMesh {
  readonly mesh: MeshCluster;
  readonly node1: FakeNode;
  readonly node2: FakeNode;
  readonly client: Pod;
  readonly server: Pod;
  readonly outsider: Pod;
  /** The mesh's CA (FAKE_CA_DIR), to mint certificates an attacker should not have, or should have but misuse. */
  readonly ca: CertificateAuthority;
}

export async function startHostileMesh(name: string, opts: { logLevel?: string } = {}): Promise<HostileMesh> {
  if (process.getuid?.() !== 0) throw new Error('the hostile tier attacks ztunnels on fake nodes and must run as root');
  const mesh = await MeshCluster.start({
    name: `${name}${process.pid % 1000}`,
    nodes: 2,
    ambientNamespaces: ['default'],
    ...(opts.logLevel ? { logLevel: opts.logLevel } : {}),
  });
  try {
    const node1 = mesh.node(1);
    const node2 = mesh.node(2);
    const [server, client, outsider] = await Promise.all([
      mesh.addPod(node2, { namespace: 'default', name: 'server', serviceAccount: 'server' }),
      mesh.addPod(node1, { namespace: 'default', name: 'client', serviceAccount: 'client' }),
      mesh.addPod(node1, { namespace: 'legacy', name: 'outsider' }),
    ]);
    await startNginx(server, { port: APP_PORT });
    const ca = await CertificateAuthority.fromDirectory({ trustDomain: mesh.trustDomain, dir: mesh.caDir });
    return { mesh, node1, node2, client, server, outsider, ca };
  } catch (err) {
    await mesh.destroy();
    throw err;
  }
}

/**
 * The attacked ztunnels and agents are still running, each ztunnel is ready, and a request from the client pod to
 * the server pod still goes through both ztunnels.
 */
export async function assertServes(h: HostileMesh, after: string): Promise<void> {
  for (const node of [h.node1, h.node2]) {
    const rt = h.mesh.runtime(node);
    assert.ok(rt.ztunnel.running, `${after}: ztunnel on ${node.name} exited: ${rt.ztunnel.stderr.slice(-2000)}`);
    assert.ok(rt.agent.running, `${after}: node agent on ${node.name} exited: ${rt.agent.stderr.slice(-2000)}`);
    const ready = await rt.readiness();
    assert.equal(ready.status, 200, `${after}: ztunnel on ${node.name} not ready: ${ready.body}`);
  }
  const r = await curl(h.client, `http://${h.server.ip}:${APP_PORT}/`, { maxTimeSeconds: 5 });
  assert.equal(r.exitCode, 0, `${after}: client -> server failed (${r.exitCode}) ${r.errorMessage ?? r.stderr}`);
  assert.equal(r.status, 200, `${after}: client -> server`);
}

/** A TCP connection made inside `from`'s network namespace (a pod or a node), as a process there would make it. */
export function dialInside(from: NetworkNamespace, host: string, port: number): Socket {
  const fd = openNetns(from.netnsPath);
  try {
    const s = dialFrom({ netnsFd: fd, host, port });
    s.on('error', () => {});
    return s;
  } finally {
    closeFd(fd);
  }
}

/** TLS 1.3 with ALPN h2 from inside `from`, presenting `cert` (or none); resolves once the handshake is over. */
export function tlsInside(
  from: NetworkNamespace,
  host: string,
  port: number,
  cert: WorkloadCertificate | undefined,
  trust: readonly string[],
): Promise<TLSSocket> {
  const socket = dialInside(from, host, port);
  return new Promise((resolve, reject) => {
    const t = tlsConnect({
      socket,
      ALPNProtocols: ['h2'],
      minVersion: 'TLSv1.3',
      ca: [...trust],
      checkServerIdentity: () => undefined,
      ...(cert ? { key: cert.privateKeyPem, cert: cert.certChainPem.join('') } : {}),
    });
    t.once('secureConnect', () => resolve(t));
    t.once('error', reject);
    t.once('close', () => reject(new Error('closed during the TLS handshake')));
  });
}

/** A certificate for `identity` from `ca`; `expired` mints one whose validity ended an hour ago. */
export function certificateFor(
  ca: CertificateAuthority,
  identity: Identity,
  opts: { expired?: boolean } = {},
): Promise<WorkloadCertificate> {
  return issueCertificate(ca, identity, opts.expired ? { ttlSeconds: 3600, notBefore: new Date(Date.now() - 7_200_000) } : {});
}

/** Everything a socket receives until it closes (or `waitMs` passes), and how it ended. */
export function drain(socket: Socket, waitMs = 3000): Promise<{ received: Buffer; closed: boolean }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const done = (closed: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ received: Buffer.concat(chunks), closed });
    };
    const timer = setTimeout(() => done(false), waitMs);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.once('close', () => done(true));
  });
}
