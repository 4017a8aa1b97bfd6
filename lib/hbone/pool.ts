/**
 * The HBONE client and its connection pool (ztunnel src/proxy/pool.rs).
 *
 * Tunnels to the same destination share HTTP/2 connections. A pool key is
 * (source identity, expected destination identities, destination ip:port, source IP); each key holds 1..N
 * connections, each carrying at most min(maxStreamsPerConnection, peer's SETTINGS_MAX_CONCURRENT_STREAMS)
 * streams. When every connection of a key is full, one new connection is dialled, and concurrent callers
 * wait for that single dial instead of each opening their own. Connections without streams are released
 * after poolIdleReleaseMs; a GOAWAY stops new streams on a connection; PINGs detect dead peers.
 */
import { connect as h2connect, constants, type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders } from 'node:http2';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { MeshError } from '../errors.js';
import type { WorkloadCertificate } from '../identity/certificate.js';
import { type Identity, formatSpiffeId } from '../identity/spiffe.js';
import { formatAuthority } from './authority.js';
import { DEFAULT_HBONE_CONFIG, type HboneConfig } from './config.js';
import { HboneError, HboneErrorCode } from './errors.js';
import { newTraceparent } from './headers.js';
import { startKeepalive } from './keepalive.js';
import { destroySession } from './session.js';
import { HBONE_ALPN, makeServerIdentityCheck, secureContextFor } from './tls.js';

/** Where a new HBONE connection goes and who must answer. */
export interface HboneDestination {
  /** TLS peer, normally <pod IP>:15008 or <waypoint IP>:15008. */
  readonly address: string;
  readonly port: number;
  /** The server must present one of these identities. */
  readonly expectedIdentities: readonly Identity[];
  /** Source IP of the connection (part of the pool key: ztunnel keys on it because sources can be spoofed). */
  readonly sourceIp?: string;
}

export interface HboneConnectRequest extends HboneDestination {
  /** CONNECT :authority: the target ip:port (direct) or the original VIP:port (via a waypoint). */
  readonly authority: string;
  /** The source workload's certificate, presented to the server. */
  readonly certificate: WorkloadCertificate;
  readonly baggage?: string;
  readonly forwarded?: string;
  /** Generated when absent. */
  readonly traceparent?: string;
  /** Aborting gives up the tunnel: a CONNECT not yet answered is cancelled (RST_STREAM CANCEL). */
  readonly signal?: AbortSignal;
}

export interface HboneTunnel {
  readonly stream: ClientHttp2Stream;
  readonly responseHeaders: IncomingHttpHeaders;
}

/** Creates the TCP socket for a new HBONE connection (ztunnel: inside the source pod's netns, with SO_MARK). */
export type HboneSocketFactory = (destination: HboneDestination) => Socket;

export interface HbonePoolOptions {
  readonly config?: HboneConfig;
  readonly socketFactory?: HboneSocketFactory;
  readonly logger?: Logger;
}

const defaultSocketFactory: HboneSocketFactory = (d) => netConnect({ host: d.address, port: d.port, noDelay: true });

export function poolKey(sourceIdentity: Identity, d: HboneDestination): string {
  const expected = d.expectedIdentities.map(formatSpiffeId).sort().join(',');
  return `${formatSpiffeId(sourceIdentity)}|${expected}|${formatAuthority(d.address, d.port)}|${d.sourceIp ?? ''}`;
}

class PooledConnection {
  active = 0;
  draining = false;
  #idleTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly session: ClientHttp2Session,
    /** The TLS socket under `session`, destroyed with it on close (session.ts says why). */
    readonly socket: TLSSocket,
    readonly maxStreams: number,
    private readonly idleMs: number,
  ) {
    session.on('goaway', () => {
      this.draining = true;
      if (this.active === 0) session.close();
    });
    session.once('close', () => {
      if (this.#idleTimer) clearTimeout(this.#idleTimer);
    });
    // A fresh connection starts idle: the callers that waited for it may all have found room elsewhere.
    this.#armIdleTimer();
  }

  #armIdleTimer(): void {
    this.#idleTimer = setTimeout(() => this.session.close(), this.idleMs);
    this.#idleTimer.unref();
  }

  get usable(): boolean {
    return !this.draining && !this.session.closed && !this.session.destroyed;
  }

  get hasCapacity(): boolean {
    return this.usable && this.active < this.maxStreams;
  }

  streamOpened(): void {
    this.active++;
    if (this.#idleTimer) clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
  }

  streamClosed(): void {
    this.active--;
    if (this.active > 0) return;
    if (this.draining) {
      this.session.close();
      return;
    }
    this.#armIdleTimer();
  }
}

interface PoolEntry {
  readonly connections: PooledConnection[];
  dialing: Promise<void> | undefined;
}

function cancelled(req: HboneConnectRequest): HboneError {
  return new HboneError(HboneErrorCode.CANCELLED, `CONNECT ${req.authority} given up by the caller`);
}

function tlsFailure(err: unknown): HboneError {
  if (err instanceof HboneError) return err;
  if (err instanceof MeshError) return new HboneError(HboneErrorCode.TLS_FAILED, err.message, { cause: err });
  const e = err as NodeJS.ErrnoException;
  const code = e?.code ?? '';
  if (code === 'ECONNREFUSED' || code === 'EHOSTUNREACH' || code === 'ENETUNREACH' || code === 'ETIMEDOUT' || code === 'ECONNRESET') {
    return new HboneError(HboneErrorCode.CONNECT_FAILED, `cannot connect: ${e.message}`, { cause: err });
  }
  return new HboneError(HboneErrorCode.TLS_FAILED, `TLS handshake failed: ${e?.message ?? String(err)}`, { cause: err });
}

export class HbonePool {
  readonly #config: HboneConfig;
  readonly #socketFactory: HboneSocketFactory;
  readonly #logger: Logger | undefined;
  readonly #entries = new Map<string, PoolEntry>();
  #closed = false;

  constructor(opts: HbonePoolOptions = {}) {
    this.#config = opts.config ?? DEFAULT_HBONE_CONFIG;
    this.#socketFactory = opts.socketFactory ?? defaultSocketFactory;
    this.#logger = opts.logger;
  }

  /** Opens a tunnel: resolves once the server answered 200; rejects with an HboneError otherwise. */
  async connect(req: HboneConnectRequest): Promise<HboneTunnel> {
    if (this.#closed) throw new HboneError(HboneErrorCode.SESSION_FAILED, 'HBONE pool is closed');
    const key = poolKey(req.certificate.identity, req);
    // One retry covers the race where a connection receives GOAWAY between selection and request.
    for (let attempt = 0; ; attempt++) {
      // A dial is shared by every caller of the key, so a caller's abort does not cancel it; it is checked here.
      if (req.signal?.aborted) throw cancelled(req);
      const conn = await this.#acquire(key, req);
      if (req.signal?.aborted) {
        conn.streamClosed();
        throw cancelled(req);
      }
      let stream: ClientHttp2Stream;
      try {
        stream = conn.session.request(
          {
            ':method': 'CONNECT',
            ':authority': req.authority,
            ...(req.baggage ? { baggage: req.baggage } : {}),
            ...(req.forwarded ? { forwarded: req.forwarded } : {}),
            traceparent: req.traceparent ?? newTraceparent(),
          },
          { endStream: false },
        );
      } catch (err) {
        conn.draining = true;
        conn.streamClosed();
        if (attempt === 0) continue;
        throw new HboneError(HboneErrorCode.SESSION_FAILED, 'cannot open a stream on the HBONE connection', { cause: err });
      }
      stream.once('close', () => conn.streamClosed());
      return this.#awaitResponse(stream, req);
    }
  }

  /** Connections and open streams, for the admin dump and tests. */
  stats(): { keys: number; connections: number; streams: number } {
    let connections = 0;
    let streams = 0;
    for (const e of this.#entries.values()) {
      connections += e.connections.length;
      for (const c of e.connections) streams += c.active;
    }
    return { keys: this.#entries.size, connections, streams };
  }

  /** Closes every pooled connection (their tunnels are reset). */
  close(): void {
    this.#closed = true;
    for (const e of this.#entries.values()) for (const c of e.connections) destroySession(c.session, c.socket);
    this.#entries.clear();
  }

  #awaitResponse(stream: ClientHttp2Stream, req: HboneConnectRequest): Promise<HboneTunnel> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        stream.close(constants.NGHTTP2_CANCEL);
        fail(
          new HboneError(
            HboneErrorCode.RESPONSE_TIMEOUT,
            `no response to CONNECT ${req.authority} within ${this.#config.responseTimeoutMs} ms`,
          ),
        );
      }, this.#config.responseTimeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        stream.off('response', onResponse);
        stream.off('close', onEarlyClose);
        req.signal?.removeEventListener('abort', onAbort);
      };
      const fail = (err: HboneError): void => {
        done();
        reject(err);
      };
      const onResponse = (headers: IncomingHttpHeaders): void => {
        done();
        const status = Number(headers[':status']);
        if (status === 200) {
          resolve({ stream, responseHeaders: headers });
          return;
        }
        stream.close(constants.NGHTTP2_CANCEL);
        const message = `CONNECT ${req.authority} answered ${status}`;
        reject(new HboneError(status === 401 ? HboneErrorCode.UNAUTHORIZED : HboneErrorCode.HTTP_STATUS, message, { status }));
      };
      const onAbort = (): void => {
        stream.close(constants.NGHTTP2_CANCEL);
        fail(cancelled(req));
      };
      const onEarlyClose = (): void => {
        const rst = stream.rstCode;
        fail(new HboneError(HboneErrorCode.SESSION_FAILED, `stream closed before a response (RST_STREAM code ${rst ?? 'none'})`));
      };
      // Errors before the response surface through 'close'; later ones belong to the tunnel.
      stream.on('error', () => {});
      stream.once('response', onResponse);
      stream.once('close', onEarlyClose);
      req.signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  async #acquire(key: string, req: HboneConnectRequest): Promise<PooledConnection> {
    let entry = this.#entries.get(key);
    if (!entry) {
      entry = { connections: [], dialing: undefined };
      this.#entries.set(key, entry);
    }
    for (;;) {
      const conn = entry.connections.find((c) => c.hasCapacity);
      if (conn) {
        conn.streamOpened();
        return conn;
      }
      if (!entry.dialing) {
        const e = entry;
        e.dialing = this.#dial(req)
          .then((c) => {
            e.connections.push(c);
            c.session.once('close', () => this.#remove(key, e, c));
          })
          .finally(() => {
            e.dialing = undefined;
          });
      }
      try {
        await entry.dialing;
      } catch (err) {
        if (entry.connections.length === 0 && !entry.dialing && this.#entries.get(key) === entry) this.#entries.delete(key);
        throw err;
      }
    }
  }

  #remove(key: string, entry: PoolEntry, conn: PooledConnection): void {
    const i = entry.connections.indexOf(conn);
    if (i >= 0) entry.connections.splice(i, 1);
    if (entry.connections.length === 0 && !entry.dialing && this.#entries.get(key) === entry) this.#entries.delete(key);
  }

  /** TCP connect + TLS handshake + HTTP/2 settings exchange, all inside connectTimeoutMs. */
  #dial(req: HboneConnectRequest): Promise<PooledConnection> {
    const c = this.#config;
    return new Promise<PooledConnection>((resolve, reject) => {
      let tcp: Socket;
      try {
        tcp = this.#socketFactory(req);
      } catch (err) {
        reject(
          new HboneError(HboneErrorCode.CONNECT_FAILED, `cannot create a socket to ${formatAuthority(req.address, req.port)}`, {
            cause: err,
          }),
        );
        return;
      }
      const tlsSocket: TLSSocket = tlsConnect({
        socket: tcp,
        secureContext: secureContextFor(req.certificate),
        ALPNProtocols: [HBONE_ALPN],
        rejectUnauthorized: true,
        checkServerIdentity: makeServerIdentityCheck(req.expectedIdentities),
      });
      let session: ClientHttp2Session | undefined;
      let settled = false;
      const timer = setTimeout(() => {
        // ztunnel src/proxy.rs MaybeHBONENetworkPolicyError: its own code, so the proxy can flag it NETWORK_POLICY.
        fail(
          new HboneError(
            HboneErrorCode.CONNECT_TIMEOUT,
            `connection to ${formatAuthority(req.address, req.port)} not established within ${c.connectTimeoutMs} ms; maybe a NetworkPolicy is blocking HBONE port 15008`,
          ),
        );
      }, c.connectTimeoutMs);
      const fail = (err: HboneError): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        session?.destroy();
        tlsSocket.destroy();
        reject(err);
      };
      let lastError: unknown;
      tlsSocket.once('error', (err) => {
        lastError = err;
        fail(tlsFailure(err));
      });
      tcp.once('error', (err) => fail(tlsFailure(err)));
      // In TLS 1.3 the server judges our certificate after our handshake is done: a refusal arrives as an
      // alert or a close while we wait for its SETTINGS, not as a handshake error.
      tlsSocket.once('close', () => {
        fail(
          lastError !== undefined
            ? tlsFailure(lastError)
            : new HboneError(HboneErrorCode.TLS_FAILED, 'server closed the connection during setup; it may have refused our certificate'),
        );
      });
      tlsSocket.once('secureConnect', () => {
        if (tlsSocket.alpnProtocol !== HBONE_ALPN) {
          fail(new HboneError(HboneErrorCode.TLS_FAILED, `server did not negotiate ALPN h2 (got ${String(tlsSocket.alpnProtocol)})`));
          return;
        }
        const s = h2connect(`https://${formatAuthority(req.address, req.port)}`, {
          createConnection: () => tlsSocket,
          maxSessionMemory: c.maxSessionMemoryMb,
          settings: {
            initialWindowSize: c.streamWindowBytes,
            maxFrameSize: c.maxFrameBytes,
            maxHeaderListSize: c.clientMaxHeaderListBytes,
            enablePush: false,
          },
        });
        session = s;
        s.on('error', (err) => {
          if (!settled) fail(tlsFailure(err));
          else this.#logger?.debug({ err: err.message }, 'HBONE client session error');
        });
        s.once('close', () => {
          if (!settled)
            fail(
              new HboneError(HboneErrorCode.TLS_FAILED, 'server closed the connection during setup; it may have refused our certificate'),
            );
        });
        s.once('remoteSettings', (settings) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          try {
            s.setLocalWindowSize(c.connectionWindowBytes);
          } catch {
            // Closed during setup; the caller sees the failure on its stream.
          }
          startKeepalive(s, tlsSocket, c.pingIntervalMs, c.pingTimeoutMs);
          const peerMax = settings.maxConcurrentStreams ?? c.maxStreamsPerConnection;
          resolve(new PooledConnection(s, tlsSocket, Math.max(1, Math.min(c.maxStreamsPerConnection, peerMax)), c.poolIdleReleaseMs));
        });
      });
    });
  }
}
