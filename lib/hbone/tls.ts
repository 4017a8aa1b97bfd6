/**
 * Mutual TLS for HBONE (ztunnel src/tls/*): TLS 1.3 only, AES-GCM suites, ALPN "h2", client certificate
 * required. The client sends no SNI and accepts the server only if one URI SAN of its leaf is an expected
 * SPIFFE identity (DNS names are not checked). The server accepts any chain to its roots and then requires
 * the client identity to be in its own trust domain; *which* identity may connect is policy, not TLS.
 */
import { createSecureContext, type PeerCertificate, type SecureContext, type TLSSocket } from 'node:tls';
import { X509Certificate, constants as cryptoConstants } from 'node:crypto';
import { identitiesOfCertificate, identityOfCertificate, type WorkloadCertificate } from '../identity/certificate.js';
import { type Identity, formatSpiffeId, sameIdentity } from '../identity/spiffe.js';
import { HBONE_CIPHERS } from './config.js';
import { HboneError, HboneErrorCode } from './errors.js';

export const HBONE_ALPN = 'h2';

const contexts = new WeakMap<WorkloadCertificate, SecureContext>();

/**
 * One SecureContext per certificate, reused by every connection made with it: parsing keys and chains per
 * connection would dominate handshake cost.
 */
export function secureContextFor(cert: WorkloadCertificate): SecureContext {
  let ctx = contexts.get(cert);
  if (!ctx) {
    ctx = createSecureContext({
      key: cert.privateKeyPem,
      cert: cert.certChainPem.join(''),
      ca: [...cert.rootCertsPem],
      minVersion: 'TLSv1.3',
      ciphers: HBONE_CIPHERS,
    });
    contexts.set(cert, ctx);
  }
  return ctx;
}

/** Server-side TLS options for a certificate (used at creation and on rotation via setSecureContext). */
export function serverTlsOptions(cert: WorkloadCertificate) {
  return {
    key: cert.privateKeyPem,
    cert: cert.certChainPem.join(''),
    ca: [...cert.rootCertsPem],
    minVersion: 'TLSv1.3' as const,
    ciphers: HBONE_CIPHERS,
    requestCert: true,
    rejectUnauthorized: true,
    ALPNProtocols: [HBONE_ALPN],
    // No stateless session tickets: each cost ~16 KiB per connection for as long as it lives (bench:idle), and
    // HBONE connections are pooled and long-lived, so resumption saves almost no handshakes. With this option
    // OpenSSL issues TLS 1.3 tickets as stateful ones, and Node keeps no session cache, so none resume.
    secureOptions: cryptoConstants.SSL_OP_NO_TICKET,
  };
}

/** The `checkServerIdentity` hook: the server leaf must carry one of `expected`. */
export function makeServerIdentityCheck(expected: readonly Identity[]): (host: string, cert: PeerCertificate) => Error | undefined {
  return (_host, peer) => {
    let ids: Identity[] = [];
    try {
      ids = peer.raw ? identitiesOfCertificate(new X509Certificate(peer.raw)) : [];
    } catch {
      ids = [];
    }
    if (ids.some((id) => expected.some((e) => sameIdentity(id, e)))) return undefined;
    return new HboneError(
      HboneErrorCode.IDENTITY_MISMATCH,
      `server presented [${ids.map(formatSpiffeId).join(', ') || 'no SPIFFE identity'}], expected one of [${expected.map(formatSpiffeId).join(', ')}]`,
    );
  };
}

/**
 * The client identity of an established server-side connection, or an error when it has none or it is
 * outside `trustDomain` (ztunnel's TrustDomainVerifier).
 */
export function verifyClientIdentity(socket: TLSSocket, trustDomain: string): Identity {
  const peer = socket.getPeerX509Certificate();
  const id = peer ? identityOfCertificate(peer) : undefined;
  if (!id) {
    throw new HboneError(
      HboneErrorCode.PEER_IDENTITY,
      'client certificate carries no SPIFFE identity (URI SAN spiffe://<td>/ns/<ns>/sa/<sa>)',
    );
  }
  if (id.trustDomain !== trustDomain) {
    throw new HboneError(
      HboneErrorCode.PEER_IDENTITY,
      `client identity ${formatSpiffeId(id)} is outside trust domain "${trustDomain}"; check that both sides use the same CA and TRUST_DOMAIN`,
    );
  }
  return id;
}
