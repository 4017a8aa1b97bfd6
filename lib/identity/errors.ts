import { MeshError } from '../errors.js';

/** Identity and certificate errors. Codes are stable; tests and metrics key on them. */
export const IdentityErrorCode = {
  /** A string is not exactly `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`. */
  BAD_SPIFFE_ID: 'IDENTITY_BAD_SPIFFE_ID',
  /** A PEM or DER input could not be parsed as what it claims to be. */
  BAD_PEM: 'IDENTITY_BAD_PEM',
  /** A CSR is malformed, badly signed, or not an ECDSA P-256 key. */
  BAD_CSR: 'IDENTITY_BAD_CSR',
  /** A certificate does not carry the identity it was expected to carry. */
  SAN_MISMATCH: 'IDENTITY_SAN_MISMATCH',
  /** No certificate could be obtained for an identity (CA unreachable, refused, ...). */
  CERT_UNAVAILABLE: 'IDENTITY_CERT_UNAVAILABLE',
  /** The CA key material could not be loaded. */
  BAD_CA_MATERIAL: 'IDENTITY_BAD_CA_MATERIAL',
} as const;

export class IdentityError extends MeshError {}
