/**
 * lib/kube/rest.ts, the one raw Kubernetes JSON client (the controller's Leases, the test harness's manifests), against
 * the fake API server over plain HTTP; the kube tier runs it against the real kube-apiserver over TLS.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { hasErrorCode } from '../../lib/errors.js';
import { KubeApiError } from '../../lib/kube/errors.js';
import { apiStatusOf, httpStatusOf, kubeRequest, kubeRequestOk, statusFromBody } from '../../lib/kube/rest.js';
import { FakeApiServer, kubeConfigFor } from '../../testbed/fixtures/fake-kube-api.js';

function withToken(server: string, token: string, kc = new KubeConfig()): KubeConfig {
  kc.loadFromOptions({
    clusters: [{ name: 'fake', server, skipTLSVerify: true }],
    users: [{ name: 'fake', token }],
    contexts: [{ name: 'fake', cluster: 'fake', user: 'fake' }],
    currentContext: 'fake',
  });
  return kc;
}

describe('the raw Kubernetes JSON client', () => {
  const api = new FakeApiServer();
  let url = '';

  before(async () => {
    url = await api.listen();
    api.setNamespace({ metadata: { name: 'demo', labels: { a: 'b' } } });
  });
  after(() => api.close());

  test('GET returns the parsed body and the status', async () => {
    const res = await kubeRequest(kubeConfigFor(url), { method: 'GET', path: '/api/v1/namespaces/demo' });
    assert.equal(res.status, 200);
    assert.deepEqual((res.body as { metadata: { labels: unknown } }).metadata.labels, { a: 'b' });
  });

  test("a refusal is a KubeApiError with the server's Status", async () => {
    const err = await kubeRequestOk(kubeConfigFor(url), { method: 'GET', path: '/api/v1/namespaces/nope' }).then(
      () => assert.fail('expected a refusal'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof KubeApiError);
    assert.ok(hasErrorCode(err, 'KUBE_API_ERROR'));
    assert.deepEqual(err.status, { code: 404, reason: 'NotFound', message: '' });
    assert.equal(httpStatusOf(err), 404);
    assert.deepEqual(apiStatusOf(err), err.status);
  });

  test('sends the credentials of the KubeConfig as they are at each request', async () => {
    const kc = withToken(url, 'first');
    const from = api.authorizations.length;
    await kubeRequest(kc, { method: 'GET', path: '/api/v1/namespaces' });
    withToken(url, 'second', kc); // the same KubeConfig, its token replaced (a rotated service-account token)
    await kubeRequest(kc, { method: 'GET', path: '/api/v1/namespaces' });
    assert.deepEqual(api.authorizations.slice(from), ['Bearer first', 'Bearer second']);
  });

  test('a server that does not answer fails the request with KUBE_REQUEST_TIMEOUT', async () => {
    api.stallRequests = 1;
    await assert.rejects(kubeRequest(kubeConfigFor(url), { method: 'GET', path: '/api/v1/namespaces', timeoutMs: 50 }), (e: unknown) =>
      hasErrorCode(e, 'KUBE_REQUEST_TIMEOUT'),
    );
  });

  test("client-node's ApiException reads as the same Status", async () => {
    const core = kubeConfigFor(url).makeApiClient(CoreV1Api);
    const err = await core.readNamespace({ name: 'nope' }).then(
      () => assert.fail('expected a refusal'),
      (e: unknown) => e,
    );
    assert.equal(apiStatusOf(err)?.reason, 'NotFound');
    assert.equal(httpStatusOf(err), 404);
  });

  test('a KubeConfig without a cluster is refused before anything is sent', async () => {
    await assert.rejects(kubeRequest(new KubeConfig(), { method: 'GET', path: '/api' }), (e: unknown) =>
      hasErrorCode(e, 'KUBE_NO_CLUSTER'),
    );
  });
});

describe('statusFromBody', () => {
  const cases: ReadonlyArray<[string, number, unknown, { code: number; reason: string; message: string }]> = [
    [
      'a Status object',
      409,
      { kind: 'Status', code: 409, reason: 'AlreadyExists', message: 'exists' },
      { code: 409, reason: 'AlreadyExists', message: 'exists' },
    ],
    [
      'a Status as JSON text',
      403,
      '{"kind":"Status","reason":"Forbidden","message":"no"}',
      { code: 403, reason: 'Forbidden', message: 'no' },
    ],
    ['text that is not JSON', 502, 'bad gateway', { code: 502, reason: '', message: 'bad gateway' }],
    ['401 without a body', 401, undefined, { code: 401, reason: 'Unauthorized', message: '' }],
    ['some other JSON', 500, { oops: 1 }, { code: 500, reason: '', message: '{"oops":1}' }],
  ];
  for (const [name, code, body, expected] of cases) test(name, () => assert.deepEqual(statusFromBody(code, body), expected));

  test('errors without an HTTP status have none', () => {
    assert.equal(httpStatusOf(new Error('ECONNREFUSED')), undefined);
    assert.equal(apiStatusOf(new Error('x')), undefined);
    assert.equal(httpStatusOf(Object.assign(new Error('watch'), { statusCode: 410 })), 410);
  });
});
