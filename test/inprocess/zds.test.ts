/**
 * ZDS over real SOCK_SEQPACKET sockets in one process (no root: the "pod" namespace is this process's own,
 * /proc/self/ns/net): ztunnel's ZdsClient against a scripted agent, and the agent's ZdsServer against a
 * scripted ztunnel. Hostile and broken peers get NACKs or a closed connection, never a hang.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { hasErrorCode } from '../../lib/errors.js';
import { SeqpacketConnection, SeqpacketServer, closeFd, netnsInode, openNetns } from '../../lib/native/index.js';
import { decodeAck, decodeRequest, encodeAck, encodeHello, encodeRequest, type ZdsRequest } from '../../lib/zds/index.js';
import { ZdsServer, type ZdsSnapshotEntry } from '../../cni/agent/zds-server.js';
import { ZdsClient, type InpodHandler } from '../../ztunnel/inpod/zds-client.js';
import { silentLogger } from '../../testbed/fixtures/log.js';

const dir = mkdtempSync(join(tmpdir(), 'zds-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const sockPath = (): string => join(dir, `s${++n}.sock`);
const selfInode = (() => {
  const fd = openNetns('/proc/self/ns/net');
  try {
    return netnsInode(fd);
  } finally {
    closeFd(fd);
  }
})();

async function waitFor(what: string, pred: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

class Recorder implements InpodHandler {
  calls: string[] = [];
  failAdd: string | undefined;

  async addWorkload(uid: string, info: { namespace: string; name: string }, fd: number): Promise<void> {
    const inode = netnsInode(fd);
    closeFd(fd);
    this.calls.push(`add ${uid} ${info.namespace}/${info.name} ${inode === selfInode ? 'same-netns' : inode}`);
    if (this.failAdd !== undefined) throw new Error(this.failAdd);
  }

  keepWorkload(uid: string): void {
    this.calls.push(`keep ${uid}`);
  }

  async delWorkload(uid: string): Promise<void> {
    this.calls.push(`del ${uid}`);
  }

  async snapshotSent(current: ReadonlySet<string>): Promise<void> {
    this.calls.push(`snapshot [${[...current].sort().join(',')}]`);
  }
}

/** The agent side, scripted: send a request (with fds) and read the answer. */
async function ask(conn: SeqpacketConnection, data: Uint8Array, fds: number[] = []): Promise<string> {
  await conn.send(data, fds);
  const m = await conn.recv();
  assert.ok(m !== null, 'ztunnel answered');
  return decodeAck(m.data, m.fds);
}

const add = (uid: string): ZdsRequest => ({ kind: 'add', uid, info: { name: `p-${uid}`, namespace: 'ns', serviceAccount: 'sa' } });

describe('ZdsClient (ztunnel side)', () => {
  test('hello V1, then every request is handled in order and acked; bad requests are NACKed and their fds closed', async (t) => {
    const path = sockPath();
    const server = SeqpacketServer.listen(path);
    const h = new Recorder();
    const client = new ZdsClient({ path, handler: h, logger: silentLogger() }).start();
    t.after(async () => {
      await client.close();
      server.close();
    });
    const conn = await server.accept();
    t.after(() => conn.close());
    const hello = await conn.recv();
    assert.equal(Buffer.from(hello?.data ?? []).toString('hex'), '0801', 'ZdsHello{version: V1}');
    await waitFor('connected', () => client.connected);
    assert.equal(client.snapshotReceived, false);

    const nsFd = openNetns('/proc/self/ns/net');
    t.after(() => closeFd(nsFd));
    assert.equal(await ask(conn, encodeRequest(add('a')), [nsFd]), '');
    assert.equal(await ask(conn, encodeRequest({ kind: 'keep', uid: 'k' })), '');
    const fdsBefore = readdirSync('/proc/self/fd').length;
    assert.match(await ask(conn, encodeRequest(add('nofd'))), /ZDS_MISSING_FD/);
    assert.match(await ask(conn, encodeRequest({ kind: 'del', uid: 'x' }), [nsFd]), /ZDS_UNEXPECTED_FD/);
    assert.match(await ask(conn, encodeRequest(add('two')), [nsFd, nsFd]), /ZDS_UNEXPECTED_FD/);
    assert.equal(readdirSync('/proc/self/fd').length, fdsBefore, 'the client closed the descriptors it refused');
    assert.match(await ask(conn, Uint8Array.from([0x32, 0x00])), /ZDS_UNKNOWN_MESSAGE/);
    assert.match(await ask(conn, Uint8Array.from([0xff, 0xff])), /ZDS_DECODE_FAILED/);
    assert.match(await ask(conn, new Uint8Array(0)), /ZDS_EMPTY_MESSAGE/);
    h.failAdd = 'bind 15001: address in use';
    assert.equal(await ask(conn, encodeRequest(add('b')), [nsFd]), 'bind 15001: address in use');
    h.failAdd = undefined;
    assert.equal(await ask(conn, encodeRequest({ kind: 'del', uid: 'b' })), '');
    assert.equal(await ask(conn, encodeRequest({ kind: 'snapshotSent' })), '');
    assert.equal(client.ready, true);
    assert.match(await ask(conn, encodeRequest({ kind: 'keep', uid: 'late' })), /only valid in a snapshot/);
    assert.match(await ask(conn, encodeRequest({ kind: 'snapshotSent' })), /duplicate SnapshotSent/);
    assert.deepEqual(h.calls, ['add a ns/p-a same-netns', 'keep k', 'add b ns/p-b same-netns', 'del b', 'snapshot [a,k]']);
  });

  test('retries while the agent is absent, and reconnects (not ready meanwhile) when the agent goes away', async (t) => {
    const path = sockPath();
    const h = new Recorder();
    const client = new ZdsClient({ path, handler: h, logger: silentLogger(), maxBackoffMs: 50 }).start();
    t.after(() => client.close());
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(client.connected, false);
    let server = SeqpacketServer.listen(path);
    let conn = await server.accept();
    await conn.recv();
    assert.equal(await ask(conn, encodeRequest({ kind: 'snapshotSent' })), '');
    await client.waitForSnapshot(2000);
    // The agent restarts: connection and listener gone, a new one appears.
    conn.close();
    server.close();
    await waitFor('disconnect noticed', () => !client.connected && !client.snapshotReceived);
    server = SeqpacketServer.listen(path);
    t.after(() => server.close());
    conn = await server.accept();
    t.after(() => conn.close());
    await conn.recv();
    assert.equal(await ask(conn, encodeRequest({ kind: 'snapshotSent' })), '');
    await client.waitForSnapshot(2000);
    assert.equal(client.connections, 2);
  });
});

/** A scripted ztunnel: says hello and answers each request via `answer`. */
async function fakeZtunnel(path: string, answer: (r: ReturnType<typeof decodeRequest>) => string | null) {
  const conn = await SeqpacketConnection.connect(path);
  const seen: string[] = [];
  await conn.send(encodeHello());
  void (async () => {
    for await (const m of conn) {
      const r = decodeRequest(m.data, m.fds);
      seen.push(r.kind === 'snapshotSent' ? 'snapshotSent' : `${r.kind} ${r.uid}`);
      for (const fd of m.fds) closeFd(fd);
      const a = answer(r);
      if (a !== null) await conn.send(encodeAck(a));
    }
  })().catch(() => undefined);
  return { conn, seen };
}

describe('ZdsServer (agent side)', () => {
  test('snapshot: Add with fd for held namespaces, Keep otherwise, then SnapshotSent; Adds to the newest, Dels to all', async (t) => {
    const path = sockPath();
    const nsFd = openNetns('/proc/self/ns/net');
    t.after(() => closeFd(nsFd));
    const pods = new Map<string, ZdsSnapshotEntry>([
      ['a', { uid: 'a', info: { name: 'a', namespace: 'ns', serviceAccount: 'sa' }, netnsFd: nsFd }],
      ['gone', { uid: 'gone', info: { name: 'g', namespace: 'ns', serviceAccount: 'sa' }, netnsFd: undefined }],
    ]);
    const acks: string[] = [];
    const server = ZdsServer.listen({
      path,
      logger: silentLogger(),
      pods: { uids: () => [...pods.keys()], entry: (uid) => pods.get(uid) },
      onSnapshotAck: (uid, error) => acks.push(`${uid}:${error}`),
    });
    t.after(() => server.close());
    const z1 = await fakeZtunnel(path, (r) => (r.kind === 'add' && r.uid === 'gone' ? 'nope' : ''));
    t.after(() => z1.conn.close());
    await waitFor('snapshot 1', () => z1.seen.includes('snapshotSent'));
    assert.deepEqual(z1.seen, ['add a', 'keep gone', 'snapshotSent']);
    assert.deepEqual(acks, ['a:', 'gone:']);
    const z2 = await fakeZtunnel(path, (r) => (r.kind === 'add' && r.uid === 'b' ? 'bind failed' : ''));
    t.after(() => z2.conn.close());
    await waitFor('snapshot 2', () => z2.seen.includes('snapshotSent'));
    assert.equal(await server.podAdded('b', { name: 'b', namespace: 'ns', serviceAccount: 'sa' }, nsFd), 'bind failed');
    await server.podDeleted('a');
    assert.deepEqual(z1.seen.slice(3), ['del a'], 'the older ztunnel gets only the delete');
    assert.deepEqual(z2.seen.slice(3), ['add b', 'del a']);
  });

  test('no hello within the deadline, or no ack: the connection is closed, callers get ZDS_TIMEOUT; no ztunnel: ZDS_NOT_CONNECTED', async (t) => {
    const path = sockPath();
    const server = ZdsServer.listen({ path, logger: silentLogger(), timeoutMs: 150, pods: { uids: () => [], entry: () => undefined } });
    t.after(() => server.close());
    const info = { name: 'x', namespace: 'ns', serviceAccount: 'sa' };
    await assert.rejects(server.podAdded('x', info, 0), (e: unknown) => hasErrorCode(e, 'ZDS_NOT_CONNECTED'));
    const silent = await SeqpacketConnection.connect(path);
    t.after(() => silent.close());
    assert.equal(await silent.recv(), null, 'closed for want of a hello');
    const mute = await fakeZtunnel(path, (r) => (r.kind === 'snapshotSent' ? '' : null));
    t.after(() => mute.conn.close());
    await waitFor('ready', () => server.connected);
    const nsFd = openNetns('/proc/self/ns/net');
    t.after(() => closeFd(nsFd));
    await assert.rejects(server.podAdded('x', info, nsFd), (e: unknown) => hasErrorCode(e, 'ZDS_TIMEOUT'));
    await waitFor('dropped', () => !server.connected);
  });
});
