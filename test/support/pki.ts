/** A throw-away CA and workload certificates for in-process tests. */
import { CertificateAuthority, type LocalSigningOptions } from '../../lib/identity/ca.js';
import { type WorkloadCertificate, workloadCertificateFromChain } from '../../lib/identity/certificate.js';
import { generateKeyPair } from '../../lib/identity/csr.js';
import { type Identity, makeIdentity } from '../../lib/identity/spiffe.js';

export const ids = {
  client: makeIdentity('default', 'client'),
  server: makeIdentity('default', 'server'),
  other: makeIdentity('default', 'other'),
} as const;

/** A fresh self-signed CA in cluster.local. */
export function testCa(): Promise<CertificateAuthority> {
  return CertificateAuthority.createSelfSigned({ trustDomain: 'cluster.local' });
}

/** A key and leaf for `identity`, signed directly (no CSR); `notBefore` in the past mints expired leaves. */
export async function issueCertificate(ca: CertificateAuthority, identity: Identity, opts: LocalSigningOptions = {}): Promise<WorkloadCertificate> {
  const { keys, privateKeyPem } = await generateKeyPair();
  return workloadCertificateFromChain(identity, privateKeyPem, await ca.signPublicKey(keys.publicKey, identity, opts));
}
