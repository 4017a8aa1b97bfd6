/**
 * Certificates as plain readonly records, and the small X.509 reads the data path needs (SANs, validity).
 * Reads use node:crypto's X509Certificate (native, cheap); generation lives in csr.ts and ca.ts.
 */
import { X509Certificate } from 'node:crypto';
import { IdentityError, IdentityErrorCode } from './errors.js';
import { type Identity, tryParseSpiffeId, sameIdentity, formatSpiffeId } from './spiffe.js';

/** What a proxy holds for one identity: key, chain to present, and the roots it trusts. */
export interface WorkloadCertificate {
  readonly identity: Identity;
  /** PKCS#8 PEM of the ECDSA P-256 private key. */
  readonly privateKeyPem: string;
  /** Leaf first, then intermediates; no root. This is what TLS presents. */
  readonly certChainPem: readonly string[];
  /** Trust bundle: roots a peer chain must end in. */
  readonly rootCertsPem: readonly string[];
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly serialNumber: string;
}

const PEM_BLOCK_RE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Splits a PEM bundle (one or many certificates, any whitespace) into normalised single-certificate PEMs. */
export function splitPemCertificates(bundle: string): string[] {
  const blocks = bundle.match(PEM_BLOCK_RE) ?? [];
  return blocks.map((b) => `${b.trim()}\n`);
}

export function parseCertificatePem(pem: string): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch (err) {
    throw new IdentityError(IdentityErrorCode.BAD_PEM, 'cannot parse PEM certificate', { cause: err });
  }
}

/**
 * URI SANs of a certificate. Node renders SANs as "URI:a, DNS:b"; values containing separators are
 * JSON-quoted, which we undo so that a crafted SAN cannot smuggle a second entry.
 */
export function uriSans(cert: X509Certificate): string[] {
  const san = cert.subjectAltName;
  if (!san) return [];
  const out: string[] = [];
  let i = 0;
  while (i < san.length) {
    const colon = san.indexOf(':', i);
    if (colon < 0) break;
    const kind = san.slice(i, colon);
    let value: string;
    let next: number;
    if (san[colon + 1] === '"') {
      // JSON string literal: find its closing quote, honouring escapes.
      let j = colon + 2;
      while (j < san.length && san[j] !== '"') j += san[j] === '\\' ? 2 : 1;
      try {
        value = JSON.parse(san.slice(colon + 1, j + 1)) as string;
      } catch {
        return out; // malformed rendering: stop rather than guess
      }
      next = san.indexOf(', ', j + 1);
    } else {
      next = san.indexOf(', ', colon + 1);
      value = san.slice(colon + 1, next < 0 ? san.length : next);
    }
    if (kind === 'URI') out.push(value);
    if (next < 0) break;
    i = next + 2;
  }
  return out;
}

/** The identity a certificate carries: its first URI SAN that parses as a SPIFFE identity (as ztunnel does). */
export function identityOfCertificate(cert: X509Certificate): Identity | undefined {
  for (const uri of uriSans(cert)) {
    const id = tryParseSpiffeId(uri);
    if (id) return id;
  }
  return undefined;
}

/** All SPIFFE identities among a certificate's URI SANs. */
export function identitiesOfCertificate(cert: X509Certificate): Identity[] {
  const out: Identity[] = [];
  for (const uri of uriSans(cert)) {
    const id = tryParseSpiffeId(uri);
    if (id) out.push(id);
  }
  return out;
}

/** Builds a WorkloadCertificate from a CA response chain (leaf, intermediates..., root bundle last). */
export function workloadCertificateFromChain(expected: Identity, privateKeyPem: string, certChain: readonly string[]): WorkloadCertificate {
  if (certChain.length < 2) {
    throw new IdentityError(
      IdentityErrorCode.BAD_PEM,
      `a certificate chain needs a leaf and a root bundle, got ${certChain.length} element(s)`,
    );
  }
  // The last element is the root bundle and may hold several roots; the others hold one certificate each.
  const roots = splitPemCertificates(certChain[certChain.length - 1] ?? '');
  const chain = certChain.slice(0, -1).flatMap(splitPemCertificates);
  const leafPem = chain[0];
  if (!leafPem || roots.length === 0) throw new IdentityError(IdentityErrorCode.BAD_PEM, 'certificate chain has no leaf or no root');
  const leaf = parseCertificatePem(leafPem);
  const ids = identitiesOfCertificate(leaf);
  if (!ids.some((id) => sameIdentity(id, expected))) {
    throw new IdentityError(
      IdentityErrorCode.SAN_MISMATCH,
      `certificate issued for [${ids.map(formatSpiffeId).join(', ') || 'no SPIFFE SAN'}] but ${formatSpiffeId(expected)} was requested`,
    );
  }
  return Object.freeze({
    identity: expected,
    privateKeyPem,
    certChainPem: Object.freeze(chain),
    rootCertsPem: Object.freeze(roots),
    notBefore: new Date(leaf.validFrom),
    notAfter: new Date(leaf.validTo),
    serialNumber: leaf.serialNumber,
  });
}

/** When a certificate should be renewed: at half its lifetime (ztunnel's `refresh_at`). */
export function refreshAt(cert: Pick<WorkloadCertificate, 'notBefore' | 'notAfter'>): Date {
  const nb = cert.notBefore.getTime();
  return new Date(nb + (cert.notAfter.getTime() - nb) / 2);
}

export function isExpired(cert: Pick<WorkloadCertificate, 'notAfter'>, now: number = Date.now()): boolean {
  return cert.notAfter.getTime() <= now;
}
