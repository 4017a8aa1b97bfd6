/**
 * ZDS, the protocol between the node agent (server, cni/agent) and ztunnel (client, ztunnel/inpod): codec,
 * validation and typed errors shared by both ends. Transport is lib/native's SeqpacketServer/SeqpacketConnection.
 *
 *   encodeHello / decodeHello          ZdsHello{V1}, ztunnel's first datagram
 *   encodeRequest / decodeRequest      WorkloadRequest{add|keep|del|snapshotSent}; Add + exactly one netns fd
 *   encodeAck / decodeAck              WorkloadResponse{ack{error}}, '' = ACK
 *   ZdsError with ZdsErrorCode (ZDS_*)
 */
export {
  ZDS_DEFAULT_SOCKET_PATH,
  ZDS_DEFAULT_TIMEOUT_MS,
  ZDS_MAX_MESSAGE_BYTES,
  decodeAck,
  decodeHello,
  decodeRequest,
  describeRequest,
  encodeAck,
  encodeHello,
  encodeRequest,
} from './codec.js';
export type { ZdsReceivedRequest, ZdsRequest, ZdsWorkloadInfo } from './codec.js';
export { ZdsError, ZdsErrorCode } from './errors.js';
