/**
 * A plugged-in CA's key and certificates (Istio's `cacerts`: ca-cert.pem, ca-key.pem, cert-chain.pem,
 * root-cert.pem), checked before anything is signed with them, as istiod's KeyCertBundle is
 * (security/pkg/pki/util/keycertbundle.go): the key is one we sign with and belongs to ca-cert.pem, ca-cert.pem
 * may issue certificates, and it chains through cert-chain.pem to a root of root-cert.pem. Each failure names the
 * file to change and how. The result says what follows a leaf in `cert_chain`.
 */
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type CaSigningKey, importCaSigningKey } from './ca-key.js';
import { splitPemCertificates } from './certificate.js';
import { CaMaterialError, IdentityErrorCode } from './errors.js';
import { x509 } from './x509.js';

/** The file names of Istio's plugged-in CA layout (the `cacerts` Secret's keys). */
export const CA_FILES = {
  caCert: 'ca-cert.pem',
  caKey: 'ca-key.pem',
  rootCert: 'root-cert.pem',
  certChain: 'cert-chain.pem',
} as const;

export interface CaBundlePem {
  readonly caCertPem: string;
  readonly caKeyPem: string;
  readonly rootCertPem: string;
  /** Optional: the signing certificate's chain, as Istio's tools write it (ca-cert, intermediates..., often the root). */
  readonly certChainPem?: string;
}

export interface CaBundle {
  readonly signingKey: CaSigningKey;
  readonly signingCert: x509.X509Certificate;
  /** What follows a leaf, before the root bundle: cert-chain.pem without its roots, the signing certificate first. */
  readonly intermediatesPem: readonly string[];
  /** The trust bundle, one PEM per root. */
  readonly rootsPem: readonly string[];
}

/** Reads the four files from a directory (cert-chain.pem may be absent). */
export async function readCaBundleFiles(dir: string): Promise<CaBundlePem> {
  const read = async (name: string, optional: boolean): Promise<string | undefined> => {
    try {
      return await readFile(join(dir, name), 'utf8');
    } catch (err) {
      if (optional && (err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new CaMaterialError(IdentityErrorCode.BAD_CA_MATERIAL, join(dir, name), 'cannot be read', { cause: err });
    }
  };
  const [caCertPem, caKeyPem, rootCertPem, certChainPem] = await Promise.all([
    read(CA_FILES.caCert, false),
    read(CA_FILES.caKey, false),
    read(CA_FILES.rootCert, false),
    read(CA_FILES.certChain, true),
  ]);
  return {
    caCertPem: caCertPem ?? '',
    caKeyPem: caKeyPem ?? '',
    rootCertPem: rootCertPem ?? '',
    ...(certChainPem === undefined ? {} : { certChainPem }),
  };
}

interface Loaded {
  readonly pem: string;
  readonly cert: X509Certificate;
  readonly file: string;
}

const isAmong = (c: Loaded, list: readonly Loaded[]): boolean => list.some((o) => o.cert.fingerprint256 === c.cert.fingerprint256);
const describeCert = (c: X509Certificate): string => (c.subject ? `"${c.subject.replace(/\n/g, ', ')}"` : '(empty subject)');

function certificatesIn(pem: string, file: string): Loaded[] {
  return splitPemCertificates(pem).map((p, i) => {
    try {
      return { pem: p, cert: new X509Certificate(p), file };
    } catch (err) {
      throw new CaMaterialError(IdentityErrorCode.BAD_CA_MATERIAL, file, `certificate #${i + 1} cannot be parsed`, { cause: err });
    }
  });
}

/**
 * Loads and checks a bundle. `where` turns a file name into what errors show (a path, or "secret ns/name key").
 * Throws CaMaterialError with IDENTITY_BAD_CA_MATERIAL, IDENTITY_CA_KEY_UNSUPPORTED, IDENTITY_CA_KEY_MISMATCH,
 * IDENTITY_CA_CERT_NOT_CA, IDENTITY_CA_CERT_EXPIRED or IDENTITY_CA_CHAIN_BROKEN.
 */
export async function loadCaBundle(pem: CaBundlePem, where: (file: string) => string = (f) => f): Promise<CaBundle> {
  const caCertFile = where(CA_FILES.caCert);
  const chainFile = where(CA_FILES.certChain);
  const rootFile = where(CA_FILES.rootCert);
  // Like istiod, the first certificate of ca-cert.pem is the signing certificate.
  const signing = certificatesIn(pem.caCertPem, caCertFile)[0];
  if (!signing) throw new CaMaterialError(IdentityErrorCode.BAD_CA_MATERIAL, caCertFile, 'holds no PEM certificate');
  const roots = certificatesIn(pem.rootCertPem, rootFile);
  if (roots.length === 0) throw new CaMaterialError(IdentityErrorCode.BAD_CA_MATERIAL, rootFile, 'holds no PEM certificate');
  const chain = certificatesIn(pem.certChainPem ?? '', chainFile);
  if (chain.length === 0 && (pem.certChainPem ?? '').trim() !== '') {
    throw new CaMaterialError(IdentityErrorCode.BAD_CA_MATERIAL, chainFile, 'is not empty but holds no PEM certificate');
  }

  const signingKey = await importCaSigningKey(pem.caKeyPem, where(CA_FILES.caKey));
  if (!matches(signing.cert, signingKey)) {
    throw new CaMaterialError(
      IdentityErrorCode.CA_KEY_MISMATCH,
      where(CA_FILES.caKey),
      `the ${signingKey.description} key is not the key of ${caCertFile} ${describeCert(signing.cert)}; put the key and certificate of one CA side by side (compare \`openssl pkey -pubout -in ca-key.pem\` with \`openssl x509 -noout -pubkey -in ca-cert.pem\`)`,
    );
  }
  const signingCert = new x509.X509Certificate(signing.pem);
  const notCa = whyNotCa(signingCert);
  if (notCa) {
    throw new CaMaterialError(
      IdentityErrorCode.CA_CERT_NOT_CA,
      caCertFile,
      `${describeCert(signing.cert)} may not issue certificates: ${notCa}; give the CA's certificate, not a workload's`,
    );
  }

  checkPath(signing, chain, roots, chainFile);

  // cert-chain.pem in file order (Istio sends it as it is), without the roots, which travel as the bundle. The
  // signing certificate goes first when the file lacks it, so that a peer holding only the root can verify a leaf.
  const intermediates = chain.filter((c) => !isAmong(c, roots));
  if (!isAmong(signing, roots) && !isAmong(signing, intermediates)) intermediates.unshift(signing);
  return { signingKey, signingCert, intermediatesPem: intermediates.map((c) => c.pem), rootsPem: roots.map((r) => r.pem) };
}

/**
 * Why a certificate may not sign others, or undefined when it may: basicConstraints CA:true, and keyCertSign when
 * it has a keyUsage. Without a keyUsage extension the key may be used for anything (RFC 5280 §4.2.1.3), as
 * `openssl req -x509` makes CAs.
 */
function whyNotCa(cert: x509.X509Certificate): string | undefined {
  if (cert.getExtension(x509.BasicConstraintsExtension)?.ca !== true) return 'it has no basicConstraints CA:true';
  const usages = cert.getExtension(x509.KeyUsagesExtension)?.usages;
  if (usages !== undefined && (usages & x509.KeyUsageFlags.keyCertSign) === 0) return 'its keyUsage lacks keyCertSign';
  return undefined;
}

function matches(cert: X509Certificate, key: CaSigningKey): boolean {
  try {
    return cert.checkPrivateKey(key.keyObject);
  } catch {
    return false; // a certificate key node:crypto cannot compare is not this key either
  }
}

/**
 * Builds the path signing certificate → cert-chain.pem... → a root of root-cert.pem and checks it as a verifier
 * would (RFC 5280 §6.1): each certificate issued and signed by the next, the issuers CAs within their
 * pathLenConstraint, every certificate valid now.
 */
function checkPath(signing: Loaded, chain: readonly Loaded[], roots: readonly Loaded[], chainFile: string): void {
  const now = Date.now();
  const path: Loaded[] = [signing];
  const issues = (issuer: Loaded, c: Loaded): boolean => c.cert.checkIssued(issuer.cert) && c.cert.verify(issuer.cert.publicKey);
  // Ends: every step adds a certificate of cert-chain.pem not yet on the path, or a root.
  for (let current = signing; !isAmong(current, roots); ) {
    const issuer = roots.find((r) => issues(r, current)) ?? chain.find((c) => !isAmong(c, path) && issues(c, current));
    if (!issuer) {
      throw new CaMaterialError(
        IdentityErrorCode.CA_CHAIN_BROKEN,
        current.file,
        `${describeCert(current.cert)} is issued by "${current.cert.issuer.replace(/\n/g, ', ')}", which is neither in ${chainFile} nor a root of root-cert.pem; add the missing intermediate to cert-chain.pem, or the root it chains to to root-cert.pem`,
      );
    }
    const issuerCert = new x509.X509Certificate(issuer.pem);
    const notCa = whyNotCa(issuerCert);
    if (notCa) {
      throw new CaMaterialError(
        IdentityErrorCode.CA_CERT_NOT_CA,
        issuer.file,
        `${describeCert(issuer.cert)} issued ${describeCert(current.cert)} but may not issue certificates: ${notCa}`,
      );
    }
    // The CA certificates that follow `issuer` down to the leaf are those already on the path (RFC 5280 §4.2.1.9).
    const pathLength = issuerCert.getExtension(x509.BasicConstraintsExtension)?.pathLength;
    if (pathLength !== undefined && path.length > pathLength) {
      throw new CaMaterialError(
        IdentityErrorCode.CA_CHAIN_BROKEN,
        issuer.file,
        `${describeCert(issuer.cert)} allows ${pathLength} CA certificate(s) below it (pathlen:${pathLength}) but ${path.length} follow it`,
      );
    }
    path.push(issuer);
    current = issuer;
  }
  for (const c of path) {
    if (Date.parse(c.cert.validTo) <= now || Date.parse(c.cert.validFrom) > now) {
      throw new CaMaterialError(
        IdentityErrorCode.CA_CERT_EXPIRED,
        c.file,
        `${describeCert(c.cert)} is valid from ${c.cert.validFrom} to ${c.cert.validTo}, not now; renew it (workload certificates cannot outlive their CA)`,
      );
    }
  }
}
