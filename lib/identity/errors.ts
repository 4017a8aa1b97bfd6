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
  /** A CA file (ca-cert.pem, ca-key.pem, root-cert.pem, cert-chain.pem) is missing, unreadable, encrypted or not PEM. */
  BAD_CA_MATERIAL: 'IDENTITY_BAD_CA_MATERIAL',
  /** ca-key.pem is a key the CA does not sign with: only RSA of 2048 to 4096 bits and ECDSA P-256 are accepted. */
  CA_KEY_UNSUPPORTED: 'IDENTITY_CA_KEY_UNSUPPORTED',
  /** ca-key.pem is not the private key of the public key in ca-cert.pem. */
  CA_KEY_MISMATCH: 'IDENTITY_CA_KEY_MISMATCH',
  /** ca-cert.pem (or a certificate above it) may not issue certificates: no basicConstraints CA:true or no keyCertSign. */
  CA_CERT_NOT_CA: 'IDENTITY_CA_CERT_NOT_CA',
  /** ca-cert.pem or a certificate of its chain is expired or not yet valid. */
  CA_CERT_EXPIRED: 'IDENTITY_CA_CERT_EXPIRED',
  /** ca-cert.pem does not chain through cert-chain.pem to a root of root-cert.pem. */
  CA_CHAIN_BROKEN: 'IDENTITY_CA_CHAIN_BROKEN',
} as const;

export class IdentityError extends MeshError {}

/** A problem with CA material, naming the file (as a path, or a Secret key) that has to change. */
export class CaMaterialError extends IdentityError {
  readonly file: string;

  constructor(code: string, file: string, message: string, options?: { cause?: unknown }) {
    super(code, `${file}: ${message}`, options);
    this.file = file;
  }
}

/**
 * Errors of the CA protocol (istio.v1.auth.IstioCertificateService), on both ends. The server maps them to
 * gRPC statuses and the client maps gRPC statuses back to them, both in ca-status.ts.
 */
export const CaErrorCode = {
  /** Server: the caller could not be authenticated (missing, expired or rejected token). */
  UNAUTHENTICATED: 'CA_UNAUTHENTICATED',
  /** Server: the caller is known but may not receive the identity it asks for. */
  PERMISSION_DENIED: 'CA_PERMISSION_DENIED',
  /** Server: the request itself is malformed (undecodable protobuf, bad ImpersonatedIdentity, ...). */
  BAD_REQUEST: 'CA_BAD_REQUEST',
  /** Client: the CA could not be reached or did not answer before the deadline; retrying may help. */
  UNAVAILABLE: 'CA_UNAVAILABLE',
  /** Client: the CA answered with an error status; `CaRefusedError` carries the status and its detail. */
  REFUSED: 'CA_REFUSED',
  /** Client: the CA answered, but the chain is unusable (not PEM, wrong identity, no root). */
  BAD_RESPONSE: 'CA_BAD_RESPONSE',
  /** Client: the token to authenticate with could not be obtained (e.g. the token file is missing). */
  NO_TOKEN: 'CA_NO_TOKEN',
} as const;

export type CaErrorCodeValue = (typeof CaErrorCode)[keyof typeof CaErrorCode];

export class CaError extends MeshError {}

/** The CA answered a CreateCertificate call with a gRPC error status. */
export class CaRefusedError extends CaError {
  /** The gRPC status code (grpc.status.*). */
  readonly grpcCode: number;
  /** The status detail string the CA sent, verbatim. */
  readonly detail: string;

  constructor(grpcCode: number, grpcCodeName: string, detail: string, address: string) {
    super(CaErrorCode.REFUSED, `CA at ${address} refused the certificate request with ${grpcCodeName}: ${detail}`);
    this.grpcCode = grpcCode;
    this.detail = detail;
  }
}
