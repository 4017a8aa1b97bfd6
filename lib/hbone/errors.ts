import { MeshError } from '../errors.js';

/** HBONE failures, by stage. The server-side ones map to the response status in server.ts. */
export const HboneErrorCode = {
  /** TCP connect to <ip>:15008 failed (refused, unreachable, reset). */
  CONNECT_FAILED: 'HBONE_CONNECT_FAILED',
  /** TCP connect + TLS to <ip>:15008 got no answer in time: often a NetworkPolicy dropping port 15008. */
  CONNECT_TIMEOUT: 'HBONE_CONNECT_TIMEOUT',
  /** TLS handshake failed (untrusted, expired, wrong version, not h2). */
  TLS_FAILED: 'HBONE_TLS_FAILED',
  /** The server's certificate does not carry any expected identity. */
  IDENTITY_MISMATCH: 'HBONE_IDENTITY_MISMATCH',
  /** The HTTP/2 session failed or went away. */
  SESSION_FAILED: 'HBONE_SESSION_FAILED',
  /** The CONNECT was answered with a status other than 200 and 401. */
  HTTP_STATUS: 'HBONE_HTTP_STATUS',
  /** The CONNECT was answered 401: the destination's authorization policy refused our identity. */
  UNAUTHORIZED: 'HBONE_UNAUTHORIZED',
  /** The caller gave up before the CONNECT was answered (its client went away, or it is draining). */
  CANCELLED: 'HBONE_CANCELLED',
  /** No response to CONNECT in time. */
  RESPONSE_TIMEOUT: 'HBONE_RESPONSE_TIMEOUT',
  /** Server side: request was not CONNECT (400). */
  NOT_CONNECT: 'HBONE_NOT_CONNECT',
  /** Server side: :authority is not ip:port (400). */
  BAD_AUTHORITY: 'HBONE_BAD_AUTHORITY',
  /** Server side: policy denied (401). */
  DENIED: 'HBONE_DENIED',
  /** Server side: no such local target or the upstream failed (503). */
  UPSTREAM_FAILED: 'HBONE_UPSTREAM_FAILED',
  /** Server side: the client certificate has no SPIFFE identity in our trust domain. */
  PEER_IDENTITY: 'HBONE_PEER_IDENTITY',
  /** Server side: the request header list exceeds serverMaxHeaderListBytes (431). */
  HEADERS_TOO_LARGE: 'HBONE_HEADERS_TOO_LARGE',
  /** Server side: something failed outside any request (the listening socket, a hook); logged, never thrown. */
  SERVER_ERROR: 'HBONE_SERVER_ERROR',
} as const;

export type HboneErrorCodeValue = (typeof HboneErrorCode)[keyof typeof HboneErrorCode];

export class HboneError extends MeshError {
  /** HTTP status of the CONNECT response, when the error is one. */
  readonly status: number | undefined;

  constructor(code: HboneErrorCodeValue, message: string, options?: { cause?: unknown; status?: number }) {
    super(code, message, options);
    this.status = options?.status;
  }
}
