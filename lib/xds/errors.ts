import { MeshError } from '../errors.js';

/**
 * Errors of the delta ADS protocol, on both ends. Codes are stable: logs, metrics and tests key on them. The
 * server maps them to gRPC statuses in one table (lib/xds/protocol.ts); the client raises them for the reasons it
 * disconnects or rejects configuration.
 */
export const XdsErrorCode = {
  /** Server: a request could not be decoded as a DeltaDiscoveryRequest, or a field is malformed. */
  BAD_REQUEST: 'XDS_BAD_REQUEST',
  /** Server: the first request carries no usable Node (missing id, unknown proxy type, no IP address). */
  BAD_NODE: 'XDS_BAD_NODE',
  /** Server: a request names a type URL this control plane does not serve to this proxy. */
  UNKNOWN_TYPE: 'XDS_UNKNOWN_TYPE',
  /** Server: a client went over a per-stream budget (request rate, subscribed types or names). */
  RESOURCE_EXHAUSTED: 'XDS_RESOURCE_EXHAUSTED',
  /** Server: the caller could not be authenticated (missing, expired or rejected token). */
  UNAUTHENTICATED: 'XDS_UNAUTHENTICATED',
  /** Server: the caller is known but may not receive configuration for the proxy it claims to be. */
  PERMISSION_DENIED: 'XDS_PERMISSION_DENIED',
  /** Server: the authenticator did not answer in time (a slow TokenReview); the client retries. */
  AUTH_TIMEOUT: 'XDS_AUTH_TIMEOUT',
  /** Server: the resource source threw while generating a response; the stream is closed so the proxy reconnects. */
  GENERATE_FAILED: 'XDS_GENERATE_FAILED',
  /** Server: SotW StreamAggregatedResources is not served; use DeltaAggregatedResources. */
  UNIMPLEMENTED: 'XDS_UNIMPLEMENTED',
  /**
   * Server: the stream was cancelled without our doing: the client went away, or grpc-js refused one of its messages
   * for exceeding the request size budget (it answers RESOURCE_EXHAUSTED itself and only tells the handler "cancelled").
   */
  CANCELLED: 'XDS_CANCELLED',
  /** Server: the control plane is shutting down. */
  SHUTTING_DOWN: 'XDS_SHUTTING_DOWN',
  /** Client: the control plane could not be reached (TCP, TLS, or the connect deadline). */
  UNAVAILABLE: 'XDS_UNAVAILABLE',
  /** Client: the stream ended with an error status from the control plane. */
  STREAM_FAILED: 'XDS_STREAM_FAILED',
  /** Client: the token to authenticate with could not be obtained. */
  NO_TOKEN: 'XDS_NO_TOKEN',
  /** Client: a handler rejected resources; the response is NACKed with their reasons. */
  REJECTED: 'XDS_REJECTED',
} as const;

export type XdsErrorCodeValue = (typeof XdsErrorCode)[keyof typeof XdsErrorCode];

export class XdsError extends MeshError {}

/** One resource a handler refused, with the reason that travels back to the control plane in the NACK. */
export interface XdsRejection {
  readonly name: string;
  readonly error: string;
}

/** What a handler throws to reject some resources of a response (returning the list is equivalent). */
export class XdsRejectedError extends XdsError {
  readonly rejections: readonly XdsRejection[];

  constructor(rejections: readonly XdsRejection[]) {
    super(XdsErrorCode.REJECTED, rejectionMessage(rejections));
    this.rejections = Object.freeze([...rejections]);
  }
}

/** The error_detail message of a NACK: every rejection as `name: reason`, joined like ztunnel joins them ("; "). */
export function rejectionMessage(rejections: readonly XdsRejection[]): string {
  return rejections.map((r) => `${r.name}: ${r.error}`).join('; ');
}
