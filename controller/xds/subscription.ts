/**
 * Per-stream, per-type delta xDS state and the pure rules that move it. No I/O here: the connection feeds requests
 * in and writes the deltas out.
 *
 * Subscription (xDS protocol, "Incremental xDS" and "How the client specifies what resources to return"): the first
 * request of a type with an empty resource_names_subscribe is a wildcard subscription; "*" in subscribe/unsubscribe
 * turns wildcard on/off; other names are explicit subscriptions. ztunnel's on-demand mode subscribes ["*"] and
 * unsubscribes ["*"] in one request to mean "nothing yet". Names in initial_resource_versions are subscribed too
 * (istiod's deltaWatchedResources does the same), so an on-demand client keeps what it had across a reconnect.
 *
 * On demand (istiod pilot/pkg/xds/workload.go generateDeltasOndemand), for types whose source resolves names: a
 * subscribed name may stand for resources of other names (an address for a workload, a hostname for a service and
 * its workloads), and some resources are sent unasked (the workloads of the proxy's node). Those are granted to
 * the subscription, and stay granted while they exist, as istiod merges what it sent into the watched names; a name
 * that matches nothing is answered in removed_resources.
 *
 * ACK/NACK (istiod pilot/pkg/xds/delta.go `shouldRespondDelta`): error_detail = NACK: record the error, do not
 * respond; a response_nonce other than the last one sent is stale and acknowledges nothing; the last nonce = ACK,
 * which also clears a standing error. Subscription changes are applied whatever the nonce (they are independent of
 * acknowledgement in the delta protocol), and the server responds only when the subscription grew.
 */
import type { envoy } from '../../lib/proto/index.js';
import { XdsError, XdsErrorCode } from '../../lib/xds/errors.js';
import type { ResourceSet, XdsResource } from '../../lib/xds/resource.js';
import type { OnDemandNames } from './source.js';
import type { SyncFacts } from './status.js';

type DeltaReq = envoy.service.discovery.v3.DeltaDiscoveryRequest;

/** The wildcard name of the delta protocol. */
export const WILDCARD = '*';

export interface WatchState extends SyncFacts {
  readonly typeUrl: string;
  wildcard: boolean;
  /** Explicitly subscribed names. */
  readonly names: Set<string>;
  /** Names the server subscribed the client to on demand (what its names resolved to, what it gets unasked). */
  readonly granted: Set<string>;
  /** name -> version the client holds as far as we know: its initial claims, then every response we sent. */
  readonly sent: Map<string, string>;
  nonceSent?: string;
  nonceAcked?: string;
  lastError?: string;
  lastSentAt?: number;
  lastAckedAt?: number;
  lastErrorAt?: number;
}

export type RequestKind = 'initial' | 'ack' | 'nack' | 'stale' | 'subscribe';

export interface RequestOutcome {
  readonly kind: RequestKind;
  /** Send this type's delta now. */
  readonly respond: boolean;
  /** Names just subscribed explicitly: if they do not exist the response lists them in removed_resources. */
  readonly announce: readonly string[];
}

function covers(w: WatchState, name: string): boolean {
  return w.wildcard || w.names.has(name) || w.granted.has(name);
}

/** Applies subscribe then unsubscribe lists; returns the explicitly added names and whether coverage grew. */
function applyNames(
  w: WatchState,
  subscribe: readonly string[],
  unsubscribe: readonly string[],
  maxNames: number,
): { added: string[]; grew: boolean } {
  const added: string[] = [];
  let grew = false;
  for (const name of subscribe) {
    if (name === WILDCARD) {
      if (!w.wildcard) grew = true;
      w.wildcard = true;
    } else if (!w.names.has(name)) {
      w.names.add(name);
      added.push(name);
    }
  }
  for (const name of unsubscribe) {
    if (name === WILDCARD) w.wildcard = false;
    else {
      w.names.delete(name);
      w.granted.delete(name);
    }
  }
  if (w.names.size > maxNames) {
    throw new XdsError(XdsErrorCode.RESOURCE_EXHAUSTED, `more than ${maxNames} names subscribed for ${w.typeUrl} on one stream`);
  }
  // The client drops what it unsubscribed from (xDS protocol); forget it so a later subscribe sends it again.
  for (const name of w.sent.keys()) if (!covers(w, name)) w.sent.delete(name);
  const stillAdded = added.filter((n) => w.names.has(n));
  if (!w.wildcard && stillAdded.length > 0) grew = true;
  return { added: w.wildcard ? [] : stillAdded, grew };
}

/** The first request of a type on a stream (a new subscription or a reconnect). */
export function newWatch(req: DeltaReq, maxNames: number): { watch: WatchState; outcome: RequestOutcome } {
  const subscribe = req.resourceNamesSubscribe ?? [];
  const w: WatchState = { typeUrl: req.typeUrl, wildcard: subscribe.length === 0, names: new Set(), granted: new Set(), sent: new Map() };
  const { added } = applyNames(w, subscribe, req.resourceNamesUnsubscribe ?? [], maxNames);
  for (const [name, version] of Object.entries(req.initialResourceVersions ?? {})) {
    if (!w.wildcard) w.names.add(name);
    w.sent.set(name, version);
  }
  if (w.names.size > maxNames) {
    throw new XdsError(XdsErrorCode.RESOURCE_EXHAUSTED, `more than ${maxNames} names subscribed for ${w.typeUrl} on one stream`);
  }
  // Nothing subscribed (on-demand "subscribe to nothing"): nothing to say until names arrive; status NOT SENT.
  const respond = w.wildcard || w.names.size > 0;
  return { watch: w, outcome: { kind: 'initial', respond, announce: added } };
}

/** A later request of a watched type. `now` is epoch ms. */
export function applyRequest(w: WatchState, req: DeltaReq, now: number, maxNames: number): RequestOutcome {
  if (req.errorDetail) {
    // A NACK of some response: keep the connection, remember why, send nothing (the same content would be refused again).
    const code = req.errorDetail.code ?? 0;
    w.lastError = req.errorDetail.message || `rejected with status code ${code} and no message`;
    w.lastErrorAt = now;
    return { kind: 'nack', respond: false, announce: [] };
  }
  const nonce = req.responseNonce ?? '';
  let kind: RequestKind = 'subscribe';
  if (nonce !== '') {
    if (nonce === w.nonceSent) {
      kind = 'ack';
      w.nonceAcked = nonce;
      w.lastAckedAt = now;
      w.lastError = undefined;
      w.lastErrorAt = undefined;
    } else {
      kind = 'stale';
    }
  }
  const { added, grew } = applyNames(w, req.resourceNamesSubscribe ?? [], req.resourceNamesUnsubscribe ?? [], maxNames);
  return { kind, respond: grew, announce: added };
}

/**
 * Brings what an on-demand subscription was granted up to date with `set`: granted names whose resource is gone
 * are dropped (the next delta removes them), and what the subscribed names resolve to now and what the proxy gets
 * unasked are added. A wildcard subscription covers everything already.
 */
export function grantOnDemand(w: WatchState, set: ResourceSet, names: OnDemandNames): void {
  if (w.wildcard) return;
  for (const g of w.granted) if (!set.has(g)) w.granted.delete(g);
  for (const n of w.names) for (const r of names.resolve(n)) if (r !== n && set.has(r)) w.granted.add(r);
  for (const r of names.unasked()) if (set.has(r)) w.granted.add(r);
}

export interface Delta {
  readonly resources: readonly XdsResource[];
  readonly removed: readonly string[];
}

/**
 * What the client lacks: resources it is subscribed to whose version differs from what it holds, and names it
 * holds that no longer exist or are no longer subscribed, plus `announce`d names that match nothing (neither a
 * resource nor, on demand, anything they resolve to).
 */
export function computeDelta(w: WatchState, set: ResourceSet, announce: readonly string[] = [], names?: OnDemandNames): Delta {
  const resources: XdsResource[] = [];
  const removed: string[] = [];
  const lacks = (name: string): void => {
    const r = set.get(name);
    if (r && w.sent.get(name) !== r.version) resources.push(r);
  };
  if (w.wildcard) {
    for (const r of set.values()) if (w.sent.get(r.name) !== r.version) resources.push(r);
  } else {
    for (const name of w.names) lacks(name);
    for (const name of w.granted) if (!w.names.has(name)) lacks(name);
  }
  for (const name of w.sent.keys()) if (!covers(w, name) || !set.has(name)) removed.push(name);
  for (const name of announce) {
    if (set.has(name) || w.sent.has(name) || !covers(w, name)) continue;
    if (names === undefined || names.resolve(name).length === 0) removed.push(name);
  }
  return { resources, removed };
}

/**
 * Records a response as sent. A version is recorded even if the client will NACK it: as in istiod, the same content
 * is not sent again (it would be refused again); the next different version is.
 */
export function recordSent(w: WatchState, delta: Delta, nonce: string, now: number): void {
  for (const r of delta.resources) w.sent.set(r.name, r.version);
  for (const name of delta.removed) w.sent.delete(name);
  w.nonceSent = nonce;
  w.lastSentAt = now;
}
