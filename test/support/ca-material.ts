/** Test PKI: CSRs the CA must refuse, and a root -> intermediate hierarchy in Istio's plugged-in CA file layout. */
import { webcrypto } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EC_SIGNING_ALGORITHM, generateKeyPair } from '../../lib/identity/csr.js';
import { type CryptoKeyPair, x509 } from '../../lib/identity/x509.js';

type GeneralName = { type: 'url' | 'dns'; value: string };

async function csrFor(keys: CryptoKeyPair, signingAlgorithm: webcrypto.Algorithm | webcrypto.EcdsaParams, names: readonly GeneralName[]): Promise<string> {
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    keys,
    signingAlgorithm,
    extensions: names.length > 0 ? [new x509.SubjectAlternativeNameExtension([...names], true)] : [],
  });
  return csr.toString('pem');
}

/** A well-formed CSR with an RSA-2048 key (the CA only accepts ECDSA P-256). */
export async function rsaCsr(spiffeId: string): Promise<string> {
  const keys = (await webcrypto.subtle.generateKey(
    { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
    true,
    ['sign', 'verify'],
  )) as CryptoKeyPair;
  return csrFor(keys, { name: 'RSASSA-PKCS1-v1_5' }, [{ type: 'url', value: spiffeId }]);
}

/** A well-formed CSR with an ECDSA P-384 key (right algorithm, wrong curve). */
export async function p384Csr(spiffeId: string): Promise<string> {
  const keys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-384' }, true, ['sign', 'verify'])) as CryptoKeyPair;
  return csrFor(keys, { name: 'ECDSA', hash: 'SHA-384' }, [{ type: 'url', value: spiffeId }]);
}

/** A P-256 CSR with arbitrary SANs (none, DNS, several). */
export async function p256CsrWithSans(names: readonly GeneralName[]): Promise<string> {
  const { keys } = await generateKeyPair();
  return csrFor(keys, EC_SIGNING_ALGORITHM, names);
}

/** The same CSR with one byte of its signature flipped. */
export function tamperedCsr(pem: string): string {
  const der = Buffer.from(pem.replace(/-----(BEGIN|END) CERTIFICATE REQUEST-----/g, '').replace(/\s+/g, ''), 'base64');
  der[der.length - 3] = (der[der.length - 3] ?? 0) ^ 0x01;
  const b64 = der.toString('base64').replace(/(.{64})/g, '$1\n');
  return `-----BEGIN CERTIFICATE REQUEST-----\n${b64}\n-----END CERTIFICATE REQUEST-----\n`;
}

export interface PluggedCa {
  readonly dir: string;
  readonly rootPem: string;
  readonly intermediatePem: string;
}

/** root (self-signed) -> intermediate, written as ca-cert.pem, ca-key.pem, cert-chain.pem, root-cert.pem. */
export async function pluggedInCaFiles(trustDomain: string): Promise<PluggedCa> {
  const root = await generateKeyPair();
  const inter = await generateKeyPair();
  const now = Date.now();
  const rootCert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: `O=${trustDomain}, CN=Test Root CA`,
    notBefore: new Date(now - 3_600_000),
    notAfter: new Date(now + 10 * 365 * 86_400_000),
    keys: root.keys,
    signingAlgorithm: EC_SIGNING_ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(root.keys.publicKey),
    ],
  });
  const interCert = await x509.X509CertificateGenerator.create({
    serialNumber: '02',
    subject: `O=${trustDomain}, CN=Test Intermediate CA`,
    issuer: rootCert.subject,
    notBefore: new Date(now - 3_600_000),
    notAfter: new Date(now + 5 * 365 * 86_400_000),
    publicKey: inter.keys.publicKey,
    signingKey: root.keys.privateKey,
    signingAlgorithm: EC_SIGNING_ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(inter.keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(root.keys.publicKey),
    ],
  });
  const rootPem = `${rootCert.toString('pem')}\n`;
  const intermediatePem = `${interCert.toString('pem')}\n`;
  const dir = await mkdtemp(join(tmpdir(), 'plugged-ca-'));
  await writeFile(join(dir, 'ca-cert.pem'), intermediatePem);
  await writeFile(join(dir, 'ca-key.pem'), inter.privateKeyPem);
  // Istio's cert-chain.pem often ends with the root; the CA must not send it twice.
  await writeFile(join(dir, 'cert-chain.pem'), intermediatePem + rootPem);
  await writeFile(join(dir, 'root-cert.pem'), rootPem);
  return { dir, rootPem, intermediatePem };
}
