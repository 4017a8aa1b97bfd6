/**
 * The controller program on a real kube-apiserver (loopback), its three ports under attack: debug 8080 and
 * monitoring 15014 (HTTP/1.1, lib/http) and xDS + CA 15012 (gRPC over TLS). After each attack the controller is
 * still ready, still exports metrics, and still serves workload discovery to a ztunnel-shaped client with a real
 * service-account token. The gRPC handlers' own refusals (garbage requests, unknown types, floods, bad CSRs) are
 * attacked in-process: test/inprocess/xds.test.ts and test/inprocess/ca-server.test.ts.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { constants } from 'node:http2';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect as netConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';
import { freePort } from '../../bench/lib/tools.js';
import { tokenFromFile } from '../../lib/identity/ca-client.js';
import { TypeUrl } from '../../lib/proto/index.js';
import { XdsClient } from '../../lib/xds/client.js';
import { ztunnelNode } from '../../lib/xds/node.js';
import { PROGRAMS, poll } from '../../localmesh/node-runtime.js';
import { type ApiServer, createNamespace, createServiceAccount, installCrds, startApiServer } from '../../testbed/kubeapi/index.js';
import * as raw from '../../testbed/fixtures/h2-raw.js';
import { childEnv } from '../../testbed/env.js';
import { rawHttp, statusLine } from '../../testbed/fixtures/http-raw.js';

const SYSTEM = 'istio-system';
let api: ApiServer;
let controller: ChildProcess;
let output = '';
let dir: string;
let rootCertPem = '';
let tokenPath: string;
const ports = { grpc: 0, http: 0, monitoring: 0 };

before(async () => {
  if (process.getuid?.() !== 0) throw new Error('the hostile tier runs kube-apiserver and must run as root');
  dir = await mkdtemp(join(tmpdir(), 'hostile-controller-'));
  api = await startApiServer({ name: `hctl${process.pid % 1000}` });
  await installCrds(api.kubeConfig);
  await createNamespace(api.kubeConfig, SYSTEM);
  await createServiceAccount(api.kubeConfig, SYSTEM, 'ztunnel');
  [ports.grpc, ports.http, ports.monitoring] = [await freePort(), await freePort(), await freePort()];
  controller = spawn(process.execPath, [PROGRAMS.controller, '--kubeconfig', api.kubeconfigPath], {
    env: childEnv({
      POD_NAMESPACE: SYSTEM,
      POD_NAME: 'controller-hostile',
      SECURE_GRPC_ADDR: `127.0.0.1:${ports.grpc}`,
      HTTP_ADDR: `127.0.0.1:${ports.http}`,
      MONITORING_ADDR: `127.0.0.1:${ports.monitoring}`,
      LOG_LEVEL: 'warn',
    }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  controller.stdout?.on('data', (c: Buffer) => (output = (output + c.toString()).slice(-500_000)));
  controller.stderr?.on('data', (c: Buffer) => (output = (output + c.toString()).slice(-500_000)));
  await poll('controller ready', async () => {
    if (controller.exitCode !== null) throw new Error(`controller exited with ${controller.exitCode}: ${output.slice(-2000)}`);
    return statusLine(await get(ports.http, '/ready')) === 200;
  });
  const core = api.kubeConfig.makeApiClient(CoreV1Api);
  await poll('root certificate published', async () => {
    const cm = await core.readNamespacedConfigMap({ name: 'istio-ca-root-cert', namespace: SYSTEM }).catch(() => undefined);
    rootCertPem = cm?.data?.['root-cert.pem'] ?? '';
    return rootCertPem !== '';
  });
  tokenPath = join(dir, 'token');
  await writeFile(tokenPath, (await api.createServiceAccountToken(SYSTEM, 'ztunnel', { audiences: ['istio-ca'] })).token);
});

after(async () => {
  controller?.kill('SIGKILL');
  await api?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function get(port: number, path: string): Promise<string> {
  return rawHttp({ port }, `GET ${path} HTTP/1.1\r\nHost: c\r\nConnection: close\r\n\r\n`);
}

/** Still ready, still exporting metrics, still serving workload discovery to a ztunnel with a real token. */
async function assertServes(after: string): Promise<void> {
  assert.equal(controller.exitCode, null, `${after}: the controller exited: ${output.slice(-2000)}`);
  assert.equal(statusLine(await get(ports.http, '/ready')), 200, `${after}: /ready`);
  const metrics = await get(ports.monitoring, '/metrics');
  assert.equal(statusLine(metrics), 200, `${after}: /metrics`);
  assert.match(metrics, /istio_build\{component="pilot"/);
  const xds = new XdsClient({
    address: `127.0.0.1:${ports.grpc}`,
    transport: { kind: 'tls', rootCertPem, serverName: `istiod.${SYSTEM}.svc` },
    node: ztunnelNode({ podName: 'probe', podNamespace: SYSTEM, nodeName: 'node-1' }),
    token: tokenFromFile(tokenPath),
    watches: [
      { typeUrl: TypeUrl.Address, handler: () => undefined },
      { typeUrl: TypeUrl.Authorization, handler: () => undefined },
    ],
  });
  xds.start();
  try {
    await xds.whenSynced();
  } finally {
    xds.close();
  }
}

describe('controller debug 8080 and monitoring 15014', () => {
  for (const which of ['http', 'monitoring'] as const) {
    test(`${which}: bad targets, garbage, an oversized head or body are refused, never fatal`, async () => {
      const port = ports[which];
      for (const target of ['//', '*', 'http://[', 'example.com:443', '/debug/syncz?%zz']) {
        const r = await rawHttp({ port }, `GET ${target} HTTP/1.1\r\nHost: c\r\nConnection: close\r\n\r\n`);
        assert.ok([200, 400, 404].includes(statusLine(r)), `${target}: ${r.slice(0, 100)}`);
      }
      assert.equal(statusLine(await rawHttp({ port }, Buffer.alloc(256, 0xaa))), 400, 'garbage');
      assert.equal(statusLine(await rawHttp({ port }, `GET /ready HTTP/1.1\r\nX: ${'y'.repeat(20_000)}\r\n\r\n`)), 431, 'head');
      assert.equal(statusLine(await rawHttp({ port }, 'POST /ready HTTP/1.1\r\nHost: c\r\nContent-Length: 50000000\r\n\r\n')), 413, 'body');
      await assertServes(`${which} attacks`);
    });
  }

  test('a flood of idle connections on 8080 is capped and leaves 15014 and 15012 alone', async () => {
    const held: Socket[] = [];
    try {
      for (let i = 0; i < 300; i++) {
        const s = netConnect(ports.http, '127.0.0.1');
        s.on('error', () => {});
        held.push(s);
        await new Promise<void>((r) => {
          s.once('connect', () => r());
          s.once('close', () => r());
        });
      }
      assert.equal(statusLine(await get(ports.monitoring, '/metrics')), 200);
      // While the flood is held: a client sees 'connect' once the kernel has the connection, possibly before the
      // controller accepted (and dropped) it.
      await poll('the drops logged with their code', async () => /HTTP_CONNECTION_LIMIT/.test(output));
    } finally {
      for (const s of held) s.destroy();
    }
    await assertServes('8080 connection flood');
  });
});

describe('controller xDS and CA 15012', () => {
  async function tls(): Promise<raw.RawH2Connection> {
    return raw.RawH2Connection.connectTls({ host: '127.0.0.1', port: ports.grpc, servername: `istiod.${SYSTEM}.svc` });
  }

  test('plaintext, TLS garbage and a bad HTTP/2 preface close the connection', async () => {
    for (const bytes of [Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), Buffer.alloc(2048, 0x16)]) {
      const r = await rawHttp({ port: ports.grpc }, bytes, { waitMs: 3000 });
      assert.ok(!r.includes('HTTP/1.1 200'), 'no answer in the clear');
    }
    const c = await tls();
    c.write(Buffer.from('PRI * HTTP/1.1\r\n\r\nXX\r\n\r\n'));
    await c.waitFor(() => false, 3000).catch(() => undefined);
    assert.ok(c.closed);
    await assertServes('15012 plaintext and garbage');
  });

  test('gRPC requests to unknown methods, with bad headers, oversized header blocks and reset floods are refused', async () => {
    const c = await tls();
    const preface = Buffer.concat([raw.H2_PREFACE, raw.settingsFrame()]);
    const grpcHeaders = (path: string, extra: [string, string][] = []): [string, string][] => [
      [':method', 'POST'],
      [':scheme', 'https'],
      [':path', path],
      [':authority', 'istiod'],
      ['content-type', 'application/grpc'],
      ['te', 'trailers'],
      ...extra,
    ];
    const frames = [
      preface,
      raw.headersFrames(1, raw.headerBlock(grpcHeaders('/no.such.Service/Method')), { endStream: true }),
      raw.headersFrames(
        3,
        raw.headerBlock([
          [':method', 'CONNECT'],
          [':authority', '10.0.0.1:80'],
        ]),
      ),
      raw.headersFrames(
        5,
        raw.headerBlock(
          grpcHeaders('/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources', raw.paddingHeaders(100_000)),
        ),
      ),
    ];
    for (let i = 0; i < 500; i++) {
      frames.push(raw.headersFrames(7 + 2 * i, raw.headerBlock(grpcHeaders('/istio.v1.auth.IstioCertificateService/CreateCertificate'))));
      frames.push(raw.rstStreamFrame(7 + 2 * i, constants.NGHTTP2_CANCEL));
    }
    c.write(Buffer.concat(frames));
    const unknown = await c.outcome(1).catch(() => ({}) as raw.StreamOutcome);
    // gRPC answers every call with HTTP 200 and the status in its trailers (UNIMPLEMENTED here), or resets it.
    assert.ok(unknown.status === 200 || unknown.rstCode !== undefined, `an unknown method is answered: ${JSON.stringify(unknown)}`);
    await c.waitFor(() => false, 2000).catch(() => undefined);
    c.close();
    await assertServes('15012 malformed gRPC');
  });
});
