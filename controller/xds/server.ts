/**
 * The delta ADS server (`envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources`), generic
 * over resource types: a ResourceSource says what each proxy may see, push() says which types may have changed,
 * and every connected proxy receives only what it lacks. SotW StreamAggregatedResources is answered UNIMPLEMENTED
 * (ztunnel only speaks delta: src/xds/client.rs).
 *
 * Push path: push(request) -> debouncer (100ms quiet / 10s max, merged, one at a time) -> for every connected
 * proxy, in batches that yield to the event loop, each watched type named by the push is diffed and sent.
 */
import * as grpc from '@grpc/grpc-js';
import { bindServer, shutdownServer, type GrpcServerTransport } from '../../lib/grpc-server.js';
import { describeError } from '../../lib/errors.js';
import type { envoy } from '../../lib/proto/index.js';
import { AggregatedDiscoveryServiceDefinition } from '../../lib/proto/services.js';
import { componentLogger, type Logger } from '../../lib/telemetry/logger.js';
import { type Clock, systemClock } from '../../lib/xds/backoff.js';
import { XdsError, XdsErrorCode } from '../../lib/xds/errors.js';
import { xdsStatusOf } from '../../lib/xds/protocol.js';
import type { XdsAuthenticator } from './auth.js';
import {
  DEFAULT_DEBOUNCE,
  type DebounceSettings,
  XDS_AUTH_TIMEOUT_MS,
  XDS_MAX_NAME_BYTES,
  XDS_MAX_NAMES_PER_TYPE,
  XDS_MAX_REQUEST_BYTES,
  XDS_MAX_TYPES_PER_STREAM,
  XDS_PUSH_BATCH,
  XDS_REQUEST_BURST,
  XDS_REQUESTS_PER_SECOND,
  XDS_SHUTDOWN_GRACE_MS,
} from './config.js';
import { type ConnectionDeps, XdsConnection, type XdsServerLimits } from './connection.js';
import { type MergedPushRequest, PushDebouncer, type PushRequest } from './debounce.js';
import type { XdsServerMetrics } from './metrics.js';
import type { ResourceSource } from './source.js';
import type { ProxyStatusRecord } from './status.js';

type DeltaRes = envoy.service.discovery.v3.DeltaDiscoveryResponse;
type SotwRes = envoy.service.discovery.v3.DiscoveryResponse;

export const DEFAULT_XDS_LIMITS: XdsServerLimits = Object.freeze({
  maxRequestBytes: XDS_MAX_REQUEST_BYTES,
  requestBurst: XDS_REQUEST_BURST,
  requestsPerSecond: XDS_REQUESTS_PER_SECOND,
  maxTypesPerStream: XDS_MAX_TYPES_PER_STREAM,
  maxNamesPerType: XDS_MAX_NAMES_PER_TYPE,
  maxNameBytes: XDS_MAX_NAME_BYTES,
  authTimeoutMs: XDS_AUTH_TIMEOUT_MS,
});

export interface XdsServerOptions {
  readonly source: ResourceSource;
  /** Runs once per stream before any request is read; see auth.ts (allowAnyCaller() for tests and local mode). */
  readonly authenticate: XdsAuthenticator;
  /** PILOT_DEBOUNCE_AFTER / PILOT_DEBOUNCE_MAX; default 100ms / 10s (the controller's settings read the env). */
  readonly debounce?: Partial<DebounceSettings>;
  readonly limits?: Partial<XdsServerLimits>;
  readonly metrics?: XdsServerMetrics;
  readonly logger?: Logger;
  /** Drives the debouncer and the times in proxy-status. */
  readonly clock?: Clock;
  /** Types proxy-status always lists (IGNORED when a proxy does not watch them), e.g. Address and Authorization. */
  readonly statusTypeUrls?: readonly string[];
  /** ControlPlane.identifier in every response (istiod puts its pod name and version there). */
  readonly controlPlaneId?: string;
}

/** Method definitions that hand the handlers raw bytes, so undecodable requests get our status and log line. */
export const AggregatedDiscoveryServiceRawDefinition = {
  StreamAggregatedResources: {
    ...AggregatedDiscoveryServiceDefinition.StreamAggregatedResources,
    requestSerialize: (b: Buffer) => b,
    requestDeserialize: (b: Buffer) => b,
  } satisfies grpc.MethodDefinition<Buffer, SotwRes>,
  DeltaAggregatedResources: {
    ...AggregatedDiscoveryServiceDefinition.DeltaAggregatedResources,
    requestSerialize: (b: Buffer) => b,
    requestDeserialize: (b: Buffer) => b,
  } satisfies grpc.MethodDefinition<Buffer, DeltaRes>,
} satisfies grpc.ServiceDefinition;

function safeMetrics(hooks: XdsServerMetrics, log: Logger): Required<XdsServerMetrics> {
  const wrap =
    <A extends unknown[]>(name: keyof XdsServerMetrics, fn: ((...args: A) => void) | undefined) =>
    (...args: A): void => {
      if (!fn) return;
      try {
        fn.apply(hooks, args);
      } catch (err) {
        log.warn({ hook: name, err: describeError(err) }, 'xDS metrics hook threw');
      }
    };
  return {
    connectionOpened: wrap('connectionOpened', hooks.connectionOpened),
    connectionClosed: wrap('connectionClosed', hooks.connectionClosed),
    streamRejected: wrap('streamRejected', hooks.streamRejected),
    responseSent: wrap('responseSent', hooks.responseSent),
    nack: wrap('nack', hooks.nack),
    pushReleased: wrap('pushReleased', hooks.pushReleased),
  };
}

function yieldToEventLoop(): Promise<void> {
  return new Promise<void>((resolve) => setImmediate(resolve));
}

export class XdsServer {
  readonly #opts: XdsServerOptions;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #metrics: Required<XdsServerMetrics>;
  readonly #limits: XdsServerLimits;
  readonly #debouncer: PushDebouncer;
  /** Every open stream, identified or not. */
  readonly #streams = new Set<XdsConnection>();
  /** Streams whose proxy has identified itself: the ones pushes go to. */
  readonly #proxies = new Set<XdsConnection>();
  readonly #startedAt: string;
  #pushCount = 0;
  #connectionCount = 0;
  #closed = false;

  constructor(opts: XdsServerOptions) {
    this.#opts = opts;
    this.#log = opts.logger ?? componentLogger('xds-server');
    this.#clock = opts.clock ?? systemClock;
    this.#metrics = safeMetrics(opts.metrics ?? {}, this.#log);
    this.#limits = { ...DEFAULT_XDS_LIMITS, ...opts.limits };
    this.#startedAt = new Date(this.#clock.now()).toISOString();
    this.#debouncer = new PushDebouncer({
      settings: { ...DEFAULT_DEBOUNCE, ...opts.debounce },
      clock: this.#clock,
      run: (push) => this.#runPush(push),
      onError: (err) => this.#log.error({ code: XdsErrorCode.GENERATE_FAILED, err: describeError(err) }, 'xDS push failed'),
    });
  }

  get limits(): XdsServerLimits {
    return this.#limits;
  }

  /** Proxies connected and identified. */
  get connectedProxies(): number {
    return this.#proxies.size;
  }

  /** Pushes released by the debouncer so far. */
  get pushes(): number {
    return this.#pushCount;
  }

  /** system_version_info of the responses being sent: "<server start time>/<push count>", as istiod's PushVersion. */
  get pushVersion(): string {
    return `${this.#startedAt}/${this.#pushCount}`;
  }

  /** Asks for a push of `typeUrls` to every connected proxy; debounced and merged (see debounce.ts). */
  push(request: PushRequest): void {
    if (this.#closed || request.typeUrls.size === 0) return;
    this.#debouncer.request(request);
  }

  /** proxy-status: one record per identified stream, sorted by proxy id then connection id. */
  proxyStatus(): ProxyStatusRecord[] {
    const show = this.#opts.statusTypeUrls ?? [];
    const out: ProxyStatusRecord[] = [];
    for (const c of this.#proxies) {
      const r = c.statusRecord(show);
      if (r) out.push(r);
    }
    return out.sort((a, b) => a.proxy.localeCompare(b.proxy) || a.connectionId.localeCompare(b.connectionId));
  }

  /** grpc-js handlers for AggregatedDiscoveryServiceRawDefinition. */
  handlers(): grpc.UntypedServiceImplementation {
    const DeltaAggregatedResources: grpc.handleBidiStreamingCall<Buffer, DeltaRes> = (call) => this.#accept(call);
    const StreamAggregatedResources: grpc.handleBidiStreamingCall<Buffer, SotwRes> = (call) => {
      const err = new XdsError(
        XdsErrorCode.UNIMPLEMENTED,
        'StreamAggregatedResources (state of the world) is not served; use DeltaAggregatedResources',
      );
      const reply = xdsStatusOf(err);
      this.#log.warn({ code: reply.errorCode, peer: call.getPeer() }, 'xDS stream refused');
      this.#metrics.streamRejected(reply.errorCode);
      call.on('error', () => {});
      call.emit('error', { code: reply.code, details: reply.details });
    };
    return { DeltaAggregatedResources, StreamAggregatedResources };
  }

  /**
   * Ends every stream with OK and refuses new ones (UNAVAILABLE): the control plane is going away. Proxies treat the
   * OK close as graceful and reconnect after their initial backoff (to another replica, or to this one restarted).
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#debouncer.close();
    for (const c of [...this.#streams]) c.end();
  }

  #accept(call: grpc.ServerDuplexStream<Buffer, DeltaRes>): void {
    const deps: ConnectionDeps = {
      source: this.#opts.source,
      authenticate: this.#opts.authenticate,
      limits: this.#limits,
      log: this.#log,
      metrics: this.#metrics,
      now: () => this.#clock.now(),
      versionInfo: () => this.pushVersion,
      ...(this.#opts.controlPlaneId ? { controlPlaneId: this.#opts.controlPlaneId } : {}),
      connectionId: (proxyId) => `${proxyId}-${++this.#connectionCount}`,
      onOpened: (c) => this.#proxies.add(c),
      onClosed: (c) => {
        this.#streams.delete(c);
        this.#proxies.delete(c);
      },
    };
    const conn = new XdsConnection(call, deps);
    if (this.#closed) {
      conn.fail(new XdsError(XdsErrorCode.SHUTTING_DOWN, 'the control plane is shutting down; reconnect to another replica'));
      return;
    }
    this.#streams.add(conn);
    void conn.start();
  }

  async #runPush(push: MergedPushRequest): Promise<void> {
    this.#pushCount++;
    this.#metrics.pushReleased(push);
    this.#log.debug(
      {
        version: this.pushVersion,
        types: [...push.typeUrls],
        reasons: Object.fromEntries(push.reasons),
        merged: push.requests,
        proxies: this.#proxies.size,
      },
      'xDS push',
    );
    let n = 0;
    for (const c of [...this.#proxies]) {
      c.push(push.typeUrls);
      if (++n % XDS_PUSH_BATCH === 0) await yieldToEventLoop();
    }
  }
}

/** Adds the ADS service to an existing server (istiod serves xDS and the CA on the same 15012 port). */
export function addXdsService(server: grpc.Server, xds: XdsServer): void {
  server.addService(AggregatedDiscoveryServiceRawDefinition, xds.handlers());
}

/** How the server listens: TLS with its serving certificate (what proxies expect on 15012), or plaintext (15010, tests). */
export type XdsServerTransport = GrpcServerTransport;

export interface StartXdsServerOptions extends XdsServerOptions {
  readonly transport: XdsServerTransport;
  /** Defaults to 127.0.0.1; use "0.0.0.0" or "[::]" to serve the cluster. */
  readonly host?: string;
  /** 0 (default) picks a free port. */
  readonly port?: number;
  /** Other services on the same port, added before it binds (istiod serves the CA beside xDS on 15012). */
  readonly addServices?: (server: grpc.Server) => void;
}

export interface RunningXdsServer {
  /** The port actually bound. */
  readonly port: number;
  readonly server: grpc.Server;
  readonly xds: XdsServer;
  /** Ends every stream with OK, then lets calls finish for up to `graceMs` before cutting connections. */
  close(graceMs?: number): Promise<void>;
}

/** Starts a gRPC server serving ADS (and `addServices`): what the controller runs on 15012, and what tests start. */
export async function startXdsServer(opts: StartXdsServerOptions): Promise<RunningXdsServer> {
  const xds = new XdsServer(opts);
  const server = new grpc.Server({
    'grpc.max_receive_message_length': xds.limits.maxRequestBytes,
    // Clients may send keepalive PINGs while no call is open; without this grpc-js answers them with GOAWAY.
    'grpc.keepalive_permit_without_calls': 1,
  });
  addXdsService(server, xds);
  opts.addServices?.(server);
  const host = opts.host ?? '127.0.0.1';
  const port = await bindServer(server, host, opts.port ?? 0, opts.transport).catch((err: unknown) => {
    throw new XdsError(XdsErrorCode.UNAVAILABLE, `xDS server cannot listen on ${host}:${opts.port ?? 0}`, { cause: err });
  });
  let closing: Promise<void> | undefined;
  const close = (graceMs: number = XDS_SHUTDOWN_GRACE_MS): Promise<void> => {
    xds.close();
    closing ??= shutdownServer(server, graceMs);
    return closing;
  };
  return { port, server, xds, close };
}
