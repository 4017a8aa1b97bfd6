/**
 * A certificate authority for workload identities: signs verified CSRs into short-lived SPIFFE leaf
 * certificates and answers with Istio's chain layout (leaf, intermediates..., root bundle last).
 * The signing key is either self-made (local mode, like istiod's self-signed root) or loaded from files in
 * Istio's "plugged-in CA" layout: ca-cert.pem, ca-key.pem, cert-chain.pem, root-cert.pem (ca-bundle.ts checks
 * them; the key may be RSA or ECDSA P-256, the leaves are always ECDSA P-256).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CA_FILES, type CaBundle, type CaBundlePem, loadCaBundle, readCaBundleFiles } from './ca-bundle.js';
import type { CaSigningKey } from './ca-key.js';
import { EC_SIGNING_ALGORITHM, generateKeyPair, verifyCsr } from './csr.js';
import { IdentityError, IdentityErrorCode } from './errors.js';
import { type CryptoKey, x509 } from './x509.js';
import { type Identity, formatSpiffeId, sameIdentity } from './spiffe.js';

import { CERT_BACKDATE_MS, DEFAULT_MAX_WORKLOAD_CERT_TTL_SECONDS, DEFAULT_WORKLOAD_CERT_TTL_SECONDS } from './defaults.js';

export interface CaSigningOptions {
  /** Requested lifetime in seconds; <= 0 or absent means the default. */
  readonly ttlSeconds?: number;
}

export interface LocalSigningOptions extends CaSigningOptions {
  /** Start of validity; default now (minus clock skew). Lets tests and tools mint already-expired leaves. */
  readonly notBefore?: Date;
}

export interface CertificateAuthorityOptions {
  readonly trustDomain: string;
  readonly defaultTtlSeconds?: number;
  readonly maxTtlSeconds?: number;
}

/** What the CA signs with and what it hands out after each leaf: a checked bundle, or a self-made root. */
interface SigningMaterial extends Omit<CaBundle, 'signingKey'> {
  readonly signingKey: Pick<CaSigningKey, 'privateKey' | 'signingAlgorithm' | 'description'>;
}

function randomSerial(): string {
  // 16 random bytes with the top bit cleared: a positive INTEGER of at most 128 bits (RFC 5280 §4.1.2.2).
  const b = randomBytes(16);
  b[0] = (b[0] ?? 0) & 0x7f;
  return b.toString('hex');
}

export class CertificateAuthority {
  readonly trustDomain: string;
  readonly defaultTtlSeconds: number;
  readonly maxTtlSeconds: number;
  /** The signing key's type and how it was stored, e.g. "RSA 4096 (PKCS#1)", for logs. */
  readonly signingKeyDescription: string;
  readonly #material: SigningMaterial;

  private constructor(opts: CertificateAuthorityOptions, material: SigningMaterial) {
    this.trustDomain = opts.trustDomain;
    this.defaultTtlSeconds = opts.defaultTtlSeconds ?? DEFAULT_WORKLOAD_CERT_TTL_SECONDS;
    this.maxTtlSeconds = opts.maxTtlSeconds ?? DEFAULT_MAX_WORKLOAD_CERT_TTL_SECONDS;
    this.signingKeyDescription = material.signingKey.description;
    this.#material = material;
  }

  /** A new self-signed root (istiod's default when no CA is plugged in): O=<trust domain>, 10 years. */
  static async createSelfSigned(opts: CertificateAuthorityOptions & { readonly rootTtlDays?: number }): Promise<CertificateAuthority> {
    const { ca } = await CertificateAuthority.createSelfSignedWithPem(opts);
    return ca;
  }

  /**
   * Makes a self-signed root and writes it in Istio's plugged-in layout (ca-cert.pem, ca-key.pem, root-cert.pem,
   * cert-chain.pem; key mode 0600), so that several processes can sign with the same root: the fake nodes'
   * ztunnels with FAKE_CA_DIR, or a controller started with a given CA.
   */
  static async writeSelfSignedDirectory(
    dir: string,
    opts: CertificateAuthorityOptions & { readonly rootTtlDays?: number },
  ): Promise<CertificateAuthority> {
    const { ca, rootPem, keyPem } = await CertificateAuthority.createSelfSignedWithPem(opts);
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, CA_FILES.caKey), keyPem, { mode: 0o600 });
    await writeFile(join(dir, CA_FILES.caCert), rootPem);
    await writeFile(join(dir, CA_FILES.rootCert), rootPem);
    await writeFile(join(dir, CA_FILES.certChain), rootPem);
    return ca;
  }

  /** A new self-signed root, with its certificate and PKCS#8 key as PEM so that they can be stored (a Secret, files). */
  static async createSelfSignedWithPem(
    opts: CertificateAuthorityOptions & { readonly rootTtlDays?: number },
  ): Promise<{ ca: CertificateAuthority; rootPem: string; keyPem: string }> {
    const { keys, privateKeyPem } = await generateKeyPair();
    const now = Date.now();
    const root = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: randomSerial(),
      name: `O=${opts.trustDomain}`,
      notBefore: new Date(now - CERT_BACKDATE_MS),
      notAfter: new Date(now + (opts.rootTtlDays ?? 3650) * 86_400_000),
      keys,
      signingAlgorithm: EC_SIGNING_ALGORITHM,
      extensions: [
        new x509.BasicConstraintsExtension(true, undefined, true),
        new x509.KeyUsagesExtension(
          x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature,
          true,
        ),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      ],
    });
    const rootPem = `${root.toString('pem')}\n`;
    const ca = new CertificateAuthority(opts, {
      signingKey: { privateKey: keys.privateKey, signingAlgorithm: EC_SIGNING_ALGORITHM, description: 'ECDSA P-256 (self-signed root)' },
      signingCert: root,
      intermediatesPem: [],
      rootsPem: [rootPem],
    });
    return { ca, rootPem, keyPem: privateKeyPem };
  }

  /**
   * Loads signing material from PEM strings, checked as ca-bundle.ts describes (CaMaterialError with a stable
   * code otherwise). `certChainPem` is Istio's cert-chain.pem: the signing certificate's chain, the root
   * optional. `where` names a file in errors (default: the bare file name).
   */
  static async fromPem(
    opts: CertificateAuthorityOptions & CaBundlePem & { readonly where?: (file: string) => string },
  ): Promise<CertificateAuthority> {
    return new CertificateAuthority(opts, await loadCaBundle(opts, opts.where));
  }

  /**
   * Loads Istio's plugged-in CA files from a directory (the `cacerts` secret layout). ztunnel's FAKE_CA_DIR and the
   * controller's CACERTS_DIR both come here.
   */
  static async fromDirectory(opts: CertificateAuthorityOptions & { readonly dir: string }): Promise<CertificateAuthority> {
    const files = await readCaBundleFiles(opts.dir);
    return CertificateAuthority.fromPem({ ...opts, ...files, where: (file) => join(opts.dir, file) });
  }

  /** The trust bundle (PEM, one entry per root). */
  get rootCertsPem(): readonly string[] {
    return this.#material.rootsPem;
  }

  /** Effective lifetime for a request: default when unset, capped at the maximum. */
  effectiveTtlSeconds(requested: number | undefined): number {
    if (requested === undefined || !Number.isFinite(requested) || requested <= 0) return this.defaultTtlSeconds;
    return Math.min(Math.floor(requested), this.maxTtlSeconds);
  }

  /**
   * Signs a PEM CSR for `identity`. The CSR must be valid and its single URI SAN must equal `identity`,
   * otherwise IdentityError(IDENTITY_BAD_CSR | IDENTITY_SAN_MISMATCH). Returns the chain as the Istio CA API
   * returns it: leaf, intermediates..., and the root bundle as the last element.
   */
  async signCsr(csrPem: string, identity: Identity, opts: CaSigningOptions = {}): Promise<string[]> {
    const csr = await verifyCsr(csrPem);
    if (!sameIdentity(csr.identity, identity)) {
      throw new IdentityError(
        IdentityErrorCode.SAN_MISMATCH,
        `CSR asks for ${formatSpiffeId(csr.identity)} but the caller may only receive ${formatSpiffeId(identity)}`,
      );
    }
    const leaf = await this.#issue(csr.publicKey, identity, this.effectiveTtlSeconds(opts.ttlSeconds));
    return this.#chainAfter(leaf);
  }

  /** Issues a leaf for a public key directly (local signing, no CSR round trip). Same chain layout as signCsr. */
  async signPublicKey(publicKey: CryptoKey, identity: Identity, opts: LocalSigningOptions = {}): Promise<string[]> {
    const leaf = await this.#issue(publicKey, identity, this.effectiveTtlSeconds(opts.ttlSeconds), opts.notBefore);
    return this.#chainAfter(leaf);
  }

  /** A serving certificate with DNS SANs (the controller's own xDS/CA endpoint). Returns key and chain (no root). */
  async issueServingCertificate(
    dnsNames: readonly string[],
    ttlSeconds: number,
  ): Promise<{ privateKeyPem: string; certChainPem: string[] }> {
    const { keys, privateKeyPem } = await generateKeyPair();
    const san = new x509.SubjectAlternativeNameExtension(
      dnsNames.map((value) => ({ type: 'dns' as const, value })),
      true,
    );
    const cert = await this.#sign(keys.publicKey, san, ttlSeconds);
    return { privateKeyPem, certChainPem: [cert, ...this.#material.intermediatesPem] };
  }

  #chainAfter(leafPem: string): string[] {
    return [leafPem, ...this.#material.intermediatesPem, this.#material.rootsPem.join('')];
  }

  async #issue(publicKey: CryptoKey | x509.PublicKey, identity: Identity, ttlSeconds: number, notBeforeAt?: Date): Promise<string> {
    const san = new x509.SubjectAlternativeNameExtension([{ type: 'url', value: formatSpiffeId(identity) }], true);
    return this.#sign(publicKey, san, ttlSeconds, notBeforeAt);
  }

  /**
   * An end-entity certificate for an ECDSA P-256 key, signed with the CA key's own algorithm (sha256WithRSAEncryption
   * or ecdsa-with-SHA256). Empty subject, names only in the SAN, which is then critical (RFC 5280 §4.2.1.6), as
   * Istio issues. Never outlives the signing certificate.
   */
  async #sign(
    publicKey: CryptoKey | x509.PublicKey,
    san: x509.SubjectAlternativeNameExtension,
    ttlSeconds: number,
    notBeforeAt?: Date,
  ): Promise<string> {
    const m = this.#material;
    const now = notBeforeAt ? notBeforeAt.getTime() + CERT_BACKDATE_MS : Date.now();
    const notAfter = Math.min(now + ttlSeconds * 1000, m.signingCert.notAfter.getTime());
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: randomSerial(),
      subject: '',
      issuer: m.signingCert.subjectName,
      notBefore: new Date(now - CERT_BACKDATE_MS),
      notAfter: new Date(notAfter),
      publicKey,
      signingKey: m.signingKey.privateKey,
      signingAlgorithm: m.signingKey.signingAlgorithm,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
        san,
        await this.#authorityKeyId(),
      ],
    });
    return `${cert.toString('pem')}\n`;
  }

  /**
   * The issuer's key identifier, copied from its subjectKeyIdentifier when it has one: verifiers match AKI to SKI
   * (RFC 5280 §4.2.1.1), and a CA made by other tooling may have derived its SKI differently than we would.
   */
  async #authorityKeyId(): Promise<x509.AuthorityKeyIdentifierExtension> {
    const ski = this.#material.signingCert.getExtension(x509.SubjectKeyIdentifierExtension);
    if (ski) return new x509.AuthorityKeyIdentifierExtension(ski.keyId);
    return x509.AuthorityKeyIdentifierExtension.create(this.#material.signingCert.publicKey);
  }
}
