/**
 * A certificate authority for workload identities: signs verified CSRs into short-lived SPIFFE leaf
 * certificates and answers with Istio's chain layout (leaf, intermediates..., root bundle last).
 * The signing key is either self-made (local mode, like istiod's self-signed root) or loaded from files in
 * Istio's "plugged-in CA" layout: ca-cert.pem, ca-key.pem, cert-chain.pem, root-cert.pem.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EC_KEY_ALGORITHM, EC_SIGNING_ALGORITHM, generateKeyPair, importSigningKey, verifyCsr } from './csr.js';
import { splitPemCertificates, parseCertificatePem } from './certificate.js';
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
  readonly #signingKey: CryptoKey;
  readonly #signingCert: x509.X509Certificate;
  /** Certificates between the signing certificate and the root, signing certificate first (excluded if it is the root). */
  readonly #intermediatesPem: readonly string[];
  readonly #rootsPem: readonly string[];

  private constructor(
    opts: CertificateAuthorityOptions,
    signingKey: CryptoKey,
    signingCert: x509.X509Certificate,
    intermediatesPem: readonly string[],
    rootsPem: readonly string[],
  ) {
    this.trustDomain = opts.trustDomain;
    this.defaultTtlSeconds = opts.defaultTtlSeconds ?? DEFAULT_WORKLOAD_CERT_TTL_SECONDS;
    this.maxTtlSeconds = opts.maxTtlSeconds ?? DEFAULT_MAX_WORKLOAD_CERT_TTL_SECONDS;
    this.#signingKey = signingKey;
    this.#signingCert = signingCert;
    this.#intermediatesPem = intermediatesPem;
    this.#rootsPem = rootsPem;
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
    await writeFile(join(dir, 'ca-key.pem'), keyPem, { mode: 0o600 });
    await writeFile(join(dir, 'ca-cert.pem'), rootPem);
    await writeFile(join(dir, 'root-cert.pem'), rootPem);
    await writeFile(join(dir, 'cert-chain.pem'), rootPem);
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
    return { ca: new CertificateAuthority(opts, keys.privateKey, root, [], [rootPem]), rootPem, keyPem: privateKeyPem };
  }

  /**
   * Loads signing material from PEM strings. `certChainPem` (optional) is the chain from the signing
   * certificate up to, but excluding, the root, as Istio's cert-chain.pem.
   */
  static async fromPem(
    opts: CertificateAuthorityOptions & {
      readonly caCertPem: string;
      readonly caKeyPem: string;
      readonly rootCertPem: string;
      readonly certChainPem?: string;
    },
  ): Promise<CertificateAuthority> {
    const signingKey = await importSigningKey(opts.caKeyPem);
    let signingCert: x509.X509Certificate;
    try {
      signingCert = new x509.X509Certificate(opts.caCertPem);
    } catch (err) {
      throw new IdentityError(IdentityErrorCode.BAD_CA_MATERIAL, 'ca-cert.pem is not a PEM certificate', { cause: err });
    }
    const roots = splitPemCertificates(opts.rootCertPem);
    if (roots.length === 0) throw new IdentityError(IdentityErrorCode.BAD_CA_MATERIAL, 'root-cert.pem holds no certificate');
    const signingPem = `${signingCert.toString('pem')}\n`;
    const isRoot = roots.some((r) => parseCertificatePem(r).fingerprint256 === parseCertificatePem(signingPem).fingerprint256);
    let intermediates = opts.certChainPem ? splitPemCertificates(opts.certChainPem) : isRoot ? [] : [signingPem];
    // cert-chain.pem sometimes ends with the root; the root travels separately as the bundle.
    intermediates = intermediates.filter((c) => !roots.includes(c));
    return new CertificateAuthority(opts, signingKey, signingCert, intermediates, roots);
  }

  /** Loads Istio's plugged-in CA files from a directory (the `cacerts` secret layout). */
  static async fromDirectory(opts: CertificateAuthorityOptions & { readonly dir: string }): Promise<CertificateAuthority> {
    const read = async (name: string, optional = false): Promise<string | undefined> => {
      try {
        return await readFile(join(opts.dir, name), 'utf8');
      } catch (err) {
        if (optional) return undefined;
        throw new IdentityError(IdentityErrorCode.BAD_CA_MATERIAL, `cannot read ${join(opts.dir, name)}`, { cause: err });
      }
    };
    const caCertPem = (await read('ca-cert.pem')) as string;
    const caKeyPem = (await read('ca-key.pem')) as string;
    const rootCertPem = (await read('root-cert.pem')) as string;
    const certChainPem = await read('cert-chain.pem', true);
    return CertificateAuthority.fromPem({ ...opts, caCertPem, caKeyPem, rootCertPem, ...(certChainPem ? { certChainPem } : {}) });
  }

  /** The trust bundle (PEM, one entry per root). */
  get rootCertsPem(): readonly string[] {
    return this.#rootsPem;
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
    return [leaf, ...this.#intermediatesPem, this.#rootsPem.join('')];
  }

  /** Issues a leaf for a public key directly (local signing, no CSR round trip). Same chain layout as signCsr. */
  async signPublicKey(publicKey: CryptoKey, identity: Identity, opts: LocalSigningOptions = {}): Promise<string[]> {
    const leaf = await this.#issue(publicKey, identity, this.effectiveTtlSeconds(opts.ttlSeconds), opts.notBefore);
    return [leaf, ...this.#intermediatesPem, this.#rootsPem.join('')];
  }

  /** A serving certificate with DNS SANs (the controller's own xDS/CA endpoint). Returns key and chain (no root). */
  async issueServingCertificate(
    dnsNames: readonly string[],
    ttlSeconds: number,
  ): Promise<{ privateKeyPem: string; certChainPem: string[] }> {
    const { keys, privateKeyPem } = await generateKeyPair();
    const now = Date.now();
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: randomSerial(),
      subject: '',
      issuer: this.#signingCert.subjectName,
      notBefore: new Date(now - CERT_BACKDATE_MS),
      notAfter: new Date(now + ttlSeconds * 1000),
      publicKey: keys.publicKey,
      signingKey: this.#signingKey,
      signingAlgorithm: EC_SIGNING_ALGORITHM,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
        new x509.SubjectAlternativeNameExtension(
          dnsNames.map((value) => ({ type: 'dns' as const, value })),
          true,
        ),
        await x509.AuthorityKeyIdentifierExtension.create(this.#signingCert.publicKey),
      ],
    });
    return { privateKeyPem, certChainPem: [`${cert.toString('pem')}\n`, ...this.#intermediatesPem] };
  }

  async #issue(publicKey: CryptoKey | x509.PublicKey, identity: Identity, ttlSeconds: number, notBeforeAt?: Date): Promise<string> {
    const now = notBeforeAt ? notBeforeAt.getTime() + CERT_BACKDATE_MS : Date.now();
    const notAfter = Math.min(now + ttlSeconds * 1000, this.#signingCert.notAfter.getTime());
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: randomSerial(),
      // Empty subject, identity only in the SAN (which is then critical, RFC 5280 §4.2.1.6), as Istio issues.
      subject: '',
      issuer: this.#signingCert.subjectName,
      notBefore: new Date(now - CERT_BACKDATE_MS),
      notAfter: new Date(notAfter),
      publicKey,
      signingKey: this.#signingKey,
      signingAlgorithm: EC_SIGNING_ALGORITHM,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
        new x509.SubjectAlternativeNameExtension([{ type: 'url', value: formatSpiffeId(identity) }], true),
        await x509.AuthorityKeyIdentifierExtension.create(this.#signingCert.publicKey),
      ],
    });
    return `${cert.toString('pem')}\n`;
  }
}

export { EC_KEY_ALGORITHM };
