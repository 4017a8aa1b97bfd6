/**
 * ZDS wire codec (ztunnel proto/zds.proto, package istio.workload.zds): one protobuf message per SOCK_SEQPACKET
 * datagram, no length prefix; the pod's network namespace travels as SCM_RIGHTS ancillary data on AddWorkload.
 *
 * Pure functions: they neither read sockets nor close descriptors. A decode error leaves the received fds to
 * the caller, who must close them (see ztunnel/inpod/zds-client.ts and cni/agent/zds-server.ts).
 *
 * Validation follows ztunnel (src/inpod/protocol.rs): AddWorkload must carry exactly one fd and a workload_info;
 * every other message carries none; a datagram without a known payload is an error.
 */
import { istio } from '../proto/index.js';
import { ZdsError, ZdsErrorCode } from './errors.js';

const Z = istio.workload.zds;

/** ztunnel reads each datagram into a 1024-byte buffer and rejects truncation (MSG_TRUNC); so must we. */
export const ZDS_MAX_MESSAGE_BYTES = 1024;
/** ztunnel's INPOD_UDS default and the agent's ZtunnelUDSAddress default. */
export const ZDS_DEFAULT_SOCKET_PATH = '/var/run/ztunnel/ztunnel.sock';
/** istio cni/pkg/nodeagent/ztunnelserver.go readWriteDeadline: hello and every ack within 5 s. */
export const ZDS_DEFAULT_TIMEOUT_MS = 5000;

/** The pod identity sent with AddWorkload (WorkloadInfo; field 4 trust_domain is reserved). */
export interface ZdsWorkloadInfo {
  name: string;
  namespace: string;
  serviceAccount: string;
}

/** A WorkloadRequest as both ends see it; the fd of an Add is passed next to it, not inside. */
export type ZdsRequest =
  | { kind: 'add'; uid: string; info: ZdsWorkloadInfo }
  | { kind: 'keep'; uid: string }
  | { kind: 'del'; uid: string }
  | { kind: 'snapshotSent' };

/** A decoded request; an Add owns the one received netns fd (the caller decides who closes it). */
export type ZdsReceivedRequest =
  | { kind: 'add'; uid: string; info: ZdsWorkloadInfo; netnsFd: number }
  | { kind: 'keep'; uid: string }
  | { kind: 'del'; uid: string }
  | { kind: 'snapshotSent' };

function decodeFailed(what: string, err: unknown): ZdsError {
  return new ZdsError(
    ZdsErrorCode.DECODE_FAILED,
    `${what}: not a valid protobuf message: ${err instanceof Error ? err.message : String(err)}`,
    { cause: err },
  );
}

function checkSize(bytes: Uint8Array, what: string): Uint8Array {
  if (bytes.length > ZDS_MAX_MESSAGE_BYTES) {
    throw new ZdsError(
      ZdsErrorCode.MESSAGE_TOO_LARGE,
      `${what} is ${bytes.length} bytes; ztunnel reads at most ${ZDS_MAX_MESSAGE_BYTES} per datagram`,
    );
  }
  return bytes;
}

function noFds(fds: readonly number[], what: string): void {
  if (fds.length > 0) {
    throw new ZdsError(ZdsErrorCode.UNEXPECTED_FD, `${what} must not carry file descriptors, got ${fds.length}`);
  }
}

function requireUid(uid: string | null | undefined, what: string): string {
  if (typeof uid !== 'string' || uid === '') throw new ZdsError(ZdsErrorCode.MISSING_UID, `${what} without a uid`);
  return uid;
}

// --- ZdsHello (ztunnel -> agent, first message) ---

export function encodeHello(): Uint8Array {
  return Z.ZdsHello.encode({ version: Z.Version.V1 }).finish();
}

/** Decodes the hello and returns its version number (1 = V1). Newer versions are accepted, as Istio's agent does. */
export function decodeHello(data: Uint8Array, fds: readonly number[]): number {
  noFds(fds, 'ZdsHello');
  let version: number;
  try {
    version = Z.ZdsHello.decode(data).version;
  } catch (err) {
    throw decodeFailed('ZdsHello', err);
  }
  if (version === Z.Version.NOT_USED) {
    throw new ZdsError(ZdsErrorCode.BAD_VERSION, 'ZdsHello without a version (NOT_USED); ztunnel sends V1');
  }
  return version;
}

// --- WorkloadRequest (agent -> ztunnel) ---

export function encodeRequest(req: ZdsRequest): Uint8Array {
  let bytes: Uint8Array;
  switch (req.kind) {
    case 'add':
      requireUid(req.uid, 'AddWorkload');
      bytes = Z.WorkloadRequest.encode({
        add: {
          uid: req.uid,
          workloadInfo: { name: req.info.name, namespace: req.info.namespace, serviceAccount: req.info.serviceAccount },
        },
      }).finish();
      break;
    case 'keep':
      bytes = Z.WorkloadRequest.encode({ keep: { uid: requireUid(req.uid, 'KeepWorkload') } }).finish();
      break;
    case 'del':
      bytes = Z.WorkloadRequest.encode({ del: { uid: requireUid(req.uid, 'DelWorkload') } }).finish();
      break;
    case 'snapshotSent':
      bytes = Z.WorkloadRequest.encode({ snapshotSent: {} }).finish();
      break;
  }
  return checkSize(bytes, `WorkloadRequest(${req.kind})`);
}

/** Decodes and validates one request datagram with the descriptors that came with it. */
export function decodeRequest(data: Uint8Array, fds: readonly number[]): ZdsReceivedRequest {
  let msg: ReturnType<typeof Z.WorkloadRequest.decode>;
  try {
    msg = Z.WorkloadRequest.decode(data);
  } catch (err) {
    throw decodeFailed('WorkloadRequest', err);
  }
  switch (msg.payload) {
    case 'add': {
      const add = msg.add;
      const uid = requireUid(add?.uid, 'AddWorkload');
      const info = add?.workloadInfo;
      if (info === null || info === undefined) {
        throw new ZdsError(ZdsErrorCode.MISSING_WORKLOAD_INFO, `AddWorkload ${uid} without workload_info`);
      }
      if (fds.length === 0) {
        throw new ZdsError(ZdsErrorCode.MISSING_FD, `AddWorkload ${uid} without the pod netns descriptor (SCM_RIGHTS)`);
      }
      if (fds.length > 1) {
        throw new ZdsError(ZdsErrorCode.UNEXPECTED_FD, `AddWorkload ${uid} must carry exactly one descriptor, got ${fds.length}`);
      }
      return {
        kind: 'add',
        uid,
        info: { name: info.name ?? '', namespace: info.namespace ?? '', serviceAccount: info.serviceAccount ?? '' },
        netnsFd: fds[0] as number,
      };
    }
    case 'keep':
      noFds(fds, 'KeepWorkload');
      return { kind: 'keep', uid: requireUid(msg.keep?.uid, 'KeepWorkload') };
    case 'del':
      noFds(fds, 'DelWorkload');
      return { kind: 'del', uid: requireUid(msg.del?.uid, 'DelWorkload') };
    case 'snapshotSent':
      noFds(fds, 'SnapshotSent');
      return { kind: 'snapshotSent' };
    default:
      // protobufjs drops unknown fields: a non-empty datagram without a known member is a newer peer's message.
      throw data.length === 0
        ? new ZdsError(ZdsErrorCode.EMPTY_MESSAGE, 'empty WorkloadRequest (no payload)')
        : new ZdsError(ZdsErrorCode.UNKNOWN_MESSAGE, `WorkloadRequest with an unknown payload (${data.length} bytes)`);
  }
}

// --- WorkloadResponse (ztunnel -> agent, one per request) ---

/** `error` empty = ACK; anything else is a NACK carrying the reason. */
export function encodeAck(error = ''): Uint8Array {
  // Keep the datagram within ztunnel's buffer size even for a long error text (the agent reads 1024 too).
  const text = Buffer.byteLength(error) > 900 ? `${Buffer.from(error).subarray(0, 900).toString()}…` : error;
  return checkSize(Z.WorkloadResponse.encode({ ack: { error: text } }).finish(), 'WorkloadResponse');
}

/** Returns the ack's error text ('' = ACK). */
export function decodeAck(data: Uint8Array, fds: readonly number[]): string {
  noFds(fds, 'WorkloadResponse');
  let msg: ReturnType<typeof Z.WorkloadResponse.decode>;
  try {
    msg = Z.WorkloadResponse.decode(data);
  } catch (err) {
    throw decodeFailed('WorkloadResponse', err);
  }
  if (msg.payload !== 'ack') {
    throw data.length === 0
      ? new ZdsError(ZdsErrorCode.EMPTY_MESSAGE, 'empty WorkloadResponse (no ack)')
      : new ZdsError(ZdsErrorCode.UNKNOWN_MESSAGE, `WorkloadResponse with an unknown payload (${data.length} bytes)`);
  }
  return msg.ack?.error ?? '';
}

/** A short description of a request for logs. */
export function describeRequest(req: ZdsRequest | ZdsReceivedRequest): string {
  switch (req.kind) {
    case 'add':
      return `AddWorkload{uid=${req.uid}, ${req.info.namespace}/${req.info.name}, sa=${req.info.serviceAccount}}`;
    case 'keep':
      return `KeepWorkload{uid=${req.uid}}`;
    case 'del':
      return `DelWorkload{uid=${req.uid}}`;
    case 'snapshotSent':
      return 'SnapshotSent{}';
  }
}
