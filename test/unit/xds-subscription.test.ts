/** Pure delta xDS rules: subscriptions, ACK/NACK/stale, what a proxy lacks, and the proxy-status derivation. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { envoy } from '../../lib/proto/index.js';
import { type ResourceSet, makeResource } from '../../lib/xds/resource.js';
import { type SyncFacts, syncStatusOf } from '../../controller/xds/status.js';
import type { OnDemandNames } from '../../controller/xds/source.js';
import { type WatchState, applyRequest, computeDelta, grantOnDemand, newWatch, recordSent } from '../../controller/xds/subscription.js';

const T = 'type.googleapis.com/istio.workload.Address';
const MAX = 1000;

function request(p: envoy.service.discovery.v3.DeltaDiscoveryRequest.$Properties): envoy.service.discovery.v3.DeltaDiscoveryRequest {
  return envoy.service.discovery.v3.DeltaDiscoveryRequest.create({ typeUrl: T, ...p });
}

function set(...entries: Array<[string, string]>): ResourceSet {
  return new Map(entries.map(([name, body]) => [name, makeResource(name, Buffer.from(body))] as const));
}

function names(delta: { resources: readonly { name: string }[] }): string[] {
  return delta.resources.map((r) => r.name).sort();
}

/** A watch that has been sent `s` and ACKed it. */
function synced(w: WatchState, s: ResourceSet): void {
  recordSent(w, computeDelta(w, s), 'n0', 1);
  applyRequest(w, request({ responseNonce: 'n0' }), 2, MAX);
}

describe('proxy-status derivation', () => {
  const table: Array<[string, SyncFacts | undefined, string]> = [
    ['a type the proxy does not watch', undefined, 'IGNORED'],
    ['nothing sent yet', {}, 'NOT SENT'],
    ['sent, not acknowledged', { nonceSent: 'a' }, 'STALE'],
    ['sent and acknowledged', { nonceSent: 'a', nonceAcked: 'a' }, 'SYNCED'],
    ['a newer response not yet acknowledged', { nonceSent: 'b', nonceAcked: 'a' }, 'STALE'],
    ['the last answer was a NACK', { nonceSent: 'b', nonceAcked: 'a', lastError: 'bad' }, 'ERROR'],
    ['a NACK wins over an ACKed nonce', { nonceSent: 'a', nonceAcked: 'a', lastError: 'bad' }, 'ERROR'],
  ];
  for (const [what, facts, want] of table) {
    it(`${want} when ${what}`, () => assert.equal(syncStatusOf(facts), want));
  }
});

describe('delta subscriptions', () => {
  it('treats an empty first subscribe list as wildcard and answers everything', () => {
    const { watch, outcome } = newWatch(request({}), MAX);
    assert.equal(watch.wildcard, true);
    assert.deepEqual(outcome, { kind: 'initial', respond: true, announce: [] });
    const d = computeDelta(watch, set(['a', '1'], ['b', '2']));
    assert.deepEqual(names(d), ['a', 'b']);
    assert.deepEqual(d.removed, []);
  });

  it('skips what initial_resource_versions says the client has at the same version, and removes what no longer exists', () => {
    const s = set(['a', '1'], ['b', '2'], ['c', '3']);
    const { watch } = newWatch(request({ initialResourceVersions: { a: s.get('a')?.version ?? '', b: 'old-version', gone: 'v9' } }), MAX);
    const d = computeDelta(watch, s);
    assert.deepEqual(names(d), ['b', 'c']);
    assert.deepEqual(d.removed, ['gone']);
  });

  it('re-sends everything to a client that claims names without versions (ztunnel sends "")', () => {
    const s = set(['a', '1'], ['b', '2']);
    const { watch } = newWatch(request({ initialResourceVersions: { a: '', b: '' } }), MAX);
    assert.deepEqual(names(computeDelta(watch, s)), ['a', 'b']);
  });

  it('subscribes to nothing with subscribe ["*"] + unsubscribe ["*"] (ztunnel on-demand) and does not answer', () => {
    const { watch, outcome } = newWatch(request({ resourceNamesSubscribe: ['*'], resourceNamesUnsubscribe: ['*'] }), MAX);
    assert.equal(watch.wildcard, false);
    assert.equal(outcome.respond, false);
    assert.equal(syncStatusOf(watch), 'NOT SENT');
  });

  it('keeps names from initial_resource_versions subscribed for an on-demand client that reconnects', () => {
    const { watch, outcome } = newWatch(
      request({ resourceNamesSubscribe: ['*'], resourceNamesUnsubscribe: ['*'], initialResourceVersions: { a: '' } }),
      MAX,
    );
    assert.equal(outcome.respond, true);
    assert.deepEqual([...watch.names], ['a']);
    assert.deepEqual(names(computeDelta(watch, set(['a', '1'], ['b', '2']))), ['a']);
  });

  it('answers an explicit subscription to a missing name with removed_resources (the delta "does not exist" signal)', () => {
    const s = set(['a', '1']);
    const { watch, outcome } = newWatch(request({ resourceNamesSubscribe: ['a', 'missing'] }), MAX);
    const d = computeDelta(watch, s, outcome.announce);
    assert.deepEqual(names(d), ['a']);
    assert.deepEqual(d.removed, ['missing']);
  });

  it('after a change sends only the changed resource and the removal', () => {
    const { watch } = newWatch(request({}), MAX);
    synced(watch, set(['a', '1'], ['b', '2'], ['c', '3']));
    const d = computeDelta(watch, set(['a', '1'], ['b', '2-changed'], ['d', '4']));
    assert.deepEqual(names(d), ['b', 'd']);
    assert.deepEqual(d.removed, ['c']);
    recordSent(watch, d, 'n1', 3);
    assert.deepEqual(computeDelta(watch, set(['a', '1'], ['b', '2-changed'], ['d', '4'])), { resources: [], removed: [] });
  });

  it('records an ACK only for the last nonce sent; an old nonce is stale and acknowledges nothing', () => {
    const { watch } = newWatch(request({}), MAX);
    recordSent(watch, computeDelta(watch, set(['a', '1'])), 'n1', 1);
    recordSent(watch, computeDelta(watch, set(['a', '2'])), 'n2', 2);
    assert.equal(applyRequest(watch, request({ responseNonce: 'n1' }), 3, MAX).kind, 'stale');
    assert.equal(syncStatusOf(watch), 'STALE');
    const ack = applyRequest(watch, request({ responseNonce: 'n2' }), 4, MAX);
    assert.deepEqual(ack, { kind: 'ack', respond: false, announce: [] });
    assert.equal(syncStatusOf(watch), 'SYNCED');
    assert.equal(watch.lastAckedAt, 4);
  });

  it('records a NACK, does not answer it nor re-send the refused version, and a later ACK clears the error', () => {
    const { watch } = newWatch(request({}), MAX);
    synced(watch, set(['a', '1']));
    const bad = set(['a', 'broken']);
    recordSent(watch, computeDelta(watch, bad), 'n1', 3);
    const nack = applyRequest(watch, request({ responseNonce: 'n1', errorDetail: { code: 13, message: 'a: cannot decode' } }), 4, MAX);
    assert.deepEqual(nack, { kind: 'nack', respond: false, announce: [] });
    assert.equal(syncStatusOf(watch), 'ERROR');
    assert.equal(watch.lastError, 'a: cannot decode');
    assert.deepEqual(computeDelta(watch, bad), { resources: [], removed: [] }, 'the same content is not sent again');
    const fixed = set(['a', 'fixed']);
    const d = computeDelta(watch, fixed);
    assert.deepEqual(names(d), ['a']);
    recordSent(watch, d, 'n2', 5);
    applyRequest(watch, request({ responseNonce: 'n2' }), 6, MAX);
    assert.equal(syncStatusOf(watch), 'SYNCED');
    assert.equal(watch.lastError, undefined);
  });

  it('answers a later subscription only when it adds names, and forgets unsubscribed ones', () => {
    const s = set(['a', '1'], ['b', '2'], ['c', '3']);
    const { watch } = newWatch(request({ resourceNamesSubscribe: ['a'] }), MAX);
    synced(watch, s);
    const add = applyRequest(watch, request({ resourceNamesSubscribe: ['b', 'nope'] }), 3, MAX);
    assert.deepEqual(add, { kind: 'subscribe', respond: true, announce: ['b', 'nope'] });
    const d = computeDelta(watch, s, add.announce);
    assert.deepEqual(names(d), ['b']);
    assert.deepEqual(d.removed, ['nope']);
    recordSent(watch, d, 'n1', 4);
    const drop = applyRequest(watch, request({ resourceNamesUnsubscribe: ['a'] }), 5, MAX);
    assert.equal(drop.respond, false);
    assert.equal(watch.sent.has('a'), false);
    const again = applyRequest(watch, request({ resourceNamesSubscribe: ['a'] }), 6, MAX);
    assert.equal(again.respond, true);
    assert.deepEqual(names(computeDelta(watch, s)), ['a'], 'a name subscribed again is sent again');
  });

  it('answers turning wildcard on, and not a name already covered by the wildcard', () => {
    const s = set(['a', '1'], ['b', '2']);
    const { watch } = newWatch(request({ resourceNamesSubscribe: ['a'] }), MAX);
    synced(watch, s);
    assert.equal(applyRequest(watch, request({ resourceNamesSubscribe: ['*'] }), 3, MAX).respond, true);
    assert.deepEqual(names(computeDelta(watch, s)), ['b']);
    assert.equal(applyRequest(watch, request({ resourceNamesSubscribe: ['zzz'] }), 4, MAX).respond, false);
  });

  it('refuses more explicitly subscribed names than the budget', () => {
    const many = Array.from({ length: 11 }, (_, i) => `n${i}`);
    assert.throws(() => newWatch(request({ resourceNamesSubscribe: many }), 10), { code: 'XDS_RESOURCE_EXHAUSTED' });
    const { watch } = newWatch(request({ resourceNamesSubscribe: ['x'] }), 10);
    assert.throws(() => applyRequest(watch, request({ resourceNamesSubscribe: many }), 1, 10), { code: 'XDS_RESOURCE_EXHAUSTED' });
  });
});

describe('on-demand subscriptions', () => {
  /** `/<ip>` names for w1 and w2, a service that stands for itself and w2, and w3 on the proxy's node. */
  const names: OnDemandNames = {
    resolve: (n) => ({ '/10.0.0.1': ['w1'], '/10.0.0.2': ['w2'], 'ns/svc': ['ns/svc', 'w2'], w1: ['w1'], w2: ['w2'], w3: ['w3'] })[n] ?? [],
    unasked: () => ['w3'],
    aliases: () => [],
  };
  const all = (): ResourceSet => set(['w1', '1'], ['w2', '2'], ['w3', '3'], ['ns/svc', 's']);
  const onDemand = (): WatchState => newWatch(request({ resourceNamesSubscribe: ['*'], resourceNamesUnsubscribe: ['*'] }), MAX).watch;
  const sentNames = (d: { resources: readonly { name: string }[] }): string[] => d.resources.map((r) => r.name).sort();

  it('sends what the proxy gets unasked before it asks for anything', () => {
    const w = onDemand();
    grantOnDemand(w, all(), names);
    assert.deepEqual(sentNames(computeDelta(w, all(), [], names)), ['w3']);
  });

  it('sends what a name stands for, under the resources’ own names, and does not echo the name', () => {
    const w = onDemand();
    const out = applyRequest(w, request({ resourceNamesSubscribe: ['/10.0.0.1', 'ns/svc'] }), 1, MAX);
    grantOnDemand(w, all(), names);
    const d = computeDelta(w, all(), out.announce, names);
    assert.deepEqual(sentNames(d), ['ns/svc', 'w1', 'w2', 'w3']);
    assert.deepEqual(d.removed, []);
  });

  it('answers a name that stands for nothing in removed_resources', () => {
    const w = onDemand();
    const out = applyRequest(w, request({ resourceNamesSubscribe: ['/10.9.9.9'] }), 1, MAX);
    grantOnDemand(w, all(), names);
    assert.deepEqual(computeDelta(w, all(), out.announce, names).removed, ['/10.9.9.9']);
  });

  it('keeps a granted resource while it exists, and removes it once it is gone', () => {
    const w = onDemand();
    applyRequest(w, request({ resourceNamesSubscribe: ['/10.0.0.2'] }), 1, MAX);
    grantOnDemand(w, all(), names);
    recordSent(w, computeDelta(w, all(), [], names), 'n1', 2);
    const changed = set(['w1', '1'], ['w2', '2b'], ['w3', '3'], ['ns/svc', 's']);
    grantOnDemand(w, changed, names);
    assert.deepEqual(sentNames(computeDelta(w, changed, [], names)), ['w2'], 'a change of a granted resource is pushed');
    recordSent(w, computeDelta(w, changed, [], names), 'n2', 3);
    const gone = set(['w1', '1'], ['w3', '3'], ['ns/svc', 's']);
    grantOnDemand(w, gone, names);
    assert.deepEqual(computeDelta(w, gone, [], names), { resources: [], removed: ['w2'] });
  });

  it('keeps a resource granted by a name the client unsubscribes, until it unsubscribes the resource itself', () => {
    const w = onDemand();
    applyRequest(w, request({ resourceNamesSubscribe: ['/10.0.0.1'] }), 1, MAX);
    grantOnDemand(w, all(), names);
    recordSent(w, computeDelta(w, all(), [], names), 'n1', 2);
    const changed = set(['w1', '1b'], ['w2', '2'], ['w3', '3'], ['ns/svc', 's']);
    // As istiod, which merges what it sent into the watched names: the client holds w1 under its own name.
    applyRequest(w, request({ resourceNamesUnsubscribe: ['/10.0.0.1'] }), 3, MAX);
    grantOnDemand(w, changed, names);
    assert.deepEqual(sentNames(computeDelta(w, changed, [], names)), ['w1']);
    recordSent(w, computeDelta(w, changed, [], names), 'n2', 4);
    applyRequest(w, request({ resourceNamesUnsubscribe: ['w1'] }), 5, MAX);
    const again = set(['w1', '1c'], ['w2', '2'], ['w3', '3'], ['ns/svc', 's']);
    grantOnDemand(w, again, names);
    assert.deepEqual(computeDelta(w, again, [], names), { resources: [], removed: [] });
  });

  it('grants nothing to a wildcard subscription, which covers everything already', () => {
    const { watch } = newWatch(request({}), MAX);
    grantOnDemand(watch, all(), names);
    assert.equal(watch.granted.size, 0);
    assert.deepEqual(sentNames(computeDelta(watch, all(), [], names)), ['ns/svc', 'w1', 'w2', 'w3']);
  });
});
