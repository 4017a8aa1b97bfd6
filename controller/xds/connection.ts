/**
 * One DeltaAggregatedResources stream, server side. Lifecycle: authenticate (before reading anything; the client's
 * messages wait in HTTP/2 flow control meanwhile) -> first request: its Node becomes the ProxyInfo -> per request:
 * rate budget, decode, validate, then the subscription rules of subscription.ts decide whether to respond -> pushes
 * arrive as type sets and are diffed against what the proxy holds (for an on-demand subscription, against what its
 * names stand for and what it gets unasked, as the source resolves them); while the stream's send buffer is full,
 * pushes coalesce per type and are computed afresh on 'drain' (istiod's per-proxy push queue merges the same way).
 *
 * Anything hostile (undecodable bytes, bad node, unknown type, budgets exceeded) closes this stream with a status and
 * one log line with a stable code; it never throws out of a grpc-js callback.
 */
import { randomUUID } from 'node:crypto';
import { status as GrpcStatus, type Metadata, type ServerDuplexStream } from '@grpc/grpc-js';
import { describeError } from '../../lib/errors.js';
import { envoy } from '../../lib/proto/index.js';
import type { Logger } from '../../lib/telemetry/logger.js';
import { XdsError, XdsErrorCode } from '../../lib/xds/errors.js';
import { CLUSTER_ID_HEADER, xdsStatusOf } from '../../lib/xds/protocol.js';
import type { ResourceSet } from '../../lib/xds/resource.js';
import type { XdsAuthContext, XdsAuthenticator, XdsCaller } from './auth.js';
import type { XdsServerMetrics } from './metrics.js';
import { type ProxyInfo, parseProxyNode } from './proxy.js';
import type { OnDemandNames, ResourceSource } from './source.js';
import { type ProxyStatusRecord, type TypeStatusRecord, ignoredType, syncStatusOf } from './status.js';
import { type WatchState, applyRequest, computeDelta, grantOnDemand, newWatch, recordSent } from './subscription.js';

type DeltaReq = envoy.service.discovery.v3.DeltaDiscoveryRequest;
type DeltaRes = envoy.service.discovery.v3.DeltaDiscoveryResponse;

/** Per-stream budgets (defaults and reasons in config.ts). */
export interface XdsServerLimits {
  readonly maxRequestBytes: number;
  readonly requestBurst: number;
  readonly requestsPerSecond: number;
  readonly maxTypesPerStream: number;
  readonly maxNamesPerType: number;
  readonly maxNameBytes: number;
  readonly authTimeoutMs: number;
}

export interface ConnectionDeps {
  readonly source: ResourceSource;
  readonly authenticate: XdsAuthenticator;
  readonly limits: XdsServerLimits;
  readonly log: Logger;
  readonly metrics: Required<XdsServerMetrics>;
  /** Epoch ms. */
  readonly now: () => number;
  /** system_version_info of the next response (istiod's push version). */
  readonly versionInfo: () => string;
  readonly controlPlaneId?: string;
  readonly connectionId: (proxyId: string) => string;
  /** The first valid request arrived: the stream is a known proxy now. */
  readonly onOpened: (conn: XdsConnection) => void;
  /** The stream is over, for whatever reason. */
  readonly onClosed: (conn: XdsConnection) => void;
}

/** Token bucket on requests: `burst` at once, refilled at `perSecond`. */
class RequestBudget {
  readonly #burst: number;
  readonly #perSecond: number;
  #tokens: number;
  #at: number;

  constructor(burst: number, perSecond: number, now: number) {
    this.#burst = burst;
    this.#perSecond = perSecond;
    this.#tokens = burst;
    this.#at = now;
  }

  take(now: number): boolean {
    this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#at) / 1000) * this.#perSecond);
    this.#at = now;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}

function metadataRecord(md: Metadata): Readonly<Record<string, readonly string[]>> {
  const out: Record<string, readonly string[]> = {};
  for (const [key, values] of Object.entries(md.toJSON())) {
    if (key.endsWith('-bin')) continue;
    out[key] = Object.freeze(values.filter((v): v is string => typeof v === 'string'));
  }
  return Object.freeze(out);
}

function withTimeout<T>(p: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(onTimeout()), ms);
    t.unref();
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (err: unknown) => {
        clearTimeout(t);
        reject(err);
      },
    );
  });
}

function badRequest(message: string): XdsError {
  return new XdsError(XdsErrorCode.BAD_REQUEST, message);
}

export class XdsConnection {
  readonly #call: ServerDuplexStream<Buffer, DeltaRes>;
  readonly #deps: ConnectionDeps;
  readonly #peer: string;
  readonly #budget: RequestBudget;
  readonly #watches = new Map<string, WatchState>();
  /** Types with a push waiting for the send buffer to drain. */
  readonly #pending = new Set<string>();
  #caller: XdsCaller | undefined;
  #proxy: ProxyInfo | undefined;
  #blocked = false;
  #closed = false;
  #cleaned = false;

  constructor(call: ServerDuplexStream<Buffer, DeltaRes>, deps: ConnectionDeps) {
    this.#call = call;
    this.#deps = deps;
    this.#peer = call.getPeer();
    this.#budget = new RequestBudget(deps.limits.requestBurst, deps.limits.requestsPerSecond, deps.now());
  }

  /** Set once the first valid request arrived. */
  get proxy(): ProxyInfo | undefined {
    return this.#proxy;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Authenticates, then starts reading requests. Never rejects. */
  async start(): Promise<void> {
    const call = this.#call;
    call.on('cancelled', () => this.#cleanup(this.#closed ? undefined : XdsErrorCode.CANCELLED));
    call.on('close', () => this.#cleanup());
    call.on('error', (err: unknown) => {
      // grpc-js turns an 'error' into the stream's status: ours from fail(), or a write to a client that vanished.
      if (!this.#closed) this.#deps.log.debug({ peer: this.#peer, proxy: this.#proxy?.id, err: describeError(err) }, 'xDS stream error');
      this.#cleanup();
    });
    const authCtx = this.#authContext();
    let caller: XdsCaller;
    try {
      caller = await withTimeout(
        this.#deps.authenticate(authCtx),
        this.#deps.limits.authTimeoutMs,
        () => new XdsError(XdsErrorCode.AUTH_TIMEOUT, `authentication did not finish within ${this.#deps.limits.authTimeoutMs}ms`),
      );
    } catch (err) {
      this.fail(err);
      return;
    }
    if (this.#closed) return;
    this.#caller = caller;
    call.on('data', (bytes: Buffer) => this.#onData(bytes));
    // The client half-closed: it will send nothing more, so the stream is done (istiod returns on io.EOF).
    call.on('end', () => this.end());
    call.on('drain', () => {
      this.#blocked = false;
      this.#guard(() => this.#flush());
    });
  }

  /** A push: send each watched type among `typeUrls` what changed for this proxy. */
  push(typeUrls: ReadonlySet<string>): void {
    if (this.#closed || !this.#proxy) return;
    for (const t of typeUrls) if (this.#watches.has(t)) this.#pending.add(t);
    this.#guard(() => this.#flush());
  }

  /** Ends the stream with OK (server shutdown, client half-close); the client reconnects at once. */
  end(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#call.end();
    this.#cleanup();
  }

  /** Ends the stream with the status for `err` and one log line with its stable code. */
  fail(err: unknown): void {
    if (this.#closed) return;
    this.#closed = true;
    const reply = xdsStatusOf(err);
    const line = {
      code: reply.errorCode,
      status: GrpcStatus[reply.code],
      peer: this.#peer,
      proxy: this.#proxy?.id,
      err: describeError(err),
    };
    if (reply.errorCode === XdsErrorCode.SHUTTING_DOWN) this.#deps.log.info(line, 'xDS stream closed');
    else if (reply.code === GrpcStatus.INTERNAL) this.#deps.log.error(line, 'xDS stream failed');
    else this.#deps.log.warn(line, 'xDS stream refused');
    this.#deps.metrics.streamRejected(reply.errorCode);
    this.#call.removeAllListeners('data');
    // grpc-js: an 'error' carrying {code, details} on a server stream becomes its final status.
    this.#call.emit('error', { code: reply.code, details: reply.details });
    this.#cleanup();
  }

  /** proxy-status of this stream; undefined until the proxy has identified itself. */
  statusRecord(alsoShow: readonly string[]): ProxyStatusRecord | undefined {
    const p = this.#proxy;
    if (!p) return undefined;
    const types = new Map<string, TypeStatusRecord>();
    for (const t of alsoShow) types.set(t, ignoredType(t));
    for (const [t, w] of this.#watches) {
      types.set(t, {
        typeUrl: t,
        status: syncStatusOf(w),
        ...(w.nonceSent ? { nonceSent: w.nonceSent } : {}),
        ...(w.nonceAcked ? { nonceAcked: w.nonceAcked } : {}),
        ...(w.lastSentAt !== undefined ? { lastSentAt: w.lastSentAt } : {}),
        ...(w.lastAckedAt !== undefined ? { lastAckedAt: w.lastAckedAt } : {}),
        ...(w.lastError ? { lastError: w.lastError, ...(w.lastErrorAt !== undefined ? { lastErrorAt: w.lastErrorAt } : {}) } : {}),
        resources: w.sent.size,
        wildcard: w.wildcard,
      });
    }
    return {
      proxy: p.id,
      nodeId: p.nodeId,
      type: p.type,
      connectionId: p.connectionId,
      clusterId: p.clusterId,
      namespace: p.namespace,
      ...(p.nodeName ? { nodeName: p.nodeName } : {}),
      ipAddresses: p.ipAddresses,
      peerAddress: p.peerAddress,
      identities: p.caller.identities,
      connectedAt: p.connectedAt,
      types: [...types.values()].sort((a, b) => (a.typeUrl < b.typeUrl ? -1 : a.typeUrl > b.typeUrl ? 1 : 0)),
    };
  }

  #authContext(): XdsAuthContext {
    let peerCertificate: XdsAuthContext['peerCertificate'];
    try {
      const cert = this.#call.getAuthContext().sslPeerCertificate;
      // Node reports "no certificate" as an empty object.
      if (cert && Object.keys(cert).length > 0) peerCertificate = cert;
    } catch {
      peerCertificate = undefined;
    }
    return Object.freeze({
      metadata: metadataRecord(this.#call.metadata),
      peerAddress: this.#peer,
      ...(peerCertificate ? { peerCertificate } : {}),
    });
  }

  #guard(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.fail(err);
    }
  }

  #onData(bytes: Buffer): void {
    if (this.#closed) return;
    this.#guard(() => {
      if (!this.#budget.take(this.#deps.now())) {
        throw new XdsError(
          XdsErrorCode.RESOURCE_EXHAUSTED,
          `more than ${this.#deps.limits.requestBurst} requests in a burst (refill ${this.#deps.limits.requestsPerSecond}/s) on one stream`,
        );
      }
      let req: DeltaReq;
      try {
        req = envoy.service.discovery.v3.DeltaDiscoveryRequest.decode(bytes);
      } catch (err) {
        throw new XdsError(XdsErrorCode.BAD_REQUEST, 'request is not an envoy.service.discovery.v3.DeltaDiscoveryRequest', { cause: err });
      }
      this.#handle(req);
    });
  }

  #validate(req: DeltaReq): void {
    const max = this.#deps.limits.maxNameBytes;
    if (!req.typeUrl) throw badRequest('type_url is empty');
    if (req.typeUrl.length > max) throw badRequest(`type_url is longer than ${max} bytes`);
    for (const list of [
      req.resourceNamesSubscribe ?? [],
      req.resourceNamesUnsubscribe ?? [],
      Object.keys(req.initialResourceVersions ?? {}),
    ]) {
      for (const name of list) if (name.length > max) throw badRequest(`a resource name is longer than ${max} bytes`);
    }
  }

  #handle(req: DeltaReq): void {
    this.#validate(req);
    if (!this.#proxy) {
      const header = this.#call.metadata.get(CLUSTER_ID_HEADER)[0];
      this.#proxy = parseProxyNode(req.node, {
        caller: this.#caller ?? { authSource: 'none', identities: [] },
        connectionId: this.#deps.connectionId,
        peerAddress: this.#peer,
        connectedAt: this.#deps.now(),
        ...(typeof header === 'string' && header !== '' ? { clusterIdHeader: header } : {}),
      });
      this.#deps.onOpened(this);
      this.#deps.metrics.connectionOpened(this.#proxy);
      this.#deps.log.info(
        { proxy: this.#proxy.id, connection: this.#proxy.connectionId, peer: this.#peer, identities: this.#proxy.caller.identities },
        'xDS proxy connected',
      );
    }
    const proxy = this.#proxy;
    const typeUrl = req.typeUrl;
    const now = this.#deps.now();
    const w = this.#watches.get(typeUrl);
    if (!w) {
      if (req.errorDetail) {
        // A NACK for a type this stream never sent (istiod ignores it the same way).
        this.#deps.log.debug({ proxy: proxy.id, typeUrl }, 'ignoring NACK for a type not watched on this stream');
        return;
      }
      if (this.#watches.size >= this.#deps.limits.maxTypesPerStream) {
        throw new XdsError(XdsErrorCode.RESOURCE_EXHAUSTED, `more than ${this.#deps.limits.maxTypesPerStream} types watched on one stream`);
      }
      const set = this.#resources(typeUrl);
      if (!set) throw new XdsError(XdsErrorCode.UNKNOWN_TYPE, `type ${typeUrl} is not served to ${proxy.type} proxies`);
      const { watch, outcome } = newWatch(req, this.#deps.limits.maxNamesPerType);
      this.#watches.set(typeUrl, watch);
      this.#deps.log.debug(
        {
          proxy: proxy.id,
          typeUrl,
          wildcard: watch.wildcard,
          names: watch.names.size,
          initialResources: Object.keys(req.initialResourceVersions ?? {}).length,
        },
        'xDS subscription',
      );
      // A new subscription is always answered, even with nothing, so the proxy knows it has the full state. An
      // on-demand one that subscribes to nothing yet is answered too: it may have resources it gets unasked.
      if (outcome.respond || (!watch.wildcard && this.#onDemand(typeUrl) !== undefined)) this.#respond(watch, set, outcome.announce, true);
      return;
    }
    const outcome = applyRequest(w, req, now, this.#deps.limits.maxNamesPerType);
    if (outcome.kind === 'nack') {
      this.#deps.metrics.nack(typeUrl, proxy, w.lastError ?? '');
      this.#deps.log.warn(
        { code: 'XDS_NACK', proxy: proxy.id, typeUrl, nonce: req.responseNonce, error: w.lastError },
        'proxy rejected configuration (NACK)',
      );
      return;
    }
    if (outcome.kind === 'stale')
      this.#deps.log.debug({ proxy: proxy.id, typeUrl, nonce: req.responseNonce, nonceSent: w.nonceSent }, 'stale nonce ignored');
    if (outcome.respond) {
      const set = this.#resources(typeUrl);
      if (set) this.#respond(w, set, outcome.announce, false);
    }
  }

  #resources(typeUrl: string): ResourceSet | undefined {
    const proxy = this.#proxy;
    if (!proxy) return undefined;
    try {
      return this.#deps.source.resources(typeUrl, proxy);
    } catch (err) {
      throw new XdsError(XdsErrorCode.GENERATE_FAILED, `generating ${typeUrl} for ${proxy.id} failed`, { cause: err });
    }
  }

  #onDemand(typeUrl: string): OnDemandNames | undefined {
    const proxy = this.#proxy;
    if (!proxy || this.#deps.source.onDemand === undefined) return undefined;
    try {
      return this.#deps.source.onDemand(typeUrl, proxy);
    } catch (err) {
      throw new XdsError(XdsErrorCode.GENERATE_FAILED, `resolving on-demand names of ${typeUrl} for ${proxy.id} failed`, { cause: err });
    }
  }

  #flush(): void {
    for (const typeUrl of this.#pending) {
      if (this.#blocked || this.#closed) return;
      this.#pending.delete(typeUrl);
      const w = this.#watches.get(typeUrl);
      const set = w ? this.#resources(typeUrl) : undefined;
      if (w && set) this.#respond(w, set, [], false);
    }
  }

  /** Sends what `w`'s client lacks; nothing if it lacks nothing, unless `always` (a new subscription). */
  #respond(w: WatchState, set: ResourceSet, announce: readonly string[], always: boolean): void {
    const proxy = this.#proxy;
    if (!proxy || this.#closed) return;
    const names = w.wildcard ? undefined : this.#onDemand(w.typeUrl);
    if (names !== undefined) grantOnDemand(w, set, names);
    const delta = computeDelta(w, set, announce, names);
    if (!always && delta.resources.length === 0 && delta.removed.length === 0) return;
    const nonce = randomUUID();
    let bytes = 0;
    const res = envoy.service.discovery.v3.DeltaDiscoveryResponse.create({
      systemVersionInfo: this.#deps.versionInfo(),
      typeUrl: w.typeUrl,
      nonce,
      resources: delta.resources.map((r) => {
        bytes += r.body.length;
        // On demand, a resource also answers to its aliases (a workload's `<network>/<ip>`), as istiod sends them.
        const aliases = names === undefined ? [] : [...names.aliases(r.name)];
        return { name: r.name, version: r.version, aliases, resource: { type_url: w.typeUrl, value: r.body } };
      }),
      removedResources: [...delta.removed],
      ...(this.#deps.controlPlaneId ? { controlPlane: { identifier: this.#deps.controlPlaneId } } : {}),
    });
    recordSent(w, delta, nonce, this.#deps.now());
    if (!this.#call.write(res)) this.#blocked = true;
    this.#deps.metrics.responseSent(w.typeUrl, proxy, { resources: delta.resources.length, removed: delta.removed.length, bytes });
    this.#deps.log.debug(
      { proxy: proxy.id, typeUrl: w.typeUrl, nonce, resources: delta.resources.length, removed: delta.removed.length },
      'xDS response sent',
    );
  }

  /** Runs once, however the stream ended; `code` says why when it ended without our doing (XDS_CANCELLED). */
  #cleanup(code?: string): void {
    if (this.#cleaned) return;
    this.#cleaned = true;
    this.#closed = true;
    this.#pending.clear();
    this.#deps.onClosed(this);
    if (this.#proxy) {
      this.#deps.metrics.connectionClosed(this.#proxy);
      this.#deps.log.info(
        { ...(code ? { code } : {}), proxy: this.#proxy.id, connection: this.#proxy.connectionId },
        'xDS proxy disconnected',
      );
    } else if (code) {
      this.#deps.log.info(
        { code, peer: this.#peer, maxRequestBytes: this.#deps.limits.maxRequestBytes },
        'xDS stream cancelled before the proxy identified itself (client gone, or a message over the size budget)',
      );
    }
  }
}
