/**
 * A pod's inbound HBONE listener (15008, inside the pod's namespace) under attack from a pod outside the mesh:
 * plaintext and garbage, TLS without a certificate or with untrusted, expired or foreign-trust-domain ones, and
 * HTTP/2 a real client never sends (bad preface, non-CONNECT, bad authority, oversized header blocks before and
 * after the SETTINGS exchange, CONTINUATION and RST_STREAM floods), each frame written by hand. Every attack is
 * refused; afterwards the server pod is still reached through the mesh. The in-process tier has the same
 * refusals against a bare HBONE server (test/inprocess/hbone.test.ts); this tier runs them against ztunnel.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { constants } from 'node:http2';
import { CertificateAuthority } from '../../lib/identity/ca.js';
import type { WorkloadCertificate } from '../../lib/identity/certificate.js';
import { makeIdentity } from '../../lib/identity/spiffe.js';
import { DEFAULT_HBONE_CONFIG } from '../../lib/hbone/config.js';
import * as raw from '../../testbed/fixtures/h2-raw.js';
import {
  APP_PORT,
  assertServes,
  certificateFor,
  dialInside,
  drain,
  startHostileMesh,
  tlsInside,
  type HostileMesh,
} from './mesh-fixture.js';

let h: HostileMesh;
let valid: WorkloadCertificate;

before(async () => {
  h = await startHostileMesh('hhbone');
  // A certificate from the mesh's own CA: what it takes to reach the HTTP/2 layer at all.
  valid = await certificateFor(h.ca, makeIdentity('default', 'client', h.mesh.trustDomain));
});

after(async () => {
  if (h) await h.mesh.destroy();
});

const target = (): string => `${h.server.ip}:${APP_PORT}`;

/** An HTTP/2 connection to the server pod's 15008 from the outsider pod, TLS done, nothing HTTP/2 written yet. */
async function h2Connection(cert: WorkloadCertificate = valid): Promise<raw.RawH2Connection> {
  return new raw.RawH2Connection(await tlsInside(h.outsider, h.server.ip, 15008, cert, h.ca.rootCertsPem));
}

const PREFACE = (): Buffer => Buffer.concat([raw.H2_PREFACE, raw.settingsFrame()]);

function connectHeaders(authority: string, extra: readonly (readonly [string, string])[] = []): [string, string][] {
  return [[':method', 'CONNECT'], [':authority', authority], ...extra.map(([k, v]): [string, string] => [k, v])];
}

/** The TLS handshake fails, or the connection closes before any HTTP/2 answer to a CONNECT. */
async function assertNoTunnel(cert: WorkloadCertificate | undefined, trust: readonly string[], what: string): Promise<void> {
  let c: raw.RawH2Connection;
  try {
    c = new raw.RawH2Connection(await tlsInside(h.outsider, h.server.ip, 15008, cert, trust));
  } catch {
    return; // refused during the handshake
  }
  c.write(Buffer.concat([PREFACE(), raw.headersFrames(1, raw.headerBlock(connectHeaders(target())))]));
  const outcome = await c.outcome(1).catch(() => ({}) as raw.StreamOutcome);
  c.close();
  assert.notEqual(outcome.status, 200, `${what}: a tunnel was opened`);
  assert.equal(outcome.status, undefined, `${what}: expected no HTTP answer at all, got ${JSON.stringify(outcome)}`);
}

describe('inbound HBONE refuses what is not mutual TLS from the mesh', () => {
  test('plaintext HTTP and garbage: closed without an HTTP answer', async () => {
    for (const bytes of [
      Buffer.from(`CONNECT ${target()} HTTP/1.1\r\nHost: ${target()}\r\n\r\n`),
      Buffer.concat([raw.H2_PREFACE, raw.settingsFrame()]),
      Buffer.alloc(4096, 0x16),
    ]) {
      const s = dialInside(h.outsider, h.server.ip, 15008);
      await new Promise((r) => s.once('connect', r));
      s.write(bytes);
      const { received } = await drain(s);
      assert.ok(!received.toString('latin1').includes('HTTP/'), 'no HTTP answer in the clear');
    }
    await assertServes(h, 'plaintext on 15008');
  });

  test('TLS without a client certificate, or with an untrusted, expired or foreign-trust-domain one', async () => {
    const rogue = await CertificateAuthority.createSelfSigned({ trustDomain: h.mesh.trustDomain });
    const cases: [string, WorkloadCertificate | undefined][] = [
      ['no certificate', undefined],
      ['untrusted CA', await certificateFor(rogue, makeIdentity('default', 'client', h.mesh.trustDomain))],
      ['expired', await certificateFor(h.ca, makeIdentity('default', 'client', h.mesh.trustDomain), { expired: true })],
      ['another trust domain', await certificateFor(h.ca, makeIdentity('default', 'client', 'evil.example'))],
    ];
    for (const [what, cert] of cases) await assertNoTunnel(cert, h.ca.rootCertsPem, what);
    await assertServes(h, 'bad client certificates');
  });

  test('the raw client itself works: a well-formed CONNECT with a mesh certificate gets 200', async () => {
    const c = await h2Connection();
    c.write(Buffer.concat([PREFACE(), raw.headersFrames(1, raw.headerBlock(connectHeaders(target())))]));
    assert.equal((await c.outcome(1)).status, 200);
    c.close();
  });
});

describe('inbound HBONE refuses malformed HTTP/2', () => {
  test('a bad client preface: GOAWAY and the connection closed', async () => {
    const c = await h2Connection();
    c.write(Buffer.from('PRI * HTTP/1.1\r\n\r\nXX\r\n\r\n'));
    await c.waitFor(() => false, 3000).catch(() => undefined);
    assert.ok(c.closed, 'the connection is closed');
    await assertServes(h, 'bad preface');
  });

  test('non-CONNECT methods and bad authorities: 400', async () => {
    const c = await h2Connection();
    c.write(PREFACE());
    const requests: [string, [string, string][]][] = [
      [
        'GET',
        [
          [':method', 'GET'],
          [':scheme', 'https'],
          [':path', '/'],
          [':authority', target()],
        ],
      ],
      ['no port', connectHeaders(h.server.ip)],
      ['port 0', connectHeaders(`${h.server.ip}:0`)],
      ['port too big', connectHeaders(`${h.server.ip}:99999`)],
      ['not an address', connectHeaders('[::1:80')],
    ];
    let id = 1;
    for (const [what, headers] of requests) {
      c.write(raw.headersFrames(id, raw.headerBlock(headers), { endStream: what === 'GET' }));
      const o = await c.outcome(id);
      assert.ok(o.status === 400 || o.rstCode === constants.NGHTTP2_PROTOCOL_ERROR, `${what}: ${JSON.stringify(o)}`);
      id += 2;
    }
    c.close();
    await assertServes(h, 'non-CONNECT and bad authorities');
  });

  test('an oversized header block in the first flight, before our SETTINGS are acknowledged: 431', async () => {
    const c = await h2Connection();
    const headers = connectHeaders(target(), raw.paddingHeaders(100_000));
    // Preface, SETTINGS and HEADERS in one write, without reading anything: nghttp2 has not applied its limit yet.
    c.write(Buffer.concat([PREFACE(), raw.headersFrames(1, raw.headerBlock(headers))]));
    assert.deepEqual(await c.outcome(1), { status: 431, endStream: true }, 'was: 200 and a tunnel');
    c.close();
    await h.mesh.ztunnelProcess(h.node2).waitForOutput(/HBONE_HEADERS_TOO_LARGE/, { timeoutMs: 5000 }); // logged with its code
    await assertServes(h, 'oversized headers in the first flight');
  });

  test('an oversized header block after the SETTINGS exchange: reset with ENHANCE_YOUR_CALM', async () => {
    const c = await h2Connection();
    c.write(PREFACE());
    await c.waitFor((f) => f.type === raw.FrameType.SETTINGS && (f.flags & raw.Flag.ACK) === 0);
    c.write(raw.settingsAck());
    c.write(raw.frame(raw.FrameType.PING, 0, 0, Buffer.alloc(8, 1)));
    await c.waitFor((f) => f.type === raw.FrameType.PING && (f.flags & raw.Flag.ACK) !== 0);
    const budget = DEFAULT_HBONE_CONFIG.serverMaxHeaderListBytes;
    c.write(raw.headersFrames(1, raw.headerBlock(connectHeaders(target(), raw.paddingHeaders(budget + 1024)))));
    const o = await c.outcome(1);
    assert.ok(o.rstCode === constants.NGHTTP2_ENHANCE_YOUR_CALM || o.status === 431, JSON.stringify(o));
    c.close();
    await assertServes(h, 'oversized headers after the SETTINGS exchange');
  });

  test('a CONTINUATION flood (a header block that never ends): the connection is closed', async () => {
    const c = await h2Connection();
    const frames = [PREFACE(), raw.frame(raw.FrameType.HEADERS, 0, 1, raw.headerBlock([[':method', 'CONNECT']]))];
    for (let i = 0; i < 5000; i++) frames.push(raw.frame(raw.FrameType.CONTINUATION, 0, 1, Buffer.alloc(16, 0x40)));
    c.write(Buffer.concat(frames));
    await c.waitFor(() => false, 3000).catch(() => undefined);
    assert.ok(c.closed, 'closed');
    await assertServes(h, 'CONTINUATION flood');
  });

  test('a rapid-reset flood (CONNECT then RST_STREAM, 2 000 times): handled or cut off, never fatal', async () => {
    const c = await h2Connection();
    const frames = [PREFACE()];
    for (let i = 0; i < 2000; i++) {
      frames.push(raw.headersFrames(2 * i + 1, raw.headerBlock(connectHeaders(target()))));
      frames.push(raw.rstStreamFrame(2 * i + 1, constants.NGHTTP2_CANCEL));
    }
    c.write(Buffer.concat(frames));
    await c.waitFor((f) => f.type === raw.FrameType.GOAWAY, 5000).catch(() => undefined);
    c.close();
    await assertServes(h, 'RST_STREAM flood');
  });

  test('unknown frame types, PING and SETTINGS floods, a window overflow: survived', async () => {
    const floods: [string, Buffer[]][] = [
      ['unknown frame types', Array.from({ length: 500 }, (_, i) => raw.frame(0x20 + (i % 200), 0, 1, Buffer.alloc(8)))],
      ['PING flood', Array.from({ length: 5000 }, () => raw.frame(raw.FrameType.PING, 0, 0, Buffer.alloc(8)))],
      ['SETTINGS flood', Array.from({ length: 5000 }, () => raw.settingsFrame({ 4: 65535 }))],
      ['window overflow', [raw.frame(raw.FrameType.WINDOW_UPDATE, 0, 0, Buffer.from([0x7f, 0xff, 0xff, 0xff]))]],
    ];
    for (const [, frames] of floods) {
      const c = await h2Connection();
      c.write(Buffer.concat([PREFACE(), ...frames]));
      await c.waitFor(() => false, 1000).catch(() => undefined);
      c.close();
    }
    await assertServes(h, 'frame floods');
  });
});
