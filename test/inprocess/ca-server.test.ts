/** The CA over real gRPC and TLS on loopback: our server, our client, and raw hostile requests. */
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer as createTlsServer, connect as tlsConnect, type TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { hasErrorCode } from '../../lib/errors.js';
import { istio } from '../../lib/proto/index.js';
import { CertificateAuthority } from '../../lib/identity/ca.js';
import { CaClient, tokenFromFile, type CaClientOptions } from '../../lib/identity/ca-client.js';
import {
  allowRequestedIdentity,
  caServingTransport,
  startCaServer,
  type CaAuthorizer,
  type CaRequestContext,
  type RunningCaServer,
} from '../../lib/identity/ca-server.js';
import { CaError, CaErrorCode, CaRefusedError } from '../../lib/identity/errors.js';
import { createCsr, generateKeyPair } from '../../lib/identity/csr.js';
import { type Identity, formatSpiffeId, makeIdentity } from '../../lib/identity/spiffe.js';
import { captureLogger } from '../../testbed/fixtures/log.js';
import { cacertsOf, rsaCsr, testCaCertificate, writeCacerts } from '../../testbed/fixtures/ca-material.js';

const TD = 'cluster.local';
const CA_HOST = 'istiod.istio-system.svc';
const sleep = makeIdentity('default', 'sleep', TD);
const admin = makeIdentity('default', 'admin', TD);
const CREATE = '/istio.v1.auth.IstioCertificateService/CreateCertificate';

let ca: CertificateAuthority;
let server: RunningCaServer;
let rootPem: string;
const log = captureLogger('info');
/** What the authorizer does for the current test; every context it sees is recorded. */
let decide: (ctx: CaRequestContext) => Promise<Identity>;
const seen: CaRequestContext[] = [];
const authorizer: CaAuthorizer = {
  authorize(ctx) {
    seen.push(ctx);
    return decide(ctx);
  },
};
const clients: CaClient[] = [];

function client(overrides: Partial<CaClientOptions> = {}): CaClient {
  const c = new CaClient({
    address: `127.0.0.1:${server.port}`,
    transport: { kind: 'tls', rootCertPem: rootPem, serverName: CA_HOST },
    token: () => 'token-abc',
    clusterId: 'c1',
    ttlSeconds: 3600,
    timeoutMs: 5000,
    ...overrides,
  });
  clients.push(c);
  return c;
}

/** A CreateCertificate call with hand-made request bytes; answers the response or the status. */
function rawCall(body: Uint8Array): Promise<{ response?: istio.v1.auth.IstioCertificateResponse; error?: grpc.ServiceError }> {
  const c = new grpc.Client(`127.0.0.1:${server.port}`, grpc.credentials.createSsl(Buffer.from(rootPem)), {
    'grpc.ssl_target_name_override': CA_HOST,
    'grpc.default_authority': CA_HOST,
  });
  return new Promise((resolve) => {
    c.makeUnaryRequest(
      CREATE,
      (b: Buffer) => b,
      (b: Buffer) => b,
      Buffer.from(body),
      new grpc.Metadata(),
      { deadline: Date.now() + 5000 },
      (err, res) => {
        c.close();
        if (err) resolve({ error: err });
        else resolve({ response: istio.v1.auth.IstioCertificateResponse.decode(res ?? Buffer.alloc(0)) });
      },
    );
  });
}

function encodeRequest(req: istio.v1.auth.IstioCertificateRequest.$Properties): Uint8Array {
  return istio.v1.auth.IstioCertificateRequest.encode(req).finish();
}

async function csrFor(identity: Identity): Promise<string> {
  const { keys } = await generateKeyPair();
  return createCsr(identity, keys);
}

function refusalLines(): Array<Record<string, unknown>> {
  return log.lines.filter((l) => l.msg === 'CA refused a certificate request' || l.msg === 'CA failed to handle a certificate request');
}

function isRefusal(code: grpc.status, detail?: RegExp) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof CaRefusedError, `expected CaRefusedError, got ${String(err)}`);
    assert.ok(hasErrorCode(err, CaErrorCode.REFUSED));
    assert.equal(err.grpcCode, code, `status ${grpc.status[err.grpcCode]}: ${err.detail}`);
    if (detail) assert.match(err.detail, detail);
    return true;
  };
}

before(async () => {
  ca = await CertificateAuthority.createSelfSigned({ trustDomain: TD });
  rootPem = ca.rootCertsPem.join('');
  server = await startCaServer({ ca, authorizer, logger: log.logger, transport: await caServingTransport(ca, [CA_HOST]) });
});

after(async () => {
  for (const c of clients) c.close();
  await server.close(1000);
});

beforeEach(() => {
  decide = allowRequestedIdentity(TD).authorize;
  seen.length = 0;
});

describe('CA server and client over TLS', () => {
  it('issues a caller the certificate for its identity, with the requested lifetime, chaining to the CA root', async () => {
    const wc = await client().fetch(sleep);
    assert.equal(formatSpiffeId(wc.identity), formatSpiffeId(sleep));
    assert.deepEqual(wc.rootCertsPem, ca.rootCertsPem);
    const leaf = new X509Certificate(wc.certChainPem[0] as string);
    const root = new X509Certificate(rootPem);
    assert.ok(leaf.checkIssued(root) && leaf.verify(root.publicKey));
    assert.ok(leaf.checkPrivateKey(createPrivateKey(wc.privateKeyPem)));
    const ttl = (wc.notAfter.getTime() - Date.now()) / 1000;
    assert.ok(Math.abs(ttl - 3600) < 10, `ttl ${ttl}`);
  });

  it('gives the authorizer the bearer token, cluster id, peer address and the identity the CSR asks for', async () => {
    await client().fetch(sleep);
    assert.equal(seen.length, 1);
    const ctx = seen[0] as CaRequestContext;
    assert.deepEqual(ctx.metadata.authorization, ['Bearer token-abc']);
    assert.deepEqual(ctx.metadata.clusterid, ['c1']);
    assert.match(ctx.peerAddress, /127\.0\.0\.1/);
    assert.equal(formatSpiffeId(ctx.requestedIdentity), formatSpiffeId(sleep));
    assert.equal(ctx.impersonatedIdentity, undefined);
    assert.ok(Object.isFrozen(ctx) && Object.isFrozen(ctx.metadata));
  });

  it('answers leaf first and the root bundle last, every element ending in a newline', async () => {
    const { response, error } = await rawCall(encodeRequest({ csr: await csrFor(sleep) }));
    assert.equal(error, undefined);
    const chain = response?.certChain ?? [];
    assert.equal(chain.length, 2);
    assert.ok(chain.every((pem) => pem.endsWith('\n')));
    assert.equal(chain[1], rootPem);
  });

  it('treats a negative validity_duration as unset and issues the CA default lifetime', async () => {
    const { response } = await rawCall(encodeRequest({ csr: await csrFor(sleep), validityDuration: -1 }));
    const leaf = new X509Certificate(response?.certChain?.[0] ?? '');
    const ttl = (Date.parse(leaf.validTo) - Date.now()) / 1000;
    assert.ok(Math.abs(ttl - ca.defaultTtlSeconds) < 10, `ttl ${ttl}`);
  });

  it('refuses a CSR whose SAN differs from the identity the authorizer allows, and the client gets a typed PERMISSION_DENIED', async () => {
    decide = () => Promise.resolve(sleep);
    const before = refusalLines().length;
    await assert.rejects(client().fetch(admin), isRefusal(grpc.status.PERMISSION_DENIED, /sa\/admin.*sa\/sleep/));
    const lines = refusalLines().slice(before);
    assert.equal(lines.length, 1);
    assert.equal(lines[0]?.code, 'IDENTITY_SAN_MISMATCH');
    assert.equal(lines[0]?.requested, formatSpiffeId(admin));
  });

  it('passes UNAUTHENTICATED from the authorizer through to the client', async () => {
    // The shape a TokenReview-based authorizer takes: read the bearer token from the metadata, refuse without one.
    decide = (ctx) => {
      const auth = ctx.metadata.authorization?.[0];
      if (auth !== 'Bearer good-token') return Promise.reject(new CaError(CaErrorCode.UNAUTHENTICATED, 'token rejected by TokenReview'));
      return Promise.resolve(ctx.requestedIdentity);
    };
    const before = refusalLines().length;
    await assert.rejects(client().fetch(sleep), isRefusal(grpc.status.UNAUTHENTICATED, /token rejected/));
    await assert.rejects(client({ token: () => undefined }).fetch(sleep), isRefusal(grpc.status.UNAUTHENTICATED));
    assert.deepEqual(
      refusalLines()
        .slice(before)
        .map((l) => l.code),
      ['CA_UNAUTHENTICATED', 'CA_UNAUTHENTICATED'],
    );
    const ok = await client({ token: () => 'good-token' }).fetch(sleep);
    assert.equal(formatSpiffeId(ok.identity), formatSpiffeId(sleep));
  });

  it('passes PERMISSION_DENIED from the authorizer through, e.g. for another trust domain', async () => {
    await assert.rejects(
      client().fetch(makeIdentity('default', 'sleep', 'other.td')),
      isRefusal(grpc.status.PERMISSION_DENIED, /other\.td/),
    );
  });

  it('delivers ImpersonatedIdentity metadata to the authorizer (node proxy asking for a pod identity)', async () => {
    const wc = await client({ impersonate: true }).fetch(admin);
    assert.equal(formatSpiffeId(wc.identity), formatSpiffeId(admin));
    assert.equal(seen.length, 1);
    assert.equal(formatSpiffeId(seen[0]?.impersonatedIdentity as Identity), formatSpiffeId(admin));
  });

  it('refuses a CSR that does not match the impersonated identity', async () => {
    const body = encodeRequest({
      csr: await csrFor(admin),
      metadata: { fields: { ImpersonatedIdentity: { stringValue: formatSpiffeId(sleep) } } },
    });
    const { error } = await rawCall(body);
    assert.equal(error?.code, grpc.status.PERMISSION_DENIED);
  });

  const malformedImpersonation: ReadonlyArray<[string, istio.v1.auth.IstioCertificateRequest.$Properties['metadata']]> = [
    ['a string that is not a SPIFFE ID', { fields: { ImpersonatedIdentity: { stringValue: 'default/sleep' } } }],
    ['an empty string', { fields: { ImpersonatedIdentity: { stringValue: '' } } }],
    ['a number', { fields: { ImpersonatedIdentity: { numberValue: 7 } } }],
    ['a nested struct', { fields: { ImpersonatedIdentity: { structValue: { fields: {} } } } }],
  ];
  for (const [what, metadata] of malformedImpersonation) {
    it(`answers INVALID_ARGUMENT when ImpersonatedIdentity is ${what}`, async () => {
      const before = refusalLines().length;
      const { error } = await rawCall(encodeRequest({ csr: await csrFor(sleep), metadata }));
      assert.equal(error?.code, grpc.status.INVALID_ARGUMENT, error?.details);
      assert.match(error?.details ?? '', /ImpersonatedIdentity/);
      assert.equal(refusalLines().slice(before)[0]?.code, CaErrorCode.BAD_REQUEST);
      assert.equal(seen.length, 0, 'the authorizer is not consulted for a malformed request');
    });
  }

  it('answers INTERNAL without details when the authorizer fails unexpectedly, and logs the cause', async () => {
    decide = () => Promise.reject(new Error('connection to the API server lost: secret=hunter2'));
    const { error } = await rawCall(encodeRequest({ csr: await csrFor(sleep) }));
    assert.equal(error?.code, grpc.status.INTERNAL);
    assert.doesNotMatch(error?.details ?? '', /hunter2/);
    const line = refusalLines().at(-1);
    assert.equal(line?.level, 50);
    assert.match(String(line?.err), /API server lost/);
  });

  it('survives hostile requests, refusing each with a status and one log line, and still serves afterwards', async () => {
    const hostile: ReadonlyArray<[string, Uint8Array, grpc.status]> = [
      ['random bytes', randomBytes(512), grpc.status.INVALID_ARGUMENT],
      ['a truncated message', encodeRequest({ csr: 'x'.repeat(100) }).subarray(0, 20), grpc.status.INVALID_ARGUMENT],
      ['an empty request', new Uint8Array(0), grpc.status.INVALID_ARGUMENT],
      ['garbage CSR text', encodeRequest({ csr: 'not a csr at all' }), grpc.status.INVALID_ARGUMENT],
      ['an RSA CSR', encodeRequest({ csr: await rsaCsr(formatSpiffeId(sleep)) }), grpc.status.INVALID_ARGUMENT],
      [
        'a 40 KiB CSR',
        encodeRequest({ csr: `-----BEGIN CERTIFICATE REQUEST-----\n${'A'.repeat(40 * 1024)}\n-----END CERTIFICATE REQUEST-----\n` }),
        grpc.status.INVALID_ARGUMENT,
      ],
    ];
    for (const [what, body, code] of hostile) {
      const before = refusalLines().length;
      const { error } = await rawCall(body);
      assert.equal(error?.code, code, `${what}: ${error?.details ?? 'no error'}`);
      assert.equal(refusalLines().length - before, 1, `${what}: one log line`);
      assert.match(String(refusalLines().at(-1)?.code), /^(CA|IDENTITY)_/);
    }
    // Over the request size budget: grpc-js refuses it before our handler runs.
    const { error: tooBig } = await rawCall(encodeRequest({ csr: 'A'.repeat(256 * 1024) }));
    assert.equal(tooBig?.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.equal(seen.length, 0);
    const wc = await client().fetch(sleep);
    assert.equal(formatSpiffeId(wc.identity), formatSpiffeId(sleep));
  });

  it('reports CA_UNAVAILABLE when the CA certificate does not chain to the configured root', async () => {
    const stranger = await CertificateAuthority.createSelfSigned({ trustDomain: TD });
    const c = client({ transport: { kind: 'tls', rootCertPem: stranger.rootCertsPem.join(''), serverName: CA_HOST } });
    await assert.rejects(c.fetch(sleep), (err: unknown) => hasErrorCode(err, CaErrorCode.UNAVAILABLE));
    assert.equal(seen.length, 0);
  });

  it('reports CA_UNAVAILABLE when nothing listens at the CA address', async () => {
    const probe = createTlsServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const c = client({ address: `127.0.0.1:${port}`, timeoutMs: 2000 });
    await assert.rejects(
      c.fetch(sleep),
      (err: unknown) => hasErrorCode(err, CaErrorCode.UNAVAILABLE) && /CA_ADDRESS/.test((err as Error).message),
    );
  });

  it('reads the token file on every fetch, and reports CA_NO_TOKEN when it is missing', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ca-token-'));
    try {
      const file = join(dir, 'istio-token');
      const c = client({ token: tokenFromFile(file) });
      await writeFile(file, 'first\n');
      await c.fetch(sleep);
      await writeFile(file, 'second');
      await c.fetch(sleep);
      assert.deepEqual(
        seen.map((s) => s.metadata.authorization?.[0]),
        ['Bearer first', 'Bearer second'],
      );
      await rm(file);
      await assert.rejects(c.fetch(sleep), (err: unknown) => hasErrorCode(err, CaErrorCode.NO_TOKEN));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('issues certificates that OpenSSL accepts for mutual TLS in both directions', async () => {
    const serverCert = await client().fetch(makeIdentity('default', 'server', TD));
    const clientCert = await client().fetch(sleep);
    const tlsServer = createTlsServer({
      key: serverCert.privateKeyPem,
      cert: serverCert.certChainPem.join(''),
      ca: serverCert.rootCertsPem.join(''),
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.3',
    });
    const peers: string[] = [];
    tlsServer.on('secureConnection', (s: TLSSocket) => {
      peers.push(s.getPeerCertificate().subjectaltname ?? '');
      s.end();
    });
    await new Promise<void>((r) => tlsServer.listen(0, '127.0.0.1', r));
    try {
      const port = (tlsServer.address() as AddressInfo).port;
      const socket = tlsConnect({
        host: '127.0.0.1',
        port,
        key: clientCert.privateKeyPem,
        cert: clientCert.certChainPem.join(''),
        ca: clientCert.rootCertsPem.join(''),
        // SPIFFE certificates carry no DNS name; the chain is what OpenSSL validates here.
        checkServerIdentity: () => undefined,
      });
      await new Promise<void>((resolve, reject) => {
        socket.once('secureConnect', resolve);
        socket.once('error', reject);
      });
      assert.equal(socket.authorized, true, String(socket.authorizationError));
      assert.match(socket.getPeerCertificate().subjectaltname ?? '', /spiffe:\/\/cluster\.local\/ns\/default\/sa\/server/);
      await new Promise<void>((r) => socket.once('close', () => r()));
      assert.deepEqual(peers, ['URI:spiffe://cluster.local/ns/default/sa/sleep']);
    } finally {
      await new Promise<void>((r) => tlsServer.close(() => r()));
    }
  });

  it('close() lets in-flight calls finish for the grace period, then cuts them', async () => {
    const stuck = await startCaServer({
      ca,
      authorizer: { authorize: () => new Promise<Identity>(() => undefined) },
      logger: log.logger,
      transport: { kind: 'insecure' },
    });
    const c = client({ address: `127.0.0.1:${stuck.port}`, transport: { kind: 'insecure' }, timeoutMs: 10_000 });
    const outcome = c.fetch(sleep).then(
      () => undefined,
      (err: unknown) => err,
    );
    await new Promise((r) => setTimeout(r, 100));
    const started = Date.now();
    await stuck.close(200);
    assert.ok(Date.now() - started < 2000, 'close() returned after the grace period');
    assert.ok(hasErrorCode(await outcome, CaErrorCode.UNAVAILABLE), 'the cut call surfaces as CA_UNAVAILABLE');
  });

  it('also serves plaintext for tests when asked to', async () => {
    const plain = await startCaServer({ ca, authorizer: allowRequestedIdentity(TD), logger: log.logger, transport: { kind: 'insecure' } });
    try {
      const c = client({ address: `127.0.0.1:${plain.port}`, transport: { kind: 'insecure' } });
      const wc = await c.fetch(sleep);
      assert.equal(formatSpiffeId(wc.identity), formatSpiffeId(sleep));
    } finally {
      await plain.close(500);
    }
  });
});

describe('CA server on a plugged-in RSA intermediate', () => {
  it('serves TLS that a client holding only the root verifies, and issues leaf, intermediate, root', async () => {
    const root = await testCaCertificate('rsa-2048');
    const intermediate = await testCaCertificate('rsa-2048', { issuer: root, pathLength: 0 });
    const dir = await writeCacerts(cacertsOf(intermediate, [root], 'pkcs1'));
    const plugged = await CertificateAuthority.fromDirectory({ trustDomain: TD, dir });
    const rsaServer = await startCaServer({
      ca: plugged,
      authorizer: allowRequestedIdentity(TD),
      logger: log.logger,
      transport: await caServingTransport(plugged, [CA_HOST]),
    });
    try {
      const wc = await client({
        address: `127.0.0.1:${rsaServer.port}`,
        transport: { kind: 'tls', rootCertPem: root.pem, serverName: CA_HOST },
      }).fetch(sleep);
      assert.deepEqual(wc.certChainPem.slice(1), [intermediate.pem]);
      assert.deepEqual(wc.rootCertsPem, [root.pem]);
      const leaf = new X509Certificate(wc.certChainPem[0] as string);
      assert.ok(leaf.checkIssued(new X509Certificate(intermediate.pem)) && leaf.verify(new X509Certificate(intermediate.pem).publicKey));
    } finally {
      await rsaServer.close(500);
      await rm(dir, { recursive: true, force: true });
    }
  });
});
