import { MeshError } from '../errors.js';

/** Why one of our HTTP servers refused a request or a connection; each maps to one status. */
export const HttpErrorCode = {
  /** The request target is not a path (origin form) or an http(s) URL (absolute form), e.g. `GET //` (400). */
  BAD_TARGET: 'HTTP_BAD_TARGET',
  /** The request could not be parsed as HTTP/1.1 (400). */
  BAD_REQUEST: 'HTTP_BAD_REQUEST',
  /** The request head exceeds maxHeaderBytes (431, RFC 6585 §5). */
  HEADERS_TOO_LARGE: 'HTTP_HEADERS_TOO_LARGE',
  /** The body exceeds maxBodyBytes (413). */
  BODY_TOO_LARGE: 'HTTP_BODY_TOO_LARGE',
  /** The request was not complete within headersTimeoutMs / requestTimeoutMs (408). */
  REQUEST_TIMEOUT: 'HTTP_REQUEST_TIMEOUT',
  /** No route for the path (404). */
  NOT_FOUND: 'HTTP_NOT_FOUND',
  /** The route does not take this method (405). */
  METHOD_NOT_ALLOWED: 'HTTP_METHOD_NOT_ALLOWED',
  /** A handler threw or rejected with an error that is not an HttpError: the last-resort guard answered (500). */
  HANDLER_FAILED: 'HTTP_HANDLER_FAILED',
  /** A connection was dropped at accept because the server holds maxConnections. */
  CONNECTION_LIMIT: 'HTTP_CONNECTION_LIMIT',
  /** The server could not listen (port in use, no permission, bad socket path). */
  LISTEN_FAILED: 'HTTP_LISTEN_FAILED',
  /** The listening socket failed after it was up (e.g. EMFILE on accept); the server keeps listening. */
  SERVER_ERROR: 'HTTP_SERVER_ERROR',
} as const;
export type HttpErrorCode = (typeof HttpErrorCode)[keyof typeof HttpErrorCode];

/** An error a handler throws to answer with `status`; its message is sent to the client. */
export class HttpError extends MeshError {
  readonly status: number;

  constructor(status: number, code: string, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.status = status;
  }
}
