/** The controller's settings loader (controller/config/settings.ts), as controller/main.ts calls it. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { loadControllerSettings } from '../../controller/config/settings.js';
import { xdsServingOptions } from '../../controller/config/xds-options.js';
import { hasErrorCode } from '../../lib/errors.js';

describe('controller settings', () => {
  test("istiod's defaults", () => {
    const s = loadControllerSettings([], {});
    assert.equal(s.systemNamespace, 'istio-system');
    assert.equal(s.rootNamespace, 'istio-system');
    assert.equal(s.trustDomain, 'cluster.local');
    assert.equal(s.clusterId, 'Kubernetes');
    assert.deepEqual(s.secureGrpcAddress, { host: '0.0.0.0', port: 15012 });
    assert.deepEqual(s.monitoringAddress, { host: '0.0.0.0', port: 15014 });
    assert.deepEqual(s.httpAddress, { host: '0.0.0.0', port: 8080 });
    assert.equal(s.debounceAfterMs, 100);
    assert.equal(s.debounceMaxMs, 10_000);
    assert.deepEqual(s.trustedNodeAccounts, ['istio-system/ztunnel']);
    assert.deepEqual(s.servingDnsNames, [
      'istiod.istio-system.svc',
      'istiod.istio-system.svc.cluster.local',
      'istiod.istio-system',
      'istiod',
    ]);
    assert.equal(s.kubeconfig, undefined);
    assert.equal(s.inCluster, false);
    assert.equal(s.logLevel, 'info');
  });

  test('PILOT_DEBOUNCE_AFTER=1m30s starts the controller with a 90 s quiet time (and the max raised to it)', () => {
    const s = loadControllerSettings([], { PILOT_DEBOUNCE_AFTER: '1m30s' });
    assert.equal(s.debounceAfterMs, 90_000);
    assert.equal(s.debounceMaxMs, 90_000);
    assert.deepEqual(xdsServingOptions(s).debounce, { afterMs: 90_000, maxMs: 90_000 });
  });

  test('durations in every form Istio writes them', () => {
    for (const [after, max, expected] of [
      ['500ms', '24h', [500, 86_400_000]],
      ['1.5s', '1m', [1_500, 60_000]],
      ['0', '10s', [0, 10_000]],
      ['2', '30', [2_000, 30_000]],
    ] as const) {
      const s = loadControllerSettings([], { PILOT_DEBOUNCE_AFTER: after, PILOT_DEBOUNCE_MAX: max });
      assert.deepEqual([s.debounceAfterMs, s.debounceMaxMs], expected, `${after} / ${max}`);
    }
  });

  test('flags win over their variables; the namespace feeds the derived defaults', () => {
    const s = loadControllerSettings(['--kubeconfig', '/k', '--secure-grpc-addr', ':16012', '--http-addr', '127.0.0.1:9080'], {
      KUBECONFIG: '/other',
      SECURE_GRPC_ADDR: ':1',
      MONITORING_ADDR: '[::1]:9014',
      POD_NAMESPACE: 'mesh',
      POD_NAME: 'controller-0',
      KUBERNETES_SERVICE_HOST: '10.96.0.1',
    });
    assert.equal(s.kubeconfig, '/k');
    assert.equal(s.inCluster, true);
    assert.deepEqual(s.secureGrpcAddress, { host: '0.0.0.0', port: 16012 });
    assert.deepEqual(s.httpAddress, { host: '127.0.0.1', port: 9080 });
    assert.deepEqual(s.monitoringAddress, { host: '::1', port: 9014 });
    assert.equal(s.rootNamespace, 'mesh');
    assert.deepEqual(s.trustedNodeAccounts, ['mesh/ztunnel']);
    assert.deepEqual(xdsServingOptions(s), {
      host: '0.0.0.0',
      port: 16012,
      debounce: { afterMs: 100, maxMs: 10_000 },
      controlPlaneId: 'controller-0',
    });
  });

  test('lists: comma-separated, and an empty one switches the default off', () => {
    const s = loadControllerSettings([], { CA_TRUSTED_NODE_ACCOUNTS: '', ISTIOD_SERVING_SANS: 'a.svc, b.svc' });
    assert.deepEqual(s.trustedNodeAccounts, []);
    assert.deepEqual(s.servingDnsNames, ['a.svc', 'b.svc']);
  });

  test('a value that does not parse stops the start with CONFIG_BAD_ENV naming the variable', () => {
    for (const [env, says] of [
      [{ PILOT_DEBOUNCE_AFTER: 'fast' }, /PILOT_DEBOUNCE_AFTER="fast" is not a duration/],
      [{ PILOT_DEBOUNCE_MAX: '10x' }, /PILOT_DEBOUNCE_MAX="10x" is not a duration/],
      [{ HTTP_ADDR: 'nowhere' }, /HTTP_ADDR="nowhere" must be <port>/],
      [{ LOG_LEVEL: 'loud' }, /LOG_LEVEL="loud" must be one of: trace, debug/],
    ] as const) {
      assert.throws(
        () => loadControllerSettings([], env),
        (e: unknown) => hasErrorCode(e, 'CONFIG_BAD_ENV') && says.test((e as Error).message),
      );
    }
    assert.throws(() => loadControllerSettings(['--http-addr', 'x'], {}), /--http-addr="x" must be <port>/);
  });
});
