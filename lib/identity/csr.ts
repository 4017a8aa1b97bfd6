/**
 * Keys and certificate signing requests: ECDSA P-256, one URI SAN = the SPIFFE identity, empty subject
 * (as ztunnel's CSRs). Built on WebCrypto through @peculiar/x509.
 */
import { webcrypto } from 'node:crypto';
import { type CryptoKeyPair, x509 } from './x509.js';
import { IdentityError, IdentityErrorCode } from './errors.js';
import { type Identity, formatSpiffeId, parseSpiffeId } from './spiffe.js';
import { MAX_CSR_PEM_BYTES } from './defaults.js';

export const EC_KEY_ALGORITHM: webcrypto.EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-256' };
export const EC_SIGNING_ALGORITHM: webcrypto.EcdsaParams = { name: 'ECDSA', hash: 'SHA-256' };

export interface KeyPairPem {
  readonly keys: CryptoKeyPair;
  /** PKCS#8 PEM, the form node:tls takes. */
  readonly privateKeyPem: string;
}

function toPem(der: ArrayBuffer, label: string): string {
  const b64 = Buffer.from(der)
    .toString('base64')
    .replace(/(.{64})/g, '$1\n')
    .replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

export async function generateKeyPair(): Promise<KeyPairPem> {
  const keys = (await webcrypto.subtle.generateKey(EC_KEY_ALGORITHM, true, ['sign', 'verify'])) as CryptoKeyPair;
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  return { keys, privateKeyPem: toPem(pkcs8, 'PRIVATE KEY') };
}

/** A PEM CSR asking for `identity`. */
export async function createCsr(identity: Identity, keys: CryptoKeyPair): Promise<string> {
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    keys,
    signingAlgorithm: EC_SIGNING_ALGORITHM,
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: formatSpiffeId(identity) }], true)],
  });
  return csr.toString('pem');
}

/** A CSR after validation: the identity it asks for and its public key. */
export interface VerifiedCsr {
  readonly identity: Identity;
  readonly publicKey: x509.PublicKey;
}

const SAN_OID = '2.5.29.17';

/**
 * Parses and checks a PEM CSR: signature valid, key ECDSA P-256, exactly one SAN which is a URI SAN holding a
 * SPIFFE identity. Throws IdentityError(IDENTITY_BAD_CSR) saying which check failed.
 */
export async function verifyCsr(csrPem: string): Promise<VerifiedCsr> {
  if (csrPem.length > MAX_CSR_PEM_BYTES) throw new IdentityError(IdentityErrorCode.BAD_CSR, `CSR larger than ${MAX_CSR_PEM_BYTES} bytes`);
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(csrPem);
  } catch (err) {
    throw new IdentityError(IdentityErrorCode.BAD_CSR, 'CSR is not a PEM PKCS#10 request', { cause: err });
  }
  let alg: webcrypto.EcKeyAlgorithm;
  try {
    alg = csr.publicKey.algorithm as webcrypto.EcKeyAlgorithm;
  } catch (err) {
    // Keys WebCrypto does not know (Ed448, DSA, ...) make the getter throw; they are not P-256 either way.
    throw new IdentityError(IdentityErrorCode.BAD_CSR, 'CSR key must be ECDSA P-256, got an unsupported key type', { cause: err });
  }
  if (alg.name !== 'ECDSA' || alg.namedCurve !== 'P-256') {
    throw new IdentityError(
      IdentityErrorCode.BAD_CSR,
      `CSR key must be ECDSA P-256, got ${alg.name}${alg.namedCurve ? ` ${alg.namedCurve}` : ''}`,
    );
  }
  let valid = false;
  try {
    valid = await csr.verify();
  } catch (err) {
    throw new IdentityError(IdentityErrorCode.BAD_CSR, 'CSR signature cannot be verified', { cause: err });
  }
  if (!valid) throw new IdentityError(IdentityErrorCode.BAD_CSR, 'CSR signature does not match its public key');
  let names: x509.JsonGeneralNames;
  try {
    const sanRaw = csr.getExtension(SAN_OID);
    names = sanRaw ? new x509.SubjectAlternativeNameExtension(sanRaw.rawData).names.toJSON() : [];
  } catch (err) {
    throw new IdentityError(IdentityErrorCode.BAD_CSR, 'CSR subject alternative name extension is malformed', { cause: err });
  }
  if (names.length !== 1 || names[0]?.type !== 'url') {
    throw new IdentityError(
      IdentityErrorCode.BAD_CSR,
      `CSR must carry exactly one URI SAN (the SPIFFE identity), found ${names.length === 0 ? 'none' : names.map((n) => `${n.type}:${n.value}`).join(', ')}`,
    );
  }
  let identity: Identity;
  try {
    identity = parseSpiffeId(names[0].value);
  } catch (err) {
    throw new IdentityError(IdentityErrorCode.BAD_CSR, 'CSR URI SAN is not a SPIFFE identity', { cause: err });
  }
  return { identity, publicKey: csr.publicKey };
}
