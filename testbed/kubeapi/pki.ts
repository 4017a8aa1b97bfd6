/**
 * The test API server's key material, made fresh for every server: a self-signed cluster CA, a serving
 * certificate for 127.0.0.1 and the in-cluster names of the `kubernetes` Service, and the service-account
 * token signing key. All ECDSA P-256 (kube-apiserver accepts ECDSA for serving and signs ES256 service-account
 * tokens with it). Made with @peculiar/x509 through lib/identity's single import point; this CA is the
 * *cluster's* CA and has nothing to do with the mesh CA.
 */
import { createPublicKey, randomBytes, webcrypto } from 'node:crypto';
import { EC_SIGNING_ALGORITHM, generateKeyPair } from '../../lib/identity/csr.js';
import { x509 } from '../../lib/identity/x509.js';

export interface ApiServerPki {
  readonly caCertPem: string;
  readonly caKeyPem: string;
  readonly servingCertPem: string;
  readonly servingKeyPem: string;
  /** PKCS#8 private key the API server signs service-account tokens with. */
  readonly serviceAccountKeyPem: string;
  /** Its public half (SPKI PEM), what the API server verifies tokens with. */
  readonly serviceAccountPublicKeyPem: string;
}

function serial(): string {
  const b = randomBytes(16);
  b[0] = (b[0] ?? 0) & 0x7f; // positive INTEGER (RFC 5280 §4.1.2.2)
  return b.toString('hex');
}

/** Lifetime of the throw-away certificates: long enough for any test run, short enough to be obviously throw-away. */
const VALIDITY_MS = 7 * 86_400_000;
/** Back-dated so that a clock a little behind on the verifying side does not reject them. */
const BACKDATE_MS = 5 * 60_000;

export async function createApiServerPki(opts: {
  readonly serviceIp: string;
  readonly clusterDomain: string;
  readonly extraAddresses?: readonly string[];
}): Promise<ApiServerPki> {
  const now = Date.now();
  const notBefore = new Date(now - BACKDATE_MS);
  const notAfter = new Date(now + VALIDITY_MS);

  const ca = await generateKeyPair();
  const caCert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: 'CN=kubetest-ca',
    notBefore,
    notAfter,
    keys: ca.keys,
    signingAlgorithm: EC_SIGNING_ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
      await x509.SubjectKeyIdentifierExtension.create(ca.keys.publicKey),
    ],
  });

  const serving = await generateKeyPair();
  // The names a client can reach the API server by: loopback here, and (for completeness with a real cluster,
  // e.g. a kubeconfig rendered for in-cluster use) the `kubernetes` Service's VIP and DNS names.
  const dnsNames = [
    'localhost',
    'kubernetes',
    'kubernetes.default',
    'kubernetes.default.svc',
    `kubernetes.default.svc.${opts.clusterDomain}`,
  ];
  const servingCert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: 'CN=kube-apiserver',
    issuer: caCert.subject,
    notBefore,
    notAfter,
    publicKey: serving.keys.publicKey,
    signingKey: ca.keys.privateKey,
    signingAlgorithm: EC_SIGNING_ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([
        ...dnsNames.map((value) => ({ type: 'dns' as const, value })),
        { type: 'ip', value: '127.0.0.1' },
        { type: 'ip', value: opts.serviceIp },
        ...(opts.extraAddresses ?? []).map((value) => ({ type: 'ip' as const, value })),
      ]),
      await x509.AuthorityKeyIdentifierExtension.create(ca.keys.publicKey),
    ],
  });

  const sa = await generateKeyPair();
  const spki = await webcrypto.subtle.exportKey('spki', sa.keys.publicKey);
  const saPublicPem = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' })
    .export({ format: 'pem', type: 'spki' })
    .toString();

  return {
    caCertPem: `${caCert.toString('pem')}\n`,
    caKeyPem: ca.privateKeyPem,
    servingCertPem: `${servingCert.toString('pem')}\n`,
    servingKeyPem: serving.privateKeyPem,
    serviceAccountKeyPem: sa.privateKeyPem,
    serviceAccountPublicKeyPem: saPublicPem,
  };
}
