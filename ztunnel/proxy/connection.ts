/**
 * One proxied connection, from accept to its access-log line: the single owner of its lifecycle (ztunnel
 * src/proxy/metrics.rs `ConnectionResult`, which records on drop, and the tracking of
 * src/proxy/connection_manager.rs). Every listener role creates one per accepted connection and reports to it;
 * nothing else counts, tracks or logs a connection.
 *
 *   accepted ─ open(details) ─▶ counted opened, tracked ─┬─ anchor closes ─────────────▶ complete
 *       │                                                 ├─ fail(err) ─ anchor reset ─▶ complete (flag from err)
 *       │                                                 └─ close(err) from outside ──▶ complete (policy change, drain)
 *       └─ fail(err) before a destination is decided ─────────────────────────────────▶ complete
 *
 *   complete = exactly once: closed (+ failed) counted, "connection complete" logged, untracked, setup aborted.
 *
 * Completion is tied to the connection's *anchor*, the one TCP socket the proxy accepted or made for it (the
 * client on 15001/15006, the app socket for inbound HBONE), whose 'close' is watched from the moment it is known.
 * Whatever else happens — a reset during the certificate fetch or the CONNECT, a 'close' that fired before the
 * relay listened, an HBONE stream that never closes — the record is written when that socket is gone.
 */
import type { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { describeError, type MeshError } from '../../lib/errors.js';
import { formatAuthority } from '../../lib/hbone/authority.js';
import { resetSocket } from '../../lib/hbone/tunnel.js';
import type { ResponseFlag, TcpMetrics } from '../../lib/telemetry/tcp-metrics.js';
import type { ConnectionSummary } from '../dataplane/protocol.js';
import type { ConnectionAttributes } from '../policy/rbac.js';
import { type ConnectionRecord, logConnection, trafficLabels } from '../telemetry/connection.js';
import type { ConnectionTracker, TrackedConnection } from './connections.js';
import { ProxyError, ProxyErrorCode } from './errors.js';
import { isFailure, responseFlagOf } from './response-flags.js';

/** "ip:port" (IPv6 bracketed) of a connection end; an unknown address (a peer that reset at once) is "". */
export function endpoint(ip: string | undefined, port: number | undefined): string {
  return formatAuthority(ip ?? '', port ?? 0);
}

/** Where a pod's connections are counted, logged and tracked. */
export interface ConnectionSink {
  readonly metrics: TcpMetrics;
  /** The access log ("connection complete" lines). */
  readonly logger: Logger;
  readonly tracker: ConnectionTracker;
}

/** What is known when a connection is accepted. */
export type AcceptedConnection = Pick<ConnectionRecord, 'direction' | 'srcAddr'> &
  Partial<Pick<ConnectionRecord, 'source' | 'sourceIdentity' | 'destination'>>;

/** What deciding the destination adds. */
export type ConnectionDetails = Omit<ConnectionRecord, keyof AcceptedConnection | 'startedAt'> & Partial<AcceptedConnection>;

/** The anchor's byte counts as the request (client → destination) and the response. */
export type ByteCounts = (anchor: Socket) => { readonly request: number; readonly response: number };

/** Outbound and plaintext inbound: the anchor is the client. */
export const clientBytes: ByteCounts = (s) => ({ request: s.bytesRead, response: s.bytesWritten });

export class ProxyConnection implements TrackedConnection {
  readonly direction: 'inbound' | 'outbound';
  readonly #sink: ConnectionSink;
  readonly #accepted: AcceptedConnection;
  readonly #startedAt = Date.now();
  readonly #abort = new AbortController();
  #target: string | undefined;
  #record: ConnectionRecord | undefined;
  #summary: ConnectionSummary | undefined;
  #attributes: ConnectionAttributes | undefined;
  #untrack: (() => void) | undefined;
  #anchor: { readonly socket: Socket; readonly bytes: ByteCounts } | undefined;
  readonly #upstreams: Array<() => void> = [];
  /** Why it ended, when we ended it (a failure, a policy change, a drain); undefined = it ended by itself. */
  #ending: unknown;
  #firstError: Error | undefined;
  #done = false;

  constructor(sink: ConnectionSink, accepted: AcceptedConnection, anchor?: { socket: Socket; bytes: ByteCounts }) {
    this.#sink = sink;
    this.#accepted = accepted;
    this.direction = accepted.direction;
    if (anchor) this.anchor(anchor.socket, anchor.bytes);
  }

  /** Aborted when the connection is over or closed from outside: setup steps (dials, CONNECT) give up. */
  get signal(): AbortSignal {
    return this.#abort.signal;
  }

  /** The client's "ip:port". */
  get srcAddr(): string {
    return this.#accepted.srcAddr;
  }

  get done(): boolean {
    return this.#done;
  }

  get summary(): ConnectionSummary {
    return this.#summary ?? { src: this.#accepted.srcAddr, originalDst: this.#target ?? '', actualDst: '', protocol: 'TCP' };
  }

  get attributes(): ConnectionAttributes | undefined {
    return this.#attributes;
  }

  /** Where the client was going, as soon as that is known: a record written before open() names it. */
  target(dstAddr: string): void {
    this.#target = dstAddr;
  }

  /** The destination is decided: the record is built (once), the connection counted opened and tracked. */
  open(details: ConnectionDetails, summary: ConnectionSummary, attributes?: ConnectionAttributes): void {
    if (this.#done || this.#record) return;
    this.#record = {
      source: undefined,
      sourceIdentity: undefined,
      destination: undefined,
      ...this.#accepted,
      ...details,
      startedAt: this.#startedAt,
    };
    this.#summary = summary;
    this.#attributes = attributes;
    this.#sink.metrics.connectionOpened(trafficLabels(this.#record));
    this.#untrack = this.#sink.tracker.add(this);
  }

  /** The socket whose 'close' completes this connection. A connection already over resets it at once. */
  anchor(socket: Socket, bytes: ByteCounts): void {
    if (this.#anchor) throw new Error('a connection has one anchor');
    this.#anchor = { socket, bytes };
    socket.on('error', (err) => this.#noteError(err));
    if (this.#done) {
      resetSocket(socket);
      return;
    }
    // Listening first, then checking: a 'close' already in the past is not waited for.
    socket.once('close', () => this.#complete());
    if (socket.closed) this.#complete();
  }

  /**
   * Something the connection goes to (an HBONE stream, an upstream socket): its errors go into the record, and
   * `teardown` ends it when we end the connection (failure, policy change, drain). An end by itself is the
   * relay's to propagate (FIN or reset, per direction: tunnel.ts, copy.ts).
   */
  upstream(emitter: EventEmitter, teardown: () => void): void {
    emitter.on('error', (err: Error) => this.#noteError(err));
    if (this.#done) teardown();
    else this.#upstreams.push(teardown);
  }

  /** Ends the connection as failed with `err`: the anchor is reset and the record written once it is gone. */
  fail(err: unknown): void {
    if (this.#done || this.#ending !== undefined) return;
    this.#ending = err ?? new Error('connection failed');
    this.#teardown();
  }

  /** Closes it from outside (policy change, drain). */
  close(reason: MeshError): void {
    this.fail(reason);
  }

  /** `p`, or a rejection with `p` abandoned as soon as the connection is over (a setup step nobody waits for). */
  until<T>(p: Promise<T>): Promise<T> {
    const signal = this.#abort.signal;
    if (signal.aborted) return Promise.reject(new ProxyError(ProxyErrorCode.CLOSED, 'the connection is already over'));
    return new Promise<T>((resolve, reject) => {
      const onAbort = (): void => reject(new ProxyError(ProxyErrorCode.CLOSED, 'the connection ended during setup'));
      signal.addEventListener('abort', onAbort, { once: true });
      p.then(
        (v) => {
          signal.removeEventListener('abort', onAbort);
          resolve(v);
        },
        (err: unknown) => {
          signal.removeEventListener('abort', onAbort);
          reject(err);
        },
      );
    });
  }

  /** Runs a listener role's handling of this connection; anything it throws fails the connection. */
  run(body: () => Promise<void>): void {
    body().catch((err: unknown) => this.fail(err));
  }

  #noteError(err: Error): void {
    this.#firstError ??= err;
  }

  #teardown(): void {
    this.#abort.abort();
    for (const t of this.#upstreams.splice(0)) t();
    const a = this.#anchor?.socket;
    if (!a) {
      this.#complete();
      return;
    }
    if (a.closed) this.#complete();
    else resetSocket(a);
  }

  #complete(): void {
    if (this.#done) return;
    this.#done = true;
    this.#abort.abort();
    this.#upstreams.length = 0;
    const anchor = this.#anchor;
    const bytes = anchor ? anchor.bytes(anchor.socket) : { request: 0, response: 0 };
    const ending = this.#ending;
    let flag: ResponseFlag = '-';
    let error: string | undefined;
    if (ending !== undefined) {
      flag = responseFlagOf(ending);
      error = describeError(ending);
    } else if (anchor && !(anchor.socket.readableEnded && anchor.socket.writableFinished) && this.#firstError) {
      // Ended by itself, but by a reset rather than FIN both ways.
      error = describeError(this.#firstError);
    }
    const rec = this.#record ?? this.#failureRecord();
    const labels = trafficLabels(rec, flag);
    const { metrics } = this.#sink;
    if (this.#record) metrics.connectionClosed(labels, bytes.request, bytes.response);
    if (isFailure(flag)) metrics.connectionFailed(labels);
    logConnection(this.#sink.logger, rec, { bytesSent: bytes.request, bytesRecv: bytes.response, flag, error });
    this.#untrack?.();
  }

  /** A record for a connection that failed before its destination was decided: what was known at accept. */
  #failureRecord(): ConnectionRecord {
    return {
      source: undefined,
      sourceIdentity: undefined,
      destination: undefined,
      ...this.#accepted,
      dstAddr: this.#target ?? 'unknown',
      dstHboneAddr: undefined,
      destinationService: undefined,
      destinationIdentity: undefined,
      mtls: false,
      startedAt: this.#startedAt,
    };
  }
}
