/**
 * The derived-collection runtime (controller/krt): inputs, transforms that record what they read, recomputation
 * of exactly the keys whose reads changed, events only on real change, and incremental results equal to a
 * fresh build after random changes.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { hasErrorCode } from '../../lib/errors.js';
import { type CollectionEvent, KrtErrorCode, Runtime, identity } from '../../controller/krt/index.js';

interface Pod {
  readonly name: string;
  readonly node: string;
  readonly app: string;
}
interface Node {
  readonly name: string;
  readonly zone: string;
}

const pod = (name: string, node: string, app = 'web'): Pod => ({ name, node, app });

/** pods → workloads reading their node by key. */
function podsAndNodes() {
  const rt = new Runtime();
  const nodes = rt.input<Node>('nodes');
  const pods = rt.input<Pod>('pods');
  const workloads = rt.collection('workloads', pods, (ctx, p) => ({ name: p.name, zone: ctx.fetchKey(nodes, p.node)?.zone ?? '' }));
  return { rt, nodes, pods, workloads };
}

function batches<O>(c: { subscribe(h: (e: readonly CollectionEvent<O>[]) => void): () => void }): CollectionEvent<O>[][] {
  const out: CollectionEvent<O>[][] = [];
  c.subscribe((e) => out.push([...e]));
  return out;
}

const summary = <O>(events: readonly CollectionEvent<O>[]): string[] => events.map((e) => `${e.type} ${e.key}`);

describe('input collections', () => {
  it('delivers one batch per propagation with the adds, updates and deletes', () => {
    const rt = new Runtime();
    const nodes = rt.input<Node>('nodes');
    const seen = batches(nodes);
    nodes.set('a', { name: 'a', zone: 'z1' });
    nodes.set('b', { name: 'b', zone: 'z1' });
    rt.flush();
    nodes.set('a', { name: 'a', zone: 'z2' });
    nodes.delete('b');
    nodes.delete('missing');
    rt.flush();
    assert.deepEqual(seen.map(summary), [
      ['add a', 'add b'],
      ['update a', 'delete b'],
    ]);
  });

  it('ignores a value equal to the current one', () => {
    const rt = new Runtime();
    const nodes = rt.input<Node>('nodes');
    nodes.set('a', { name: 'a', zone: 'z1' });
    rt.flush();
    const seen = batches(nodes);
    nodes.set('a', { name: 'a', zone: 'z1' });
    rt.flush();
    assert.deepEqual(seen, []);
  });

  it('replaceAll diffs the new map against the old one by identity, and by value when the objects differ', () => {
    const rt = new Runtime();
    const nodes = rt.input<Node>('nodes', { equals: identity });
    const a = { name: 'a', zone: 'z1' };
    const b = { name: 'b', zone: 'z1' };
    nodes.replaceAll(
      new Map([
        ['a', a],
        ['b', b],
      ]),
    );
    rt.flush();
    const seen = batches(nodes);
    nodes.replaceAll(
      new Map([
        ['a', a],
        ['c', { name: 'c', zone: 'z3' }],
      ]),
    );
    rt.flush();
    assert.deepEqual(seen.map(summary), [['add c', 'delete b']]);

    const byValue = rt.input<Node>('nodes-by-value');
    byValue.replaceAll(new Map([['a', a]]));
    rt.flush();
    const seen2 = batches(byValue);
    byValue.replaceAll(new Map([['a', { ...a }]]));
    rt.flush();
    assert.deepEqual(seen2, [], 'an equal copy is no change');
  });

  it('refuses a change of an input from inside a propagation', () => {
    const rt = new Runtime();
    const nodes = rt.input<Node>('nodes');
    const other = rt.input<Node>('other');
    nodes.subscribe(() => other.set('x', { name: 'x', zone: '' }));
    nodes.set('a', { name: 'a', zone: 'z1' });
    assert.throws(
      () => rt.flush(),
      (err: unknown) => hasErrorCode(err, KrtErrorCode.HANDLER_FAILED) && hasErrorCode(err, KrtErrorCode.REENTRANT_CHANGE),
    );
    assert.equal(other.get('x'), undefined);
  });
});

describe('derived collections', () => {
  it('computes one output per input and propagates when read', () => {
    const { pods, nodes, workloads } = podsAndNodes();
    nodes.set('n1', { name: 'n1', zone: 'z1' });
    pods.set('a', pod('a', 'n1'));
    pods.set('b', pod('b', 'n2'));
    assert.deepEqual(workloads.list(), [
      { name: 'a', zone: 'z1' },
      { name: 'b', zone: '' },
    ]);
    assert.equal(workloads.stats.recomputed, 2);
  });

  it('recomputes only the key whose input changed', () => {
    const { pods, nodes, workloads } = podsAndNodes();
    nodes.set('n1', { name: 'n1', zone: 'z1' });
    for (const n of ['a', 'b', 'c']) pods.set(n, pod(n, 'n1'));
    workloads.list();
    const before = workloads.stats.recomputed;
    pods.set('b', pod('b', 'n1', 'db'));
    workloads.list();
    assert.equal(workloads.stats.recomputed - before, 1);
  });

  it('recomputes the readers of a key when it changes, and no one else', () => {
    const { pods, nodes, workloads } = podsAndNodes();
    nodes.set('n1', { name: 'n1', zone: 'z1' });
    nodes.set('n2', { name: 'n2', zone: 'z1' });
    pods.set('a', pod('a', 'n1'));
    pods.set('b', pod('b', 'n2'));
    pods.set('c', pod('c', 'n1'));
    workloads.list();
    const seen = batches(workloads);
    const before = workloads.stats.recomputed;
    nodes.set('n1', { name: 'n1', zone: 'z9' });
    assert.deepEqual(workloads.get('a'), { name: 'a', zone: 'z9' });
    assert.equal(workloads.stats.recomputed - before, 2, 'a and c read n1; b did not');
    assert.deepEqual(seen.map(summary), [['update a', 'update c']]);
  });

  it('recomputes a reader of a missing key when that key appears', () => {
    const { pods, nodes, workloads } = podsAndNodes();
    pods.set('a', pod('a', 'n1'));
    assert.deepEqual(workloads.get('a'), { name: 'a', zone: '' });
    nodes.set('n1', { name: 'n1', zone: 'z1' });
    assert.deepEqual(workloads.get('a'), { name: 'a', zone: 'z1' });
  });

  it('passes on only real changes: an equal output keeps its object and its readers are not recomputed', () => {
    const { rt, pods, nodes, workloads } = podsAndNodes();
    const zones = rt.collection('zones', workloads, (_ctx, w) => ({ zone: w.zone }));
    nodes.set('n1', { name: 'n1', zone: 'z1' });
    pods.set('a', pod('a', 'n1'));
    const first = workloads.get('a');
    zones.list();
    const zonesBefore = zones.stats.recomputed;
    const seen = batches(workloads);
    pods.set('a', pod('a', 'n1', 'other-app'));
    assert.equal(workloads.get('a'), first, 'same object');
    assert.equal(zones.stats.recomputed, zonesBefore);
    assert.deepEqual(seen, []);
  });

  it('recomputes readers of an index key when a value enters or leaves it', () => {
    const rt = new Runtime();
    const pods = rt.input<Pod>('pods');
    const apps = rt.input<{ readonly app: string }>('apps');
    const byApp = pods.index('app', (p) => [p.app]);
    const members = rt.collection('members', apps, (ctx, a) => ctx.fetchIndex(byApp, a.app).map((p) => p.name));
    apps.set('web', { app: 'web' });
    apps.set('db', { app: 'db' });
    pods.set('a', pod('a', 'n1', 'web'));
    assert.deepEqual(members.get('web'), ['a']);
    assert.deepEqual(members.get('db'), []);
    const before = members.stats.recomputed;
    pods.set('a', pod('a', 'n1', 'db'));
    assert.deepEqual(members.get('web'), []);
    assert.deepEqual(members.get('db'), ['a']);
    assert.equal(members.stats.recomputed - before, 2, 'the old and the new index key');
    pods.set('b', pod('b', 'n2', 'cache'));
    members.list();
    assert.equal(members.stats.recomputed - before, 2, 'nobody reads "cache"');
    assert.deepEqual(byApp.lookup('db'), [pod('a', 'n1', 'db')]);
  });

  it('with a filter, recomputes a reader only when the value passes it before or after the change', () => {
    const rt = new Runtime();
    const pods = rt.input<Pod>('pods');
    const nodes = rt.input<Node>('nodes');
    const byNode = pods.index('node', (p) => [p.node]);
    const webOnNode = rt.collection('web-on-node', nodes, (ctx, n) =>
      ctx.fetchIndex(byNode, n.name, { where: (p) => p.app === 'web' }).map((p) => p.name),
    );
    nodes.set('n1', { name: 'n1', zone: 'z1' });
    pods.set('a', pod('a', 'n1', 'db'));
    assert.deepEqual(webOnNode.get('n1'), []);
    const before = webOnNode.stats.recomputed;
    pods.set('b', pod('b', 'n1', 'cache'));
    webOnNode.list();
    assert.equal(webOnNode.stats.recomputed, before, 'neither before nor after passes');
    pods.set('a', pod('a', 'n1', 'web'));
    assert.deepEqual(webOnNode.get('n1'), ['a'], 'newly passes');
    pods.set('a', pod('a', 'n1', 'db'));
    assert.deepEqual(webOnNode.get('n1'), [], 'passed before');
    assert.equal(webOnNode.stats.recomputed - before, 2);
  });

  it('a filter may read the input of the key being computed, then and on later changes', () => {
    const rt = new Runtime();
    const pods = rt.input<Pod>('pods');
    const byNode = pods.index('node', (p) => [p.node]);
    // The pods on the same node running the same app, with a filter that captures nothing.
    const sameApp = (q: Pod, p: Pod): boolean => q.app === p.app && q.name !== p.name;
    const peers = rt.collection('peers', pods, (ctx, p) => ctx.fetchIndex(byNode, p.node, { where: sameApp }).map((q) => q.name));
    pods.set('a', pod('a', 'n1', 'web'));
    pods.set('b', pod('b', 'n1', 'db'));
    assert.deepEqual(peers.get('a'), []);
    const before = peers.stats.recomputed;
    pods.set('c', pod('c', 'n1', 'db'));
    assert.deepEqual(peers.get('b'), ['c']);
    assert.equal(peers.stats.recomputed - before, 2, 'b (a db peer) and c itself; not a');
  });

  it('a join through an index of the reader’s input recomputes the inputs listed under the key that changed', () => {
    const rt = new Runtime();
    const nodes = rt.input<Node>('nodes');
    const pods = rt.input<Pod>('pods');
    const podsByNode = pods.index('node', (p) => [p.node]);
    const zones = rt.collection('zones', pods, (ctx, p) => ctx.fetchKey(nodes, p.node, { via: podsByNode })?.zone ?? '');
    nodes.set('n1', { name: 'n1', zone: 'z1' });
    nodes.set('n2', { name: 'n2', zone: 'z2' });
    for (const [name, n] of [
      ['a', 'n1'],
      ['b', 'n2'],
      ['c', 'n1'],
    ] as const)
      pods.set(name, pod(name, n));
    assert.deepEqual(zones.list(), ['z1', 'z2', 'z1']);
    const before = zones.stats.recomputed;
    nodes.set('n1', { name: 'n1', zone: 'z9' });
    assert.deepEqual(zones.list(), ['z9', 'z2', 'z9']);
    assert.equal(zones.stats.recomputed - before, 2, 'the pods on n1');
    pods.set('b', pod('b', 'n1'));
    assert.equal(zones.get('b'), 'z9', 'a pod that moved is found under its new key');
  });

  it('refuses a join through an index that does not list the input under the key read', () => {
    const rt = new Runtime();
    const nodes = rt.input<Node>('nodes');
    const pods = rt.input<Pod>('pods');
    const podsByApp = pods.index('app', (p) => [p.app]);
    const bad = rt.collection('bad', pods, (ctx, p) => ctx.fetchKey(nodes, p.node, { via: podsByApp }));
    pods.set('a', pod('a', 'n1'));
    assert.throws(
      () => bad.list(),
      (err: unknown) => hasErrorCode(err, KrtErrorCode.BAD_JOIN),
    );
  });

  it('joins on the same key: a read by the key’s own key follows that key', () => {
    const rt = new Runtime();
    const pods = rt.input<Pod>('pods');
    const statuses = rt.input<{ readonly ready: boolean }>('statuses');
    const joined = rt.collection('joined', pods, (ctx, p, key) => `${p.name}:${ctx.fetchKey(statuses, key)?.ready ?? '?'}`);
    pods.set('a', pod('a', 'n1'));
    pods.set('b', pod('b', 'n1'));
    assert.deepEqual(joined.list(), ['a:?', 'b:?']);
    const before = joined.stats.recomputed;
    statuses.set('a', { ready: true });
    assert.deepEqual(joined.list(), ['a:true', 'b:?']);
    statuses.set('zzz', { ready: false });
    joined.list();
    assert.equal(joined.stats.recomputed - before, 1, 'a only: no pod has the key zzz');
  });

  it('forgets what a transform read in an earlier run', () => {
    const rt = new Runtime();
    const nodes = rt.input<Node>('nodes');
    const pods = rt.input<Pod>('pods');
    // Reads its node only when it has one.
    const zoned = rt.collection('zoned', pods, (ctx, p) => (p.node === '' ? 'none' : (ctx.fetchKey(nodes, p.node)?.zone ?? '?')));
    nodes.set('n1', { name: 'n1', zone: 'z1' });
    pods.set('a', pod('a', 'n1'));
    assert.equal(zoned.get('a'), 'z1');
    pods.set('a', pod('a', ''));
    assert.equal(zoned.get('a'), 'none');
    const before = zoned.stats.recomputed;
    nodes.set('n1', { name: 'n1', zone: 'z2' });
    zoned.list();
    assert.equal(zoned.stats.recomputed, before);
  });

  it('deletes the output and the reads of an input that is deleted', () => {
    const { pods, nodes, workloads } = podsAndNodes();
    nodes.set('n1', { name: 'n1', zone: 'z1' });
    pods.set('a', pod('a', 'n1'));
    workloads.list();
    const seen = batches(workloads);
    pods.delete('a');
    assert.equal(workloads.get('a'), undefined);
    const before = workloads.stats.recomputed;
    nodes.set('n1', { name: 'n1', zone: 'z2' });
    workloads.list();
    assert.equal(workloads.stats.recomputed, before);
    assert.deepEqual(seen.map(summary), [['delete a']]);
  });

  it('many outputs per input, each under its own key; outputs no longer produced are deleted', () => {
    const rt = new Runtime();
    const services = rt.input<{ readonly name: string; readonly ports: readonly number[] }>('services');
    const clusters = rt.manyCollection('clusters', services, (_ctx, s) => s.ports.map((p) => ({ name: `${s.name}|${p}`, port: p })), {
      key: (c) => c.name,
    });
    services.set('web', { name: 'web', ports: [80, 443] });
    assert.deepEqual(
      clusters.list().map((c) => c.name),
      ['web|443', 'web|80'],
    );
    const seen = batches(clusters);
    services.set('web', { name: 'web', ports: [80, 8080] });
    clusters.list();
    assert.deepEqual(seen.map(summary), [['delete web|443', 'add web|8080']]);
    services.delete('web');
    assert.equal(clusters.size, 0);
  });

  it('reports a key produced by two inputs and keeps the first', () => {
    const rt = new Runtime();
    const inputs = rt.input<{ readonly out: string }>('inputs');
    const outs = rt.manyCollection('outs', inputs, (_ctx, i) => [i], { key: (o) => o.out });
    inputs.set('a', { out: 'x' });
    outs.list();
    inputs.set('b', { out: 'x' });
    assert.throws(
      () => rt.flush(),
      (err: unknown) => hasErrorCode(err, KrtErrorCode.DUPLICATE_KEY),
    );
    assert.deepEqual(outs.list(), [{ out: 'x' }]);
    inputs.delete('a');
    inputs.set('b', { out: 'x' });
    inputs.delete('b');
    inputs.set('b', { out: 'x' });
    assert.deepEqual(outs.list(), [{ out: 'x' }], 'the key is free again once its owner dropped it');
  });

  it('a singleton follows what it reads', () => {
    const rt = new Runtime();
    const pods = rt.input<Pod>('pods');
    const count = rt.singleton('web-count', (ctx) => ctx.fetch(pods, { where: (p) => p.app === 'web' }).length);
    assert.equal(count.get(), 0);
    pods.set('a', pod('a', 'n1'));
    pods.set('b', pod('b', 'n1', 'db'));
    assert.equal(count.get(), 1);
    const before = count.stats.recomputed;
    pods.set('c', pod('c', 'n1', 'db'));
    count.get();
    assert.equal(count.stats.recomputed, before, 'a change that passes the filter neither before nor after');
    const options = rt.inputSingleton<{ readonly suffix: string }>('options');
    const labelled = rt.collection('labelled', pods, (ctx, p) => `${p.name}${ctx.fetchSingleton(options)?.suffix ?? ''}`);
    assert.equal(labelled.get('a'), 'a');
    options.set({ suffix: '.x' });
    assert.deepEqual(labelled.list(), ['a.x', 'b.x', 'c.x']);
  });

  it('refuses a read of a collection created after the reader', () => {
    const rt = new Runtime();
    const pods = rt.input<Pod>('pods');
    const later: { ref?: ReturnType<typeof rt.input<Node>> } = {};
    const bad = rt.collection('bad', pods, (ctx, p) => ctx.fetchKey(later.ref as NonNullable<typeof later.ref>, p.node));
    later.ref = rt.input<Node>('nodes');
    pods.set('a', pod('a', 'n1'));
    assert.throws(
      () => bad.list(),
      (err: unknown) => hasErrorCode(err, KrtErrorCode.TRANSFORM_FAILED) && hasErrorCode(err, KrtErrorCode.FETCH_ORDER),
    );
  });

  it('a transform that throws leaves its key without output, reports it, and is retried when its reads change', () => {
    const errors: string[] = [];
    const rt = new Runtime({ onError: (e) => errors.push(e.code) });
    const nodes = rt.input<Node>('nodes');
    const pods = rt.input<Pod>('pods');
    const zones = rt.collection('zones', pods, (ctx, p) => {
      const n = ctx.fetchKey(nodes, p.node);
      if (n === undefined) throw new Error(`no node ${p.node}`);
      return n.zone;
    });
    pods.set('a', pod('a', 'n1'));
    pods.set('b', pod('b', 'n2'));
    nodes.set('n2', { name: 'n2', zone: 'z2' });
    assert.deepEqual(zones.list(), ['z2']);
    assert.deepEqual(errors, [KrtErrorCode.TRANSFORM_FAILED]);
    nodes.set('n1', { name: 'n1', zone: 'z1' });
    assert.equal(zones.get('a'), 'z1');
  });

  it('replays the current contents to a new subscriber that asks for it', () => {
    const { pods, nodes, workloads } = podsAndNodes();
    nodes.set('n1', { name: 'n1', zone: 'z1' });
    pods.set('a', pod('a', 'n1'));
    const seen: string[][] = [];
    workloads.subscribe((e) => seen.push(summary(e)), { replay: true });
    assert.deepEqual(seen, [['add a']]);
  });
});

describe('incremental propagation matches a fresh build', () => {
  /** mulberry32, so a failure replays. */
  function rng(seed: number): () => number {
    let a = seed;
    return () => {
      a = (a + 0x6d2b79f5) | 0;
      let t = Math.imul(a ^ (a >>> 15), 1 | a);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  /** A graph with every kind of read: by key, by index with a filter, whole store, many outputs, a singleton. */
  function graph() {
    const rt = new Runtime();
    const nodes = rt.input<Node>('nodes');
    const pods = rt.input<Pod>('pods');
    const byNode = pods.index('node', (p) => [p.node]);
    const workloads = rt.collection('workloads', pods, (ctx, p) => ({
      name: p.name,
      zone: ctx.fetchKey(nodes, p.node)?.zone ?? '',
      peers: ctx.fetchIndex(byNode, p.node, { where: (q) => q.app === p.app && q.name !== p.name }).map((q) => q.name),
    }));
    const perZone = rt.manyCollection(
      'per-zone',
      nodes,
      (ctx, n) => ctx.fetchIndex(byNode, n.name).map((p) => ({ key: `${n.zone}/${p.name}`, app: p.app })),
      { key: (o) => o.key },
    );
    const byZone = workloads.index('zone', (w) => [w.zone]);
    const zoneSizes = rt.singleton('zone-sizes', (ctx) => {
      const zones = new Set(ctx.fetch(nodes).map((n) => n.zone));
      return [...zones].sort().map((z) => `${z}:${ctx.fetchIndex(byZone, z).length}`);
    });
    return { rt, nodes, pods, workloads, perZone, zoneSizes };
  }

  it('after each of 400 random changes to pods and nodes', () => {
    const r = rng(11);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;
    const g = graph();
    for (let step = 0; step < 400; step++) {
      if (r() < 0.7) {
        const name = `p${Math.floor(r() * 12)}`;
        if (r() < 0.2) g.pods.delete(name);
        else g.pods.set(name, pod(name, pick(['n1', 'n2', 'n3', 'n4']), pick(['web', 'db'])));
      } else {
        const name = pick(['n1', 'n2', 'n3']);
        if (r() < 0.15) g.nodes.delete(name);
        else g.nodes.set(name, { name, zone: pick(['z1', 'z2']) });
      }
      // Read only now and then, so several changes fold into one propagation.
      if (r() < 0.5) continue;
      const fresh = graph();
      fresh.nodes.replaceAll(new Map(g.nodes.list().map((n) => [n.name, n])));
      fresh.pods.replaceAll(new Map(g.pods.list().map((p) => [p.name, p])));
      assert.deepEqual(g.workloads.list(), fresh.workloads.list(), `workloads at step ${step}`);
      assert.deepEqual(g.perZone.list(), fresh.perZone.list(), `per-zone at step ${step}`);
      assert.deepEqual(g.zoneSizes.get(), fresh.zoneSizes.get(), `zone sizes at step ${step}`);
    }
  });
});
