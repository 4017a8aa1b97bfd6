/**
 * A real ztunnel process fed by a control plane that turns hostile (loopback, no root needed): workload resources
 * that do not decode, that decode but do not convert (a 3-byte address), and a policy with an unknown action.
 * ztunnel must NACK each with its reason, keep the last good version of what it refused, apply the good resources
 * sent beside them, stay connected and ready, and take the next good version. The xDS client's own NACK rules are
 * tested in-process (test/inprocess/xds.test.ts); here it is the whole program, as it runs on a node.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../bench/lib/tools.js';
import { allowAnyCaller } from '../../controller/xds/auth.js';
import { type RunningXdsServer, startXdsServer } from '../../controller/xds/server.js';
import { MemoryResourceSource } from '../../controller/xds/source.js';
import { CertificateAuthority } from '../../lib/identity/ca.js';
import { TypeUrl, istio } from '../../lib/proto/index.js';
import { type XdsResource, makeResource } from '../../lib/xds/resource.js';
import { PROGRAMS, poll } from '../../localmesh/node-runtime.js';
import { childEnv } from '../../testbed/env.js';
import { rawHttp, statusLine } from '../../testbed/fixtures/http-raw.js';
import { silentLogger } from '../../testbed/fixtures/log.js';

const HOST = 'istiod.istio-system.svc';
const uid = (name: string): string => `Kubernetes//Pod/default/${name}`;

/** A workload whose service account is a marker of its version, so the test sees which one ztunnel holds. */
function workload(name: string, marker: string, address: Uint8Array = Uint8Array.of(10, 244, 1, name.charCodeAt(0))): XdsResource {
  return makeResource(
    uid(name),
    istio.workload.Address.encode({
      workload: {
        uid: uid(name),
        name,
        namespace: 'default',
        serviceAccount: marker,
        addresses: [address],
        tunnelProtocol: istio.workload.TunnelProtocol.HBONE,
        node: 'node-2',
        clusterId: 'Kubernetes',
      },
    }).finish(),
  );
}

function policy(name: string, action: number): XdsResource {
  return makeResource(`default/${name}`, istio.security.Authorization.encode({ name, namespace: 'default', action, scope: 1 }).finish());
}

let dir: string;
let xds: RunningXdsServer;
let source: MemoryResourceSource;
let ztunnel: ChildProcess;
let output = '';
const ports = { admin: 0, ready: 0, stats: 0 };
const nacks: string[] = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hostile-xds-'));
  const ca = await CertificateAuthority.createSelfSigned({ trustDomain: 'cluster.local' });
  const serving = await ca.issueServingCertificate([HOST], 3600);
  source = new MemoryResourceSource([
    [TypeUrl.Address, [workload('a', 'a1'), workload('b', 'b1')]],
    [TypeUrl.Authorization, [policy('deny-x', istio.security.Action.DENY)]],
  ]);
  xds = await startXdsServer({
    source,
    authenticate: allowAnyCaller(),
    transport: { kind: 'tls', privateKeyPem: serving.privateKeyPem, certChainPem: serving.certChainPem },
    debounce: { afterMs: 10, maxMs: 100 },
    metrics: { nack: (_type, _proxy, message) => void nacks.push(message) },
    logger: silentLogger(),
  });
  await writeFile(join(dir, 'root.pem'), ca.rootCertsPem.join(''));
  await writeFile(join(dir, 'token'), 'not-checked-by-this-control-plane');
  [ports.admin, ports.ready, ports.stats] = [await freePort(), await freePort(), await freePort()];
  ztunnel = spawn(process.execPath, [PROGRAMS.ztunnel], {
    env: childEnv({
      LOG_LEVEL: 'warn',
      XDS_ADDRESS: `https://127.0.0.1:${xds.port}`,
      XDS_ROOT_CA: join(dir, 'root.pem'),
      ALT_XDS_HOSTNAME: HOST,
      AUTH_TOKEN: join(dir, 'token'),
      FAKE_CA: 'true',
      LOCAL_XDS_PATH: '',
      INPOD_ENABLED: 'false',
      NODE_NAME: 'node-1',
      ZTUNNEL_ADMIN_ADDRESS: `127.0.0.1:${ports.admin}`,
      ZTUNNEL_READINESS_ADDRESS: `127.0.0.1:${ports.ready}`,
      ZTUNNEL_STATS_ADDRESS: `127.0.0.1:${ports.stats}`,
    }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  ztunnel.stdout?.on('data', (c: Buffer) => (output += c.toString()));
  ztunnel.stderr?.on('data', (c: Buffer) => (output += c.toString()));
  await poll('ztunnel synced with the control plane', async () => {
    if (ztunnel.exitCode !== null) throw new Error(`ztunnel exited with ${ztunnel.exitCode}: ${output.slice(-2000)}`);
    return statusLine(await rawHttp({ port: ports.ready }, 'GET /healthz/ready HTTP/1.1\r\nHost: z\r\nConnection: close\r\n\r\n')) === 200;
  });
});

after(async () => {
  ztunnel?.kill('SIGKILL');
  await xds?.close(0);
  if (dir) await rm(dir, { recursive: true, force: true });
});

interface Dump {
  workloads: { uid: string; serviceAccount: string }[];
  policies: { name: string; action: string }[];
}

async function dump(): Promise<Dump> {
  const r = await rawHttp({ port: ports.admin }, 'GET /config_dump HTTP/1.1\r\nHost: z\r\nConnection: close\r\n\r\n');
  return JSON.parse(r.slice(r.indexOf('\r\n\r\n') + 4)) as Dump;
}

const markers = (d: Dump): Record<string, string> => Object.fromEntries(d.workloads.map((w) => [w.uid, w.serviceAccount]));

async function pushAndAwaitNack(typeUrl: string, count: number): Promise<void> {
  const before = nacks.length;
  xds.xds.push({ typeUrls: new Set([typeUrl]), reason: 'hostile' });
  await poll('ztunnel NACKed the response', async () => nacks.length >= before + count);
}

async function assertStillServing(after: string): Promise<void> {
  assert.equal(ztunnel.exitCode, null, `${after}: ztunnel exited: ${output.slice(-2000)}`);
  const ready = await rawHttp({ port: ports.ready }, 'GET /healthz/ready HTTP/1.1\r\nHost: z\r\nConnection: close\r\n\r\n');
  assert.equal(statusLine(ready), 200, `${after}: ${ready}`);
}

describe('ztunnel fed malformed xDS', () => {
  test('starts with the good state', async () => {
    assert.deepEqual(markers(await dump()), { [uid('a')]: 'a1', [uid('b')]: 'b1' });
  });

  test('NACKs a workload that does not decode, keeps its last good version, applies its sibling', async () => {
    source.set(TypeUrl.Address, [makeResource(uid('a'), Uint8Array.from([0xff, 0xff, 0xff, 0x0f])), workload('b', 'b2')]);
    await pushAndAwaitNack(TypeUrl.Address, 1);
    await poll('the sibling applied', async () => markers(await dump())[uid('b')] === 'b2');
    assert.equal(markers(await dump())[uid('a')], 'a1', 'the refused resource keeps its last good version');
    assert.match(nacks.at(-1) ?? '', new RegExp(uid('a')));
    await assertStillServing('undecodable workload');
  });

  test('NACKs a workload that decodes but does not convert (a 3-byte address), keeping the last good one', async () => {
    source.set(TypeUrl.Address, [workload('a', 'a-bad', Uint8Array.of(10, 0, 0)), workload('b', 'b2')]);
    await pushAndAwaitNack(TypeUrl.Address, 1);
    assert.equal(markers(await dump())[uid('a')], 'a1');
    assert.match(nacks.at(-1) ?? '', /addresses/);
    await assertStillServing('unconvertible workload');
  });

  test('NACKs a policy with an unknown action and keeps the last good policy', async () => {
    source.set(TypeUrl.Authorization, [policy('deny-x', 99)]);
    await pushAndAwaitNack(TypeUrl.Authorization, 1);
    assert.deepEqual(
      (await dump()).policies.map((p) => [p.name, p.action]),
      [['deny-x', 'Deny']],
    );
    await assertStillServing('unknown policy action');
  });

  test('takes the next good versions', async () => {
    source.set(TypeUrl.Address, [workload('a', 'a3'), workload('b', 'b2')]);
    source.set(TypeUrl.Authorization, [policy('deny-x', istio.security.Action.ALLOW)]);
    xds.xds.push({ typeUrls: new Set([TypeUrl.Address, TypeUrl.Authorization]), reason: 'recovered' });
    await poll('the good versions applied', async () => {
      const d = await dump();
      return markers(d)[uid('a')] === 'a3' && d.policies[0]?.action === 'Allow';
    });
    await assertStillServing('recovery');
  });
});
