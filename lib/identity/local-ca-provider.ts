/**
 * FAKE_CA mode: certificates signed by an in-process CertificateAuthority instead of a remote CA. Each fetch still
 * goes key -> CSR -> signCsr -> chain check, so local mode exercises the same validation as the real path.
 */
import { CertificateAuthority } from './ca.js';
import type { CertificateProvider } from './cert-manager.js';
import { type WorkloadCertificate, workloadCertificateFromChain } from './certificate.js';
import { createCsr, generateKeyPair } from './csr.js';
import type { Identity } from './spiffe.js';

export interface LocalCaProviderOptions {
  /** Lifetime asked for, seconds; default the CA's default (24h). Tests use a few seconds. */
  readonly ttlSeconds?: number;
}

export class LocalCaProvider implements CertificateProvider {
  readonly ca: CertificateAuthority;
  readonly #ttlSeconds: number | undefined;

  constructor(ca: CertificateAuthority, opts: LocalCaProviderOptions = {}) {
    this.ca = ca;
    this.#ttlSeconds = opts.ttlSeconds;
  }

  /** A provider over a fresh self-signed root for `trustDomain` (what ztunnel's FAKE_CA=true does). */
  static async create(opts: LocalCaProviderOptions & { readonly trustDomain: string }): Promise<LocalCaProvider> {
    return new LocalCaProvider(await CertificateAuthority.createSelfSigned({ trustDomain: opts.trustDomain }), opts);
  }

  async fetch(identity: Identity): Promise<WorkloadCertificate> {
    const { keys, privateKeyPem } = await generateKeyPair();
    const csr = await createCsr(identity, keys);
    const chain = await this.ca.signCsr(csr, identity, this.#ttlSeconds === undefined ? {} : { ttlSeconds: this.#ttlSeconds });
    return workloadCertificateFromChain(identity, privateKeyPem, chain);
  }
}
