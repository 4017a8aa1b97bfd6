/**
 * lib/kube/informer.ts and lib/kube/rest.ts against a real kube-apiserver (TLS, RBAC, real watch timeouts): the
 * informer follows objects across watches the server ends (a 1 s --min-request-timeout makes it end them every
 * one or two seconds), waits while RBAC forbids the list and syncs as soon as a binding allows it, and stops
 * cleanly. Fails, never skips, when the server cannot be built or started.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { CoreV1Api, type V1ConfigMap } from '@kubernetes/client-node';
import { hasErrorCode } from '../../lib/errors.js';
import { Informer } from '../../lib/kube/informer.js';
import { kubeRequest, kubeRequestOk } from '../../lib/kube/rest.js';
import { createNamespace, startApiServer, waitFor, type ApiServer } from '../../testbed/kubeapi/index.js';
import { captureLogger, silentLogger } from '../../testbed/fixtures/log.js';

const NS = 'informer';
const READER = 'informer-reader';

describe('informer against kube-apiserver', () => {
  let api: ApiServer;
  const running: Informer<V1ConfigMap>[] = [];

  before(async () => {
    api = await startApiServer({
      name: 'informer-test',
      logger: silentLogger(),
      users: [{ name: READER }],
      extraApiServerArgs: ['--min-request-timeout=1'],
    });
    await createNamespace(api.kubeConfig, NS);
  });

  after(async () => {
    for (const i of running) await i.stop();
    await api?.stop();
  });

  function configMaps(kc = api.kubeConfig, logger = silentLogger()): Informer<V1ConfigMap> {
    const core = kc.makeApiClient(CoreV1Api);
    const i = new Informer<V1ConfigMap>(kc, {
      what: `configmaps in ${NS}`,
      path: `/api/v1/namespaces/${NS}/configmaps`,
      list: () => core.listNamespacedConfigMap({ namespace: NS }),
      logger,
      backoff: { initialMs: 50, maxMs: 200 },
    });
    running.push(i);
    return i;
  }

  test('follows adds, updates and deletes across watches the server ends', async () => {
    const i = configMaps();
    const seen: string[] = [];
    i.on('add', (cm) => seen.push(`add ${cm.metadata?.name}`));
    i.on('update', (cm) => seen.push(`update ${cm.metadata?.name} ${cm.data?.v}`));
    i.on('delete', (cm) => seen.push(`delete ${cm.metadata?.name}`));
    await i.start();
    // Each connect after the first is a new watch (or relist) after the server ended the previous one.
    await waitFor(() => i.connects >= 3, 20_000, { description: 'two watches ended by the server' });
    const path = `/api/v1/namespaces/${NS}/configmaps`;
    await kubeRequestOk(api.kubeConfig, { method: 'POST', path, body: { metadata: { name: 'one' }, data: { v: '1' } } });
    await waitFor(() => seen.includes('add one'), 10_000, { description: 'the add' });
    await kubeRequestOk(api.kubeConfig, {
      method: 'PATCH',
      path: `${path}/one`,
      body: { data: { v: '2' } },
      contentType: 'application/merge-patch+json',
    });
    await waitFor(() => seen.includes('update one 2'), 10_000, { description: 'the update' });
    const connects = i.connects;
    await waitFor(() => i.connects > connects, 20_000, { description: 'another watch ended by the server' });
    await kubeRequestOk(api.kubeConfig, { method: 'DELETE', path: `${path}/one` });
    await waitFor(() => seen.includes('delete one'), 10_000, { description: 'the delete' });
    assert.equal(i.get('one', NS), undefined);
    assert.equal(i.failures, 0, 'a watch the server ends is not a failure');
  });

  test('waits while RBAC forbids the list, and syncs once a binding allows it', async () => {
    const token = api.userTokens.get(READER);
    assert.ok(token);
    const log = captureLogger('info');
    const i = configMaps(api.kubeConfigForToken(token, READER), log.logger);
    let synced = false;
    void i.start().then(() => (synced = true));
    await waitFor(() => i.failures >= 2, 10_000, { description: 'two forbidden lists' });
    assert.equal(synced, false);
    const warning = log.lines.find((l) => l.code === 'KUBE_WATCH_FAILED');
    assert.equal(warning?.status, 403, JSON.stringify(log.lines));

    await kubeRequestOk(api.kubeConfig, {
      method: 'POST',
      path: `/apis/rbac.authorization.k8s.io/v1/namespaces/${NS}/roles`,
      body: { metadata: { name: 'read-configmaps' }, rules: [{ apiGroups: [''], resources: ['configmaps'], verbs: ['list', 'watch'] }] },
    });
    await kubeRequestOk(api.kubeConfig, {
      method: 'POST',
      path: `/apis/rbac.authorization.k8s.io/v1/namespaces/${NS}/rolebindings`,
      body: {
        metadata: { name: 'read-configmaps' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'read-configmaps' },
        subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: READER }],
      },
    });
    await waitFor(() => synced, 15_000, { description: 'the sync after the binding' });
    assert.equal(i.failures, 0);
    assert.ok(log.lines.some((l) => l.msg === 'watching again'));
  });

  test('the raw client reports what the server refuses with its Status', async () => {
    const res = await kubeRequest(api.kubeConfig, { method: 'GET', path: `/api/v1/namespaces/${NS}/configmaps/missing` });
    assert.equal(res.status, 404);
    await assert.rejects(
      kubeRequestOk(api.kubeConfig, {
        method: 'POST',
        path: `/api/v1/namespaces/${NS}/configmaps`,
        body: { metadata: { name: 'Bad_Name' } },
      }),
      (e: unknown) => hasErrorCode(e, 'KUBE_API_ERROR') && (e as { status: { reason: string } }).status.reason === 'Invalid',
    );
  });
});
