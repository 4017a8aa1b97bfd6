/**
 * Plugged-in CA material end to end: workload certificates from a multi-level CA (RSA root, RSA or ECDSA
 * intermediate) carrying real mutual TLS between an HBONE client and server; peers with istiod-shaped leaves
 * (empty subject, identity only in a critical URI SAN); material made with openssl as Istio's tools/certs make it;
 * and ztunnel's FAKE_CA_DIR and the controller's CACERTS_DIR taking the same loader.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { loadCertificateAuthority } from '../../controller/ca/ca-material.js';
import { HboneError, HboneErrorCode } from '../../lib/hbone/errors.js';
import { HbonePool } from '../../lib/hbone/pool.js';
import type { HboneServer } from '../../lib/hbone/server.js';
import { CertificateAuthority } from '../../lib/identity/ca.js';
import type { WorkloadCertificate } from '../../lib/identity/certificate.js';
import { CaMaterialError, IdentityErrorCode } from '../../lib/identity/errors.js';
import { LocalCaProvider } from '../../lib/identity/local-ca-provider.js';
import { type Identity, formatSpiffeId } from '../../lib/identity/spiffe.js';
import { x509 } from '../../lib/identity/x509.js';
import { freePort } from '../../bench/lib/tools.js';
import {
  type KeyEncoding,
  type TestCa,
  type TestKeyKind,
  cacertsOf,
  istiodStyleCertificate,
  keyPem,
  opensslCacerts,
  testCaCertificate,
  writeCacerts,
} from '../../testbed/fixtures/ca-material.js';
import { connectToTarget, startHboneServer } from '../../testbed/fixtures/hbone.js';
import { captureLogger } from '../../testbed/fixtures/log.js';
import { type EchoServer, readAll, startEchoServer } from '../../testbed/fixtures/net.js';
import { ids } from '../../testbed/fixtures/pki.js';
import { childEnv } from '../../testbed/env.js';

const TD = 'cluster.local';
const ZTUNNEL = join(process.cwd(), 'dist', 'ztunnel', 'main.js');
const dirs: string[] = [];
let echo: EchoServer;
let rsaRoot: TestCa;

before(async () => {
  echo = await startEchoServer();
  rsaRoot = await testCaCertificate('rsa-2048');
});

after(async () => {
  await echo.close();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

/** A CA loaded from a cacerts directory: `signing` issued by the root, cert-chain.pem = signing + root. */
async function pluggedCa(kind: TestKeyKind, encoding: KeyEncoding): Promise<{ ca: CertificateAuthority; intermediate: TestCa }> {
  const intermediate = await testCaCertificate(kind, { issuer: rsaRoot, pathLength: 0 });
  const dir = await writeCacerts(cacertsOf(intermediate, [rsaRoot], encoding));
  dirs.push(dir);
  return { ca: await CertificateAuthority.fromDirectory({ trustDomain: TD, dir }), intermediate };
}

/** Certificates the way ztunnel's FAKE_CA gets them: key, CSR, signCsr, chain check. */
function certificateFor(ca: CertificateAuthority, identity: Identity): Promise<WorkloadCertificate> {
  return new LocalCaProvider(ca).fetch(identity);
}

/**
 * Opens a tunnel from `client` to an HBONE server presenting `server` and echoes random bytes through it.
 * Resolves with the identity the server saw; rejects with the HboneError of a refused handshake.
 */
async function tunnel(client: WorkloadCertificate, server: WorkloadCertificate, expected: Identity = ids.server): Promise<Identity> {
  let seen: Identity | undefined;
  const hbone: { server: HboneServer; port: number } = await startHboneServer(server, {
    handler: async (req, signal) => {
      seen = req.peerIdentity;
      return connectToTarget(req, signal);
    },
  });
  const pool = new HbonePool();
  try {
    const { stream } = await pool.connect({
      address: '127.0.0.1',
      port: hbone.port,
      expectedIdentities: [expected],
      authority: `127.0.0.1:${echo.port}`,
      certificate: client,
    });
    const payload = randomBytes(64 * 1024);
    const back = readAll(stream);
    stream.end(payload);
    assert.ok((await back).equals(payload), 'the tunnel carries the bytes intact');
    assert.ok(seen, 'the server handler saw the request');
    return seen;
  } finally {
    pool.close();
    await hbone.server.close();
  }
}

function refusedHandshake(e: unknown): boolean {
  return e instanceof HboneError && ([HboneErrorCode.TLS_FAILED, HboneErrorCode.SESSION_FAILED] as string[]).includes(e.code);
}

describe('HBONE with workload certificates from a plugged-in multi-level CA', () => {
  const hierarchies: ReadonlyArray<[string, TestKeyKind, KeyEncoding]> = [
    ['RSA root -> RSA intermediate (PKCS#1 key)', 'rsa-2048', 'pkcs1'],
    ['RSA root -> ECDSA P-256 intermediate (SEC1 key)', 'ec-p256', 'sec1'],
  ];
  for (const [what, kind, encoding] of hierarchies) {
    test(`verifies both peers over mTLS with ${what}`, async () => {
      const { ca, intermediate } = await pluggedCa(kind, encoding);
      const client = await certificateFor(ca, ids.client);
      const server = await certificateFor(ca, ids.server);
      assert.deepEqual(server.certChainPem.slice(1), [intermediate.pem], 'each side presents leaf + intermediate');
      assert.deepEqual(server.rootCertsPem, [rsaRoot.pem], 'each side trusts only the root');
      const seen = await tunnel(client, server);
      assert.equal(formatSpiffeId(seen), formatSpiffeId(ids.client));
    });
  }

  test('refuses, in both directions, a peer whose chain ends in a different root', async () => {
    const { ca } = await pluggedCa('rsa-2048', 'pkcs1');
    const otherRoot = await testCaCertificate('rsa-2048', { subject: 'O=Istio, CN=Root CA' }); // same name, other key
    const otherIntermediate = await testCaCertificate('ec-p256', { issuer: otherRoot, pathLength: 0 });
    const otherDir = await writeCacerts(cacertsOf(otherIntermediate, [otherRoot], 'sec1'));
    dirs.push(otherDir);
    const other = await CertificateAuthority.fromDirectory({ trustDomain: TD, dir: otherDir });
    const client = await certificateFor(ca, ids.client);
    const server = await certificateFor(ca, ids.server);
    const rogueServer = await certificateFor(other, ids.server);
    // The rogue client trusts our root, so only the server's verification can refuse it.
    const rogueClient = { ...(await certificateFor(other, ids.client)), rootCertsPem: server.rootCertsPem };
    await assert.rejects(tunnel(client, rogueServer), (e: unknown) => e instanceof HboneError && e.code === HboneErrorCode.TLS_FAILED);
    await assert.rejects(tunnel(rogueClient, server), refusedHandshake);
  });
});

describe('peers with leaves shaped as istiod issues them', () => {
  let ca: CertificateAuthority;
  let intermediate: TestCa;
  before(async () => {
    ({ ca, intermediate } = await pluggedCa('rsa-2048', 'pkcs1'));
  });

  test('the fixture leaf has an empty subject and the identity only in a critical URI SAN', async () => {
    const cert = await istiodStyleCertificate(intermediate, ids.server, [intermediate], [rsaRoot]);
    const leaf = new x509.X509Certificate(cert.certChainPem[0] as string);
    assert.equal(leaf.subject, '');
    const san = leaf.getExtension(x509.SubjectAlternativeNameExtension);
    assert.equal(san?.critical, true);
    assert.deepEqual(san?.names.toJSON(), [{ type: 'url', value: formatSpiffeId(ids.server) }]);
  });

  test('a server presenting one passes the client identity check, and a wrong expected identity still fails it', async () => {
    const server = await istiodStyleCertificate(intermediate, ids.server, [intermediate], [rsaRoot]);
    const client = await certificateFor(ca, ids.client);
    assert.equal(formatSpiffeId(await tunnel(client, server)), formatSpiffeId(ids.client));
    await assert.rejects(
      tunnel(client, server, ids.other),
      (e: unknown) => e instanceof HboneError && e.code === HboneErrorCode.IDENTITY_MISMATCH,
    );
  });

  test('a client presenting one is accepted by the server with the identity of its URI SAN', async () => {
    const client = await istiodStyleCertificate(intermediate, ids.client, [intermediate], [rsaRoot]);
    const server = await certificateFor(ca, ids.server);
    assert.equal(formatSpiffeId(await tunnel(client, server)), formatSpiffeId(ids.client));
  });
});

describe('material made with openssl as Istio tools/certs make it', () => {
  test('loads (root key PKCS#8, intermediate key PKCS#1) and its workload certificates carry HBONE', async () => {
    const dir = await opensslCacerts();
    dirs.push(dir);
    const ca = await CertificateAuthority.fromDirectory({ trustDomain: TD, dir });
    assert.equal(ca.signingKeyDescription, 'RSA 2048 (PKCS#1)');
    const client = await certificateFor(ca, ids.client);
    const server = await certificateFor(ca, ids.server);
    assert.equal(server.certChainPem.length, 2, 'leaf + the openssl-made intermediate');
    assert.equal(formatSpiffeId(await tunnel(client, server)), formatSpiffeId(ids.client));
  });
});

interface Exit {
  readonly code: number | null;
  readonly output: string;
}

/** Starts the ztunnel program on FAKE_CA_DIR; resolves when it serves its admin, or when it exits. */
async function ztunnelOn(dir: string): Promise<{ ready: boolean; exit: Promise<Exit>; stop(): void }> {
  const admin = await freePort();
  const config = join(dir, 'local-config.yaml');
  await writeFile(config, `trustDomain: ${TD}\n`);
  let output = '';
  const child = spawn(process.execPath, [ZTUNNEL], {
    env: childEnv({
      LOG_LEVEL: 'info',
      FAKE_CA: 'true',
      FAKE_CA_DIR: dir,
      LOCAL_XDS_PATH: config,
      XDS_ADDRESS: '',
      INPOD_ENABLED: 'false',
      ZTUNNEL_ADMIN_ADDRESS: `127.0.0.1:${admin}`,
      ZTUNNEL_READINESS_ADDRESS: `127.0.0.1:${await freePort()}`,
      ZTUNNEL_STATS_ADDRESS: `127.0.0.1:${await freePort()}`,
    }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr.on('data', (c: Buffer) => (output += c.toString()));
  const exit = new Promise<Exit>((resolve) => child.once('exit', (code) => resolve({ code, output })));
  const adminUp = async (): Promise<boolean> => {
    for (;;) {
      const up = await new Promise<boolean>((resolve) => {
        const req = request({ host: '127.0.0.1', port: admin, path: '/config_dump' }, (res) => {
          res.resume();
          resolve(res.statusCode === 200);
        });
        req.on('error', () => resolve(false));
        req.end();
      });
      if (up) return true;
      if (child.exitCode !== null) return false;
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const ready = await Promise.race([adminUp(), exit.then(() => false)]);
  return { ready, exit, stop: () => child.kill('SIGKILL') };
}

describe("ztunnel's FAKE_CA_DIR and the controller's CACERTS_DIR", () => {
  test('both start on an RSA intermediate with a PKCS#1 key', async () => {
    const intermediate = await testCaCertificate('rsa-2048', { issuer: rsaRoot, pathLength: 0 });
    const dir = await writeCacerts(cacertsOf(intermediate, [rsaRoot], 'pkcs1'));
    dirs.push(dir);
    const log = captureLogger('info');
    const ca = await loadCertificateAuthority(
      new KubeConfig(),
      { cacertsDir: dir, systemNamespace: 'istio-system', trustDomain: TD },
      log.logger,
    );
    assert.deepEqual(ca.rootCertsPem, [rsaRoot.pem]);
    assert.ok(
      log.lines.some((l) => l.msg === 'using the plugged-in CA' && l.key === 'RSA 2048 (PKCS#1)'),
      JSON.stringify(log.lines),
    );
    const z = await ztunnelOn(dir);
    z.stop();
    assert.ok(z.ready, (await z.exit).output);
  });

  test('both refuse a key that is not the key of ca-cert.pem, with the same code and file', async () => {
    const intermediate = await testCaCertificate('rsa-2048', { issuer: rsaRoot, pathLength: 0 });
    const dir = await writeCacerts({ ...cacertsOf(intermediate, [rsaRoot], 'pkcs1'), caKey: keyPem(rsaRoot.keys, 'pkcs8') });
    dirs.push(dir);
    await assert.rejects(
      loadCertificateAuthority(
        new KubeConfig(),
        { cacertsDir: dir, systemNamespace: 'istio-system', trustDomain: TD },
        captureLogger().logger,
      ),
      (err: unknown) =>
        err instanceof CaMaterialError && err.code === IdentityErrorCode.CA_KEY_MISMATCH && err.file === join(dir, 'ca-key.pem'),
    );
    const z = await ztunnelOn(dir);
    const { code, output } = await z.exit;
    assert.equal(z.ready, false);
    assert.equal(code, 1);
    assert.match(output, new RegExp(`\\[${IdentityErrorCode.CA_KEY_MISMATCH}\\] ${join(dir, 'ca-key.pem')}`));
  });
});
