/**
 * Conventions of delta ADS shared by the server (controller/xds) and the client (lib/xds/client.ts): header names,
 * the one table from stable error codes to gRPC statuses, and how a client reads the status a stream ended with.
 * Protocol reference: the xDS REST and gRPC protocol, "Incremental xDS" (envoyproxy.io/docs/envoy/latest/api-docs/
 * xds_protocol#incremental-xds); Istio's rules in istio pilot/pkg/xds/delta.go and ztunnel src/xds/client.rs.
 */
import { status as GrpcStatus } from '@grpc/grpc-js';
import { statusReplyOf, type GrpcStatusReply } from '../grpc-server.js';
import { AUTHORIZATION_HEADER, CLUSTER_ID_HEADER } from '../identity/ca-protocol.js';
import { XdsErrorCode } from './errors.js';

/** Same headers as the CA: `authorization: Bearer <token>` and `clusterid` (ztunnel src/identity/auth.rs). */
export { AUTHORIZATION_HEADER, CLUSTER_ID_HEADER };

/** Full method path of the delta ADS stream ztunnel opens. */
export const DELTA_ADS_PATH = '/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources';

/** Server side: stable code -> status. Anything not listed is INTERNAL (and its detail is not shown to the client). */
const STATUS_OF_CODE: Readonly<Record<string, GrpcStatus>> = {
  [XdsErrorCode.BAD_REQUEST]: GrpcStatus.INVALID_ARGUMENT,
  [XdsErrorCode.BAD_NODE]: GrpcStatus.INVALID_ARGUMENT,
  [XdsErrorCode.UNKNOWN_TYPE]: GrpcStatus.INVALID_ARGUMENT,
  [XdsErrorCode.RESOURCE_EXHAUSTED]: GrpcStatus.RESOURCE_EXHAUSTED,
  [XdsErrorCode.UNAUTHENTICATED]: GrpcStatus.UNAUTHENTICATED,
  [XdsErrorCode.PERMISSION_DENIED]: GrpcStatus.PERMISSION_DENIED,
  [XdsErrorCode.AUTH_TIMEOUT]: GrpcStatus.UNAVAILABLE,
  [XdsErrorCode.UNIMPLEMENTED]: GrpcStatus.UNIMPLEMENTED,
  [XdsErrorCode.SHUTTING_DOWN]: GrpcStatus.UNAVAILABLE,
};

/** Server: the status a stream is closed with for `err`. */
export function xdsStatusOf(err: unknown): GrpcStatusReply {
  return statusReplyOf(err, STATUS_OF_CODE, 'internal error in the xDS server; see the control plane logs');
}

/**
 * Statuses with which the control plane turns a client away: retrying at once would only repeat the refusal, so
 * the client keeps backing off even after an earlier successful session.
 */
const REFUSALS: ReadonlySet<GrpcStatus> = new Set([
  GrpcStatus.UNAUTHENTICATED,
  GrpcStatus.PERMISSION_DENIED,
  GrpcStatus.INVALID_ARGUMENT,
  GrpcStatus.RESOURCE_EXHAUSTED,
  GrpcStatus.UNIMPLEMENTED,
  GrpcStatus.FAILED_PRECONDITION,
  GrpcStatus.INTERNAL,
]);

/**
 * Client: whether a stream ended "gracefully", i.e. reconnecting right away is right. ztunnel (src/xds/client.rs
 * run_loop) reconnects at its initial backoff after OK and after the statuses a server restart or
 * MaxConnectionAge produce (CANCELLED, UNKNOWN, DEADLINE_EXCEEDED, UNAVAILABLE "transport is closing"/GOAWAY), and
 * doubles the backoff otherwise. grpc-js does not tell a GOAWAY from a reset, so an UNAVAILABLE counts as graceful
 * only on a stream that had been established (a response arrived); before that it is a connection failure.
 */
export function isGracefulEnd(code: GrpcStatus, established: boolean): boolean {
  if (code === GrpcStatus.OK) return true;
  return established && !REFUSALS.has(code);
}
