/**
 * The node agent's two sockets under attack on a fake node: the ZDS socket ztunnel connects to (SOCK_SEQPACKET,
 * protobuf per datagram, netns descriptors as SCM_RIGHTS) and the CNI event socket the plugin posts to (HTTP/1.1
 * on a Unix socket). Both are root-only (0600); what is tested is that a broken or hostile peer costs its own
 * connection and nothing else: the real ztunnel stays connected, and pods added afterwards join the mesh.
 * ztunnel's own ZDS decoder is attacked in test/inprocess/zds.test.ts (NACKs, descriptors closed).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { openSync, closeSync } from 'node:fs';
import { SeqpacketConnection, closeFd } from '../../lib/native/index.js';
import { encodeHello } from '../../lib/zds/index.js';
import { curl } from '../../testbed/fakenode/index.js';
import { rawHttp, statusLine } from '../../testbed/fixtures/http-raw.js';
import { APP_PORT, assertServes, startHostileMesh, type HostileMesh } from './mesh-fixture.js';

let h: HostileMesh;

before(async () => {
  h = await startHostileMesh('hagent');
});

after(async () => {
  if (h) await h.mesh.destroy();
});

/** Resolves true once the agent closed this connection (EOF or a failed read), false if it is still open after `ms`. */
async function closedByAgent(conn: SeqpacketConnection, ms = 8000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const msg = await Promise.race([
      conn.recv().catch(() => null),
      new Promise<'open'>((r) => setTimeout(() => r('open'), deadline - Date.now()).unref()),
    ]);
    if (msg === null) return true;
    if (msg === 'open') return false;
    for (const fd of msg.fds) closeFd(fd); // a snapshot Add carries a pod's netns: ours to close
  }
  return false;
}

/** A new pod on node 1 joins the mesh and reaches the server: the agent and ztunnel both still work. */
async function assertNewPodJoins(name: string): Promise<void> {
  const pod = await h.mesh.addPod(h.node1, { namespace: 'default', name, serviceAccount: 'client' });
  const r = await curl(pod, `http://${h.server.ip}:${APP_PORT}/`, { maxTimeSeconds: 5 });
  assert.equal(r.status, 200, `${name} -> server: ${r.errorMessage ?? r.stderr}`);
}

describe('the node agent ZDS socket', () => {
  test('closes a peer that sends garbage, an empty datagram, descriptors or an oversized datagram instead of ZdsHello', async () => {
    const path = h.mesh.runtime(h.node1).ztunnelSocket;
    const devNull = openSync('/dev/null', 'r');
    try {
      const attacks: [string, (c: SeqpacketConnection) => Promise<void>][] = [
        ['garbage', (c) => c.send(Buffer.from([0xff, 0xff, 0xff, 0x0f, 1, 2, 3]))],
        ['an empty datagram', (c) => c.send(new Uint8Array(0))],
        ['a hello with a descriptor', (c) => c.send(encodeHello(), [devNull])],
        ['a 60 KiB datagram', (c) => c.send(new Uint8Array(60 * 1024))],
      ];
      for (const [what, attack] of attacks) {
        const c = await SeqpacketConnection.connect(path);
        try {
          await attack(c);
          assert.ok(await closedByAgent(c), `${what}: the agent kept the connection`);
        } finally {
          c.close();
        }
      }
    } finally {
      closeSync(devNull);
    }
    await assertServes(h, 'bad ZDS hellos');
  });

  test('closes a peer that answers its snapshot with garbage instead of an ack', async () => {
    const c = await SeqpacketConnection.connect(h.mesh.runtime(h.node1).ztunnelSocket);
    try {
      await c.send(encodeHello());
      const first = await c.recv(); // the snapshot's first request (an Add with a netns, or SnapshotSent)
      assert.ok(first !== null, 'a peer that said hello gets the snapshot');
      for (const fd of first.fds) closeFd(fd);
      await c.send(Buffer.from('not a WorkloadResponse'));
      assert.ok(await closedByAgent(c), 'the agent kept the connection');
    } finally {
      c.close();
    }
    await assertServes(h, 'garbage acks');
  });

  test('a flood of connections that never say hello leaves the real ztunnel connected; a new pod still joins', async () => {
    const path = h.mesh.runtime(h.node1).ztunnelSocket;
    const conns = await Promise.all(Array.from({ length: 50 }, () => SeqpacketConnection.connect(path)));
    for (const c of conns) c.close();
    await assertServes(h, 'ZDS connection flood');
    await assertNewPodJoins('late-zds');
  });
});

describe('the node agent CNI event socket', () => {
  const post = (path: string, body: string, headers = ''): Promise<string> =>
    rawHttp(
      { path: h.mesh.runtime(h.node1).eventSocket },
      `POST ${path} HTTP/1.1\r\nHost: agent\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${headers}Connection: close\r\n\r\n${body}`,
    );

  test('refuses garbage, bad targets, wrong methods and oversized bodies with HTTP errors', async () => {
    const sock = h.mesh.runtime(h.node1).eventSocket;
    assert.equal(statusLine(await rawHttp({ path: sock }, Buffer.alloc(300, 0x01))), 400, 'garbage');
    assert.equal(statusLine(await rawHttp({ path: sock }, 'POST * HTTP/1.1\r\nHost: a\r\n\r\n')), 400, 'asterisk target');
    assert.equal(statusLine(await rawHttp({ path: sock }, 'POST //cmdadd HTTP/1.1\r\nHost: a\r\n\r\n')), 404, '//cmdadd');
    assert.equal(statusLine(await rawHttp({ path: sock }, 'GET /cmdadd HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n')), 405, 'GET');
    const big = await rawHttp({ path: sock }, 'POST /cmdadd HTTP/1.1\r\nHost: a\r\nContent-Length: 10000000\r\n\r\n');
    assert.equal(statusLine(big), 413, 'declared body');
    await assertServes(h, 'CNI socket garbage');
  });

  test('refuses events that are not valid JSON CNI events with 400 and a stable code, and a pod added afterwards joins', async () => {
    const bad = [
      '{"command":',
      '[]',
      '"ADD"',
      JSON.stringify({ command: 'ADD' }),
      JSON.stringify({ command: 'RUN', containerId: 'x', netns: '/x' }),
      JSON.stringify({ command: 'ADD', containerId: 'x', netns: '/x', ifName: 'eth0', podNamespace: 'a'.repeat(5000) }),
      JSON.stringify({ command: 'DEL', containerId: 'x', netns: '', ifName: '', podNamespace: '', podName: '', podUid: '', ips: 7 }),
    ];
    for (const body of bad) {
      const r = await post('/cmdadd', body);
      assert.equal(statusLine(r), 400, `${body.slice(0, 60)}: ${r.slice(0, 200)}`);
      assert.match(r, /"code":"CNI_AGENT_BAD_EVENT"/);
    }
    const wrongPath = await post('/cmddel', JSON.stringify({ command: 'ADD', containerId: 'x', netns: '/x', ifName: 'eth0' }));
    assert.equal(statusLine(wrongPath), 400, 'an ADD posted to /cmddel');
    const noNetns = await post(
      '/cmdadd',
      JSON.stringify({
        command: 'ADD',
        containerId: 'c0ffee',
        netns: '/run/netns/does-not-exist',
        ifName: 'eth0',
        podNamespace: 'default',
        podName: 'ghost',
        podUid: 'ghost-uid',
        ips: ['10.9.9.9'],
      }),
    );
    assert.ok(statusLine(noNetns) >= 400, `a pod whose netns does not exist: ${noNetns.slice(0, 200)}`);
    await assertServes(h, 'bad CNI events');
    await assertNewPodJoins('late-cni');
  });
});
