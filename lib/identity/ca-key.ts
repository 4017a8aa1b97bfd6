/**
 * A CA's signing key as users bring it in Istio's `cacerts`: RSA of 2048 to 4096 bits or ECDSA P-256, in PKCS#1
 * ("BEGIN RSA PRIVATE KEY"), SEC1 ("BEGIN EC PRIVATE KEY", with or without the EC PARAMETERS block that
 * `openssl ecparam -genkey` writes first) or PKCS#8 ("BEGIN PRIVATE KEY") PEM: the forms istiod's
 * ParsePemEncodedKey reads (security/pkg/pki/util/crypto.go). node:crypto parses all three; WebCrypto, which
 * signs, imports PKCS#8 only, so the key is re-encoded in memory and never written back.
 */
import { type KeyObject, createPrivateKey, webcrypto } from 'node:crypto';
import { CaMaterialError, IdentityErrorCode } from './errors.js';
import type { CryptoKey } from './x509.js';

export type CaKeyEncoding = 'PKCS#1' | 'SEC1' | 'PKCS#8';

/**
 * RSA sizes accepted: below 2048 bits OpenSSL's default security level refuses the chain; above 4096 (what
 * Istio's tools/certs makes) every signature only gets slower.
 */
export const MIN_CA_RSA_BITS = 2048;
export const MAX_CA_RSA_BITS = 4096;

export interface CaSigningKey {
  /** For @peculiar/x509: non-extractable, usable for `sign` only. */
  readonly privateKey: CryptoKey;
  /** The same key for node:crypto, to check it against the CA certificate. */
  readonly keyObject: KeyObject;
  /** sha256WithRSAEncryption for RSA keys, ecdsa-with-SHA256 for P-256: what istiod's Go x509 picks for these keys. */
  readonly signingAlgorithm: webcrypto.RsaHashedImportParams | webcrypto.EcdsaParams;
  /** For logs and errors, e.g. "RSA 4096 (PKCS#1)". */
  readonly description: string;
}

const RSA_SIGNING: webcrypto.RsaHashedImportParams = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
const EC_SIGNING: webcrypto.EcdsaParams = { name: 'ECDSA', hash: 'SHA-256' };
const EC_IMPORT: webcrypto.EcKeyImportParams = { name: 'ECDSA', namedCurve: 'P-256' };

const ENCODING_OF_LABEL: Readonly<Record<string, CaKeyEncoding>> = {
  'RSA PRIVATE KEY': 'PKCS#1',
  'EC PRIVATE KEY': 'SEC1',
  'PRIVATE KEY': 'PKCS#8',
};

const ACCEPTED = `RSA of ${MIN_CA_RSA_BITS} to ${MAX_CA_RSA_BITS} bits or ECDSA P-256`;

/**
 * Reads a CA private key from PEM. `file` names where it came from (a path, or a Secret key) in errors:
 * IDENTITY_BAD_CA_MATERIAL when it is not an unencrypted private key PEM, IDENTITY_CA_KEY_UNSUPPORTED when it
 * is a key of another type or size.
 */
export async function importCaSigningKey(pem: string, file: string): Promise<CaSigningKey> {
  const encoding = encodingOf(pem, file);
  let keyObject: KeyObject;
  try {
    keyObject = createPrivateKey({ key: pem, format: 'pem' });
  } catch (err) {
    throw new CaMaterialError(IdentityErrorCode.BAD_CA_MATERIAL, file, `cannot read the ${encoding} private key in it`, { cause: err });
  }
  const type = keyObject.asymmetricKeyType;
  const details = keyObject.asymmetricKeyDetails ?? {};
  let signingAlgorithm: CaSigningKey['signingAlgorithm'];
  let importAlgorithm: webcrypto.RsaHashedImportParams | webcrypto.EcKeyImportParams;
  let name: string;
  if (type === 'rsa') {
    const bits = details.modulusLength ?? 0;
    if (bits < MIN_CA_RSA_BITS || bits > MAX_CA_RSA_BITS) {
      throw new CaMaterialError(
        IdentityErrorCode.CA_KEY_UNSUPPORTED,
        file,
        `the key is RSA of ${bits} bits; use ${ACCEPTED} (Istio's tools/certs makes RSA 4096)`,
      );
    }
    signingAlgorithm = RSA_SIGNING;
    importAlgorithm = RSA_SIGNING;
    name = `RSA ${bits}`;
  } else if (type === 'ec') {
    // node:crypto reports OpenSSL's curve names.
    if (details.namedCurve !== 'prime256v1') {
      throw new CaMaterialError(
        IdentityErrorCode.CA_KEY_UNSUPPORTED,
        file,
        `the key is ECDSA on curve ${details.namedCurve ?? 'unknown'}; use ${ACCEPTED} (P-256 is prime256v1 in openssl)`,
      );
    }
    signingAlgorithm = EC_SIGNING;
    importAlgorithm = EC_IMPORT;
    name = 'ECDSA P-256';
  } else {
    throw new CaMaterialError(IdentityErrorCode.CA_KEY_UNSUPPORTED, file, `the key is of type ${type ?? 'unknown'}; use ${ACCEPTED}`);
  }
  const pkcs8 = keyObject.export({ type: 'pkcs8', format: 'der' });
  let privateKey: CryptoKey;
  try {
    privateKey = await webcrypto.subtle.importKey('pkcs8', pkcs8, importAlgorithm, false, ['sign']);
  } catch (err) {
    throw new CaMaterialError(IdentityErrorCode.CA_KEY_UNSUPPORTED, file, `the ${name} key cannot be used for signing`, { cause: err });
  }
  return { privateKey, keyObject, signingAlgorithm, description: `${name} (${encoding})` };
}

/** The encoding a PEM claims by its label; refuses encrypted keys and PEM that holds no private key. */
function encodingOf(pem: string, file: string): CaKeyEncoding {
  // RFC 7468 §11 (PKCS#8 EncryptedPrivateKeyInfo) and RFC 1421 §4.6.1.1 (OpenSSL's legacy "Proc-Type: 4,ENCRYPTED").
  if (/-----BEGIN ENCRYPTED PRIVATE KEY-----/.test(pem) || /^Proc-Type:\s*4,ENCRYPTED/m.test(pem)) {
    throw new CaMaterialError(
      IdentityErrorCode.BAD_CA_MATERIAL,
      file,
      'the private key is encrypted; the CA reads unencrypted keys (as istiod does): decrypt it with `openssl pkey -in ca-key.pem -out ca-key.pem` and keep the file mode 0600',
    );
  }
  const label = /-----BEGIN ((?:RSA |EC )?PRIVATE KEY)-----/.exec(pem)?.[1];
  const encoding = label === undefined ? undefined : ENCODING_OF_LABEL[label];
  if (encoding) return encoding;
  const other = /-----BEGIN ([A-Z0-9 ]+)-----/.exec(pem)?.[1];
  throw new CaMaterialError(
    IdentityErrorCode.BAD_CA_MATERIAL,
    file,
    other
      ? `holds a ${other} PEM block but no private key ("BEGIN RSA PRIVATE KEY", "BEGIN EC PRIVATE KEY" or "BEGIN PRIVATE KEY")`
      : 'is not PEM; it must hold the CA private key ("BEGIN RSA PRIVATE KEY", "BEGIN EC PRIVATE KEY" or "BEGIN PRIVATE KEY")',
  );
}
