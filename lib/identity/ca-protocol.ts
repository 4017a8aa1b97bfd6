/**
 * The conventions of Istio's CA API (istio.v1.auth.IstioCertificateService) that its server and client share:
 * header and metadata names, and the one place where CA errors meet gRPC status codes, in both directions.
 * The server turns a typed error into the status a ztunnel (ours or Istio's) understands; the client turns a
 * status back into a typed error. A registry, not a switch, so adding a code is one line.
 */
import { status as GrpcStatus, type ServiceError } from '@grpc/grpc-js';
import { statusReplyOf, type GrpcStatusReply } from '../grpc-server.js';
import { CaError, CaErrorCode, CaRefusedError, IdentityErrorCode } from './errors.js';

/** Request metadata (Struct) key of the identity a node proxy asks for on behalf of a pod (istiod server.go). */
export const IMPERSONATED_IDENTITY_KEY = 'ImpersonatedIdentity';
/** gRPC header carrying `Bearer <Kubernetes service-account token, audience istio-ca>`. */
export const AUTHORIZATION_HEADER = 'authorization';
/** gRPC header naming the caller's cluster, so a multi-cluster CA picks the right token reviewer. */
export const CLUSTER_ID_HEADER = 'clusterid';

/** Server side: stable error code -> gRPC status. Anything not listed is INTERNAL. */
const STATUS_OF_CODE: Readonly<Record<string, GrpcStatus>> = {
  [CaErrorCode.UNAUTHENTICATED]: GrpcStatus.UNAUTHENTICATED,
  [CaErrorCode.PERMISSION_DENIED]: GrpcStatus.PERMISSION_DENIED,
  [CaErrorCode.BAD_REQUEST]: GrpcStatus.INVALID_ARGUMENT,
  // The CSR asks for an identity other than the one the caller was authorized for.
  [IdentityErrorCode.SAN_MISMATCH]: GrpcStatus.PERMISSION_DENIED,
  [IdentityErrorCode.BAD_CSR]: GrpcStatus.INVALID_ARGUMENT,
  [IdentityErrorCode.BAD_SPIFFE_ID]: GrpcStatus.INVALID_ARGUMENT,
};

/** Server: the status to answer with for an error thrown while handling CreateCertificate. */
export function grpcStatusOf(err: unknown): GrpcStatusReply {
  // Unexpected failures (a bug, a broken signing key) are logged in full but not described to the caller.
  return statusReplyOf(err, STATUS_OF_CODE, 'internal error while signing the certificate; see the CA logs');
}

/** Statuses that mean "the CA was not reached or did not finish": worth retrying unchanged. */
const TRANSIENT: ReadonlySet<GrpcStatus> = new Set([GrpcStatus.UNAVAILABLE, GrpcStatus.DEADLINE_EXCEEDED, GrpcStatus.CANCELLED]);

function isServiceError(err: unknown): err is ServiceError {
  return err instanceof Error && typeof (err as Partial<ServiceError>).code === 'number' && 'metadata' in err;
}

/** Client: the typed error for a failed CreateCertificate call to the CA at `address`. */
export function caErrorFromGrpc(err: unknown, address: string): CaError {
  if (!isServiceError(err)) {
    return new CaError(CaErrorCode.UNAVAILABLE, `CA call to ${address} failed before it was sent`, { cause: err });
  }
  const name = GrpcStatus[err.code] ?? `status ${err.code}`;
  if (TRANSIENT.has(err.code)) {
    return new CaError(
      CaErrorCode.UNAVAILABLE,
      `CA at ${address} is unavailable (${name}: ${err.details}); check CA_ADDRESS, that the CA's port is reachable from this node, and that its serving certificate chains to the configured root`,
      { cause: err },
    );
  }
  return new CaRefusedError(err.code, name, err.details, address);
}
