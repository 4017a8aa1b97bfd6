/**
 * Plugged-in CA material as users bring it (Istio's `cacerts`: ca-cert.pem, ca-key.pem, cert-chain.pem,
 * root-cert.pem), loaded the way ztunnel's FAKE_CA_DIR and the controller's CACERTS_DIR load it:
 * CertificateAuthority.fromDirectory. RSA and ECDSA P-256 keys in every encoding Istio's tooling writes,
 * chains of several levels, and each way the material can be wrong.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, generateKeyPairSync } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { CertificateAuthority } from '../../lib/identity/ca.js';
import { createCsr, generateKeyPair } from '../../lib/identity/csr.js';
import { CaMaterialError, IdentityErrorCode } from '../../lib/identity/errors.js';
import { makeIdentity } from '../../lib/identity/spiffe.js';
import { x509 } from '../../lib/identity/x509.js';
import {
  type CacertsFiles,
  type KeyEncoding,
  type TestCa,
  cacertsOf,
  keyPem,
  pluggedInCaFiles,
  testCaCertificate,
  writeCacerts,
} from '../../testbed/fixtures/ca-material.js';

const TD = 'cluster.local';
const sleep = makeIdentity('default', 'sleep', TD);
const dirs: string[] = [];

async function load(files: CacertsFiles): Promise<CertificateAuthority> {
  const dir = await writeCacerts(files);
  dirs.push(dir);
  return CertificateAuthority.fromDirectory({ trustDomain: TD, dir });
}

async function signedChain(ca: CertificateAuthority): Promise<string[]> {
  const { keys } = await generateKeyPair();
  return ca.signCsr(await createCsr(sleep, keys), sleep);
}

/** Each certificate (leaf first) is issued and signed by the next; the last is a self-signed root. */
function assertChainVerifies(pems: readonly string[]): void {
  const certs = pems.map((p) => new X509Certificate(p));
  certs.forEach((cert, i) => {
    const issuer = certs[i + 1] ?? cert;
    assert.ok(cert.checkIssued(issuer), `certificate ${i} is not issued by certificate ${i + 1}`);
    assert.ok(cert.verify(issuer.publicKey), `certificate ${i} does not verify with its issuer's key`);
  });
}

/** The signature algorithm of a certificate as [algorithm, hash], e.g. ['RSASSA-PKCS1-v1_5', 'SHA-256']. */
function signatureOf(pem: string): [string, string] {
  const alg = new x509.X509Certificate(pem).signatureAlgorithm as { name: string; hash?: { name: string } | string };
  return [alg.name, typeof alg.hash === 'string' ? alg.hash : (alg.hash?.name ?? '')];
}

async function refuses(files: CacertsFiles, code: string, file: string, message: RegExp): Promise<void> {
  const dir = await writeCacerts(files);
  dirs.push(dir);
  await assert.rejects(CertificateAuthority.fromDirectory({ trustDomain: TD, dir }), (err: unknown) => {
    assert.ok(err instanceof CaMaterialError, `expected a CaMaterialError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    assert.equal(err.file, join(dir, file), err.message);
    assert.match(err.message, message);
    return true;
  });
}

let rsaRoot: TestCa;
let rsaIntermediate: TestCa;
let ecIntermediate: TestCa;
let ecRoot: TestCa;

before(async () => {
  rsaRoot = await testCaCertificate('rsa-2048');
  rsaIntermediate = await testCaCertificate('rsa-2048', { issuer: rsaRoot, pathLength: 0 });
  ecIntermediate = await testCaCertificate('ec-p256', { issuer: rsaRoot, pathLength: 0 });
  ecRoot = await testCaCertificate('ec-p256');
});

after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe('plugged-in CA keys', () => {
  const cases: ReadonlyArray<[string, () => TestCa, KeyEncoding, RegExp, [string, string]]> = [
    ['an RSA intermediate, key in PKCS#1', () => rsaIntermediate, 'pkcs1', /^RSA 2048 \(PKCS#1\)$/, ['RSASSA-PKCS1-v1_5', 'SHA-256']],
    ['an RSA intermediate, key in PKCS#8', () => rsaIntermediate, 'pkcs8', /^RSA 2048 \(PKCS#8\)$/, ['RSASSA-PKCS1-v1_5', 'SHA-256']],
    ['an ECDSA P-256 intermediate, key in SEC1', () => ecIntermediate, 'sec1', /^ECDSA P-256 \(SEC1\)$/, ['ECDSA', 'SHA-256']],
    ['an ECDSA P-256 intermediate, key in PKCS#8', () => ecIntermediate, 'pkcs8', /^ECDSA P-256 \(PKCS#8\)$/, ['ECDSA', 'SHA-256']],
  ];
  for (const [what, signing, encoding, description, signature] of cases) {
    it(`signs P-256 leaves with ${what}: leaf, intermediate, root, and the chain verifies`, async () => {
      const ca = await load(cacertsOf(signing(), [rsaRoot], encoding));
      assert.match(ca.signingKeyDescription, description);
      const chain = await signedChain(ca);
      assert.deepEqual(chain.slice(1), [signing().pem, rsaRoot.pem]);
      assertChainVerifies(chain);
      const leaf = new X509Certificate(chain[0] as string);
      assert.equal(leaf.publicKey.asymmetricKeyType, 'ec');
      assert.equal(leaf.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
      assert.deepEqual(signatureOf(chain[0] as string), signature);
    });
  }

  it('reads a SEC1 key that openssl ecparam wrote with its EC PARAMETERS block first', async () => {
    const files = cacertsOf(ecIntermediate, [rsaRoot], 'sec1');
    const ca = await load({
      ...files,
      caKey: `-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n${files.caKey}`,
    });
    assertChainVerifies(await signedChain(ca));
  });

  it('signs with an RSA 4096 root used directly as the CA (no cert-chain.pem): leaf and root only', async () => {
    const root = await testCaCertificate('rsa-4096');
    const ca = await load({ caCert: root.pem, caKey: keyPem(root.keys, 'pkcs1'), rootCert: root.pem });
    assert.equal(ca.signingKeyDescription, 'RSA 4096 (PKCS#1)');
    const chain = await signedChain(ca);
    assert.deepEqual(chain.slice(1), [root.pem]);
    assertChainVerifies(chain);
  });

  const unsupported: ReadonlyArray<[string, () => string, RegExp]> = [
    [
      'RSA of 1024 bits',
      () => generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs1', format: 'pem' }).toString(),
      /RSA of 1024 bits; use RSA of 2048 to 4096 bits or ECDSA P-256/,
    ],
    [
      'ECDSA P-384',
      () => generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey.export({ type: 'sec1', format: 'pem' }).toString(),
      /curve secp384r1/,
    ],
    ['Ed25519', () => generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), /type ed25519/],
    [
      'RSA-PSS',
      () => generateKeyPairSync('rsa-pss', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
      /type rsa-pss/,
    ],
  ];
  for (const [what, key, message] of unsupported) {
    it(`refuses a ${what} key as IDENTITY_CA_KEY_UNSUPPORTED, naming ca-key.pem`, async () => {
      await refuses(
        { ...cacertsOf(rsaIntermediate, [rsaRoot], 'pkcs8'), caKey: key() },
        IdentityErrorCode.CA_KEY_UNSUPPORTED,
        'ca-key.pem',
        message,
      );
    });
  }

  const unreadable: ReadonlyArray<[string, () => string, RegExp]> = [
    [
      'an encrypted PKCS#8 key',
      () =>
        generateKeyPairSync('ec', { namedCurve: 'P-256' })
          .privateKey.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'secret' })
          .toString(),
      /encrypted.*openssl pkey/,
    ],
    [
      'an encrypted PKCS#1 key',
      () =>
        generateKeyPairSync('rsa', { modulusLength: 2048 })
          .privateKey.export({ type: 'pkcs1', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'secret' })
          .toString(),
      /encrypted/,
    ],
    ['a certificate instead of a key', () => rsaRoot.pem, /holds a CERTIFICATE PEM block but no private key/],
    ['text that is not PEM', () => 'not a key', /is not PEM/],
    [
      'a PKCS#8 label around garbage',
      () => '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n',
      /cannot read the PKCS#8 private key/,
    ],
  ];
  for (const [what, key, message] of unreadable) {
    it(`refuses ${what} in ca-key.pem as IDENTITY_BAD_CA_MATERIAL`, async () => {
      await refuses(
        { ...cacertsOf(rsaIntermediate, [rsaRoot], 'pkcs8'), caKey: key() },
        IdentityErrorCode.BAD_CA_MATERIAL,
        'ca-key.pem',
        message,
      );
    });
  }

  it('refuses a key that is not the key of ca-cert.pem, of the same type or another', async () => {
    const files = cacertsOf(rsaIntermediate, [rsaRoot], 'pkcs1');
    const mismatch = /RSA 2048 \(PKCS#1\) key is not the key of .*ca-cert\.pem "O=Istio, CN=Intermediate CA"/;
    await refuses({ ...files, caKey: keyPem(rsaRoot.keys, 'pkcs1') }, IdentityErrorCode.CA_KEY_MISMATCH, 'ca-key.pem', mismatch);
    await refuses(
      { ...files, caKey: keyPem(ecIntermediate.keys, 'sec1') },
      IdentityErrorCode.CA_KEY_MISMATCH,
      'ca-key.pem',
      /ECDSA P-256 \(SEC1\) key is not the key/,
    );
  });
});

describe('plugged-in CA certificates', () => {
  it('refuses a ca-cert.pem that is not a CA (basicConstraints CA:false)', async () => {
    const notCa = await testCaCertificate('rsa-2048', { issuer: rsaRoot, ca: false, keyUsage: x509.KeyUsageFlags.digitalSignature });
    await refuses(
      cacertsOf(notCa, [rsaRoot], 'pkcs1'),
      IdentityErrorCode.CA_CERT_NOT_CA,
      'ca-cert.pem',
      /may not issue certificates: it has no basicConstraints CA:true; give the CA's certificate/,
    );
  });

  it('refuses a CA certificate whose keyUsage lacks keyCertSign', async () => {
    const noSign = await testCaCertificate('ec-p256', {
      issuer: rsaRoot,
      keyUsage: x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.cRLSign,
    });
    await refuses(
      cacertsOf(noSign, [rsaRoot], 'sec1'),
      IdentityErrorCode.CA_CERT_NOT_CA,
      'ca-cert.pem',
      /may not issue certificates: its keyUsage lacks keyCertSign/,
    );
  });

  it('accepts a CA certificate without a keyUsage extension, as `openssl req -x509` makes them', async () => {
    const bare = await testCaCertificate('ec-p256', { issuer: rsaRoot, keyUsage: null });
    assertChainVerifies(await signedChain(await load(cacertsOf(bare, [rsaRoot], 'pkcs8'))));
  });

  it('refuses an expired intermediate as IDENTITY_CA_CERT_EXPIRED', async () => {
    const old = await testCaCertificate('ec-p256', {
      issuer: rsaRoot,
      notBefore: new Date(Date.now() - 2 * 86_400_000),
      notAfter: new Date(Date.now() - 86_400_000),
    });
    await refuses(cacertsOf(old, [rsaRoot], 'sec1'), IdentityErrorCode.CA_CERT_EXPIRED, 'ca-cert.pem', /not now; renew it/);
  });

  it('refuses ca-cert.pem or root-cert.pem without a certificate, and a missing file', async () => {
    const files = cacertsOf(rsaIntermediate, [rsaRoot], 'pkcs1');
    await refuses({ ...files, caCert: '' }, IdentityErrorCode.BAD_CA_MATERIAL, 'ca-cert.pem', /holds no PEM certificate/);
    await refuses({ ...files, rootCert: 'nothing' }, IdentityErrorCode.BAD_CA_MATERIAL, 'root-cert.pem', /holds no PEM certificate/);
    await refuses({ ...files, certChain: 'nothing' }, IdentityErrorCode.BAD_CA_MATERIAL, 'cert-chain.pem', /holds no PEM certificate/);
    await assert.rejects(
      CertificateAuthority.fromDirectory({ trustDomain: TD, dir: join(dirs[0] ?? '/', 'does-not-exist') }),
      (err: unknown) => {
        assert.ok(err instanceof CaMaterialError);
        assert.equal(err.code, IdentityErrorCode.BAD_CA_MATERIAL);
        assert.match(err.file, /does-not-exist\/ca-(cert|key)\.pem$|does-not-exist\/root-cert\.pem$/);
        return true;
      },
    );
  });
});

describe('plugged-in CA chains', () => {
  it('honours a four-level cert-chain.pem: leaf, signing CA, the intermediate above it, root bundle last', async () => {
    const upper = await testCaCertificate('rsa-2048', { issuer: rsaRoot, subject: 'O=Istio, CN=Upper CA', pathLength: 1 });
    const signing = await testCaCertificate('ec-p256', { issuer: upper, subject: 'O=Istio, CN=Cluster CA', pathLength: 0 });
    const chain = await signedChain(await load(cacertsOf(signing, [upper, rsaRoot], 'sec1')));
    assert.deepEqual(chain.slice(1), [signing.pem, upper.pem, rsaRoot.pem]);
    assertChainVerifies(chain);
  });

  it('puts the signing certificate after the leaf when cert-chain.pem is absent or lacks it', async () => {
    const files = cacertsOf(rsaIntermediate, [rsaRoot], 'pkcs1');
    const { certChain: _, ...withoutChain } = files;
    assert.deepEqual((await signedChain(await load(withoutChain))).slice(1), [rsaIntermediate.pem, rsaRoot.pem]);
    assert.deepEqual((await signedChain(await load({ ...files, certChain: rsaRoot.pem }))).slice(1), [rsaIntermediate.pem, rsaRoot.pem]);
  });

  it('refuses a chain with a missing intermediate, naming the issuer to add', async () => {
    const upper = await testCaCertificate('rsa-2048', { issuer: rsaRoot, subject: 'O=Istio, CN=Upper CA' });
    const signing = await testCaCertificate('ec-p256', { issuer: upper, subject: 'O=Istio, CN=Cluster CA' });
    await refuses(
      { ...cacertsOf(signing, [upper, rsaRoot], 'sec1'), certChain: signing.pem + rsaRoot.pem },
      IdentityErrorCode.CA_CHAIN_BROKEN,
      'ca-cert.pem',
      /"O=Istio, CN=Cluster CA" is issued by "O=Istio, CN=Upper CA", which is neither in .*cert-chain\.pem nor a root of root-cert\.pem/,
    );
  });

  it('refuses a ca-cert.pem that does not chain to root-cert.pem (another root)', async () => {
    await refuses(
      { ...cacertsOf(rsaIntermediate, [rsaRoot], 'pkcs1'), rootCert: ecRoot.pem, certChain: rsaIntermediate.pem },
      IdentityErrorCode.CA_CHAIN_BROKEN,
      'ca-cert.pem',
      /add the missing intermediate/,
    );
  });

  it('refuses a chain that breaks a pathlen constraint above the signing certificate', async () => {
    const upper = await testCaCertificate('rsa-2048', { issuer: rsaRoot, subject: 'O=Istio, CN=Upper CA', pathLength: 0 });
    const signing = await testCaCertificate('ec-p256', { issuer: upper, subject: 'O=Istio, CN=Cluster CA' });
    await refuses(cacertsOf(signing, [upper, rsaRoot], 'sec1'), IdentityErrorCode.CA_CHAIN_BROKEN, 'cert-chain.pem', /pathlen:0/);
  });

  it('refuses an intermediate in cert-chain.pem that is not a CA', async () => {
    const upper = await testCaCertificate('rsa-2048', { issuer: rsaRoot, subject: 'O=Istio, CN=Upper CA', ca: false, keyUsage: null });
    const signing = await testCaCertificate('ec-p256', { issuer: upper, subject: 'O=Istio, CN=Cluster CA' });
    await refuses(
      cacertsOf(signing, [upper, rsaRoot], 'sec1'),
      IdentityErrorCode.CA_CERT_NOT_CA,
      'cert-chain.pem',
      /"O=Istio, CN=Upper CA" issued .* but may not issue certificates: it has no basicConstraints CA:true/,
    );
  });

  it('loads the ECDSA root -> intermediate fixture whose cert-chain.pem ends with the root, sending the root once', async () => {
    const files = await pluggedInCaFiles(TD);
    dirs.push(files.dir);
    const chain = await signedChain(await CertificateAuthority.fromDirectory({ trustDomain: TD, dir: files.dir }));
    assert.deepEqual(chain.slice(1), [files.intermediatePem, files.rootPem]);
  });
});

describe('a self-signed CA written to a directory', () => {
  it('loads back through the same checks (FAKE_CA_DIR of the local mesh)', async () => {
    const ca = await CertificateAuthority.createSelfSignedWithPem({ trustDomain: TD });
    const loaded = await load({ caCert: ca.rootPem, caKey: ca.keyPem, rootCert: ca.rootPem, certChain: ca.rootPem });
    assert.equal(loaded.signingKeyDescription, 'ECDSA P-256 (PKCS#8)');
    const chain = await signedChain(loaded);
    assert.equal(chain.length, 2, 'a root signing directly sends leaf and root bundle');
    assertChainVerifies(chain);
  });
});
