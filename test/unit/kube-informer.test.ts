/**
 * lib/kube/informer.ts against the fake API server (real HTTP list and watch, failures on demand) with a manual
 * clock for the retry schedule: first sync through failures, client-go's backoff and its reset, one warning per
 * outage, watches the server ends, and stop() at every stage. The kube tier runs it against kube-apiserver.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';
import { CoreV1Api, type V1Namespace } from '@kubernetes/client-node';
import { INFORMER_BACKOFF_RESET_MS, Informer, type InformerOptions } from '../../lib/kube/informer.js';
import { FakeClock } from '../../testbed/fixtures/fake-clock.js';
import { FakeApiServer, kubeConfigFor } from '../../testbed/fixtures/fake-kube-api.js';
import { captureLogger, silentLogger } from '../../testbed/fixtures/log.js';

/** Polls `pred` (the informer talks to a real HTTP server, so outcomes arrive on real I/O). */
async function until(what: string, pred: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const ns = (name: string, label = ''): V1Namespace => ({ metadata: { name, labels: { mode: label } } });

describe('Informer', () => {
  const api = new FakeApiServer();
  let url = '';
  const running: Informer<V1Namespace>[] = [];

  function informer(clock: FakeClock, extra: Partial<InformerOptions<V1Namespace>> = {}): Informer<V1Namespace> {
    const kc = kubeConfigFor(url);
    const core = kc.makeApiClient(CoreV1Api);
    const i = new Informer<V1Namespace>(kc, {
      what: 'namespaces',
      path: '/api/v1/namespaces',
      list: () => core.listNamespace(),
      logger: silentLogger(),
      clock,
      random: () => 0.5, // no jitter: the schedule is exact
      ...extra,
    });
    running.push(i);
    return i;
  }
  const lists = (): number => api.requests.filter((r) => r === 'GET /api/v1/namespaces').length;
  const watches = (): number => api.requests.filter((r) => r === 'GET /api/v1/namespaces watch').length;

  before(async () => {
    url = await api.listen();
    api.setNamespace(ns('demo', 'ambient'));
  });
  afterEach(async () => {
    for (const i of running.splice(0)) await i.stop();
    api.failLists = 0;
    api.failWatches = 0;
    await until('watches closed', () => api.watchers === 0);
  });
  after(() => api.close());

  test('lists, then reports adds, updates and deletes from the watch', async () => {
    const i = informer(new FakeClock(0));
    const seen: string[] = [];
    i.on('add', (o) => seen.push(`add ${o.metadata?.name}`));
    i.on('update', (o) => seen.push(`update ${o.metadata?.name} ${o.metadata?.labels?.mode}`));
    i.on('delete', (o) => seen.push(`delete ${o.metadata?.name}`));
    await i.start();
    assert.equal(i.synced, true);
    assert.deepEqual(seen, ['add demo']);
    assert.equal(i.get('demo')?.metadata?.labels?.mode, 'ambient');
    await until('the watch', () => api.watchers === 1);
    api.setNamespace(ns('other'));
    api.setNamespace(ns('demo', 'none'));
    await until('two events', () => seen.length === 3);
    assert.deepEqual(seen, ['add demo', 'add other', 'update demo none']);
    assert.deepEqual(
      i
        .list()
        .map((o) => o.metadata?.name)
        .sort(),
      ['demo', 'other'],
    );
  });

  test("start() waits through failed lists, retrying on client-go's schedule: 800 ms, then 1.6 s", async () => {
    const clock = new FakeClock(0);
    api.failLists = 2;
    const listsBefore = lists();
    const i = informer(clock);
    let synced = false;
    void i.start().then(() => (synced = true));
    await until('the first retry to be scheduled', () => clock.pending === 1);
    assert.deepEqual(clock.pendingDelays(), [800]);
    assert.equal(i.failures, 1);
    await clock.advance(800);
    await until('the second retry to be scheduled', () => clock.pending === 1 && i.failures === 2);
    assert.deepEqual(clock.pendingDelays(), [1600]);
    assert.equal(synced, false);
    await clock.advance(1600);
    await until('the first sync', () => synced);
    assert.equal(i.failures, 0);
    assert.equal(lists() - listsBefore, 3);
  });

  test('one warning per outage, one line when watching again', async () => {
    const clock = new FakeClock(0);
    const log = captureLogger('info');
    api.failLists = 3;
    const i = informer(clock, { logger: log.logger });
    const start = i.start();
    for (let n = 1; n <= 3; n++) {
      await until(`retry ${n}`, () => clock.pending === 1 && i.failures === n);
      await clock.advance(clock.pendingDelays()[0] ?? 0);
    }
    await start;
    const lines = log.lines.map((l) => [l.level, l.msg, l.code]);
    assert.deepEqual(lines, [
      [40, 'list/watch failed; retrying with backoff', 'KUBE_WATCH_FAILED'],
      [30, 'watching again', undefined],
    ]);
    assert.equal(log.lines[0]?.status, 500);
  });

  test('a watch the server ends is reopened from where it was, without listing again', async () => {
    const i = informer(new FakeClock(0));
    const seen: string[] = [];
    i.on('add', (o) => seen.push(o.metadata?.name ?? ''));
    await i.start();
    await until('the watch', () => api.watchers === 1);
    const [listsBefore, watchesBefore] = [lists(), watches()];
    api.endWatches();
    await until('a new watch', () => watches() === watchesBefore + 1 && api.watchers === 1);
    assert.equal(lists(), listsBefore);
    api.setNamespace(ns('after-reconnect'));
    await until('the event on the new watch', () => seen.includes('after-reconnect'));
    assert.ok(i.connects >= 2);
  });

  test('a refused watch is retried; the backoff starts over only after two quiet minutes', async () => {
    const clock = new FakeClock(0);
    api.failLists = 1;
    const i = informer(clock);
    const start = i.start();
    await until('the first retry', () => clock.pending === 1);
    assert.deepEqual(clock.pendingDelays(), [800]);
    await clock.advance(800);
    await start;
    await until('the watch', () => api.watchers === 1);

    // Soon after: the schedule continues where it was.
    api.failWatches = 1;
    api.endWatches();
    await until('the retry after the refused watch', () => clock.pending === 1);
    assert.deepEqual(clock.pendingDelays(), [1600]);
    await clock.advance(1600);
    await until('watching again', () => api.watchers === 1 && i.failures === 0);

    // After two quiet minutes: from 800 ms again.
    await clock.advance(INFORMER_BACKOFF_RESET_MS);
    api.failWatches = 1;
    api.endWatches();
    await until('the retry after the second refusal', () => clock.pending === 1);
    assert.deepEqual(clock.pendingDelays(), [800]);
    await clock.advance(800);
    await until('watching again', () => api.watchers === 1);
  });

  test('stop() during the backoff cancels the retry: nothing is requested afterwards', async () => {
    const clock = new FakeClock(0);
    api.failLists = 1;
    const i = informer(clock);
    void i.start();
    await until('the retry to be scheduled', () => clock.pending === 1);
    await i.stop();
    assert.equal(clock.pending, 0);
    const before = api.requests.length;
    await clock.advance(120_000);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(api.requests.length, before);
  });

  test('stop() in the middle of a list leaves no watch open', async () => {
    const release = api.pauseLists();
    const i = informer(new FakeClock(0));
    const before = watches();
    void i.start();
    await until('the list to be in flight', () => api.requests.at(-1) === 'GET /api/v1/namespaces');
    await i.stop();
    release();
    // ListWatch goes on to watch after a list it started before the stop; the informer then closes that watch.
    await until('the watch to be closed', () => watches() === before + 1 && api.watchers === 0);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(api.watchers, 0);
    assert.equal(i.synced, false);
  });
});
