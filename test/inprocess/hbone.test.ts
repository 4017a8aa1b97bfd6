import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, createHash } from 'node:crypto';
import { connect as h2connect, constants } from 'node:http2';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { CertificateAuthority } from '../../lib/identity/ca.js';
import type { WorkloadCertificate } from '../../lib/identity/certificate.js';
import { makeIdentity } from '../../lib/identity/spiffe.js';
import { HbonePool } from '../../lib/hbone/pool.js';
import { HboneError, HboneErrorCode } from '../../lib/hbone/errors.js';
import type { HboneServer } from '../../lib/hbone/server.js';
import { hboneConfig } from '../../lib/hbone/config.js';
import { resetSocket, spliceTunnel } from '../../lib/hbone/tunnel.js';
import { connectToTarget, startHboneServer } from '../../testbed/fixtures/hbone.js';
import * as raw from '../../testbed/fixtures/h2-raw.js';
import { ids, issueCertificate, testCa } from '../../testbed/fixtures/pki.js';
import { closeOf, once, readAll, startEchoServer, type EchoServer } from '../../testbed/fixtures/net.js';

let ca: CertificateAuthority;
let clientCert: WorkloadCertificate;
let serverCert: WorkloadCertificate;
let echo: EchoServer;
let hbone: { server: HboneServer; port: number };
let pool: HbonePool;

function tunnelTo(port: number, extra: Partial<Parameters<HbonePool['connect']>[0]> = {}) {
  return pool.connect({
    address: '127.0.0.1',
    port: hbone.port,
    expectedIdentities: [ids.server],
    authority: `127.0.0.1:${port}`,
    certificate: clientCert,
    ...extra,
  });
}

async function expectHboneError(p: Promise<unknown>, code: string, status?: number): Promise<HboneError> {
  const err = await p.then(
    () => assert.fail(`expected ${code}`),
    (e: unknown) => e,
  );
  assert.ok(err instanceof HboneError, `expected HboneError, got ${String(err)}`);
  assert.equal(err.code, code, err.message);
  if (status !== undefined) assert.equal(err.status, status);
  return err;
}

before(async () => {
  ca = await testCa();
  clientCert = await issueCertificate(ca, ids.client);
  serverCert = await issueCertificate(ca, ids.server);
  echo = await startEchoServer();
  hbone = await startHboneServer(serverCert);
  pool = new HbonePool();
});

after(async () => {
  pool.close();
  await hbone.server.close();
  await echo.close();
});

describe('HBONE tunnel', () => {
  test('carries 8 MB of random bytes intact in both directions', async () => {
    const { stream, responseHeaders } = await tunnelTo(echo.port);
    assert.equal(responseHeaders[':status'], 200);
    const payload = randomBytes(8 * 1024 * 1024);
    const received = readAll(stream);
    stream.end(payload);
    const back = await received;
    assert.equal(back.length, payload.length);
    assert.equal(createHash('sha256').update(back).digest('hex'), createHash('sha256').update(payload).digest('hex'));
  });

  test('eight tunnels on one pooled connection, each echoing 16 MiB at once, all complete intact', async (t) => {
    // Bulk in both directions on one HTTP/2 connection: with more in flight than the socket buffers hold, two Node
    // peers would each stop reading while their own write waits (see connectionWindowBytes in lib/hbone/config.ts).
    const size = 16 * 1024 * 1024;
    // Its own pool and server, so that a stalled session (the regression) is torn down with the test.
    const own = new HbonePool();
    const server = await startHboneServer(serverCert);
    t.after(async () => {
      own.close();
      await server.server.close();
    });
    const results = await Promise.all(
      Array.from({ length: 8 }, async (_, i) => {
        const { stream } = await own.connect({
          address: '127.0.0.1',
          port: server.port,
          expectedIdentities: [ids.server],
          authority: `127.0.0.1:${echo.port}`,
          certificate: clientCert,
        });
        const chunk = randomBytes(64 * 1024);
        const sent = createHash('sha256');
        const received = readAll(stream);
        // Written with back-pressure, as a relayed socket would write it.
        for (let n = 0; n < size; n += chunk.length) {
          sent.update(chunk);
          if (!stream.write(chunk)) await once(stream, 'drain');
        }
        stream.end();
        const back = await received;
        return { i, length: back.length, same: createHash('sha256').update(back).digest('hex') === sent.digest('hex') };
      }),
    );
    assert.equal(own.stats().connections, 1, 'all tunnels shared one connection');
    for (const r of results) assert.deepEqual(r, { i: r.i, length: size, same: true });
  });

  test('keeps half-close: the app sees FIN, keeps writing, and its FIN ends the tunnel', async () => {
    // An app that waits for the client's FIN, then answers and closes.
    const { createServer } = await import('node:net');
    let sawFin = false;
    const app = createServer({ allowHalfOpen: true }, (s) => {
      const chunks: Buffer[] = [];
      s.on('data', (c: Buffer) => chunks.push(c));
      s.on('end', () => {
        sawFin = true;
        s.end(`got ${Buffer.concat(chunks).toString()} after FIN`);
      });
    });
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
    const port = (app.address() as { port: number }).port;
    const { stream } = await tunnelTo(port);
    const reply = readAll(stream);
    stream.end('question');
    assert.equal((await reply).toString(), 'got question after FIN');
    assert.ok(sawFin);
    app.close();
  });

  test('delivers baggage, forwarded and a W3C traceparent to the server and returns response baggage', async () => {
    let seen: { baggage?: string | undefined; forwarded?: string | undefined; traceparent?: string | undefined; peer?: string } = {};
    const { server, port } = await startHboneServer(serverCert, {
      handler: async (req, signal) => {
        seen = {
          baggage: req.baggage,
          forwarded: req.forwarded,
          traceparent: req.traceparent,
          peer: `${req.peerIdentity.namespace}/${req.peerIdentity.serviceAccount}`,
        };
        return connectToTarget(req, signal);
      },
    });
    const { stream, responseHeaders } = await pool.connect({
      address: '127.0.0.1',
      port,
      expectedIdentities: [ids.server],
      authority: `127.0.0.1:${echo.port}`,
      certificate: clientCert,
      baggage: 'k8s.namespace.name=default,k8s.pod.name=client',
      forwarded: 'for="10.0.0.1:1234"',
    });
    stream.end();
    await readAll(stream);
    assert.equal(seen.baggage, 'k8s.namespace.name=default,k8s.pod.name=client');
    assert.equal(seen.forwarded, 'for="10.0.0.1:1234"');
    assert.match(seen.traceparent ?? '', /^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/);
    assert.equal(seen.peer, 'default/client');
    assert.equal(responseHeaders.baggage, 'k8s.namespace.name=default,service.name=server');
    await server.close();
  });

  test('1000 concurrent tunnels through one pool use at least 10 HTTP/2 connections and all complete', async () => {
    const own = new HbonePool();
    const tunnels = await Promise.all(
      Array.from({ length: 1000 }, () =>
        own.connect({
          address: '127.0.0.1',
          port: hbone.port,
          expectedIdentities: [ids.server],
          authority: `127.0.0.1:${echo.port}`,
          certificate: clientCert,
        }),
      ),
    );
    const stats = own.stats();
    assert.equal(stats.streams, 1000);
    assert.ok(stats.connections >= 10, `expected >= 10 connections, got ${stats.connections}`);
    assert.ok(stats.connections <= 11, `one in-flight dial per key should not over-dial: ${stats.connections}`);
    const replies = await Promise.all(
      tunnels.map(async ({ stream }, i) => {
        const r = readAll(stream);
        stream.end(`tunnel-${i}`);
        return (await r).toString();
      }),
    );
    for (const [i, r] of replies.entries()) assert.equal(r, `tunnel-${i}`);
    own.close();
  });
});

describe('HBONE pool', () => {
  test('releases a connection once it has been idle for poolIdleReleaseMs', async () => {
    const own = new HbonePool({ config: hboneConfig({ poolIdleReleaseMs: 50 }) });
    const { stream } = await own.connect({
      address: '127.0.0.1',
      port: hbone.port,
      expectedIdentities: [ids.server],
      authority: `127.0.0.1:${echo.port}`,
      certificate: clientCert,
    });
    const r = readAll(stream);
    stream.end('x');
    await r;
    assert.equal(own.stats().connections, 1);
    await new Promise((res) => setTimeout(res, 300));
    assert.deepEqual(own.stats(), { keys: 0, connections: 0, streams: 0 });
    own.close();
  });

  test('keys connections by source identity, expected identities, destination and source IP', async () => {
    const own = new HbonePool();
    const open = (extra: object) =>
      own.connect({
        address: '127.0.0.1',
        port: hbone.port,
        expectedIdentities: [ids.server],
        authority: `127.0.0.1:${echo.port}`,
        certificate: clientCert,
        ...extra,
      });
    const tunnels = await Promise.all([
      open({}),
      open({}),
      open({ sourceIp: '10.0.0.9' }),
      open({ expectedIdentities: [ids.server, ids.other] }),
    ]);
    assert.deepEqual(own.stats(), { keys: 3, connections: 3, streams: 4 });
    for (const t of tunnels) t.stream.close();
    own.close();
  });
});

describe('HBONE refuses', () => {
  test('a server whose certificate does not carry the expected identity', async () => {
    await expectHboneError(tunnelTo(echo.port, { expectedIdentities: [ids.other] }), HboneErrorCode.IDENTITY_MISMATCH);
  });

  test('a server whose certificate chains to an untrusted CA', async () => {
    const rogue = await testCa();
    const rogueServer = await startHboneServer(await issueCertificate(rogue, ids.server));
    await expectHboneError(
      pool.connect({
        address: '127.0.0.1',
        port: rogueServer.port,
        expectedIdentities: [ids.server],
        authority: `127.0.0.1:${echo.port}`,
        certificate: clientCert,
      }),
      HboneErrorCode.TLS_FAILED,
    );
    await rogueServer.server.close();
  });

  test('a client whose certificate chains to an untrusted CA', async () => {
    const rogue = await testCa();
    const rogueClient = await issueCertificate(rogue, ids.client);
    // The rogue client trusts our server's root so that only the server's check can refuse it.
    const confused = { ...rogueClient, rootCertsPem: serverCert.rootCertsPem };
    const own = new HbonePool();
    await assert.rejects(
      own.connect({
        address: '127.0.0.1',
        port: hbone.port,
        expectedIdentities: [ids.server],
        authority: `127.0.0.1:${echo.port}`,
        certificate: confused,
      }),
      (e: unknown) =>
        e instanceof HboneError && [HboneErrorCode.TLS_FAILED, HboneErrorCode.SESSION_FAILED].includes(e.code as 'HBONE_TLS_FAILED'),
    );
    own.close();
  });

  test('a server presenting an expired certificate', async () => {
    const expired = await issueCertificate(ca, ids.server, { ttlSeconds: 3600, notBefore: new Date(Date.now() - 7200_000) });
    const s = await startHboneServer(expired);
    const err = await expectHboneError(
      pool.connect({
        address: '127.0.0.1',
        port: s.port,
        expectedIdentities: [ids.server],
        authority: `127.0.0.1:${echo.port}`,
        certificate: clientCert,
      }),
      HboneErrorCode.TLS_FAILED,
    );
    assert.match(err.message, /expired/i);
    await s.server.close();
  });

  test('a client presenting an expired certificate', async () => {
    const expired = await issueCertificate(ca, ids.client, { ttlSeconds: 3600, notBefore: new Date(Date.now() - 7200_000) });
    const own = new HbonePool();
    await assert.rejects(
      own.connect({
        address: '127.0.0.1',
        port: hbone.port,
        expectedIdentities: [ids.server],
        authority: `127.0.0.1:${echo.port}`,
        certificate: expired,
      }),
      (e: unknown) => e instanceof HboneError,
    );
    own.close();
  });

  test('a client identity from another trust domain', async () => {
    const foreign = await issueCertificate(ca, makeIdentity('default', 'client', 'other.domain'));
    const own = new HbonePool();
    await assert.rejects(
      own.connect({
        address: '127.0.0.1',
        port: hbone.port,
        expectedIdentities: [ids.server],
        authority: `127.0.0.1:${echo.port}`,
        certificate: foreign,
      }),
      (e: unknown) => e instanceof HboneError,
    );
    own.close();
  });

  test('a TLS 1.2 client', async () => {
    const sock = tlsConnect({
      host: '127.0.0.1',
      port: hbone.port,
      maxVersion: 'TLSv1.2',
      ALPNProtocols: ['h2'],
      key: clientCert.privateKeyPem,
      cert: clientCert.certChainPem.join(''),
      ca: [...clientCert.rootCertsPem],
      rejectUnauthorized: false,
    });
    const err = await once<Error>(sock, 'error');
    assert.match(err.message, /protocol version|alert/i);
    sock.destroy();
  });

  test('plaintext on the HBONE port: the connection is closed without an HTTP answer', async () => {
    const sock = netConnect({ host: '127.0.0.1', port: hbone.port });
    await once(sock, 'connect');
    const data = readAll(sock).catch(() => Buffer.alloc(0));
    sock.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
    sock.write('CONNECT 127.0.0.1:80 HTTP/1.1\r\nHost: 127.0.0.1:80\r\n\r\n');
    const got = await data;
    assert.ok(!got.toString('latin1').includes('HTTP/'), 'no HTTP response may come back');
  });

  function rawClient() {
    return h2connect(`https://127.0.0.1:${hbone.port}`, {
      key: clientCert.privateKeyPem,
      cert: clientCert.certChainPem.join(''),
      ca: [...clientCert.rootCertsPem],
      checkServerIdentity: () => undefined,
    });
  }

  async function statusOf(headers: Record<string, string>, opts: { endStream?: boolean } = {}): Promise<number> {
    const client = rawClient();
    try {
      const req = client.request(headers, { endStream: opts.endStream ?? false });
      req.on('error', () => {});
      const res = await once<Record<string, string | number>>(req, 'response');
      return Number(res[':status']);
    } finally {
      client.destroy();
    }
  }

  test('a non-CONNECT request with 400', async () => {
    assert.equal(await statusOf({ ':method': 'GET', ':path': '/' }, { endStream: true }), 400);
  });

  test('a malformed :authority with 400', async () => {
    for (const authority of ['no-port', '10.0.0.1:99999', '10.0.0.1:0', '[::1:80', '10.0.0.256:80', '::1:80', 'host:80:80']) {
      assert.equal(await statusOf({ ':method': 'CONNECT', ':authority': authority }), 400, authority);
    }
  });

  test('an :authority that is not even a valid HTTP/2 header, with a stream reset', async () => {
    const client = rawClient();
    const req = client.request({ ':method': 'CONNECT', ':authority': 'a b:80' });
    req.on('error', () => {});
    let status: unknown;
    req.on('response', (h) => (status = h[':status']));
    await once(req, 'close');
    assert.equal(status, undefined);
    assert.equal(req.rstCode, constants.NGHTTP2_PROTOCOL_ERROR);
    client.destroy();
  });

  test('oversized request headers', async () => {
    const client = rawClient();
    const req = client.request({ ':method': 'CONNECT', ':authority': `127.0.0.1:${echo.port}`, 'x-big': 'a'.repeat(80 * 1024) });
    req.on('error', () => {});
    const outcome = await Promise.race([
      once<Record<string, unknown>>(req, 'response').then((h) => `status ${String(h[':status'])}`),
      once(req, 'close').then(() => `closed rst=${req.rstCode}`),
    ]);
    assert.ok(!outcome.startsWith('status 200'), `oversized headers must not open a tunnel (${outcome})`);
    client.destroy();
  });

  /**
   * One CONNECT whose header list is `listBytes` (RFC 9113 §6.5.2), written by hand: with `ackFirst` the client
   * first completes the SETTINGS exchange; without it the HEADERS go in its first flight, before it has even read
   * our SETTINGS (nghttp2 applies SETTINGS_MAX_HEADER_LIST_SIZE only after that ACK).
   */
  async function rawConnect(port: number, listBytes: number, ackFirst: boolean): Promise<raw.StreamOutcome> {
    const base: [string, string][] = [
      [':method', 'CONNECT'],
      [':authority', `127.0.0.1:${echo.port}`],
    ];
    const headers = [...base, ...raw.paddingHeaders(listBytes - raw.headerListSize(base))];
    assert.equal(raw.headerListSize(headers), listBytes);
    const c = await raw.RawH2Connection.connectTls({
      host: '127.0.0.1',
      port,
      key: clientCert.privateKeyPem,
      cert: clientCert.certChainPem.join(''),
      ca: [...clientCert.rootCertsPem],
    });
    try {
      c.write(Buffer.concat([raw.H2_PREFACE, raw.settingsFrame()]));
      if (ackFirst) {
        await c.waitFor((f) => f.type === raw.FrameType.SETTINGS && (f.flags & raw.Flag.ACK) === 0);
        c.write(raw.settingsAck());
        await c.waitFor((f) => f.type === raw.FrameType.SETTINGS && (f.flags & raw.Flag.ACK) !== 0);
        // The server applies its SETTINGS when it reads our ACK; a PING answered after it proves that happened.
        c.write(raw.frame(raw.FrameType.PING, 0, 0, Buffer.alloc(8, 7)));
        await c.waitFor((f) => f.type === raw.FrameType.PING && (f.flags & raw.Flag.ACK) !== 0);
      }
      c.write(raw.headersFrames(1, raw.headerBlock(headers)));
      return await c.outcome(1);
    } finally {
      c.close();
    }
  }

  test('oversized request headers in the first flight, before the client acknowledged our SETTINGS, with 431 and a reject code', async () => {
    const rejects: string[] = [];
    const { server, port } = await startHboneServer(serverCert, { onReject: (code) => rejects.push(code) });
    try {
      const outcome = await rawConnect(port, 100_000, false);
      assert.deepEqual(outcome, { status: 431, endStream: true }, 'was: 200 and an open tunnel');
      assert.deepEqual(rejects, [HboneErrorCode.HEADERS_TOO_LARGE]);
      assert.equal(server.activeTunnels, 0);
    } finally {
      await server.close();
    }
  });

  test('oversized request headers after the SETTINGS exchange with a stream reset (ENHANCE_YOUR_CALM)', async () => {
    const outcome = await rawConnect(hbone.port, 100_000, true);
    assert.deepEqual(outcome, { rstCode: constants.NGHTTP2_ENHANCE_YOUR_CALM });
  });

  test('a header list of exactly serverMaxHeaderListBytes, in the first flight or later, is accepted', async () => {
    const budget = hboneConfig().serverMaxHeaderListBytes;
    assert.equal((await rawConnect(hbone.port, budget, false)).status, 200);
    assert.equal((await rawConnect(hbone.port, budget, true)).status, 200);
    assert.equal((await rawConnect(hbone.port, budget + 1, false)).status, 431);
  });

  test('policy denial with 401 and an unreachable target with 503', async () => {
    const denying = await startHboneServer(serverCert, { handler: async () => ({ status: 401, code: 'TEST_DENIED', reason: 'denied' }) });
    await expectHboneError(
      pool.connect({
        address: '127.0.0.1',
        port: denying.port,
        expectedIdentities: [ids.server],
        authority: `127.0.0.1:${echo.port}`,
        certificate: clientCert,
      }),
      HboneErrorCode.UNAUTHORIZED,
      401,
    );
    await denying.server.close();
    const closed = await startEchoServer();
    const deadPort = closed.port;
    await closed.close();
    await expectHboneError(tunnelTo(deadPort), HboneErrorCode.HTTP_STATUS, 503);
  });
});

describe('HBONE resets', () => {
  test('an app reset mid-stream resets the client side', async () => {
    const { createServer } = await import('node:net');
    const app = createServer((s) => s.once('data', () => s.resetAndDestroy()));
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
    const { stream } = await tunnelTo((app.address() as { port: number }).port);
    stream.on('error', () => {});
    let ended = false;
    stream.on('end', () => {
      ended = true;
    });
    stream.resume();
    stream.write('trigger');
    await once(stream, 'close');
    assert.notEqual(stream.rstCode, constants.NGHTTP2_NO_ERROR, 'the client must see RST_STREAM, not END_STREAM');
    // An END_STREAM before the reset would reach the client's TCP socket as a FIN, and a FIN cannot be taken back.
    assert.equal(ended, false, 'no END_STREAM before the RST_STREAM');
    app.close();
  });

  test('a client reset mid-stream closes the app connection', async () => {
    const { createServer } = await import('node:net');
    let appSocket: Socket | undefined;
    const appClosed = new Promise<void>((resolve) => {
      const app = createServer((s) => {
        appSocket = s;
        s.resume(); // a reading socket is how an app notices the reset
        s.on('error', () => {});
        s.on('close', () => {
          app.close();
          resolve();
        });
      });
      app.listen(0, '127.0.0.1', async () => {
        const { stream } = await tunnelTo((app.address() as { port: number }).port);
        stream.write('hello');
        setTimeout(() => stream.close(constants.NGHTTP2_CANCEL), 50);
      });
    });
    await appClosed;
    assert.ok(appSocket?.destroyed);
  });
  const losses: Array<[string, (server: HboneServer, raw: readonly Socket[]) => Promise<void>]> = [
    ['the server drains at once (GOAWAY, sessions destroyed)', (server) => server.close(0)],
    [
      'the peer vanishes (its TCP connection closed, no HTTP/2 frame)',
      async (_server, raw) => {
        for (const s of raw) s.destroy();
      },
    ],
  ];
  for (const [how, lose] of losses) {
    test(`a tunnel whose HTTP/2 connection is lost resets its TCP side instead of ending it: ${how}`, { timeout: 10_000 }, async () => {
      // The client side of a tunnel, spliced as ztunnel's outbound does: app socket <-> pooled stream.
      const { createServer } = await import('node:net');
      const { server, port } = await startHboneServer(serverCert);
      const raw: Socket[] = [];
      server.server.on('connection', (s: Socket) => raw.push(s));
      const lossy = new HbonePool();
      let proxySide: Socket | undefined;
      const listener = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (s) => {
        proxySide = s;
      });
      await new Promise<void>((r) => listener.listen(0, '127.0.0.1', r));
      const app = netConnect({ host: '127.0.0.1', port: (listener.address() as { port: number }).port, allowHalfOpen: true });
      await once(app, 'connect');
      while (!proxySide) await new Promise((r) => setImmediate(r));
      const { stream } = await lossy.connect({
        address: '127.0.0.1',
        port,
        expectedIdentities: [ids.server],
        authority: `127.0.0.1:${echo.port}`,
        certificate: clientCert,
      });
      const spliced = spliceTunnel(proxySide, stream);
      app.write('before');
      assert.equal(String(await once(app, 'data')), 'before');
      const appEnd = closeOf(app);
      await lose(server, raw);
      assert.equal((await appEnd).hadError, true, 'the app must see a reset, not a clean FIN');
      assert.equal((await spliced).reset, true);
      lossy.close();
      await server.close(0);
      listener.close();
    });
  }
});

describe('HBONE teardown', () => {
  test('a session whose client stopped reading is dropped at the PING timeout, with its socket and its tunnel', async (t) => {
    // An app that writes as fast as the tunnel takes it, so the server's writes back up once the client stops reading.
    const { createServer } = await import('node:net');
    let appSocketClosed: Promise<unknown> | undefined;
    const app = createServer((s) => {
      s.on('error', () => {});
      appSocketClosed = once(s, 'close', 10_000);
      const chunk = Buffer.alloc(64 * 1024, 1);
      const pump = (): void => {
        while (!s.destroyed && s.write(chunk));
      };
      s.on('drain', pump);
      pump();
    });
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
    const appPort = (app.address() as { port: number }).port;
    const { server, port } = await startHboneServer(serverCert, { config: hboneConfig({ pingIntervalMs: 200, pingTimeoutMs: 400 }) });
    const c = await raw.RawH2Connection.connectTls({
      host: '127.0.0.1',
      port,
      key: clientCert.privateKeyPem,
      cert: clientCert.certChainPem.join(''),
      ca: [...clientCert.rootCertsPem],
    });
    t.after(async () => {
      c.close();
      await server.close();
      app.close();
    });
    // Windows far larger than the socket buffers: what stops the server is the kernel, not flow control.
    const max = 2 ** 31 - 1;
    const increment = Buffer.alloc(4);
    increment.writeUInt32BE(max - 65_535);
    c.write(Buffer.concat([raw.H2_PREFACE, raw.settingsFrame({ 4: max }), raw.frame(raw.FrameType.WINDOW_UPDATE, 0, 0, increment)]));
    c.write(
      raw.headersFrames(
        1,
        raw.headerBlock([
          [':method', 'CONNECT'],
          [':authority', `127.0.0.1:${appPort}`],
        ]),
      ),
    );
    assert.equal((await c.outcome(1)).status, 200);
    c.socket.pause();
    // Node's Http2Session.destroy() alone waits for the stuck write and would keep all of it open (session.ts).
    await appSocketClosed;
    for (let i = 0; server.sessionCount > 0 && i < 100; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(server.sessionCount, 0, 'the stuck session is gone');
  });

  test('resetSocket closes a socket whose FIN is still being sent (Node would leak it on resetAndDestroy)', async () => {
    const s = netConnect({ host: '127.0.0.1', port: echo.port, allowHalfOpen: true });
    s.on('error', () => {});
    await once(s, 'connect');
    const closed = once(s, 'close', 2000);
    s.end();
    resetSocket(s);
    await closed;
  });

  test('a stream reset right after the client FIN still closes the app socket and ends the tunnel', async () => {
    // Regression: an RST on a socket whose FIN is already out fails in libuv and used to leak a spinning handle.
    const { createServer } = await import('node:net');
    const app = createServer({ allowHalfOpen: true }, (s) => {
      s.on('error', () => {});
      s.resume(); // reads the FIN but never answers
    });
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
    const { server, port } = await startHboneServer(serverCert);
    const { stream } = await pool.connect({
      address: '127.0.0.1',
      port,
      expectedIdentities: [ids.server],
      authority: `127.0.0.1:${(app.address() as { port: number }).port}`,
      certificate: clientCert,
    });
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(server.activeTunnels, 1);
    // END_STREAM and RST_STREAM in one write: the server ends the app socket and resets it in the same tick.
    stream.end();
    stream.close(constants.NGHTTP2_CANCEL);
    const deadline = Date.now() + 2000;
    while (server.activeTunnels > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.equal(server.activeTunnels, 0, 'the upstream socket must close');
    await server.close();
    app.close();
  });
});

describe('HBONE certificate rotation', () => {
  test('rotating both certificates during live tunnels breaks none of them', async () => {
    const live = await Promise.all(Array.from({ length: 20 }, () => tunnelTo(echo.port)));
    for (const t of live) t.stream.write('before-');
    // New server certificate for new handshakes; new client certificate for new connections.
    hbone.server.setCertificate(await issueCertificate(ca, ids.server));
    const rotatedClient = await issueCertificate(ca, ids.client);
    const fresh = new HbonePool({ config: hboneConfig({}) });
    const after = await fresh.connect({
      address: '127.0.0.1',
      port: hbone.port,
      expectedIdentities: [ids.server],
      authority: `127.0.0.1:${echo.port}`,
      certificate: rotatedClient,
    });
    const replies = await Promise.all(
      [...live, after].map(async ({ stream }) => {
        const r = readAll(stream);
        stream.end('after');
        return (await r).toString();
      }),
    );
    for (const r of replies.slice(0, -1)) assert.equal(r, 'before-after');
    assert.equal(replies.at(-1), 'after');
    fresh.close();
  });
});
