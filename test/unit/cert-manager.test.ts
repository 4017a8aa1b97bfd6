/** The proxy's certificate manager, on a manual clock: caching, renewal, backoff, concurrency and priorities. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { hasErrorCode } from '../../lib/errors.js';
import {
  CertificateManager,
  CertificatePriority,
  backoffDelayMs,
  type CertificateProvider,
  type CertificatesDump,
} from '../../lib/identity/cert-manager.js';
import { type WorkloadCertificate, refreshAt } from '../../lib/identity/certificate.js';
import { CERT_FETCH_BACKOFF_MAX_MS, MAX_CONCURRENT_CERT_FETCHES } from '../../lib/identity/defaults.js';
import { IdentityErrorCode } from '../../lib/identity/errors.js';
import { LocalCaProvider } from '../../lib/identity/local-ca-provider.js';
import { type Identity, formatSpiffeId, makeIdentity } from '../../lib/identity/spiffe.js';
import { FakeClock, settle } from '../../testbed/fixtures/fake-clock.js';
import { captureLogger, silentLogger } from '../../testbed/fixtures/log.js';

const TD = 'cluster.local';
const sleep = makeIdentity('default', 'sleep', TD);
const id = (n: number | string): Identity => makeIdentity('default', `sa-${n}`, TD);

/**
 * Wraps the FAKE_CA provider: records calls and concurrency, can hold calls at a gate or make them fail. With a
 * FakeClock, validity is moved by the time the clock was advanced, as if the CA lived on that clock too.
 */
class TestProvider implements CertificateProvider {
  readonly calls: string[] = [];
  readonly callTimes: number[] = [];
  active = 0;
  maxActive = 0;
  gated = false;
  delayMs = 0;
  failure: ((identity: Identity) => Error | undefined) | undefined;
  readonly #gates: Array<() => void> = [];

  constructor(
    readonly inner: LocalCaProvider,
    readonly clock?: FakeClock,
  ) {}

  now(): number {
    return this.clock ? this.clock.now() : Date.now();
  }

  async fetch(identity: Identity): Promise<WorkloadCertificate> {
    this.calls.push(formatSpiffeId(identity));
    this.callTimes.push(this.now());
    this.active++;
    this.maxActive = Math.max(this.maxActive, this.active);
    try {
      if (this.gated) await new Promise<void>((resolve) => this.#gates.push(resolve));
      if (this.delayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.delayMs));
      const err = this.failure?.(identity);
      if (err) throw err;
      const cert = await this.inner.fetch(identity);
      const shift = this.clock?.elapsed ?? 0;
      if (shift === 0) return cert;
      return Object.freeze({
        ...cert,
        notBefore: new Date(cert.notBefore.getTime() + shift),
        notAfter: new Date(cert.notAfter.getTime() + shift),
      });
    } finally {
      this.active--;
    }
  }

  get held(): number {
    return this.#gates.length;
  }

  releaseOne(): void {
    this.#gates.shift()?.();
  }

  releaseAll(): void {
    while (this.#gates.length > 0) this.releaseOne();
  }
}

async function waitFor(what: string, cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

function nextCertificate(manager: CertificateManager, identity: Identity): Promise<WorkloadCertificate> {
  return new Promise((resolve) => {
    const off = manager.onCertificate((cert) => {
      if (formatSpiffeId(cert.identity) === formatSpiffeId(identity)) {
        off();
        resolve(cert);
      }
    });
  });
}

describe('certificate manager', () => {
  let local: LocalCaProvider;
  before(async () => {
    local = await LocalCaProvider.create({ trustDomain: TD, ttlSeconds: 3600 });
  });

  const managers: CertificateManager[] = [];
  const make = (provider: CertificateProvider, clock?: FakeClock, extra: { random?: () => number } = {}): CertificateManager => {
    const m = new CertificateManager({
      provider,
      logger: silentLogger(),
      random: extra.random ?? (() => 0.5),
      ...(clock ? { clock } : {}),
    });
    managers.push(m);
    return m;
  };
  after(() => {
    for (const m of managers) m.close();
  });

  it('caches per identity and shares one fetch among concurrent requests', async () => {
    const provider = new TestProvider(local);
    const m = make(provider, new FakeClock());
    const certs = await Promise.all(Array.from({ length: 10 }, () => m.fetchCertificate(sleep)));
    assert.equal(provider.calls.length, 1);
    assert.ok(certs.every((c) => c === certs[0]));
    // An equal identity built separately hits the same cache entry (keyed by identity, not by object or pod).
    assert.equal(await m.fetchCertificate(makeIdentity('default', 'sleep', TD)), certs[0]);
    assert.equal(provider.calls.length, 1);
    await m.fetchCertificate(id('other'));
    assert.deepEqual(provider.calls, [formatSpiffeId(sleep), formatSpiffeId(id('other'))]);
  });

  it('FAKE_CA local provider issues certificates that verify against its root', async () => {
    const m = make(local, new FakeClock());
    const wc = await m.fetchCertificate(sleep);
    const leaf = new X509Certificate(wc.certChainPem[0] as string);
    const root = new X509Certificate(wc.rootCertsPem[0] as string);
    assert.ok(leaf.checkIssued(root) && leaf.verify(root.publicKey));
    assert.equal(leaf.subjectAltName, 'URI:spiffe://cluster.local/ns/default/sa/sleep');
    assert.deepEqual(wc.rootCertsPem, local.ca.rootCertsPem);
  });

  it('renews at half-life and announces the new certificate', async () => {
    const clock = new FakeClock();
    const provider = new TestProvider(local, clock);
    const m = make(provider, clock);
    const announced: string[] = [];
    m.onCertificate((c) => announced.push(c.serialNumber));
    const first = await m.fetchCertificate(sleep);
    assert.deepEqual(announced, [first.serialNumber]);
    const untilRefresh = refreshAt(first).getTime() - clock.now();
    assert.deepEqual(clock.pendingDelays(), [untilRefresh]);
    await clock.advance(untilRefresh - 1000);
    assert.equal(provider.calls.length, 1, 'no renewal before half-life');
    const renewed = nextCertificate(m, sleep);
    await clock.advance(1000);
    const second = await renewed;
    assert.equal(provider.calls.length, 2);
    assert.notEqual(second.serialNumber, first.serialNumber);
    assert.equal(await m.fetchCertificate(sleep), second);
    assert.deepEqual(announced, [first.serialNumber, second.serialNumber]);
  });

  it('after a failed renewal keeps serving the old certificate until it expires, retrying with doubling backoff up to 150 s', async () => {
    const clock = new FakeClock();
    const provider = new TestProvider(local, clock);
    const { logger, lines } = captureLogger('warn');
    const m = new CertificateManager({ provider, logger, clock, random: () => 0.5 });
    managers.push(m);
    const first = await m.fetchCertificate(sleep);
    provider.failure = () => new Error('CA is down');

    await clock.advance(refreshAt(first).getTime() - clock.now());
    await settle();
    assert.equal(provider.calls.length, 2, 'renewal attempted');
    assert.equal(await m.fetchCertificate(sleep), first, 'old certificate still served');
    assert.equal(m.dump()[0]?.state, 'Available');

    // Run until the old certificate has expired; the CA is down the whole time.
    await clock.advance(first.notAfter.getTime() - clock.now());
    const gaps = provider.callTimes
      .slice(1)
      .map((t, i) => t - (provider.callTimes[i] as number))
      .slice(1);
    assert.deepEqual(gaps.slice(0, 9), [500, 1000, 2000, 4000, 8000, 16_000, 32_000, 64_000, 128_000]);
    assert.ok(
      gaps.slice(9).length > 0 && gaps.slice(9).every((g) => g === CERT_FETCH_BACKOFF_MAX_MS),
      `capped gaps: ${gaps.slice(9).join(',')}`,
    );
    assert.ok(lines.some((l) => l.msg === 'certificate fetch failed' && l.servingPrevious === true));

    // Expired and still failing: callers get a clear error at once instead of a hung connection.
    const callsBefore = provider.calls.length;
    await assert.rejects(
      m.fetchCertificate(sleep),
      (err: unknown) => hasErrorCode(err, IdentityErrorCode.CERT_UNAVAILABLE) && /CA is down/.test(String((err as Error).message)),
    );
    assert.equal(provider.calls.length, callsBefore, 'no extra fetch while waiting for the retry');
    assert.match(m.dump()[0]?.state ?? '', /^Unavailable: .*CA is down/);

    // The CA recovers: the next retry succeeds and the backoff resets.
    provider.failure = undefined;
    const recovered = nextCertificate(m, sleep);
    await clock.advance(CERT_FETCH_BACKOFF_MAX_MS);
    const fresh = await recovered;
    assert.notEqual(fresh.serialNumber, first.serialNumber);
    assert.equal(m.dump()[0]?.state, 'Available');
    assert.deepEqual(clock.pendingDelays(), [refreshAt(fresh).getTime() - clock.now()]);
  });

  it('rejects waiters when the first fetch fails and fails fast until the retry is due', async () => {
    const clock = new FakeClock();
    const provider = new TestProvider(local, clock);
    provider.failure = () => new Error('PERMISSION_DENIED');
    const m = make(provider, clock);
    const waiters = await Promise.allSettled([m.fetchCertificate(sleep), m.fetchCertificate(sleep)]);
    assert.deepEqual(
      waiters.map((w) => w.status),
      ['rejected', 'rejected'],
    );
    assert.equal(provider.calls.length, 1);
    await assert.rejects(m.fetchCertificate(sleep), (err: unknown) => hasErrorCode(err, IdentityErrorCode.CERT_UNAVAILABLE));
    assert.equal(provider.calls.length, 1);
    provider.failure = undefined;
    const issued = nextCertificate(m, sleep);
    await clock.advance(500);
    await issued;
    assert.equal(provider.calls.length, 2);
  });

  it(`never runs more than ${MAX_CONCURRENT_CERT_FETCHES} fetches at once (50 identities requested together)`, async () => {
    const provider = new TestProvider(local);
    provider.delayMs = 5;
    const m = make(provider);
    const certs = await Promise.all(Array.from({ length: 50 }, (_, i) => m.fetchCertificate(id(i))));
    assert.equal(certs.length, 50);
    assert.equal(provider.calls.length, 50);
    assert.equal(provider.maxActive, MAX_CONCURRENT_CERT_FETCHES);
    assert.equal(m.inFlight, 0);
    for (const [i, c] of certs.entries()) assert.equal(formatSpiffeId(c.identity), formatSpiffeId(id(i)));
  });

  it('serves RealTime requests before Warmup prefetches before queued Background renewals', async () => {
    const clock = new FakeClock();
    const provider = new TestProvider(local, clock);
    const m = make(provider, clock);
    const renewing = Array.from({ length: 12 }, (_, i) => id(`bg-${i}`));
    const held = await Promise.all(renewing.map((i) => m.fetchCertificate(i)));
    provider.gated = true;
    // All 12 reach half-life: 8 renewals start and wait at the gate, 4 queue as Background.
    await clock.advance(Math.max(...held.map((c) => refreshAt(c).getTime())) - clock.now());
    assert.equal(provider.held, MAX_CONCURRENT_CERT_FETCHES);
    const callsAtGate = provider.calls.length;
    m.prefetch(id('warm-1'));
    m.prefetch(id('warm-2'));
    const realtime = m.fetchCertificate(id('conn'));
    // A connection now needs warm-2 too: its queued prefetch is promoted to RealTime.
    const promoted = m.fetchCertificate(id('warm-2'));
    assert.equal(provider.calls.length, callsAtGate, 'nothing starts while all slots are busy');

    provider.gated = false;
    provider.releaseAll();
    await Promise.all([realtime, promoted]);
    await waitFor('all renewals', () => provider.calls.length === callsAtGate + 7);
    assert.deepEqual(provider.calls.slice(callsAtGate, callsAtGate + 3), [
      formatSpiffeId(id('conn')),
      formatSpiffeId(id('warm-2')),
      formatSpiffeId(id('warm-1')),
    ]);
    assert.deepEqual(new Set(provider.calls.slice(callsAtGate + 3)), new Set(renewing.slice(8).map(formatSpiffeId)));
  });

  it('forget cancels the renewal timer and any pending fetch', async () => {
    const clock = new FakeClock();
    const provider = new TestProvider(local, clock);
    const m = make(provider, clock);
    const cert = await m.fetchCertificate(sleep);
    assert.equal(clock.pending, 1);
    m.forget(sleep);
    assert.equal(clock.pending, 0);
    assert.equal(m.current(sleep), undefined);
    await clock.advance(cert.notAfter.getTime() - clock.now());
    assert.equal(provider.calls.length, 1, 'no renewal after forget');
    assert.deepEqual(m.dump(), []);

    provider.gated = true;
    const pending = m.fetchCertificate(id('gone'));
    m.forget(id('gone'));
    await assert.rejects(pending, (err: unknown) => hasErrorCode(err, IdentityErrorCode.CERT_UNAVAILABLE));
    provider.releaseAll();
    await settle();
    assert.equal(m.current(id('gone')), undefined, 'a late result for a forgotten identity is dropped');
    assert.equal(clock.pending, 0);
  });

  it('close clears every timer and rejects pending fetches', async () => {
    const clock = new FakeClock();
    const provider = new TestProvider(local, clock);
    const m = make(provider, clock);
    await Promise.all([m.fetchCertificate(id(1)), m.fetchCertificate(id(2))]);
    provider.gated = true;
    const pending = m.fetchCertificate(id(3));
    assert.equal(clock.pending, 2);
    m.close();
    assert.equal(clock.pending, 0);
    await assert.rejects(pending, (err: unknown) => hasErrorCode(err, IdentityErrorCode.CERT_UNAVAILABLE));
    await assert.rejects(m.fetchCertificate(id(1)), (err: unknown) => hasErrorCode(err, IdentityErrorCode.CERT_UNAVAILABLE));
    provider.releaseAll();
  });

  it('dumps certificates in the shape of ztunnel /config_dump', async () => {
    const clock = new FakeClock();
    const provider = new TestProvider(local, clock);
    provider.failure = (i) => (i.serviceAccount === 'broken' ? new Error('CA refused: PERMISSION_DENIED') : undefined);
    const m = make(provider, clock);
    const ok = await m.fetchCertificate(sleep);
    await assert.rejects(m.fetchCertificate(makeIdentity('default', 'broken', TD)));
    provider.gated = true;
    m.prefetch(makeIdentity('default', 'waiting', TD));

    const dump: CertificatesDump[] = JSON.parse(JSON.stringify(m.dump())) as CertificatesDump[];
    assert.deepEqual(
      dump.map((d) => [d.identity, d.state.replace(/:.*/s, ':')]),
      [
        ['spiffe://cluster.local/ns/default/sa/broken', 'Unavailable:'],
        ['spiffe://cluster.local/ns/default/sa/sleep', 'Available'],
        ['spiffe://cluster.local/ns/default/sa/waiting', 'Initializing'],
      ],
    );
    assert.match(dump[0]?.state ?? '', /PERMISSION_DENIED/);
    assert.deepEqual([dump[0]?.certChain, dump[0]?.rootCerts, dump[2]?.certChain], [[], [], []]);

    const available = dump[1] as CertificatesDump;
    assert.deepEqual(Object.keys(available).sort(), ['certChain', 'identity', 'rootCerts', 'state']);
    assert.equal(available.certChain.length, 1);
    assert.equal(available.rootCerts.length, 1);
    const leaf = available.certChain[0];
    assert.ok(leaf);
    assert.deepEqual(Object.keys(leaf).sort(), ['expirationTime', 'pem', 'serialNumber', 'validFrom']);
    assert.equal(Buffer.from(leaf.pem, 'base64').toString(), ok.certChainPem[0]);
    assert.match(leaf.serialNumber, /^\d+$/);
    assert.equal(leaf.serialNumber, BigInt(`0x${ok.serialNumber}`).toString());
    assert.match(leaf.validFrom, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    assert.equal(leaf.expirationTime, ok.notAfter.toISOString().replace(/\.\d{3}Z$/, 'Z'));
    assert.equal(Buffer.from(available.rootCerts[0]?.pem ?? '', 'base64').toString(), ok.rootCertsPem[0]);
    provider.releaseAll();
  });

  it('keeps priorities ordered: RealTime < Warmup < Background', () => {
    assert.ok(CertificatePriority.RealTime < CertificatePriority.Warmup && CertificatePriority.Warmup < CertificatePriority.Background);
  });
});

describe('certificate fetch backoff', () => {
  it('doubles from 500 ms and stops at 150 s without jitter', () => {
    const mid = (): number => 0.5;
    assert.deepEqual(
      Array.from({ length: 12 }, (_, i) => backoffDelayMs(i + 1, mid)),
      [500, 1000, 2000, 4000, 8000, 16_000, 32_000, 64_000, 128_000, 150_000, 150_000, 150_000],
    );
    assert.equal(backoffDelayMs(10_000, mid), 150_000);
  });

  it('jitters by at most ±20% and never exceeds the maximum', () => {
    assert.equal(
      backoffDelayMs(1, () => 0),
      400,
    );
    assert.equal(
      backoffDelayMs(1, () => 0.999_999),
      600,
    );
    assert.equal(
      backoffDelayMs(3, () => 0),
      1600,
    );
    assert.equal(
      backoffDelayMs(20, () => 0.999_999),
      150_000,
    );
    assert.equal(
      backoffDelayMs(20, () => 0),
      120_000,
    );
    for (let i = 0; i < 200; i++) {
      const failures = 1 + (i % 12);
      const base = Math.min(500 * 2 ** (failures - 1), 150_000);
      const d = backoffDelayMs(failures);
      assert.ok(d >= Math.floor(base * 0.8) && d <= Math.min(Math.ceil(base * 1.2), 150_000), `${failures}: ${d}`);
    }
  });
});
