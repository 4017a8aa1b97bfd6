import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, randomBytes } from 'node:crypto';
import { hasErrorCode } from '../../lib/errors.js';
import { CertificateAuthority } from '../../lib/identity/ca.js';
import { identitiesOfCertificate, workloadCertificateFromChain } from '../../lib/identity/certificate.js';
import { createCsr, generateKeyPair, verifyCsr } from '../../lib/identity/csr.js';
import { DEFAULT_WORKLOAD_CERT_TTL_SECONDS } from '../../lib/identity/defaults.js';
import { IdentityErrorCode } from '../../lib/identity/errors.js';
import { formatSpiffeId, makeIdentity } from '../../lib/identity/spiffe.js';
import { x509 } from '../../lib/identity/x509.js';
import { p256CsrWithSans, p384Csr, rsaCsr, tamperedCsr } from '../../testbed/fixtures/ca-material.js';

const TD = 'cluster.local';
const sleep = makeIdentity('default', 'sleep', TD);
const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

async function csrFor(identity = sleep): Promise<{ csr: string; privateKeyPem: string }> {
  const { keys, privateKeyPem } = await generateKeyPair();
  return { csr: await createCsr(identity, keys), privateKeyPem };
}

/** Each certificate in `chain` (leaf first) is issued and signed by the next; the last is self-signed. */
function assertChainVerifies(pems: readonly string[]): void {
  const certs = pems.map((p) => new X509Certificate(p));
  for (let i = 0; i < certs.length; i++) {
    const cert = certs[i] as X509Certificate;
    const issuer = certs[i + 1] ?? cert;
    assert.ok(cert.checkIssued(issuer), `certificate ${i} is not issued by certificate ${i + 1}`);
    assert.ok(cert.verify(issuer.publicKey), `certificate ${i} signature does not verify with its issuer's key`);
  }
  assert.ok(certs.at(-1)?.ca, 'chain must end in a CA certificate');
}

const ttlOf = (pem: string): number => {
  const c = new X509Certificate(pem);
  return (Date.parse(c.validTo) - Date.now()) / 1000;
};

describe('certificate authority', () => {
  let ca: CertificateAuthority;
  before(async () => {
    ca = await CertificateAuthority.createSelfSigned({ trustDomain: TD, maxTtlSeconds: 7200 });
  });

  it('signs a P-256 CSR into leaf + root bundle that verifies up to the root', async () => {
    const { csr } = await csrFor();
    const chain = await ca.signCsr(csr, sleep);
    assert.equal(chain.length, 2);
    assert.deepEqual(chain.at(-1), ca.rootCertsPem.join(''));
    assertChainVerifies(chain);
    const leaf = new X509Certificate(chain[0] as string);
    assert.equal(leaf.ca, false);
    assert.deepEqual(identitiesOfCertificate(leaf).map(formatSpiffeId), [formatSpiffeId(sleep)]);
  });

  it('issues leaves with exactly one critical URI SAN, server+client EKU and an empty subject', async () => {
    const { csr } = await csrFor();
    const [leafPem] = await ca.signCsr(csr, sleep);
    const leaf = new x509.X509Certificate(leafPem as string);
    const san = leaf.getExtension(x509.SubjectAlternativeNameExtension);
    assert.ok(san, 'leaf has a SAN extension');
    assert.equal(san.critical, true);
    assert.deepEqual(san.names.toJSON(), [{ type: 'url', value: 'spiffe://cluster.local/ns/default/sa/sleep' }]);
    const eku = leaf.getExtension(x509.ExtendedKeyUsageExtension);
    assert.deepEqual([...(eku?.usages ?? [])].map(String).sort(), [SERVER_AUTH, CLIENT_AUTH].sort());
    assert.equal(leaf.subject, '');
    assert.equal(leaf.getExtension(x509.BasicConstraintsExtension)?.ca, false);
  });

  it('honours the requested lifetime, defaults it when absent, and caps it at the maximum', async () => {
    const { csr } = await csrFor();
    const [oneHour] = await ca.signCsr(csr, sleep, { ttlSeconds: 3600 });
    assert.ok(Math.abs(ttlOf(oneHour as string) - 3600) < 5, `ttl ${ttlOf(oneHour as string)}`);
    const [capped] = await ca.signCsr(csr, sleep, { ttlSeconds: 10 * 365 * 86_400 });
    assert.ok(Math.abs(ttlOf(capped as string) - 7200) < 5, `ttl ${ttlOf(capped as string)}`);
    const roomy = await CertificateAuthority.createSelfSigned({ trustDomain: TD });
    const [byDefault] = await roomy.signCsr(csr, sleep);
    assert.ok(Math.abs(ttlOf(byDefault as string) - DEFAULT_WORKLOAD_CERT_TTL_SECONDS) < 5);
    assert.equal(ca.effectiveTtlSeconds(-5), ca.defaultTtlSeconds);
    assert.equal(ca.effectiveTtlSeconds(Number.NaN), ca.defaultTtlSeconds);
  });

  it('refuses a CSR whose SAN differs from the identity the caller may have, naming both', async () => {
    const { csr } = await csrFor(makeIdentity('default', 'admin', TD));
    await assert.rejects(ca.signCsr(csr, sleep), (err: unknown) => {
      assert.ok(hasErrorCode(err, IdentityErrorCode.SAN_MISMATCH));
      assert.match((err as Error).message, /spiffe:\/\/cluster\.local\/ns\/default\/sa\/admin/);
      assert.match((err as Error).message, /spiffe:\/\/cluster\.local\/ns\/default\/sa\/sleep/);
      return true;
    });
  });

  const badCsrs: ReadonlyArray<[string, () => Promise<string>]> = [
    ['an RSA key', () => rsaCsr(formatSpiffeId(sleep))],
    ['a P-384 key', () => p384Csr(formatSpiffeId(sleep))],
    ['no SAN', () => p256CsrWithSans([])],
    ['a DNS SAN instead of a URI SAN', () => p256CsrWithSans([{ type: 'dns', value: 'sleep.default.svc' }])],
    [
      'two URI SANs',
      () =>
        p256CsrWithSans([
          { type: 'url', value: formatSpiffeId(sleep) },
          { type: 'url', value: 'spiffe://cluster.local/ns/default/sa/x' },
        ]),
    ],
    ['a URI SAN that is not a SPIFFE identity', () => p256CsrWithSans([{ type: 'url', value: 'https://example.com/' }])],
    ['a broken signature', async () => tamperedCsr((await csrFor()).csr)],
    ['an empty string', () => Promise.resolve('')],
    ['garbage text', () => Promise.resolve('hello, I am a certificate')],
    [
      'random bytes in a PEM envelope',
      () =>
        Promise.resolve(`-----BEGIN CERTIFICATE REQUEST-----\n${randomBytes(300).toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`),
    ],
    ['a certificate instead of a CSR', () => Promise.resolve(ca.rootCertsPem[0] ?? '')],
    [
      'a huge input',
      () => Promise.resolve(`-----BEGIN CERTIFICATE REQUEST-----\n${'A'.repeat(1024 * 1024)}\n-----END CERTIFICATE REQUEST-----\n`),
    ],
  ];
  for (const [what, make] of badCsrs) {
    it(`refuses a CSR with ${what} as IDENTITY_BAD_CSR`, async () => {
      const csr = await make();
      await assert.rejects(ca.signCsr(csr, sleep), (err: unknown) => hasErrorCode(err, IdentityErrorCode.BAD_CSR));
      await assert.rejects(verifyCsr(csr), (err: unknown) => hasErrorCode(err, IdentityErrorCode.BAD_CSR));
    });
  }

  it('answers a chain that the client turns into a workload certificate with key, chain and roots', async () => {
    const { csr, privateKeyPem } = await csrFor();
    const wc = workloadCertificateFromChain(sleep, privateKeyPem, await ca.signCsr(csr, sleep, { ttlSeconds: 600 }));
    assert.equal(wc.certChainPem.length, 1);
    assert.deepEqual(wc.rootCertsPem, ca.rootCertsPem);
    assert.ok(wc.notAfter.getTime() - wc.notBefore.getTime() >= 600_000);
  });
});
