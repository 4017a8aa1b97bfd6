/**
 * The test API server itself (testbed/kubeapi) against the real kube-apiserver and etcd: readiness, the admin
 * kubeconfig with @kubernetes/client-node, service-account tokens through TokenRequest and TokenReview (audience
 * istio-ca, bound to a pod), RBAC enforcement, pods and nodes written the way a kubelet would, clear failures,
 * and cleanup (stop(), the exit hook, a SIGKILLed owner). Fails, never skips, when the server cannot be built
 * or started.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { AuthenticationV1Api, CoreV1Api, KubeConfig, type V1TokenReview } from '@kubernetes/client-node';
import { describeError, hasErrorCode } from '../../lib/errors.js';
import {
  apiStatusOf,
  applyManifest,
  cleanupStale,
  createNamespace,
  createNode,
  createPod,
  createServiceAccount,
  KubeTestErrorCode,
  setPodStatus,
  startApiServer,
  waitFor,
  type ApiServer,
  type KubeStatus,
} from '../../testbed/kubeapi/index.js';
import { silentLogger } from '../../testbed/fixtures/log.js';
import { childEnv } from '../../testbed/env.js';

const LIB = fileURLToPath(new URL('../../testbed/kubeapi/index.js', import.meta.url));

/** The Status of the API error `p` rejects with; fails the test if it resolves or fails some other way. */
async function rejection(p: Promise<unknown>): Promise<KubeStatus> {
  try {
    await p;
  } catch (e) {
    const status = apiStatusOf(e);
    assert.ok(status, `expected an API error Status, got: ${describeError(e)}`);
    return status;
  }
  assert.fail('expected the API server to refuse the request');
}

function pidAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

async function review(api: ApiServer, token: string, audiences: string[]): Promise<V1TokenReview> {
  const authn = api.kubeConfig.makeApiClient(AuthenticationV1Api);
  return authn.createTokenReview({ body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, audiences } } });
}

/**
 * Runs a child Node process that starts an API server and prints {pids, dataDir}; returns it and that line.
 * The child then waits to be killed.
 */
async function childWithServer(
  name: string,
): Promise<{ pid: number; info: { pids: { apiServer: number; etcd: number }; dataDir: string } }> {
  const script = `
    import { startApiServer } from ${JSON.stringify(LIB)};
    const api = await startApiServer({ name: ${JSON.stringify(name)} });
    process.stdout.write(JSON.stringify({ pids: api.pids, dataDir: api.dataDir }) + '\\n');
    setInterval(() => {}, 1000);
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: childEnv({ LOG_LEVEL: 'silent' }),
  });
  let out = '';
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
  const line = await new Promise<string>((resolve, reject) => {
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      out += s;
      if (out.includes('\n')) resolve(out.split('\n')[0] ?? '');
    });
    child.once('exit', (code) => reject(new Error(`child exited (${code}) before starting its server: ${err}`)));
  });
  assert.ok(child.pid);
  return { pid: child.pid, info: JSON.parse(line) as { pids: { apiServer: number; etcd: number }; dataDir: string } };
}

describe('test API server: kube-apiserver + etcd on loopback', () => {
  let api: ApiServer;
  let core: CoreV1Api;

  before(async () => {
    api = await startApiServer({ name: 'apiserver-test', logger: silentLogger() });
    core = api.kubeConfig.makeApiClient(CoreV1Api);
  });

  after(async () => {
    await api?.stop();
  });

  test('serves /readyz (also anonymously, as RBAC allows health checks) and reports its startup time', async () => {
    const ready = await api.request('/readyz');
    assert.equal(ready.status, 200, `readyz: ${JSON.stringify(ready.body)}`);
    assert.equal((await api.request('/readyz', { token: null })).status, 200);
    assert.equal((await api.request('/api/v1/namespaces', { token: null })).status, 403, 'anonymous may not list namespaces');
    assert.equal((await api.request('/api/v1/namespaces', { token: 'not-a-token' })).status, 401);
    const s = api.startup;
    assert.ok(s.totalMs > 0 && s.totalMs >= s.apiServerMs + s.etcdMs, JSON.stringify(s));
    // Visible in the test output: the cost every Kubernetes test file pays once.
    console.log(`startup: ${JSON.stringify(s)}`);
  });

  test('the admin kubeconfig file works with @kubernetes/client-node: create a namespace and list it', async () => {
    const kc = new KubeConfig();
    kc.loadFromFile(api.kubeconfigPath);
    assert.equal(kc.getCurrentCluster()?.server, api.url);
    const fromFile = kc.makeApiClient(CoreV1Api);
    await fromFile.createNamespace({ body: { metadata: { name: 'listed', labels: { 'istio.io/dataplane-mode': 'ambient' } } } });
    const list = await fromFile.listNamespace({ labelSelector: 'istio.io/dataplane-mode=ambient' });
    assert.deepEqual(
      list.items.map((n) => n.metadata?.name),
      ['listed'],
    );
    const all = (await core.listNamespace()).items.map((n) => n.metadata?.name);
    for (const ns of ['default', 'kube-system', 'kube-public', 'kube-node-lease', 'listed'])
      assert.ok(all.includes(ns), `${ns} in ${all.join(',')}`);
    // The serviceaccount controller's job, done at startup: `default` exists where the API server made namespaces.
    assert.equal((await core.readNamespacedServiceAccount({ namespace: 'default', name: 'default' })).metadata?.name, 'default');
    // The `kubernetes` Service gets the first address of the service range (created by the API server's
    // bootstrap controller shortly after /readyz, hence the wait).
    const svc = await waitFor(
      async () => core.readNamespacedService({ namespace: 'default', name: 'kubernetes' }).catch(() => undefined),
      10_000,
      { description: 'the kubernetes Service' },
    );
    assert.equal(svc.spec?.clusterIP, '10.96.0.1');
  });

  test('a Pod needs its ServiceAccount (admission); setPodStatus writes status as a kubelet; createNode registers a Ready node', async () => {
    const kc = api.kubeConfig;
    await createNamespace(kc, 'apps');
    const missing = await rejection(createPod(kc, { namespace: 'apps', name: 'orphan', serviceAccountName: 'nope' }));
    assert.equal(missing.code, 403);
    assert.match(missing.message, /serviceaccount "nope" not found/);

    const node = await createNode(kc, 'node-1', { internalIP: '172.30.0.2', podCIDR: '10.244.1.0/24' });
    assert.equal(node.metadata.name, 'node-1');
    const n = await core.readNode({ name: 'node-1' });
    assert.deepEqual(n.status?.addresses?.find((a) => a.type === 'InternalIP')?.address, '172.30.0.2');
    assert.equal(n.status?.conditions?.find((c) => c.type === 'Ready')?.status, 'True');
    assert.ok(!(n.spec?.taints ?? []).some((t) => t.key === 'node.kubernetes.io/not-ready'), 'not-ready taint removed');

    await createServiceAccount(kc, 'apps', 'web');
    const created = await createPod(kc, {
      namespace: 'apps',
      name: 'web',
      serviceAccountName: 'web',
      labels: { app: 'web' },
      containers: [{ name: 'nginx', ports: [{ containerPort: 80, name: 'http' }] }],
    });
    assert.ok(created.metadata.uid);
    const before = await core.readNamespacedPod({ namespace: 'apps', name: 'web' });
    assert.equal(before.status?.phase, 'Pending');
    assert.equal(before.status?.podIP, undefined);

    await setPodStatus(kc, 'apps', 'web', { podIP: '10.244.1.5', hostIP: '172.30.0.2', nodeName: 'node-1' });
    const pod = await core.readNamespacedPod({ namespace: 'apps', name: 'web' });
    assert.equal(pod.spec?.nodeName, 'node-1', 'bound through the binding subresource');
    assert.equal(pod.status?.phase, 'Running');
    assert.equal(pod.status?.podIP, '10.244.1.5');
    assert.deepEqual(
      pod.status?.podIPs?.map((p) => p.ip),
      ['10.244.1.5'],
    );
    assert.equal(pod.status?.hostIP, '172.30.0.2');
    assert.equal(pod.status?.conditions?.find((c) => c.type === 'Ready')?.status, 'True');
    assert.equal(pod.status?.containerStatuses?.[0]?.name, 'nginx');
    assert.equal(pod.status?.containerStatuses?.[0]?.ready, true);

    // A readiness change, as when a probe fails.
    await setPodStatus(kc, 'apps', 'web', { podIP: '10.244.1.5', hostIP: '172.30.0.2', ready: false });
    const unready = await core.readNamespacedPod({ namespace: 'apps', name: 'web' });
    assert.equal(unready.status?.conditions?.find((c) => c.type === 'Ready')?.status, 'False');
    assert.equal(unready.status?.podIP, '10.244.1.5');
    await assert.rejects(setPodStatus(kc, 'apps', 'web', { podIP: '10.244.1.5', hostIP: '172.30.0.3', nodeName: 'node-2' }), (e: unknown) =>
      hasErrorCode(e, KubeTestErrorCode.INVALID_ARGUMENT),
    );
  });

  test('a token for audience istio-ca bound to a pod passes TokenReview for istio-ca with the pod in its extra info', async () => {
    const kc = api.kubeConfig;
    await createNamespace(kc, 'tokens');
    await createServiceAccount(kc, 'tokens', 'ztunnel');
    await createNode(kc, 'node-t', { internalIP: '172.30.0.9' });
    const pod = await createPod(kc, { namespace: 'tokens', name: 'ztunnel-abc', serviceAccountName: 'ztunnel', nodeName: 'node-t' });
    const uid = pod.metadata.uid ?? '';
    const { token, expirationTimestamp } = await api.createServiceAccountToken('tokens', 'ztunnel', {
      audiences: ['istio-ca'],
      boundPod: { name: 'ztunnel-abc', uid },
      expirationSeconds: 3600,
    });
    assert.ok(expirationTimestamp.getTime() > Date.now() + 3000_000);

    const ok = await review(api, token, ['istio-ca']);
    assert.equal(ok.status?.authenticated, true, ok.status?.error);
    assert.equal(ok.status?.user?.username, 'system:serviceaccount:tokens:ztunnel');
    assert.ok(ok.status?.user?.groups?.includes('system:serviceaccounts:tokens'));
    assert.deepEqual(ok.status?.audiences, ['istio-ca']);
    const extra = ok.status?.user?.extra ?? {};
    assert.deepEqual(extra['authentication.kubernetes.io/pod-name'], ['ztunnel-abc']);
    assert.deepEqual(extra['authentication.kubernetes.io/pod-uid'], [uid]);
    // The pod's node is reported too (what a CA needs to check "a pod on the caller's node").
    assert.deepEqual(extra['authentication.kubernetes.io/node-name'], ['node-t']);

    const other = await review(api, token, ['some-other-audience']);
    assert.notEqual(other.status?.authenticated, true); // false is omitted from the JSON: undefined
    assert.match(other.status?.error ?? '', /audience/i);
    console.log(`TokenReview, wrong audience: ${other.status?.error ?? ''}`);

    // An istio-ca token is not a credential for the API server itself (its audience is only the issuer).
    assert.equal((await api.request('/api/v1/namespaces/tokens/pods', { token })).status, 401);

    // Bound to the pod: once the pod is gone its tokens are dead. (kube-apiserver caches a *successful*
    // authentication for 10 s, so `token`, reviewed above, may still pass for that long; a token first reviewed
    // after the deletion is refused at once.)
    const unseen = await api.createServiceAccountToken('tokens', 'ztunnel', {
      audiences: ['istio-ca'],
      boundPod: { name: 'ztunnel-abc', uid },
    });
    await core.deleteNamespacedPod({ namespace: 'tokens', name: 'ztunnel-abc', gracePeriodSeconds: 0 });
    const gone = await review(api, unseen.token, ['istio-ca']);
    assert.notEqual(gone.status?.authenticated, true);
    assert.match(gone.status?.error ?? '', /invalidated/);
    console.log(`TokenReview, pod deleted: ${gone.status?.error ?? ''}`);
    // A token cannot be bound to a pod that does not exist (or to another uid).
    const wrongUid = await rejection(
      api.createServiceAccountToken('tokens', 'ztunnel', { audiences: ['istio-ca'], boundPod: { name: 'ztunnel-abc', uid } }),
    );
    assert.equal(wrongUid.code, 404);
  });

  test('RBAC is enforced: a ServiceAccount without bindings is forbidden, with a Role and RoleBinding it is allowed', async () => {
    const kc = api.kubeConfig;
    await createNamespace(kc, 'rbac');
    await createServiceAccount(kc, 'rbac', 'limited');
    const { token } = await api.createServiceAccountToken('rbac', 'limited');
    const limited = api.kubeConfigForToken(token).makeApiClient(CoreV1Api);
    const denied = await rejection(limited.listNamespacedPod({ namespace: 'rbac' }));
    assert.equal(denied.code, 403);
    assert.equal(denied.reason, 'Forbidden');
    assert.match(denied.message, /system:serviceaccount:rbac:limited" cannot list resource "pods"/);

    await applyManifest(
      kc,
      `
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: { name: pod-reader, namespace: rbac }
rules:
  - apiGroups: [""]
    resources: [pods]
    verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: { name: limited-reads-pods, namespace: rbac }
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: Role, name: pod-reader }
subjects:
  - { kind: ServiceAccount, name: limited, namespace: rbac }
`,
    );
    const pods = await waitFor(async () => limited.listNamespacedPod({ namespace: 'rbac' }), 10_000, {
      description: 'the RoleBinding to take effect',
    });
    assert.deepEqual(pods.items, []);
    // Still nothing beyond the Role.
    assert.equal((await rejection(limited.listNamespacedPod({ namespace: 'default' }))).code, 403);
    assert.equal((await rejection(limited.createNamespacedConfigMap({ namespace: 'rbac', body: { metadata: { name: 'x' } } }))).code, 403);
  });

  test('applyManifest server-side applies YAML and is idempotent; waitFor reports what it waited for', async () => {
    const kc = api.kubeConfig;
    const manifest = `
apiVersion: v1
kind: Namespace
metadata: { name: applied, labels: { istio.io/dataplane-mode: ambient } }
---
apiVersion: v1
kind: ConfigMap
metadata: { name: settings, namespace: applied }
data: { mode: ambient }
`;
    const first = await applyManifest(kc, manifest);
    assert.deepEqual(
      first.map((o) => o.kind),
      ['Namespace', 'ConfigMap'],
    );
    const rv = first[1]?.metadata.resourceVersion;
    const second = await applyManifest(kc, manifest);
    assert.equal(second[1]?.metadata.resourceVersion, rv, 'unchanged objects are not rewritten');
    const cm = await core.readNamespacedConfigMap({ namespace: 'applied', name: 'settings' });
    assert.deepEqual(cm.data, { mode: 'ambient' });
    assert.equal(cm.metadata?.managedFields?.[0]?.manager, 'kubetest');

    await assert.rejects(
      waitFor(() => false, 200, { description: 'nothing' }),
      (e: unknown) => hasErrorCode(e, KubeTestErrorCode.TIMEOUT) && /waiting for nothing/.test((e as Error).message),
    );
    assert.equal(await waitFor(() => 42), 42);
  });

  test("fails clearly, with the program's own words, when kube-apiserver cannot start", async () => {
    await assert.rejects(
      startApiServer({ name: 'bad-flag', logger: silentLogger(), extraApiServerArgs: ['--no-such-flag=1'] }),
      (e: unknown) => {
        assert.ok(hasErrorCode(e, KubeTestErrorCode.START_FAILED), describeError(e));
        assert.match((e as Error).message, /kube-apiserver exited .* before it was ready/);
        assert.match((e as Error).message, /unknown flag: --no-such-flag/);
        return true;
      },
    );
  });

  test('without Go, building kube-apiserver fails with an actionable message (never a fake server)', async () => {
    const cache = mkdtempSync(join(tmpdir(), 'kubetest-nogo-'));
    try {
      const script = `
        import { startApiServer } from ${JSON.stringify(LIB)};
        try { await startApiServer({ name: 'nogo' }); console.log('STARTED'); }
        catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })); }
      `;
      const out = await new Promise<string>((resolve) => {
        // An empty tools cache and a version that was never built force a build; PATH without Go makes it impossible.
        const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
          env: childEnv({
            LOG_LEVEL: 'silent',
            MESH_TOOLS_CACHE: cache,
            KUBE_VERSION: 'v1.36.3',
            PATH: '/usr/sbin:/usr/bin:/sbin:/bin',
          }),
          stdio: ['ignore', 'pipe', 'inherit'],
        });
        let s = '';
        child.stdout.setEncoding('utf8').on('data', (d: string) => (s += d));
        child.once('exit', () => resolve(s.trim()));
      });
      assert.notEqual(out, 'STARTED');
      const r = JSON.parse(out) as { code: string; message: string };
      assert.equal(r.code, KubeTestErrorCode.BINARY_UNAVAILABLE, r.message);
      assert.match(r.message, /Go is not installed: install Go/);
    } finally {
      rmSync(cache, { recursive: true, force: true });
    }
  });

  test('the exit hook stops the server when its test process is terminated; a SIGKILLed owner is cleaned up too', async () => {
    // SIGTERM: the exit hook kills etcd and kube-apiserver and removes the data directory.
    const a = await childWithServer('exit-hook');
    assert.ok(pidAlive(a.info.pids.apiServer) && pidAlive(a.info.pids.etcd) && existsSync(a.info.dataDir));
    process.kill(a.pid, 'SIGTERM');
    await waitFor(() => !pidAlive(a.pid) && !pidAlive(a.info.pids.apiServer) && !pidAlive(a.info.pids.etcd), 10_000, {
      description: 'the child and its servers to exit',
    });
    await waitFor(() => !existsSync(a.info.dataDir), 5_000, { description: `${a.info.dataDir} to be removed` });

    // SIGKILL: no handler runs; the parent-death signal takes the servers down, cleanupStale() the directory.
    const b = await childWithServer('killed-owner');
    process.kill(b.pid, 'SIGKILL');
    await waitFor(() => !pidAlive(b.info.pids.apiServer) && !pidAlive(b.info.pids.etcd), 10_000, {
      description: 'servers of a SIGKILLed owner to die with it',
    });
    assert.ok(existsSync(b.info.dataDir), 'nothing could remove it yet');
    const report = await cleanupStale(silentLogger());
    assert.ok(report.removedDirs.includes(b.info.dataDir), JSON.stringify(report));
    assert.ok(!existsSync(b.info.dataDir));
  });

  test('stop() leaves no processes, ports or data directory behind and is idempotent', async () => {
    const { pids, ports, dataDir } = api;
    assert.ok(pidAlive(pids.apiServer) && pidAlive(pids.etcd));
    const stopping = api.stop();
    assert.equal(api.stop(), stopping, 'a second stop() returns the same promise');
    await stopping;
    assert.ok(!pidAlive(pids.apiServer), 'kube-apiserver exited');
    assert.ok(!pidAlive(pids.etcd), 'etcd exited');
    assert.ok(!existsSync(dataDir), 'data directory removed');
    for (const port of [ports.apiServer, ports.etcdClient, ports.etcdPeer]) assert.ok(await portFree(port), `port ${port} released`);
    await assert.rejects(api.request('/readyz'), (e: unknown) => hasErrorCode(e, KubeTestErrorCode.STOPPED));
    await api.stop();
  });
});
