/**
 * ZDS errors: every failure of the ZDS protocol (node agent <-> ztunnel) carries one of these stable codes, so
 * logs, metrics and tests can key on it. Both ends use them.
 */
import { MeshError } from '../errors.js';

export const ZdsErrorCode = {
  /** The datagram is not a valid protobuf of the expected message type. */
  DECODE_FAILED: 'ZDS_DECODE_FAILED',
  /** A WorkloadRequest / WorkloadResponse without a payload (zero bytes, or only fields we do not know). */
  EMPTY_MESSAGE: 'ZDS_EMPTY_MESSAGE',
  /** A payload this implementation does not know (a oneof member added by a newer peer). */
  UNKNOWN_MESSAGE: 'ZDS_UNKNOWN_MESSAGE',
  /** AddWorkload without its netns descriptor (zds.proto: exactly one fd). */
  MISSING_FD: 'ZDS_MISSING_FD',
  /** Descriptors on a message that must carry none, or more than one on AddWorkload. */
  UNEXPECTED_FD: 'ZDS_UNEXPECTED_FD',
  /** AddWorkload without workload_info (ztunnel requires it). */
  MISSING_WORKLOAD_INFO: 'ZDS_MISSING_WORKLOAD_INFO',
  /** Add/Keep/Del without a uid. */
  MISSING_UID: 'ZDS_MISSING_UID',
  /** ZdsHello with version NOT_USED. */
  BAD_VERSION: 'ZDS_BAD_VERSION',
  /** A message that is valid but not allowed at this point of the conversation. */
  PROTOCOL_VIOLATION: 'ZDS_PROTOCOL_VIOLATION',
  /** The peer did not answer in time (hello or ack deadline). */
  TIMEOUT: 'ZDS_TIMEOUT',
  /** The connection ended (peer gone or closed locally) before the exchange finished. */
  CONNECTION_CLOSED: 'ZDS_CONNECTION_CLOSED',
  /** No ztunnel is connected to receive the request. */
  NOT_CONNECTED: 'ZDS_NOT_CONNECTED',
  /** An encoded message exceeds the 1024-byte datagram ztunnel reads. */
  MESSAGE_TOO_LARGE: 'ZDS_MESSAGE_TOO_LARGE',
} as const;
export type ZdsErrorCode = (typeof ZdsErrorCode)[keyof typeof ZdsErrorCode];

export class ZdsError extends MeshError {
  declare readonly code: ZdsErrorCode;

  constructor(code: ZdsErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}
