/** ztunnel's settings loader (ztunnel/config/settings.ts): Istio's variables, their defaults and syntax. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { hasErrorCode } from '../../lib/errors.js';
import { loadSettings } from '../../ztunnel/config/settings.js';

const LOCAL = { LOCAL_XDS_PATH: '/etc/ztunnel/local.yaml', FAKE_CA: 'true' };

describe('ztunnel settings', () => {
  test("ztunnel's defaults", () => {
    const s = loadSettings(LOCAL);
    assert.equal(s.secretTtlSeconds, 86_400);
    assert.equal(s.terminationDeadlineMs, 5_000);
    assert.equal(s.packetMark, 1337);
    assert.equal(s.inpodUds, '/var/run/ztunnel/ztunnel.sock');
    assert.deepEqual(s.adminAddress, { host: '127.0.0.1', port: 15000 });
    assert.equal(s.hbone.streamWindowBytes, 4 * 2 ** 20);
    assert.equal(s.clusterId, 'Kubernetes');
    assert.equal(s.logLevel, 'info');
  });

  test('durations in Go syntax and bare seconds, sizes, hex marks, addresses', () => {
    const s = loadSettings({
      ...LOCAL,
      SECRET_TTL: '1h30m',
      CONNECTION_TERMINATION_DEADLINE: '1.5s',
      POOL_UNUSED_RELEASE_TIMEOUT: '90',
      HTTP2_STREAM_WINDOW_SIZE: '1Mi',
      PACKET_MARK: '0x539',
      ZTUNNEL_ADMIN_ADDRESS: '15900',
      ZTUNNEL_STATS_ADDRESS: '[::]:15920',
      LOG_LEVEL: 'debug',
    });
    assert.equal(s.secretTtlSeconds, 5_400);
    assert.equal(s.terminationDeadlineMs, 1_500);
    assert.equal(s.hbone.poolIdleReleaseMs, 90_000);
    assert.equal(s.hbone.streamWindowBytes, 2 ** 20);
    assert.equal(s.packetMark, 1337);
    assert.deepEqual(s.adminAddress, { host: '127.0.0.1', port: 15900 });
    assert.deepEqual(s.statsAddress, { host: '::', port: 15920 });
    assert.equal(s.logLevel, 'debug');
  });

  test('addresses written as URLs, CA_ADDRESS following XDS_ADDRESS unless set, even to ""', () => {
    const s = loadSettings({ XDS_ADDRESS: 'https://istiod.istio-system.svc:15012/' });
    assert.equal(s.xdsAddress, 'istiod.istio-system.svc:15012');
    assert.equal(s.caAddress, 'istiod.istio-system.svc:15012');
    assert.throws(
      () => loadSettings({ XDS_ADDRESS: 'istiod:15012', CA_ADDRESS: '' }),
      (e: unknown) => hasErrorCode(e, 'CONFIG_NO_CA'),
    );
    assert.throws(
      () => loadSettings({}),
      (e: unknown) => hasErrorCode(e, 'CONFIG_NO_SOURCE'),
    );
  });

  test('a value that does not parse is CONFIG_BAD_ENV naming the variable', () => {
    for (const [name, value, says] of [
      ['SECRET_TTL', '1 day', /SECRET_TTL="1 day" is not a duration/],
      ['FAKE_CA', 'sure', /FAKE_CA="sure" is not a boolean/],
      ['PACKET_MARK', '0', /PACKET_MARK="0" must be an integer in \[1, 4294967295\]/],
      ['HTTP2_FRAME_SIZE', '1MB', /HTTP2_FRAME_SIZE="1MB" is not a size/],
    ] as const) {
      assert.throws(
        () => loadSettings({ ...LOCAL, [name]: value }),
        (e: unknown) => hasErrorCode(e, 'CONFIG_BAD_ENV') && says.test((e as Error).message),
      );
    }
  });
});
