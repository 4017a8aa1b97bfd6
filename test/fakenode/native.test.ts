/**
 * The native layer against the real kernel: network namespaces, iptables REDIRECT, SO_MARK, IP_TRANSPARENT
 * with Istio's in-pod return routing, and SOCK_SEQPACKET with SCM_RIGHTS. Needs root (fails, never skips).
 * Every test makes its own namespaces (ntv-<pid>-<n>) and removes them in t.after, even on failure.
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test, type TestContext } from 'node:test';
import { promisify } from 'node:util';
import {
  NativeError,
  SeqpacketConnection,
  SeqpacketServer,
  closeFd,
  createTcpListenerFd,
  createTcpSocketFd,
  currentNetnsInode,
  dialFrom,
  getOriginalDst,
  getSocketMark,
  localAddress,
  netnsInode,
  openNetns,
  wrapUnconnectedFd,
  withNetns,
} from '../../lib/native/index.js';
import { hasErrorCode } from '../../lib/errors.js';

const execFileAsync = promisify(execFile);
let nsCounter = 0;

function requireRoot(): void {
  assert.equal(
    process.getuid?.(),
    0,
    'the native tests create network namespaces and iptables rules and must run as root (e.g. sudo npm test)',
  );
}

/** Setup commands that do not need this process's event loop (servers here are not involved). */
function sh(cmd: string, ...args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

interface Netns {
  name: string;
  fd: number;
  /** Runs a command inside the namespace, synchronously (setup only). */
  run(cmd: string, ...args: string[]): string;
  /** Runs a command inside the namespace without blocking the event loop (clients of in-process servers). */
  runAsync(cmd: string, ...args: string[]): Promise<{ stdout: string; stderr: string }>;
}

function makeNetns(t: TestContext): Netns {
  requireRoot();
  const name = `ntv-${process.pid}-${++nsCounter}`;
  sh('ip', 'netns', 'add', name);
  let fd = -1;
  t.after(() => {
    if (fd >= 0) closeFd(fd);
    sh('ip', 'netns', 'del', name);
  });
  fd = openNetns(`/run/netns/${name}`);
  const run = (cmd: string, ...args: string[]): string => sh('ip', 'netns', 'exec', name, cmd, ...args);
  // A namespace whose lo is down has no local routing table yet, and the kernel then lets any IPv4 address be bound.
  run('ip', 'link', 'set', 'lo', 'up');
  return {
    name,
    fd,
    run,
    runAsync: (cmd, ...args) => execFileAsync('ip', ['netns', 'exec', name, cmd, ...args], { encoding: 'utf8', timeout: 10_000 }),
  };
}

/** A node:net server on an fd, tracking its sockets so that teardown never waits on an open connection. */
async function serveOnFd(t: TestContext, fd: number, onConnection: (s: net.Socket) => void): Promise<net.Server> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    onConnection(s);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ fd }, () => resolve());
  });
  t.after(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  );
  return server;
}

function readAll(s: net.Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.once('end', () => resolve(Buffer.concat(chunks).toString()));
    s.once('error', reject);
  });
}

function waitConnect(s: net.Socket): Promise<void> {
  return new Promise((resolve, reject) => {
    s.once('connect', () => resolve());
    s.once('error', reject);
  });
}

function portOf(server: net.Server | http.Server): number {
  return (server.address() as AddressInfo).port;
}

describe('network namespaces', () => {
  test('withNetns runs the function inside the namespace and returns to the original one, also nested and on throw', (t) => {
    const a = makeNetns(t);
    const b = makeNetns(t);
    const host = currentNetnsInode();
    assert.notEqual(netnsInode(a.fd), host);
    assert.equal(
      withNetns(a.fd, () => currentNetnsInode()),
      netnsInode(a.fd),
    );
    assert.equal(currentNetnsInode(), host);
    const seen = withNetns(a.fd, () => {
      const inner = withNetns(b.fd, () => currentNetnsInode());
      return [inner, currentNetnsInode()];
    });
    assert.deepEqual(seen, [netnsInode(b.fd), netnsInode(a.fd)]);
    assert.equal(currentNetnsInode(), host);
    assert.throws(
      () =>
        withNetns(a.fd, () => {
          throw new Error('boom');
        }),
      /boom/,
    );
    assert.equal(currentNetnsInode(), host);
  });

  test('setns errors and non-namespace files are reported with stable codes and errno names', (t) => {
    const ns = makeNetns(t);
    const dir = mkdtempSync(join(tmpdir(), 'ntv-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    assert.throws(
      () => withNetns(1_000_000, () => 0),
      (e: unknown) => e instanceof NativeError && e.code === 'NATIVE_SETNS_FAILED' && e.errnoName === 'EBADF' && /EBADF/.test(e.message),
    );
    assert.throws(
      () => openNetns('/etc/hostname'),
      (e: unknown) => hasErrorCode(e, 'NATIVE_NETNS_OPEN_FAILED'),
    );
    assert.throws(
      () => openNetns(join(dir, 'missing')),
      (e: unknown) => e instanceof NativeError && e.code === 'NATIVE_NETNS_OPEN_FAILED' && /ENOENT/.test(e.message),
    );
    assert.throws(
      () => withNetns(ns.fd, () => Promise.resolve(1)),
      (e: unknown) => hasErrorCode(e, 'NATIVE_NETNS_ASYNC_CALLBACK'),
    );
    assert.throws(
      () => withNetns(1, () => 0),
      (e: unknown) => e instanceof NativeError && e.code === 'NATIVE_SETNS_FAILED' && e.errnoName === 'EINVAL',
      'stdout is not a namespace',
    );
  });
});

describe('TCP sockets in a pod namespace', () => {
  test('a listener created with netnsFd listens only inside that namespace and serves clients there', async (t) => {
    const ns = makeNetns(t);
    const hostInode = currentNetnsInode();
    const fd = createTcpListenerFd({ netnsFd: ns.fd, address: '127.0.0.1', port: 0, reusePort: true });
    assert.equal(currentNetnsInode(), hostInode, 'the thread is back in its own namespace');
    const server = http.createServer((_req, res) => res.end('hello from the pod'));
    await new Promise<void>((resolve) => server.listen({ fd }, resolve));
    t.after(
      () =>
        new Promise<void>((resolve) => {
          server.closeAllConnections();
          server.close(() => resolve());
        }),
    );
    const port = portOf(server);
    const local = `127.0.0.1:${port}`;
    assert.match(ns.run('ss', '-Hltn'), new RegExp(`${local.replace(/\./g, '\\.')}\\s`));
    assert.doesNotMatch(sh('ss', '-Hltn'), new RegExp(`${local.replace(/\./g, '\\.')}\\s`));
    const { stdout } = await ns.runAsync('curl', '-sS', '--max-time', '5', `http://${local}/`);
    assert.equal(stdout, 'hello from the pod');
  });

  test('a listener on an address the namespace does not have fails with NATIVE_LISTEN_FAILED and EADDRNOTAVAIL', (t) => {
    const ns = makeNetns(t);
    assert.throws(
      () => createTcpListenerFd({ netnsFd: ns.fd, address: '10.9.9.9', port: 8080 }),
      (e: unknown) =>
        e instanceof NativeError && e.code === 'NATIVE_LISTEN_FAILED' && e.errnoName === 'EADDRNOTAVAIL' && /bind/.test(e.message),
    );
    const fd = createTcpListenerFd({ netnsFd: ns.fd, address: '127.0.0.1', port: 0 });
    t.after(() => closeFd(fd));
    const { port } = localAddress(fd);
    assert.throws(
      () => createTcpListenerFd({ netnsFd: ns.fd, address: '127.0.0.1', port }),
      (e: unknown) => e instanceof NativeError && e.code === 'NATIVE_LISTEN_FAILED' && /EADDRINUSE/.test(e.message),
    );
  });

  test('getOriginalDst returns the destination a REDIRECT rewrote, for IPv4 and IPv6 on a dual-stack listener', async (t) => {
    const ns = makeNetns(t);
    // A pod-like interface with a subnet route; the peer end stays in the namespace.
    ns.run('ip', 'link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1');
    ns.run('ip', 'addr', 'add', '10.3.0.1/24', 'dev', 'v0');
    ns.run('ip', '-6', 'addr', 'add', 'fd00:3::1/64', 'dev', 'v0', 'nodad');
    ns.run('ip', 'link', 'set', 'v1', 'up');
    ns.run('ip', 'link', 'set', 'v0', 'up');
    ns.run(
      'iptables',
      '-t',
      'nat',
      '-A',
      'OUTPUT',
      '-p',
      'tcp',
      '-d',
      '10.3.0.99',
      '--dport',
      '80',
      '-j',
      'REDIRECT',
      '--to-ports',
      '15001',
    );
    ns.run(
      'ip6tables',
      '-t',
      'nat',
      '-A',
      'OUTPUT',
      '-p',
      'tcp',
      '-d',
      'fd00:3::99',
      '--dport',
      '80',
      '-j',
      'REDIRECT',
      '--to-ports',
      '15001',
    );
    const fd = createTcpListenerFd({ netnsFd: ns.fd, address: '::', port: 15001, ipv6Only: false });
    const seen: { orig: ReturnType<typeof getOriginalDst>; local: ReturnType<typeof localAddress> }[] = [];
    await serveOnFd(t, fd, (s) => {
      seen.push({ orig: getOriginalDst(s), local: localAddress(s) });
      s.end('ok');
    });
    for (const host of ['10.3.0.99', 'fd00:3::99']) {
      const c = dialFrom({ netnsFd: ns.fd, host, port: 80 });
      assert.equal(await readAll(c), 'ok');
    }
    // A connection that was not rewritten reports its own destination.
    const direct = dialFrom({ netnsFd: ns.fd, host: '127.0.0.1', port: 15001 });
    assert.equal(await readAll(direct), 'ok');
    assert.equal(seen.length, 3);
    assert.deepEqual(seen[0]?.orig, { address: '10.3.0.99', port: 80, family: 4 });
    assert.equal(seen[0]?.local.address, '::ffff:127.0.0.1', 'the IPv4 connection came through the v4-mapped path');
    assert.deepEqual(seen[1]?.orig, { address: 'fd00:3::99', port: 80, family: 6 });
    assert.deepEqual(seen[1]?.local, { address: '::1', port: 15001, family: 6 });
    assert.deepEqual(seen[2]?.orig, { address: '127.0.0.1', port: 15001, family: 4 });
  });

  test('getOriginalDst fails with NATIVE_ORIGINAL_DST_FAILED when the namespace tracks no connections', async (t) => {
    const ns = makeNetns(t);
    const fd = createTcpListenerFd({ netnsFd: ns.fd, address: '127.0.0.1', port: 0 });
    const errors: unknown[] = [];
    const server = await serveOnFd(t, fd, (s) => {
      try {
        getOriginalDst(s);
      } catch (err) {
        errors.push(err);
      }
      s.end();
    });
    await readAll(dialFrom({ netnsFd: ns.fd, host: '127.0.0.1', port: portOf(server) }));
    assert.equal(errors.length, 1);
    assert.ok(
      errors[0] instanceof NativeError && errors[0].code === 'NATIVE_ORIGINAL_DST_FAILED' && errors[0].errnoName === 'ENOENT',
      String(errors[0]),
    );
  });

  test("a socket made with mark 0x539 carries the mark: Istio's outbound REDIRECT skips it and -m mark matches it", async (t) => {
    const ns = makeNetns(t);
    ns.run('ip', 'addr', 'add', '10.4.0.2/32', 'dev', 'lo');
    // The in-pod outbound capture rule (without the lo/127 exceptions) and a counting rule for marked packets.
    ns.run(
      'iptables',
      '-t',
      'nat',
      '-A',
      'OUTPUT',
      '-p',
      'tcp',
      '-d',
      '10.4.0.2',
      '--dport',
      '80',
      '-m',
      'mark',
      '!',
      '--mark',
      '0x539/0xfff',
      '-j',
      'REDIRECT',
      '--to-ports',
      '15001',
    );
    ns.run(
      'iptables',
      '-t',
      'filter',
      '-A',
      'OUTPUT',
      '-p',
      'tcp',
      '-d',
      '10.4.0.2',
      '--dport',
      '80',
      '-m',
      'mark',
      '--mark',
      '0x539/0xfff',
      '-j',
      'ACCEPT',
    );
    const markedPackets = (): number => {
      const line = ns
        .run('iptables', '-t', 'filter', '-L', 'OUTPUT', '-v', '-n', '-x')
        .split('\n')
        .find((l) => l.includes('0x539/0xfff'));
      assert.ok(line, 'the counting rule is listed');
      return Number(line.trim().split(/\s+/)[0]);
    };
    await serveOnFd(t, createTcpListenerFd({ netnsFd: ns.fd, address: '10.4.0.2', port: 80 }), (s) => s.end('real destination'));
    await serveOnFd(t, createTcpListenerFd({ netnsFd: ns.fd, address: '0.0.0.0', port: 15001 }), (s) => s.end('redirected'));

    assert.equal(await readAll(dialFrom({ netnsFd: ns.fd, host: '10.4.0.2', port: 80 })), 'redirected');
    assert.equal(markedPackets(), 0);

    const marked = dialFrom({ netnsFd: ns.fd, host: '10.4.0.2', port: 80, mark: 0x539 });
    await waitConnect(marked);
    assert.equal(getSocketMark(marked), 0x539);
    assert.equal(await readAll(marked), 'real destination');
    assert.ok(markedPackets() > 0, 'the mark matched in the OUTPUT chain');
  });

  test("a transparent socket binds a foreign source IP and the app sees it, with replies routed back by Istio's in-pod rules", async (t) => {
    const ns = makeNetns(t);
    // The pod: eth0-like veth with a default route, so the app's replies have a route before the mark reroutes them.
    ns.run('ip', 'link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1');
    ns.run('ip', 'addr', 'add', '10.5.0.1/24', 'dev', 'v0');
    ns.run('ip', 'link', 'set', 'v1', 'up');
    ns.run('ip', 'link', 'set', 'v0', 'up');
    ns.run('ip', 'route', 'add', 'default', 'via', '10.5.0.254', 'dev', 'v0');
    // Istio's in-pod mangle rules and policy route (istio-cni default.golden, iptables_linux.go).
    ns.run(
      'iptables',
      '-t',
      'mangle',
      '-A',
      'PREROUTING',
      '-m',
      'mark',
      '--mark',
      '0x539/0xfff',
      '-j',
      'CONNMARK',
      '--set-xmark',
      '0x111/0xfff',
    );
    ns.run(
      'iptables',
      '-t',
      'mangle',
      '-A',
      'OUTPUT',
      '-m',
      'connmark',
      '--mark',
      '0x111/0xfff',
      '-j',
      'CONNMARK',
      '--restore-mark',
      '--nfmask',
      '0xffffffff',
      '--ctmask',
      '0xffffffff',
    );
    ns.run('ip', 'rule', 'add', 'fwmark', '0x111/0xfff', 'pref', '32764', 'lookup', '100');
    ns.run('ip', 'route', 'add', 'local', '0.0.0.0/0', 'dev', 'lo', 'table', '100');

    const peers: string[] = [];
    await serveOnFd(t, createTcpListenerFd({ netnsFd: ns.fd, address: '10.5.0.1', port: 8080 }), (s) => {
      peers.push(`${s.remoteAddress ?? '?'}`);
      s.on('data', (d: Buffer) => s.end(`app saw ${s.remoteAddress ?? '?'}:${s.remotePort ?? '?'} say ${d.toString()}`));
    });

    const clientPodIp = '10.77.0.5';
    assert.throws(
      () => createTcpSocketFd({ netnsFd: ns.fd, bindAddress: clientPodIp }),
      (e: unknown) => e instanceof NativeError && e.code === 'NATIVE_BIND_FAILED' && e.errnoName === 'EADDRNOTAVAIL',
    );
    const freebound = createTcpSocketFd({ netnsFd: ns.fd, bindAddress: clientPodIp, freebind: true });
    assert.equal(localAddress(freebound).address, clientPodIp);
    closeFd(freebound);

    const c = dialFrom({ netnsFd: ns.fd, host: '10.5.0.1', port: 8080, bindAddress: clientPodIp, transparent: true, mark: 0x539 });
    await waitConnect(c);
    assert.equal(c.localAddress, clientPodIp);
    c.write('hi');
    const reply = await readAll(c);
    assert.match(reply, new RegExp(`^app saw ${clientPodIp.replace(/\./g, '\\.')}:\\d+ say hi$`));
    assert.deepEqual(peers, [clientPodIp]);
  });

  test('an fd-made socket wrapped before the event loop turns still connects with its own options', async (t) => {
    const ns = makeNetns(t);
    const server = await serveOnFd(t, createTcpListenerFd({ netnsFd: ns.fd, address: '127.0.0.1', port: 0 }), (s) => s.end('in ns'));
    const fd = createTcpSocketFd({ netnsFd: ns.fd, mark: 0x539 });
    const s = wrapUnconnectedFd(fd);
    // Without manualStart, Node would start reading the unconnected fd here and fail it with ENOTCONN.
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(s.destroyed, false);
    s.connect(portOf(server), '127.0.0.1');
    await waitConnect(s);
    assert.equal(getSocketMark(s), 0x539);
    assert.equal(await readAll(s), 'in ns');
  });
});

describe('SOCK_SEQPACKET with SCM_RIGHTS', () => {
  function socketPath(t: TestContext): string {
    requireRoot();
    const dir = mkdtempSync(join(tmpdir(), 'ntv-seq-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    return join(dir, 'zds.sock');
  }

  async function pair(
    t: TestContext,
    serverOpts: Parameters<typeof SeqpacketServer.listen>[1] = {},
  ): Promise<{ server: SeqpacketServer; client: SeqpacketConnection; peer: SeqpacketConnection }> {
    const server = SeqpacketServer.listen(socketPath(t), serverOpts);
    const accepted = server.accept();
    const client = await SeqpacketConnection.connect(server.path);
    const peer = await accepted;
    t.after(() => {
      client.close();
      peer.close();
      server.close();
    });
    return { server, client, peer };
  }

  function openFds(): number {
    return readdirSync('/proc/self/fd').length;
  }

  test('messages keep their boundaries in both directions, including empty and large ones', async (t) => {
    const { client, peer } = await pair(t);
    const sent = [Buffer.from('hello'), Buffer.alloc(0), Buffer.alloc(60_000, 7), Buffer.from('x'), Buffer.from('last')];
    for (const m of sent) await client.send(m);
    for (const m of sent) {
      const got = await peer.recv();
      assert.ok(got);
      assert.deepEqual(got.data, m);
      assert.deepEqual(got.fds, []);
    }
    await peer.send(Buffer.from('ack-1'));
    await peer.send(Buffer.from('ack-2'));
    assert.equal((await client.recv())?.data.toString(), 'ack-1');
    assert.equal((await client.recv())?.data.toString(), 'ack-2');
  });

  test('a network namespace fd passed with SCM_RIGHTS arrives as a new close-on-exec fd of the same namespace', async (t) => {
    const ns = makeNetns(t);
    const hostFd = openNetns('/proc/self/ns/net');
    t.after(() => closeFd(hostFd));
    const { client, peer } = await pair(t);
    await client.send(Buffer.from('{"add":"pod-1"}'), [ns.fd, hostFd]);
    const msg = await peer.recv();
    assert.ok(msg);
    t.after(() => {
      for (const fd of msg.fds) closeFd(fd);
    });
    assert.equal(msg.data.toString(), '{"add":"pod-1"}');
    assert.equal(msg.fds.length, 2);
    const [podFd, gotHostFd] = msg.fds as [number, number];
    assert.notEqual(podFd, ns.fd);
    assert.equal(netnsInode(podFd), netnsInode(ns.fd));
    assert.equal(netnsInode(gotHostFd), netnsInode(hostFd));
    const flags = /flags:\s+(\d+)/.exec(readFileSync(`/proc/self/fdinfo/${podFd}`, 'utf8'))?.[1];
    assert.ok(flags !== undefined && (parseInt(flags, 8) & 0o2000000) !== 0, 'O_CLOEXEC is set (MSG_CMSG_CLOEXEC)');
    // The received fd is usable: a listener made through it lives in the pod's namespace.
    assert.equal(
      withNetns(podFd, () => currentNetnsInode()),
      netnsInode(ns.fd),
    );
  });

  test('recv returns null at end of stream after the last message', async (t) => {
    const { client, peer } = await pair(t);
    await client.send(Buffer.from('bye'));
    client.close();
    assert.equal((await peer.recv())?.data.toString(), 'bye');
    assert.equal(await peer.recv(), null);
    assert.equal(await peer.recv(), null);
  });

  test('close() resolves a pending recv with null and makes a pending accept reject', async (t) => {
    const { server, peer } = await pair(t);
    const pending = peer.recv();
    setTimeout(() => peer.close(), 30);
    assert.equal(await pending, null);
    const accepting = server.accept();
    setTimeout(() => server.close(), 30);
    await assert.rejects(accepting, (e: unknown) => hasErrorCode(e, 'NATIVE_SEQPACKET_CLOSED'));
    await assert.rejects(peer.send(Buffer.from('late')), (e: unknown) => hasErrorCode(e, 'NATIVE_SEQPACKET_CLOSED'));
  });

  test('an oversized message is reported as truncated, its fds are closed, and the connection keeps working', async (t) => {
    const { client, peer } = await pair(t, { connection: { bufferSize: 1024 } });
    const hostFd = openNetns('/proc/self/ns/net');
    t.after(() => closeFd(hostFd));
    const before = openFds();
    await client.send(Buffer.alloc(4096, 1), [hostFd]);
    await assert.rejects(
      peer.recv(),
      (e: unknown) => e instanceof NativeError && e.code === 'NATIVE_SEQPACKET_TRUNCATED' && /4096-byte message/.test(e.message),
    );
    assert.equal(openFds(), before, 'the descriptor that came with the truncated message was closed');
    await client.send(Buffer.from('small'));
    assert.equal((await peer.recv())?.data.toString(), 'small');
  });

  test('the event loop keeps running while a recv is pending', async (t) => {
    const { client, peer } = await pair(t);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 10);
    t.after(() => clearInterval(timer));
    const started = Date.now();
    const pending = peer.recv();
    await new Promise((r) => setTimeout(r, 300));
    const elapsed = Date.now() - started;
    assert.ok(ticks >= 15, `only ${ticks} ticks of 10 ms in ${elapsed} ms while recv was pending`);
    await client.send(Buffer.from('wake'));
    assert.equal((await pending)?.data.toString(), 'wake');
  });

  test('sends wait for buffer space instead of failing when the reader is slow', async (t) => {
    const { client, peer } = await pair(t);
    const n = 1500;
    const sends = Array.from({ length: n }, (_, i) => client.send(Buffer.alloc(4096, i & 0xff)));
    await new Promise((r) => setTimeout(r, 20));
    for (let i = 0; i < n; i++) {
      const m = await peer.recv();
      assert.ok(m && m.data.length === 4096 && m.data[0] === (i & 0xff), `message ${i} in order`);
    }
    await Promise.all(sends);
  });

  test('connecting where nobody listens fails with NATIVE_SEQPACKET_FAILED naming the errno', async (t) => {
    const path = socketPath(t);
    await assert.rejects(
      SeqpacketConnection.connect(path),
      (e: unknown) => e instanceof NativeError && e.code === 'NATIVE_SEQPACKET_FAILED' && e.errnoName === 'ENOENT',
    );
    const server = SeqpacketServer.listen(path);
    server.close();
    assert.throws(() => readFileSync(path), /ENOENT/, 'close() removed the socket file');
  });
});

after(() => {
  // Nothing of ours may outlive the run.
  const left = sh('ip', 'netns', 'list')
    .split('\n')
    .filter((l) => l.startsWith(`ntv-${process.pid}-`));
  assert.deepEqual(left, []);
});
