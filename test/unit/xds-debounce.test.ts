/** The push debouncer on a manual clock: istiod's PILOT_DEBOUNCE_AFTER / PILOT_DEBOUNCE_MAX behaviour. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { type MergedPushRequest, PushDebouncer, type PushRequest } from '../../controller/xds/debounce.js';
import { FakeClock } from '../../testbed/fixtures/fake-clock.js';

const A = 'type.googleapis.com/istio.workload.Address';
const P = 'type.googleapis.com/istio.security.Authorization';

function req(reason: string, ...types: string[]): PushRequest {
  return { typeUrls: new Set(types), reason };
}

function setup(settings = { afterMs: 100, maxMs: 10_000 }, run?: (p: MergedPushRequest) => void | Promise<void>) {
  const clock = new FakeClock(1_000_000);
  const pushes: MergedPushRequest[] = [];
  const errors: unknown[] = [];
  const d = new PushDebouncer({
    settings,
    clock,
    run: (p) => {
      pushes.push(p);
      return run?.(p);
    },
    onError: (e) => errors.push(e),
  });
  return { clock, pushes, errors, d };
}

describe('push debouncer', () => {
  it('merges 1 000 push requests arriving within 100 ms into one push', async () => {
    const { clock, pushes, d } = setup();
    for (let i = 0; i < 1000; i++) {
      d.request(i % 2 === 0 ? req('pod-update', A) : req('policy-update', P));
      await clock.advance(0.099);
    }
    assert.equal(pushes.length, 0, 'nothing is pushed while requests keep arriving');
    await clock.advance(200);
    assert.equal(pushes.length, 1);
    const p = pushes[0] as MergedPushRequest;
    assert.equal(p.requests, 1000);
    assert.deepEqual([...p.typeUrls].sort(), [A, P].sort());
    assert.deepEqual(Object.fromEntries(p.reasons), { 'pod-update': 500, 'policy-update': 500 });
    await clock.advance(60_000);
    assert.equal(pushes.length, 1, 'no further push without further requests');
  });

  it('waits for 100 ms of quiet before pushing a single request', async () => {
    const { clock, pushes, d } = setup();
    d.request(req('x', A));
    await clock.advance(99);
    assert.equal(pushes.length, 0);
    await clock.advance(1);
    assert.equal(pushes.length, 1);
    assert.equal((pushes[0] as MergedPushRequest).releasedAt - (pushes[0] as MergedPushRequest).firstAt, 100);
  });

  it('still pushes at the 10 s maximum under continuous churn, and keeps doing so', async () => {
    const { clock, pushes, d } = setup();
    for (let t = 0; t < 30_000; t += 50) {
      d.request(req('churn', A));
      await clock.advance(50);
    }
    assert.equal(pushes.length, 3, `pushes at 10s, 20s, 30s; got ${pushes.length}`);
    for (const p of pushes) {
      assert.equal(p.releasedAt - p.firstAt, 10_000, 'released exactly PILOT_DEBOUNCE_MAX after the window opened');
      assert.equal(p.requests, 200);
    }
  });

  it('runs at most one push at a time; requests during a push form the next one, released after it completes', async () => {
    let finish: () => void = () => {};
    const { clock, pushes, d } = setup(undefined, () => new Promise<void>((resolve) => (finish = resolve)));
    d.request(req('first', A));
    await clock.advance(100);
    assert.equal(pushes.length, 1);
    assert.equal(d.inFlight, true);
    d.request(req('second', P));
    d.request(req('third', P));
    await clock.advance(5_000);
    assert.equal(pushes.length, 1, 'the second push waits for the first to finish');
    finish();
    await clock.advance(0);
    assert.equal(pushes.length, 2, 'released as soon as the running push completes, the window being quiet');
    assert.equal((pushes[1] as MergedPushRequest).requests, 2);
    assert.deepEqual([...(pushes[1] as MergedPushRequest).typeUrls], [P]);
  });

  it('carries on after a push throws', async () => {
    let n = 0;
    const { clock, pushes, errors, d } = setup(undefined, () => {
      if (n++ === 0) throw new Error('boom');
    });
    d.request(req('a', A));
    await clock.advance(100);
    d.request(req('b', A));
    await clock.advance(100);
    assert.equal(pushes.length, 2);
    assert.equal(errors.length, 1);
  });

  it('uses the configured numbers', async () => {
    const { clock, pushes, d } = setup({ afterMs: 5, maxMs: 20 });
    for (let t = 0; t < 40; t += 2) {
      d.request(req('x', A));
      await clock.advance(2);
    }
    assert.equal(pushes.length, 2);
    assert.ok(pushes.every((p) => p.releasedAt - p.firstAt === 20));
    d.request(req('y', A));
    await clock.advance(5);
    assert.equal(pushes.length, 3);
  });

  it('drops the pending window on close', async () => {
    const { clock, pushes, d } = setup();
    d.request(req('x', A));
    d.close();
    d.request(req('y', A));
    await clock.advance(20_000);
    assert.equal(pushes.length, 0);
    assert.equal(clock.pending, 0);
  });
});
