/**
 * The HBONE server (inbound 15008): mutual TLS 1.3 + HTTP/2, one CONNECT stream per tunnelled connection.
 *
 * Request lifecycle, each step with its exit (ztunnel src/proxy/inbound.rs):
 *   TLS handshake ─ fail (plaintext, TLS ≤1.2, untrusted/expired chain, no h2) ─▶ connection dropped
 *   client identity in our trust domain ─ no ─▶ connection dropped
 *   header list ≤ serverMaxHeaderListBytes ─ no ─▶ 431 (see #onStream: also before the client ACKed our SETTINGS)
 *   method is CONNECT ─ no ─▶ 400
 *   :authority is host:port ─ no ─▶ 400
 *   handler (lookup, policy, upstream connect) ─▶ 400 / 401 / 503, or 200 and the tunnel
 *   tunnel: bytes both ways until FIN/END_STREAM or reset on either side.
 */
import {
  createSecureServer,
  constants,
  type Http2SecureServer,
  type IncomingHttpHeaders,
  type ServerHttp2Session,
  type ServerHttp2Stream,
} from 'node:http2';
import type { AddressInfo, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import type { WorkloadCertificate } from '../identity/certificate.js';
import type { Identity } from '../identity/spiffe.js';
import { describeError, errorCode } from '../errors.js';
import { ThrottledLog } from '../telemetry/throttled-log.js';
import { parseAuthority, type HboneTarget } from './authority.js';
import { DEFAULT_HBONE_CONFIG, type HboneConfig } from './config.js';
import { HboneErrorCode } from './errors.js';
import { startKeepalive } from './keepalive.js';
import { destroySession } from './session.js';
import { serverTlsOptions, verifyClientIdentity } from './tls.js';
import { spliceTunnel, type TunnelResult } from './tunnel.js';

/** What the handler learns about one CONNECT. */
export interface HboneInboundRequest {
  readonly target: HboneTarget;
  readonly authority: string;
  /** Verified client identity (from its certificate). */
  readonly peerIdentity: Identity;
  readonly baggage: string | undefined;
  readonly forwarded: string | undefined;
  readonly traceparent: string | undefined;
  readonly remoteAddress: string;
  readonly remotePort: number;
  /** The address the TLS connection was accepted on (in-pod: the pod IP). */
  readonly localAddress: string;
  readonly localPort: number;
}

export type HboneRejectStatus = 400 | 401 | 503;

/** Refusals the server makes on its own, before any handler: a peer that sends these is broken or hostile. */
type ProtocolRejectStatus = HboneRejectStatus | 431;

/** One warn line per code this often: a flood of bad streams must not become a flood of log lines. */
const PROTOCOL_REJECT_LOG_INTERVAL_MS = 1_000;

export type HboneInboundDecision =
  | {
      readonly status: 200;
      /** Connected socket to the destination; the server splices it with the stream. */
      readonly upstream: Socket;
      readonly responseHeaders?: Readonly<Record<string, string>>;
      /** Called once the tunnel is over, with byte counts (telemetry, access log). */
      readonly onClosed?: (result: TunnelResult) => void;
    }
  | { readonly status: HboneRejectStatus; readonly code: string; readonly reason: string };

/** Decides one CONNECT. `signal` aborts when the client gives up first. Throwing counts as 503. */
export type HboneHandler = (request: HboneInboundRequest, signal: AbortSignal) => Promise<HboneInboundDecision>;

export interface HboneServerOptions {
  readonly certificate: WorkloadCertificate;
  /** Clients must be in this trust domain; default: the server certificate's. */
  readonly trustDomain?: string;
  readonly handler: HboneHandler;
  readonly config?: HboneConfig;
  readonly logger?: Logger;
  /** Called for every refused connection or request (metrics). */
  readonly onReject?: (code: string, status: number | undefined) => void;
}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** [name, value, ...] from a headers object, for when the raw list is not at hand. */
function flatHeaders(headers: IncomingHttpHeaders): string[] {
  const out: string[] = [];
  for (const [name, v] of Object.entries(headers)) {
    for (const value of Array.isArray(v) ? v : [v ?? '']) out.push(name, String(value));
  }
  return out;
}

/** The header list size as HTTP/2 accounts it (RFC 9113 §6.5.2): name + value octets + 32 per field. */
export function headerListBytes(rawHeaders: readonly string[]): number {
  let n = 0;
  for (const field of rawHeaders) n += Buffer.byteLength(field);
  return n + (rawHeaders.length / 2) * 32;
}

export class HboneServer {
  readonly server: Http2SecureServer;
  readonly #opts: HboneServerOptions;
  readonly #config: HboneConfig;
  readonly #trustDomain: string;
  readonly #peers = new WeakMap<ServerHttp2Session, Identity>();
  readonly #sessions = new Set<ServerHttp2Session>();
  /** The TLS socket under each session, to destroy with it (session.ts says why). */
  readonly #sockets = new WeakMap<ServerHttp2Session, TLSSocket>();
  /** Set while Node turns an accepted TLS socket into a session: it emits 'session' inside that listener. */
  #accepting: TLSSocket | undefined;
  readonly #throttle = new ThrottledLog(PROTOCOL_REJECT_LOG_INTERVAL_MS);
  #activeTunnels = 0;

  constructor(opts: HboneServerOptions) {
    this.#opts = opts;
    this.#config = opts.config ?? DEFAULT_HBONE_CONFIG;
    this.#trustDomain = opts.trustDomain ?? opts.certificate.identity.trustDomain;
    const c = this.#config;
    this.server = createSecureServer({
      ...serverTlsOptions(opts.certificate),
      allowHTTP1: false,
      handshakeTimeout: c.handshakeTimeoutMs,
      unknownProtocolTimeout: c.unknownProtocolTimeoutMs,
      maxSessionMemory: c.maxSessionMemoryMb,
      settings: {
        initialWindowSize: c.streamWindowBytes,
        maxFrameSize: c.maxFrameBytes,
        maxConcurrentStreams: c.serverMaxConcurrentStreams,
        maxHeaderListSize: c.serverMaxHeaderListBytes,
        enablePush: false,
      },
    });
    // Prepended, so it runs before the listener through which Node creates the session for this socket.
    this.server.prependListener('secureConnection', (socket: TLSSocket) => {
      this.#accepting = socket;
      setImmediate(() => {
        if (this.#accepting === socket) this.#accepting = undefined;
      });
    });
    this.server.on('session', (session) => this.#onSession(session));
    // Node passes the raw header list as a fourth argument (docs: Event 'stream'); its type declarations omit it.
    this.server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, _flags: number, rawHeaders?: string[]) => {
      this.#onStream(stream, headers, rawHeaders ?? flatHeaders(headers)).catch((err: unknown) => {
        // The last-resort guard: a throw here (a hook, say) must cost one stream, not the process.
        this.#logServerError('HBONE stream handling failed', err);
        if (!stream.destroyed) stream.close(constants.NGHTTP2_INTERNAL_ERROR);
      });
    });
    this.server.on('tlsClientError', (err, socket) => {
      this.#reject(HboneErrorCode.TLS_FAILED, undefined, `TLS handshake refused from ${socket.remoteAddress}: ${err.message}`);
    });
    this.server.on('unknownProtocol', (socket: TLSSocket) => {
      this.#reject(HboneErrorCode.TLS_FAILED, undefined, `client from ${socket.remoteAddress} did not negotiate ALPN h2`);
      socket.destroy();
    });
  }

  /** Listens on a port, or on a listening socket created elsewhere (`{ fd }`, e.g. inside a pod's network namespace). */
  listen(where: { readonly port: number; readonly host?: string } | { readonly fd: number }): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.server.once('error', onError);
      this.server.listen(where, () => {
        this.server.off('error', onError);
        // Accept errors (EMFILE) arrive as 'error' on a listening server; without a listener they end the process.
        this.server.on('error', (err) => this.#logServerError('HBONE listener error', err));
        resolve(this.server.address() as AddressInfo);
      });
    });
  }

  /** Swaps the serving certificate; live connections keep theirs, new handshakes use the new one. */
  setCertificate(cert: WorkloadCertificate): void {
    this.server.setSecureContext(serverTlsOptions(cert));
  }

  get activeTunnels(): number {
    return this.#activeTunnels;
  }

  get sessionCount(): number {
    return this.#sessions.size;
  }

  /**
   * Stops accepting, sends GOAWAY so clients stop opening streams, lets tunnels finish for `graceMs`,
   * then destroys what is left.
   */
  async close(graceMs = 0): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    // GOAWAY: clients open no new streams here; a session ends by itself once its streams are done.
    for (const s of this.#sessions) if (!s.closed) s.close();
    const deadline = Date.now() + graceMs;
    while (this.#sessions.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    for (const s of this.#sessions) destroySession(s, this.#sockets.get(s));
    await closed;
  }

  #reject(code: string, status: number | undefined, message: string): void {
    this.#opts.logger?.debug({ code, status }, message);
    try {
      this.#opts.onReject?.(code, status);
    } catch (err) {
      this.#logServerError('HBONE reject hook threw', err);
    }
  }

  /** A refusal of a peer that does not speak HBONE as it must: also a warn line, throttled per code. */
  #protocolReject(code: string, status: number | undefined, message: string): void {
    this.#reject(code, status, message);
    const log = this.#opts.logger;
    if (log?.isLevelEnabled('warn')) {
      this.#throttle.emit(code, (suppressed) => log.warn({ code, status, ...(suppressed > 0 ? { suppressed } : {}) }, message));
    }
  }

  #logServerError(message: string, err: unknown): void {
    const log = this.#opts.logger;
    if (!log) return;
    this.#throttle.emit(HboneErrorCode.SERVER_ERROR, (suppressed) =>
      log.error({ code: HboneErrorCode.SERVER_ERROR, err: describeError(err), ...(suppressed > 0 ? { suppressed } : {}) }, message),
    );
  }

  #onSession(session: ServerHttp2Session): void {
    const socket = session.socket as TLSSocket;
    const raw = this.#accepting;
    this.#accepting = undefined;
    if (raw !== undefined) this.#sockets.set(session, raw);
    let identity: Identity;
    try {
      identity = verifyClientIdentity(socket, this.#trustDomain);
    } catch (err) {
      this.#reject(errorCode(err), undefined, describeError(err));
      destroySession(session, raw);
      return;
    }
    this.#peers.set(session, identity);
    this.#sessions.add(session);
    session.once('close', () => this.#sessions.delete(session));
    session.on('error', (err) => this.#opts.logger?.debug({ err: err.message }, 'HBONE session error'));
    try {
      session.setLocalWindowSize(this.#config.connectionWindowBytes);
    } catch {
      // The session died during setup; close handler cleans up.
    }
    startKeepalive(session, raw, this.#config.pingIntervalMs, this.#config.pingTimeoutMs);
    this.#closeWhenIdle(session);
  }

  /** GOAWAY once a session has carried no stream for serverIdleSessionMs (config.ts says why). */
  #closeWhenIdle(session: ServerHttp2Session): void {
    let open = 0;
    const timer = setTimeout(() => {
      if (open === 0 && !session.closed && !session.destroyed) session.close();
    }, this.#config.serverIdleSessionMs);
    timer.unref();
    session.on('stream', (stream: ServerHttp2Stream) => {
      open++;
      // refresh() also re-arms a timer that fired while streams were open.
      stream.once('close', () => {
        if (--open === 0) timer.refresh();
      });
    });
    session.once('close', () => clearTimeout(timer));
  }

  #respondError(stream: ServerHttp2Stream, status: ProtocolRejectStatus, code: string, reason: string, protocol = false): void {
    if (protocol) this.#protocolReject(code, status, reason);
    else this.#reject(code, status, reason);
    if (stream.closed || stream.destroyed) return;
    try {
      stream.respond({ ':status': status }, { endStream: true });
    } catch {
      stream.close(constants.NGHTTP2_INTERNAL_ERROR);
    }
  }

  async #onStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, rawHeaders: readonly string[]): Promise<void> {
    stream.on('error', () => {
      // Reported through the tunnel result or the reject hook; an unhandled 'error' must not crash the proxy.
    });
    const peerIdentity = this.#peers.get(stream.session as ServerHttp2Session);
    if (!peerIdentity) {
      stream.close(constants.NGHTTP2_REFUSED_STREAM);
      return;
    }
    // nghttp2 applies our SETTINGS_MAX_HEADER_LIST_SIZE only once the client has ACKed our SETTINGS, and Node caps
    // a stream's headers by the ACKed value; a header block in the client's first flight is measured here. After
    // the ACK, Node itself resets a larger block with ENHANCE_YOUR_CALM before any stream reaches us. 431 as hyper's
    // h2 answers it (h2 src/proto/streams/recv.rs), which Istio's ztunnel serves HBONE with.
    const size = headerListBytes(rawHeaders);
    if (size > this.#config.serverMaxHeaderListBytes) {
      this.#respondError(
        stream,
        431,
        HboneErrorCode.HEADERS_TOO_LARGE,
        `request header list is ${size} bytes, more than the ${this.#config.serverMaxHeaderListBytes} accepted (serverMaxHeaderListBytes)`,
        true,
      );
      return;
    }
    if (header(headers, ':method') !== 'CONNECT' || header(headers, ':protocol') !== undefined) {
      this.#respondError(
        stream,
        400,
        HboneErrorCode.NOT_CONNECT,
        `HBONE only accepts CONNECT, got ${(header(headers, ':method') ?? 'none').slice(0, 40)}`,
        true,
      );
      return;
    }
    const authority = header(headers, ':authority') ?? '';
    const target = parseAuthority(authority);
    if (!target) {
      this.#respondError(
        stream,
        400,
        HboneErrorCode.BAD_AUTHORITY,
        `CONNECT :authority "${authority.slice(0, 100)}" is not host:port`,
        true,
      );
      return;
    }
    const socket = stream.session?.socket;
    const request: HboneInboundRequest = {
      target,
      authority,
      peerIdentity,
      baggage: header(headers, 'baggage'),
      forwarded: header(headers, 'forwarded'),
      traceparent: header(headers, 'traceparent'),
      remoteAddress: socket?.remoteAddress ?? '',
      remotePort: socket?.remotePort ?? 0,
      localAddress: socket?.localAddress ?? '',
      localPort: socket?.localPort ?? 0,
    };
    const abort = new AbortController();
    stream.once('close', () => abort.abort());
    let decision: HboneInboundDecision;
    try {
      decision = await this.#opts.handler(request, abort.signal);
    } catch (err) {
      decision = { status: 503, code: errorCode(err), reason: describeError(err) };
    }
    if (decision.status !== 200) {
      this.#respondError(stream, decision.status, decision.code, decision.reason);
      return;
    }
    try {
      if (stream.closed || stream.destroyed) throw new Error('stream closed while the upstream was connecting');
      stream.respond({ ':status': 200, ...(decision.responseHeaders ?? {}) });
    } catch {
      decision.upstream.destroy();
      return;
    }
    this.#activeTunnels++;
    const result = await spliceTunnel(decision.upstream, stream);
    this.#activeTunnels--;
    decision.onClosed?.(result);
  }
}
