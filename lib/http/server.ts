/**
 * The one way the project serves HTTP/1.1 (ztunnel admin, readiness and metrics; the controller's debug and
 * monitoring ports; the node agent's CNI event socket). Input is hostile; no input may throw past this module.
 *
 * Request lifecycle, each step with its exit:
 *   accept ─ maxConnections reached ─▶ dropped (HTTP_CONNECTION_LIMIT)
 *   parse (Node) ─ malformed, head > maxHeaderBytes, too slow ─▶ 400 / 431 / 408 from 'clientError'
 *   target ─ not a path or an http(s) URL ─▶ 400 HTTP_BAD_TARGET
 *   Content-Length > maxBodyBytes ─▶ 413 HTTP_BODY_TOO_LARGE
 *   route ─ none ─▶ 404 HTTP_NOT_FOUND
 *   handler ─ throws or rejects HttpError ─▶ its status; anything else ─▶ 500 HTTP_HANDLER_FAILED (the last-resort guard)
 *   reply ─ cannot be written (bad header value, client gone) ─▶ connection destroyed
 * Every refusal is one log line with its stable code (throttled per code) and an `onReject` call (metrics).
 */
import { chmodSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { STATUS_CODES, createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { dirname } from 'node:path';
import { describeError, errorCode } from '../errors.js';
import type { Logger } from '../telemetry/logger.js';
import { ThrottledLog } from '../telemetry/throttled-log.js';
import { DEFAULT_HTTP_SERVER_LIMITS, HTTP_REJECT_LOG_INTERVAL_MS, type HttpServerLimits } from './config.js';
import { HttpError, HttpErrorCode } from './errors.js';
import { parseRequestTarget } from './target.js';

/** What a handler sees of a request: plain data, plus a bounded body reader. */
export interface HttpRequest {
  readonly method: string;
  readonly path: string;
  readonly query: URLSearchParams;
  readonly headers: IncomingHttpHeaders;
  /** The body, at most maxBodyBytes (else HttpError 413). Read once. */
  body(): Promise<Buffer>;
}

export interface HttpReply {
  readonly status: number;
  readonly body?: string | Buffer;
  /** Content-Type; default text/plain. */
  readonly type?: string;
  readonly headers?: Readonly<Record<string, string>>;
}

export type HttpHandler = (req: HttpRequest) => HttpReply | Promise<HttpReply>;

export type HttpListenAddress = { readonly host: string; readonly port: number } | { readonly path: string; readonly mode?: number };

export interface HttpServerOptions {
  /** Names the server in log lines (`admin`, `readiness`, `cni-event`, ...). */
  readonly name: string;
  readonly listen: HttpListenAddress;
  /** Exact path -> handler; other paths are 404. */
  readonly routes: Readonly<Record<string, HttpHandler>>;
  readonly logger: Logger;
  readonly limits?: Partial<HttpServerLimits>;
  /** Status for a component's own error codes thrown by handlers (e.g. CNI_AGENT_BAD_EVENT -> 400); else 500. */
  readonly statusOf?: (err: unknown) => number | undefined;
  /** The body of a refusal; default `<message> (<code>)\n` as text. */
  readonly errorReply?: (status: number, code: string, message: string) => HttpReply;
  /** Called for every refused request or connection, e.g. to count it. */
  readonly onReject?: (code: string, status: number | undefined) => void;
}

const TEXT = 'text/plain; charset=utf-8';

/** A handler that answers 405 (with Allow) for methods it does not list. */
export function methods(byMethod: Readonly<Partial<Record<string, HttpHandler>>>): HttpHandler {
  const allowed = Object.keys(byMethod).join(', ');
  return (req) => {
    const h = byMethod[req.method];
    if (h === undefined) throw new HttpError(405, HttpErrorCode.METHOD_NOT_ALLOWED, `use ${allowed}`);
    return h(req);
  };
}

export function jsonReply(status: number, body: unknown): HttpReply {
  return { status, body: `${JSON.stringify(body, null, 2)}\n`, type: 'application/json' };
}

/** Node's parser error codes (llhttp `HPE_*`, `ERR_HTTP_REQUEST_TIMEOUT`) as our code and the status to answer. */
function classifyClientError(err: NodeJS.ErrnoException): { code: HttpErrorCode; status: number } | undefined {
  switch (err.code) {
    case 'ECONNRESET':
    case 'EPIPE':
      return undefined; // the client went away; nothing to answer
    case 'HPE_HEADER_OVERFLOW':
      return { code: HttpErrorCode.HEADERS_TOO_LARGE, status: 431 };
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return { code: HttpErrorCode.REQUEST_TIMEOUT, status: 408 };
    default:
      return { code: HttpErrorCode.BAD_REQUEST, status: 400 };
  }
}

/** What a log line says about the request; the socket is gone once the request was destroyed. */
function requestFacts(req: IncomingMessage): Readonly<Record<string, unknown>> {
  const socket = req.socket as Socket | null;
  return { method: req.method, target: req.url?.slice(0, 200), remote: socket?.remoteAddress };
}

export class HttpService {
  readonly server: Server;
  readonly #opts: HttpServerOptions;
  readonly #limits: HttpServerLimits;
  readonly #log: Logger;
  readonly #throttle = new ThrottledLog(HTTP_REJECT_LOG_INTERVAL_MS);

  /** Creates the server and listens; rejects with HttpError(HTTP_LISTEN_FAILED) when it cannot. */
  static async listen(opts: HttpServerOptions): Promise<HttpService> {
    const s = new HttpService(opts);
    await s.#listen();
    return s;
  }

  private constructor(opts: HttpServerOptions) {
    this.#opts = opts;
    this.#limits = { ...DEFAULT_HTTP_SERVER_LIMITS, ...opts.limits };
    this.#log = opts.logger.child({ http: opts.name });
    const l = this.#limits;
    this.server = createServer(
      {
        maxHeaderSize: l.maxHeaderBytes,
        headersTimeout: l.headersTimeoutMs,
        requestTimeout: l.requestTimeoutMs,
        keepAliveTimeout: l.keepAliveTimeoutMs,
        connectionsCheckingInterval: l.timeoutCheckIntervalMs,
      },
      (req, res) => {
        // One catch for a synchronous throw and a rejection alike: #serve is async.
        this.#serve(req, res).catch((err: unknown) => this.#lastResort(err, req, res));
      },
    );
    this.server.maxConnections = l.maxConnections;
    this.server.setTimeout(l.idleTimeoutMs); // no 'timeout' listener: Node destroys the socket
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => this.#onClientError(err, socket));
    this.server.on('drop', (data?: { remoteAddress?: string }) =>
      this.#refused(HttpErrorCode.CONNECTION_LIMIT, undefined, `connection dropped: ${l.maxConnections} open connections`, {
        remote: data?.remoteAddress,
      }),
    );
  }

  /** The bound address (host:port servers) or socket path. */
  get address(): AddressInfo | string {
    const a = this.server.address();
    if (a === null) throw new HttpError(500, HttpErrorCode.SERVER_ERROR, `${this.#opts.name} is not listening`);
    return a;
  }

  get port(): number {
    const a = this.address;
    return typeof a === 'string' ? 0 : a.port;
  }

  /** Stops accepting and closes idle connections now, the others after `graceMs` (0: now); resolves once closed. */
  close(graceMs = 0): Promise<void> {
    return new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeIdleConnections();
      if (graceMs <= 0) this.server.closeAllConnections();
      else setTimeout(() => this.server.closeAllConnections(), graceMs).unref();
    });
  }

  async #listen(): Promise<void> {
    const where = this.#opts.listen;
    if ('path' in where) {
      mkdirSync(dirname(where.path), { recursive: true });
      try {
        // A stale socket left by a previous process is replaced; anything else at that path is left alone.
        if (lstatSync(where.path).isSocket()) unlinkSync(where.path);
      } catch {
        // nothing there
      }
    }
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => {
        const at = 'path' in where ? where.path : `${where.host}:${where.port}`;
        reject(new HttpError(500, HttpErrorCode.LISTEN_FAILED, `${this.#opts.name} cannot listen on ${at}`, { cause: err }));
      };
      this.server.once('error', onError);
      const done = (): void => {
        this.server.off('error', onError);
        resolve();
      };
      if ('path' in where) this.server.listen(where.path, done);
      else this.server.listen(where.port, where.host, done);
    });
    if ('path' in where && where.mode !== undefined) chmodSync(where.path, where.mode);
    // Accept errors (EMFILE, ENFILE) arrive as 'error' on a listening server; without a listener they end the process.
    this.server.on('error', (err) =>
      this.#throttle.emit(HttpErrorCode.SERVER_ERROR, (suppressed) =>
        this.#log.error({ code: HttpErrorCode.SERVER_ERROR, err: describeError(err), suppressed }, 'HTTP server socket error'),
      ),
    );
  }

  async #serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    req.on('error', () => {}); // a reset mid-body surfaces in body(); never as an unhandled 'error'
    res.on('error', () => {});
    const target = parseRequestTarget(req.url);
    if (target === undefined) {
      this.#refuse(req, res, 400, HttpErrorCode.BAD_TARGET, 'the request target must be a path such as /healthz/ready');
      return;
    }
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > this.#limits.maxBodyBytes) {
      this.#refuse(req, res, 413, HttpErrorCode.BODY_TOO_LARGE, `bodies larger than ${this.#limits.maxBodyBytes} bytes are not accepted`);
      return;
    }
    const route = Object.hasOwn(this.#opts.routes, target.path) ? this.#opts.routes[target.path] : undefined;
    if (route === undefined) {
      this.#refuse(req, res, 404, HttpErrorCode.NOT_FOUND, `no such endpoint: ${target.path.slice(0, 200)}`, 'debug');
      return;
    }
    const request: HttpRequest = {
      method: req.method ?? 'GET',
      path: target.path,
      query: target.query,
      headers: req.headers,
      body: () => this.#readBody(req),
    };
    let reply: HttpReply;
    try {
      reply = await route(request);
    } catch (err) {
      const status = err instanceof HttpError ? err.status : this.#opts.statusOf?.(err);
      if (status === undefined) throw err; // the last-resort guard answers
      this.#refuse(req, res, status, errorCode(err), describeError(err));
      return;
    }
    this.#write(res, reply);
  }

  #readBody(req: IncomingMessage): Promise<Buffer> {
    const max = this.#limits.maxBodyBytes;
    return new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      const done = (): void => {
        req.off('data', onData).off('end', onEnd).off('close', onClose);
      };
      const onData = (chunk: Buffer): void => {
        size += chunk.length;
        if (size <= max) {
          chunks.push(chunk);
          return;
        }
        done();
        req.pause(); // the refusal closes the connection; the rest is never read
        reject(new HttpError(413, HttpErrorCode.BODY_TOO_LARGE, `bodies larger than ${max} bytes are not accepted`));
      };
      const onEnd = (): void => {
        done();
        resolve(Buffer.concat(chunks));
      };
      const onClose = (): void => {
        done();
        reject(new HttpError(400, HttpErrorCode.BAD_REQUEST, 'the client closed the connection before the end of its body'));
      };
      req.on('data', onData).on('end', onEnd).on('close', onClose);
    });
  }

  #write(res: ServerResponse, reply: HttpReply, close = false): void {
    if (res.headersSent || res.destroyed) return;
    const body = reply.body ?? '';
    try {
      res.writeHead(reply.status, {
        ...reply.headers,
        'content-type': reply.type ?? TEXT,
        'content-length': Buffer.byteLength(body),
        ...(close ? { connection: 'close' } : {}),
      });
      res.end(body);
    } catch (err) {
      // A header value that is not a valid field value, say: nothing sensible can be sent on this connection.
      this.#log.error({ code: HttpErrorCode.HANDLER_FAILED, err: describeError(err) }, 'HTTP reply could not be written');
      res.destroy();
    }
  }

  #refuse(
    req: IncomingMessage,
    res: ServerResponse,
    status: number,
    code: string,
    message: string,
    level: 'warn' | 'debug' = 'warn',
  ): void {
    this.#refused(code, status, message, requestFacts(req), level);
    const reply = this.#opts.errorReply?.(status, code, message) ?? { status, body: `${message} (${code})\n` };
    // After a refusal the rest of the request (a body we will not read) is not worth keeping the connection for.
    this.#write(res, reply, status === 413 || status === 400);
  }

  #lastResort(err: unknown, req: IncomingMessage, res: ServerResponse): void {
    try {
      this.#refused(HttpErrorCode.HANDLER_FAILED, 500, describeError(err), requestFacts(req), 'error');
      const message = 'internal error; the server log has the cause';
      this.#write(res, this.#opts.errorReply?.(500, HttpErrorCode.HANDLER_FAILED, message) ?? { status: 500, body: `${message}\n` });
    } catch {
      res.destroy();
    }
  }

  #onClientError(err: NodeJS.ErrnoException, socket: Socket): void {
    const c = classifyClientError(err);
    if (c === undefined || !socket.writable) {
      socket.destroy();
      return;
    }
    this.#refused(c.code, c.status, `unparseable request: ${err.code ?? err.message}`, { parser: err.code, remote: socket.remoteAddress });
    socket.end(`HTTP/1.1 ${c.status} ${STATUS_CODES[c.status] ?? ''}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
    socket.destroySoon();
  }

  #refused(
    code: string,
    status: number | undefined,
    message: string,
    facts: Readonly<Record<string, unknown>>,
    level: 'warn' | 'debug' | 'error' = 'warn',
  ): void {
    try {
      this.#opts.onReject?.(code, status);
    } catch (err) {
      this.#log.warn({ err: describeError(err) }, 'HTTP reject hook threw');
    }
    if (!this.#log.isLevelEnabled(level)) return;
    this.#throttle.emit(code, (suppressed) =>
      this.#log[level]({ code, status, ...facts, ...(suppressed > 0 ? { suppressed } : {}), reason: message }, 'HTTP request refused'),
    );
  }
}
