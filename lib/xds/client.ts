/**
 * A delta ADS client (`DeltaAggregatedResources`), shaped after ztunnel's AdsClient (src/xds/client.rs): one stream
 * to the control plane, one subscription per configured type (wildcard, or by name on demand), a handler per type
 * that applies updates and may reject individual resources, ACK or NACK per response, and reconnects with backoff.
 * Used by ztunnel for workload discovery and by waypoints for Envoy xDS.
 *
 * Lifecycle of one connection: token read (rotated tokens are picked up per connection) -> channel connects (TCP +
 * TLS, bounded by a deadline) -> stream opened with `authorization` and `clusterid` headers -> per type an initial
 * DeltaDiscoveryRequest {type_url, node, initial_resource_versions = what we hold} -> per response: validate each
 * resource, call the handler, update the local name -> version store for what was accepted, then ACK (response_nonce)
 * or NACK (response_nonce + error_detail) -> on end, reconnect after the backoff.
 *
 * Rejections are per resource, as in ztunnel: accepted siblings in the same response are applied and recorded; a
 * rejected resource keeps whatever version the client held before (its store entry is not touched), so the next
 * initial_resource_versions still names the last good version and the server re-sends a newer one when it has it.
 */
import * as grpc from '@grpc/grpc-js';
import { describeError, errorCode } from '../errors.js';
import type { TokenSource } from '../identity/ca-client.js';
import { envoy } from '../proto/index.js';
import { AggregatedDiscoveryServiceDefinition } from '../proto/services.js';
import { componentLogger, type Logger } from '../telemetry/logger.js';
import { type Clock, DEFAULT_XDS_BACKOFF, type XdsBackoffPolicy, reconnectDelayMs, systemClock } from './backoff.js';
import {
  XDS_CLIENT_MAX_RECEIVE_BYTES,
  XDS_CONNECT_TIMEOUT_MS,
  XDS_KEEPALIVE_TIME_MS,
  XDS_KEEPALIVE_TIMEOUT_MS,
  XDS_NACK_STATUS_CODE,
} from './defaults.js';
import { XdsError, XdsErrorCode, XdsRejectedError, type XdsRejection, rejectionMessage } from './errors.js';
import { DEFAULT_CLUSTER_ID } from './node.js';
import { AUTHORIZATION_HEADER, CLUSTER_ID_HEADER, DELTA_ADS_PATH, isGracefulEnd } from './protocol.js';
import type { XdsResource } from './resource.js';

export type { TokenSource };

type DeltaReq = envoy.service.discovery.v3.DeltaDiscoveryRequest;
type DeltaRes = envoy.service.discovery.v3.DeltaDiscoveryResponse;
type NodeProps = envoy.config.core.v3.Node.$Properties;

/** What a handler receives for one response of its type. */
export interface XdsUpdate {
  readonly typeUrl: string;
  /** Added or changed resources that passed the client's own checks (a name, a body of the right type). */
  readonly resources: readonly XdsResource[];
  /** Names the server removed (or, for a name subscribed explicitly, says do not exist). */
  readonly removed: readonly string[];
}

// biome-ignore lint/suspicious/noConfusingVoidType: a handler may return nothing (void) or its rejections.
export type XdsHandlerResult = void | readonly XdsRejection[];

/**
 * Applies one update to the component's state. Returns (or throws as XdsRejectedError) the resources it refused;
 * anything else it throws rejects the whole response. Responses of a stream are handled one at a time, in order.
 */
export type XdsHandler = (update: XdsUpdate) => XdsHandlerResult | Promise<XdsHandlerResult>;

/**
 * One subscribed type. The subscription is wildcard (the server decides what this proxy gets) unless `onDemand`:
 * then, as ztunnel with XDS_ON_DEMAND (src/xds/client.rs), it starts subscribed to nothing and names are
 * subscribed later with XdsClient.subscribe().
 */
export interface XdsWatch {
  readonly typeUrl: string;
  readonly handler: XdsHandler;
  readonly onDemand?: boolean;
}

export type XdsClientTransport =
  /** Verify the control plane against `rootCertPem`; `serverName` overrides the name checked (ALT_XDS_HOSTNAME). */
  | { readonly kind: 'tls'; readonly rootCertPem: string; readonly serverName?: string }
  /** Plaintext (istiod's 15010), for tests and local setups only. */
  | { readonly kind: 'insecure' };

export type XdsClientEvent =
  /** A connection attempt starts (attempt counts from 1 over the client's life). */
  | { readonly kind: 'connecting'; readonly attempt: number }
  /** The first response of this stream arrived: the server accepted us. */
  | { readonly kind: 'connected'; readonly attempt: number }
  /** One response handled and answered. `rejected` empty = ACK, else NACK. */
  | {
      readonly kind: 'response';
      readonly typeUrl: string;
      readonly nonce: string;
      readonly resources: number;
      readonly removed: number;
      readonly rejected: readonly XdsRejection[];
    }
  /** Every watched type has had a response ACKed (ztunnel's readiness condition). Emitted once. */
  | { readonly kind: 'synced' }
  /** The stream ended; the next attempt is in `retryInMs`. */
  | {
      readonly kind: 'disconnected';
      readonly attempt: number;
      /** Stable code: XDS_UNAVAILABLE (never connected), XDS_STREAM_FAILED (error status), XDS_NO_TOKEN, or "OK". */
      readonly code: string;
      readonly grpcStatus?: grpc.status;
      readonly details: string;
      readonly graceful: boolean;
      readonly retryInMs: number;
    }
  | { readonly kind: 'closed' };

export interface XdsClientOptions {
  /** host:port of the control plane (XDS_ADDRESS without the scheme), e.g. "istiod.istio-system.svc:15012". */
  readonly address: string;
  readonly transport: XdsClientTransport;
  /** Sent on every initial request (see ztunnelNode()). */
  readonly node: NodeProps;
  readonly watches: readonly XdsWatch[];
  /** Bearer token, re-read for every connection (projected tokens rotate). */
  readonly token?: TokenSource;
  /** `clusterid` header; default "Kubernetes". */
  readonly clusterId?: string;
  /** More headers on every stream (ztunnel's XDS_HEADER_*). */
  readonly extraHeaders?: Readonly<Record<string, string>>;
  readonly backoff?: Partial<XdsBackoffPolicy>;
  readonly clock?: Clock;
  /** Uniform [0, 1) source for backoff jitter. */
  readonly random?: () => number;
  readonly connectTimeoutMs?: number;
  readonly maxReceiveBytes?: number;
  readonly logger?: Logger;
  readonly onEvent?: (event: XdsClientEvent) => void;
}

interface TypeState {
  readonly handler: XdsHandler;
  readonly onDemand: boolean;
  /** name -> version of every resource the client holds: what initial_resource_versions reports on reconnect. */
  readonly known: Map<string, string>;
  acked: boolean;
}

/** One connection attempt and the stream it opens; events of an older session are ignored. */
interface Session {
  readonly attempt: number;
  client?: grpc.Client;
  stream?: grpc.ClientDuplexStream<DeltaReq, DeltaRes>;
  /** A response arrived on this stream. */
  established: boolean;
  ended: boolean;
  /** Responses are handled strictly in order, one at a time. */
  queue: Promise<void>;
}

const ads = AggregatedDiscoveryServiceDefinition.DeltaAggregatedResources;

function channelCredentials(t: XdsClientTransport): grpc.ChannelCredentials {
  return t.kind === 'insecure' ? grpc.credentials.createInsecure() : grpc.credentials.createSsl(Buffer.from(t.rootCertPem));
}

function channelOptions(opts: XdsClientOptions): grpc.ChannelOptions {
  const o: grpc.ChannelOptions = {
    'grpc.max_receive_message_length': opts.maxReceiveBytes ?? XDS_CLIENT_MAX_RECEIVE_BYTES,
    'grpc.keepalive_time_ms': XDS_KEEPALIVE_TIME_MS,
    'grpc.keepalive_timeout_ms': XDS_KEEPALIVE_TIMEOUT_MS,
    // Every attempt uses a fresh channel; grpc-js's own reconnect backoff must not delay ours.
    'grpc.initial_reconnect_backoff_ms': 100,
  };
  if (opts.transport.kind === 'tls' && opts.transport.serverName) {
    o['grpc.ssl_target_name_override'] = opts.transport.serverName;
    o['grpc.default_authority'] = opts.transport.serverName;
  }
  return o;
}

/**
 * Resolves once the channel's first connection attempt has concluded (READY, or TRANSIENT_FAILURE: the stream
 * opened next then fails at once with grpc-js's detailed reason); rejects if it has not concluded by the deadline.
 */
function connectAttempt(client: grpc.Client, deadline: number, address: string): Promise<void> {
  const channel = client.getChannel();
  return new Promise<void>((resolve, reject) => {
    const check = (): void => {
      const state = channel.getConnectivityState(true);
      if (state === grpc.connectivityState.READY || state === grpc.connectivityState.TRANSIENT_FAILURE) {
        resolve();
        return;
      }
      if (state === grpc.connectivityState.SHUTDOWN) {
        reject(new XdsError(XdsErrorCode.UNAVAILABLE, `channel to ${address} was shut down`));
        return;
      }
      channel.watchConnectivityState(state, deadline, (err) => {
        if (err) {
          reject(
            new XdsError(
              XdsErrorCode.UNAVAILABLE,
              `timed out connecting to the control plane at ${address}; check XDS_ADDRESS and that nothing (a NetworkPolicy, a firewall) drops traffic to it`,
            ),
          );
        } else check();
      });
    };
    check();
  });
}

/** The client's checks on each resource, before the handler sees it. Failures reject just that resource. */
function validateResources(res: DeltaRes, typeUrl: string): { accepted: XdsResource[]; rejected: XdsRejection[] } {
  const accepted: XdsResource[] = [];
  const rejected: XdsRejection[] = [];
  const seen = new Set<string>();
  for (const r of res.resources ?? []) {
    const name = r.name ?? '';
    if (name === '') {
      rejected.push({ name: '<unnamed>', error: 'resource has no name' });
      continue;
    }
    if (seen.has(name)) {
      rejected.push({ name, error: 'resource appears twice in one response' });
      continue;
    }
    seen.add(name);
    const packed = r.resource;
    if (!packed) {
      rejected.push({ name, error: 'XDS payload without resource' });
      continue;
    }
    if ((packed.type_url ?? '') !== typeUrl) {
      rejected.push({ name, error: `resource type ${packed.type_url ?? '<none>'} does not match the response type ${typeUrl}` });
      continue;
    }
    accepted.push(Object.freeze({ name, version: r.version ?? '', body: packed.value ?? new Uint8Array(0) }));
  }
  return { accepted, rejected };
}

export class XdsClient {
  readonly #opts: XdsClientOptions;
  readonly #types = new Map<string, TypeState>();
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #backoff: XdsBackoffPolicy;
  readonly #log: Logger;
  #session: Session | undefined;
  #attempts = 0;
  /** Consecutive failed connections; drives the backoff, reset by a graceful end. */
  #failures = 0;
  #retryTimer: unknown;
  #started = false;
  #closed = false;
  #synced = false;
  readonly #syncedPromise: Promise<void>;
  #resolveSynced!: () => void;

  constructor(opts: XdsClientOptions) {
    if (opts.watches.length === 0) throw new XdsError(XdsErrorCode.BAD_REQUEST, 'an xDS client needs at least one watched type');
    this.#opts = opts;
    for (const w of opts.watches) {
      if (this.#types.has(w.typeUrl)) throw new XdsError(XdsErrorCode.BAD_REQUEST, `type ${w.typeUrl} is watched twice`);
      this.#types.set(w.typeUrl, { handler: w.handler, onDemand: w.onDemand === true, known: new Map(), acked: false });
    }
    this.#clock = opts.clock ?? systemClock;
    this.#random = opts.random ?? Math.random;
    this.#backoff = { ...DEFAULT_XDS_BACKOFF, ...opts.backoff };
    this.#log = opts.logger ?? componentLogger('xds-client');
    this.#syncedPromise = new Promise<void>((resolve) => {
      this.#resolveSynced = resolve;
    });
  }

  /** Starts connecting; idempotent. */
  start(): void {
    if (this.#started || this.#closed) return;
    this.#started = true;
    void this.#connect();
  }

  /** A stream is open and the server has answered on it. */
  get connected(): boolean {
    const s = this.#session;
    return s?.established === true && !s.ended;
  }

  /** Every watched type that is not on demand has had a response ACKed since start (stays true across reconnects). */
  get synced(): boolean {
    return this.#synced;
  }

  /** Resolves when `synced` becomes true. */
  whenSynced(): Promise<void> {
    return this.#syncedPromise;
  }

  /** name -> version the client holds for `typeUrl` (what it would report in initial_resource_versions). */
  knownResources(typeUrl: string): ReadonlyMap<string, string> {
    return new Map(this.#types.get(typeUrl)?.known ?? []);
  }

  /**
   * Subscribes an on-demand type to `names` (ztunnel's demand). The names are kept with an empty version, so a
   * reconnect asks for them again in initial_resource_versions, as ztunnel does.
   */
  subscribe(typeUrl: string, names: readonly string[]): void {
    const state = this.#onDemandType(typeUrl);
    for (const n of names) if (!state.known.has(n)) state.known.set(n, '');
    this.#send({ typeUrl, resourceNamesSubscribe: [...names] });
  }

  /** Unsubscribes an on-demand type from `names`; the client no longer holds them (xDS protocol). */
  unsubscribe(typeUrl: string, names: readonly string[]): void {
    const state = this.#onDemandType(typeUrl);
    for (const n of names) state.known.delete(n);
    this.#send({ typeUrl, resourceNamesUnsubscribe: [...names] });
  }

  #onDemandType(typeUrl: string): TypeState {
    const state = this.#types.get(typeUrl);
    if (state?.onDemand !== true) throw new XdsError(XdsErrorCode.BAD_REQUEST, `type ${typeUrl} is not watched on demand by this client`);
    return state;
  }

  /** Sends on the current stream, if there is one; otherwise the next connection's initial request carries it. */
  #send(req: envoy.service.discovery.v3.DeltaDiscoveryRequest.$Properties): void {
    const s = this.#session;
    if (s?.stream === undefined || s.ended) return;
    s.stream.write(envoy.service.discovery.v3.DeltaDiscoveryRequest.create(req));
  }

  /** Stops for good: cancels the stream and any pending reconnect. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#clock.clearTimeout(this.#retryTimer);
    const s = this.#session;
    if (s && !s.ended) {
      s.ended = true;
      s.stream?.cancel();
      s.client?.close();
    }
    this.#emit({ kind: 'closed' });
  }

  #emit(event: XdsClientEvent): void {
    try {
      this.#opts.onEvent?.(event);
    } catch (err) {
      this.#log.warn({ err: describeError(err) }, 'xDS client event listener threw');
    }
  }

  async #metadata(): Promise<grpc.Metadata> {
    const md = new grpc.Metadata();
    for (const [k, v] of Object.entries(this.#opts.extraHeaders ?? {})) md.set(k, v);
    let token: string | undefined;
    try {
      token = this.#opts.token ? await this.#opts.token() : undefined;
    } catch (err) {
      throw new XdsError(XdsErrorCode.NO_TOKEN, 'cannot read the token to authenticate to the control plane', { cause: err });
    }
    if (token) md.set(AUTHORIZATION_HEADER, `Bearer ${token}`);
    md.set(CLUSTER_ID_HEADER, this.#opts.clusterId ?? DEFAULT_CLUSTER_ID);
    return md;
  }

  #initialRequest(typeUrl: string, state: TypeState): DeltaReq {
    // Empty resource_names_subscribe on the first request of a type = wildcard (xDS protocol, "wildcard mode");
    // on demand, "*" subscribed and unsubscribed in one request = subscribed to nothing (ztunnel's workaround).
    return envoy.service.discovery.v3.DeltaDiscoveryRequest.create({
      typeUrl,
      node: this.#opts.node,
      ...(state.onDemand ? { resourceNamesSubscribe: ['*'], resourceNamesUnsubscribe: ['*'] } : {}),
      initialResourceVersions: Object.fromEntries(state.known),
    });
  }

  async #connect(): Promise<void> {
    const attempt = ++this.#attempts;
    const session: Session = { attempt, established: false, ended: false, queue: Promise.resolve() };
    this.#session = session;
    this.#emit({ kind: 'connecting', attempt });
    let metadata: grpc.Metadata;
    try {
      metadata = await this.#metadata();
    } catch (err) {
      this.#ended(session, { code: errorCode(err), details: describeError(err), connectionFailure: true });
      return;
    }
    if (session.ended) return;
    const client = new grpc.Client(this.#opts.address, channelCredentials(this.#opts.transport), channelOptions(this.#opts));
    session.client = client;
    try {
      await connectAttempt(client, Date.now() + (this.#opts.connectTimeoutMs ?? XDS_CONNECT_TIMEOUT_MS), this.#opts.address);
    } catch (err) {
      this.#ended(session, { code: errorCode(err), details: describeError(err), connectionFailure: true });
      return;
    }
    if (session.ended) return;
    const stream = client.makeBidiStreamRequest(DELTA_ADS_PATH, ads.requestSerialize, ads.responseDeserialize, metadata, {});
    session.stream = stream;
    stream.on('data', (res: DeltaRes) => {
      if (session.ended) return;
      if (!session.established) {
        session.established = true;
        this.#emit({ kind: 'connected', attempt });
      }
      session.queue = session.queue.then(() => this.#onResponse(session, res));
    });
    // 'status' always comes last and carries the outcome; 'error' repeats it for non-OK statuses.
    stream.on('error', () => {});
    stream.on('status', (st: grpc.StatusObject) => {
      this.#ended(session, {
        code: st.code === grpc.status.OK ? 'OK' : XdsErrorCode.STREAM_FAILED,
        grpcStatus: st.code,
        details: st.details,
        connectionFailure: false,
      });
    });
    for (const [typeUrl, state] of this.#types) {
      const req = this.#initialRequest(typeUrl, state);
      this.#log.debug({ typeUrl, initialResources: state.known.size, attempt }, 'sending initial xDS request');
      stream.write(req);
    }
  }

  #ended(session: Session, outcome: { code: string; grpcStatus?: grpc.status; details: string; connectionFailure: boolean }): void {
    if (session.ended) return;
    session.ended = true;
    session.client?.close();
    if (this.#closed || session !== this.#session) return;
    const graceful =
      !outcome.connectionFailure && outcome.grpcStatus !== undefined && isGracefulEnd(outcome.grpcStatus, session.established);
    if (graceful) this.#failures = 0;
    else this.#failures++;
    const retryInMs = reconnectDelayMs(this.#failures, this.#random, this.#backoff);
    const statusName = outcome.grpcStatus === undefined ? undefined : grpc.status[outcome.grpcStatus];
    const line = {
      code: outcome.code,
      status: statusName,
      details: outcome.details,
      attempt: session.attempt,
      retryInMs,
      address: this.#opts.address,
    };
    if (graceful) this.#log.info(line, 'xDS stream closed, reconnecting');
    else this.#log.warn(line, 'xDS connection failed, retrying with backoff');
    this.#emit({
      kind: 'disconnected',
      attempt: session.attempt,
      code: outcome.code,
      ...(outcome.grpcStatus === undefined ? {} : { grpcStatus: outcome.grpcStatus }),
      details: outcome.details,
      graceful,
      retryInMs,
    });
    this.#retryTimer = this.#clock.setTimeout(() => {
      if (!this.#closed) void this.#connect();
    }, retryInMs);
  }

  async #onResponse(session: Session, res: DeltaRes): Promise<void> {
    const typeUrl = res.typeUrl ?? '';
    const nonce = res.nonce ?? '';
    const state = this.#types.get(typeUrl);
    const removed = [...(res.removedResources ?? [])];
    let rejections: XdsRejection[];
    let resourceCount = 0;
    if (!state) {
      // ztunnel logs and ACKs; a NACK makes the mistake visible in the server's proxy-status instead.
      rejections = [{ name: '*', error: `type ${typeUrl || '<empty>'} was not subscribed by this client` }];
    } else {
      const { accepted, rejected } = validateResources(res, typeUrl);
      resourceCount = accepted.length;
      let handlerRejections: readonly XdsRejection[] = [];
      try {
        handlerRejections = (await state.handler(Object.freeze({ typeUrl, resources: accepted, removed }))) ?? [];
      } catch (err) {
        if (err instanceof XdsRejectedError) handlerRejections = err.rejections;
        else {
          // The handler failed as a whole: nothing in this response counts as applied.
          const reason = describeError(err);
          handlerRejections = [...accepted.map((r) => r.name), ...removed].map((name) => ({ name, error: reason }));
          if (handlerRejections.length === 0) handlerRejections = [{ name: '*', error: reason }];
        }
      }
      const refused = new Set(handlerRejections.map((r) => r.name));
      for (const r of accepted) if (!refused.has(r.name)) state.known.set(r.name, r.version);
      for (const name of removed) if (!refused.has(name)) state.known.delete(name);
      rejections = [...rejected, ...handlerRejections];
    }
    if (session.ended || this.#closed) return;
    const ack = envoy.service.discovery.v3.DeltaDiscoveryRequest.create({
      typeUrl,
      responseNonce: nonce,
      ...(rejections.length > 0 ? { errorDetail: { code: XDS_NACK_STATUS_CODE, message: rejectionMessage(rejections) } } : {}),
    });
    if (rejections.length > 0) {
      this.#log.warn(
        { code: XdsErrorCode.REJECTED, typeUrl, nonce, rejected: rejections.length, error: rejectionMessage(rejections) },
        'NACK: rejected xDS resources',
      );
    } else {
      this.#log.debug({ typeUrl, nonce, resources: resourceCount, removed: removed.length }, 'ACK');
    }
    session.stream?.write(ack);
    this.#emit({ kind: 'response', typeUrl, nonce, resources: resourceCount, removed: removed.length, rejected: rejections });
    if (state && rejections.length === 0 && !state.acked) {
      state.acked = true;
      // ztunnel waits only for the types that are not on demand (src/xds/client.rs types_to_expect).
      if (!this.#synced && [...this.#types.values()].every((t) => t.acked || t.onDemand)) {
        this.#synced = true;
        this.#resolveSynced();
        this.#emit({ kind: 'synced' });
      }
    }
  }
}
