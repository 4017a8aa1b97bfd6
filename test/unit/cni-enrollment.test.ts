/**
 * Which pods the node agent enrolls: Istio's rule as a table, the static source, the ENROLLMENT selection, and
 * the Kubernetes source and annotator against a small fake API server (list, watch, get, patch over HTTP) —
 * enough to exercise the informers, the GET fallback and the change reports without a cluster.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { V1Namespace, V1Pod } from '@kubernetes/client-node';
import { hasErrorCode } from '../../lib/errors.js';
import { loadAgentConfig } from '../../cni/agent/config.js';
import {
  DATAPLANE_MODE_LABEL,
  REDIRECTION_ANNOTATION,
  SIDECAR_STATUS_ANNOTATION,
  StaticEnrollment,
  podRedirectionEnabled,
  type EnrollmentChange,
} from '../../cni/agent/enrollment.js';
import { KubeRedirectionAnnotator, KubernetesEnrollment } from '../../cni/agent/kube-enrollment.js';
import { PodCache } from '../../cni/agent/pod-cache.js';
import { FakeApiServer, kubeConfigFor } from '../../testbed/fixtures/fake-kube-api.js';
import { captureLogger, silentLogger } from '../../testbed/fixtures/log.js';

interface PodShape {
  ns?: string;
  nsLabel?: string;
  podLabel?: string;
  hostNetwork?: boolean;
  sidecar?: boolean;
  app?: string;
  sa?: string;
}

function pod(s: PodShape, name = 'web-0', uid = 'uid-1', nodeName = 'node-a'): V1Pod {
  const labels: Record<string, string> = {};
  if (s.podLabel !== undefined) labels[DATAPLANE_MODE_LABEL] = s.podLabel;
  if (s.app !== undefined) labels.app = s.app;
  return {
    metadata: {
      name,
      namespace: s.ns ?? 'demo',
      uid,
      labels,
      annotations: s.sidecar === true ? { [SIDECAR_STATUS_ANNOTATION]: '{"containers":["istio-proxy"]}' } : {},
    },
    spec: { containers: [{ name: 'app' }], nodeName, hostNetwork: s.hostNetwork, serviceAccountName: s.sa },
  };
}

function namespace(name: string, label?: string): V1Namespace {
  return { metadata: { name, labels: label === undefined ? {} : { [DATAPLANE_MODE_LABEL]: label } } };
}

describe('Istio enrollment rule (podRedirectionEnabled)', () => {
  const cases: Array<[string, PodShape, boolean, RegExp]> = [
    ['namespace labelled ambient', { nsLabel: 'ambient' }, true, /namespace demo is labelled/],
    ['pod labelled ambient, namespace unlabelled', { podLabel: 'ambient' }, true, /the pod is labelled/],
    ['pod labelled ambient, namespace labelled none', { nsLabel: 'none', podLabel: 'ambient' }, true, /the pod is labelled/],
    ['neither labelled', {}, false, /neither the pod nor namespace demo/],
    ['namespace labelled something else', { nsLabel: 'sidecar' }, false, /neither/],
    ['namespace ambient, pod opted out with none', { nsLabel: 'ambient', podLabel: 'none' }, false, /opted out/],
    ['namespace ambient, hostNetwork pod', { nsLabel: 'ambient', hostNetwork: true }, false, /host network/],
    ['pod ambient, hostNetwork pod', { podLabel: 'ambient', hostNetwork: true }, false, /host network/],
    ['namespace ambient, sidecar-injected pod', { nsLabel: 'ambient', sidecar: true }, false, /has a sidecar/],
    ['pod ambient, sidecar-injected pod', { podLabel: 'ambient', sidecar: true }, false, /has a sidecar/],
    ['kube-system labelled ambient', { ns: 'kube-system', nsLabel: 'ambient' }, false, /never enrolled/],
    ['pod in kube-system labelled ambient', { ns: 'kube-system', podLabel: 'ambient' }, false, /never enrolled/],
    ['ztunnel in istio-system labelled ambient', { ns: 'istio-system', nsLabel: 'ambient', app: 'ztunnel' }, false, /is ztunnel/],
    ['app=ztunnel elsewhere is an ordinary pod', { nsLabel: 'ambient', app: 'ztunnel' }, true, /labelled/],
    ['namespace object unknown, pod unlabelled', { nsLabel: undefined }, false, /neither/],
  ];
  for (const [name, shape, enrolled, reason] of cases) {
    test(name, () => {
      const ns = shape.nsLabel === undefined ? undefined : namespace(shape.ns ?? 'demo', shape.nsLabel);
      const d = podRedirectionEnabled(pod(shape), ns);
      assert.equal(d.enrolled, enrolled, d.reason);
      assert.match(d.reason, reason);
    });
  }

  test('the service account is spec.serviceAccountName, "default" when unset, also when not enrolled', () => {
    assert.equal(podRedirectionEnabled(pod({ nsLabel: 'ambient', sa: 'reviews' }), namespace('demo', 'ambient')).serviceAccount, 'reviews');
    assert.equal(podRedirectionEnabled(pod({ nsLabel: 'ambient' }), namespace('demo', 'ambient')).serviceAccount, 'default');
    assert.equal(podRedirectionEnabled(pod({ sa: 'x' }), undefined).serviceAccount, 'x');
  });

  test('excluded and system namespaces are configurable', () => {
    const opts = { excludedNamespaces: new Set(['infra']), systemNamespace: 'mesh' };
    assert.equal(podRedirectionEnabled(pod({ ns: 'infra', podLabel: 'ambient' }), undefined, opts).enrolled, false);
    assert.equal(podRedirectionEnabled(pod({ ns: 'kube-system', podLabel: 'ambient' }), undefined, opts).enrolled, true);
    assert.equal(podRedirectionEnabled(pod({ ns: 'mesh', podLabel: 'ambient', app: 'ztunnel' }), undefined, opts).enrolled, false);
  });
});

describe('StaticEnrollment', () => {
  test('AMBIENT_NAMESPACES / AMBIENT_EXCLUDED_PODS as before, no service account, never a change', async () => {
    const src = new StaticEnrollment(loadAgentConfig({ AMBIENT_NAMESPACES: 'demo', AMBIENT_EXCLUDED_PODS: 'demo/db-0' }));
    await src.start();
    const seen: EnrollmentChange[] = [];
    const off = src.onChange((c) => seen.push(c));
    assert.deepEqual(await src.decide({ namespace: 'demo', name: 'web-0', uid: 'u' }), {
      enrolled: true,
      reason: 'namespace demo is ambient',
      serviceAccount: undefined,
    });
    assert.equal((await src.decide({ namespace: 'demo', name: 'db-0', uid: 'u' })).enrolled, false);
    assert.equal((await src.decide({ namespace: 'other', name: 'web-0', uid: '' })).enrolled, false);
    const all = new StaticEnrollment(loadAgentConfig({ AMBIENT_NAMESPACES: '*' }));
    assert.equal((await all.decide({ namespace: 'x', name: 'y', uid: '' })).enrolled, true);
    assert.equal((await all.decide({ namespace: 'kube-system', name: 'coredns', uid: '' })).enrolled, false);
    off();
    await src.stop();
    assert.deepEqual(seen, []);
  });
});

describe('ENROLLMENT selection (loadAgentConfig)', () => {
  test('static without a kubeconfig; kubernetes with KUBECONFIG or in a pod, unless static lists are given', () => {
    assert.equal(loadAgentConfig({}).enrollment, 'static');
    assert.equal(loadAgentConfig({ KUBECONFIG: '/k', NODE_NAME: 'n' }).enrollment, 'kubernetes');
    assert.equal(loadAgentConfig({ KUBERNETES_SERVICE_HOST: '10.0.0.1', NODE_NAME: 'n' }).enrollment, 'kubernetes');
    assert.equal(loadAgentConfig({ KUBECONFIG: '/k', AMBIENT_NAMESPACES: 'demo' }).enrollment, 'static');
    assert.equal(loadAgentConfig({ KUBECONFIG: '/k', AMBIENT_NAMESPACES: '' }).enrollment, 'static');
    assert.equal(loadAgentConfig({ KUBECONFIG: '/k', ENROLLMENT: 'static' }).enrollment, 'static');
    const k = loadAgentConfig({
      ENROLLMENT: 'Kubernetes',
      KUBECONFIG: '/k',
      NODE_NAME: 'node-a',
      AMBIENT_NAMESPACES: 'x',
      POD_NAMESPACE: 'mesh',
    });
    assert.deepEqual(
      [k.enrollment, k.kubeconfigPath, k.nodeName, k.systemNamespace, k.inCluster],
      ['kubernetes', '/k', 'node-a', 'mesh', false],
    );
    assert.equal(loadAgentConfig({}).systemNamespace, 'istio-system');
  });

  test('bad values and missing NODE_NAME or kubeconfig are CNI_AGENT_BAD_CONFIG', () => {
    const bad = (env: NodeJS.ProcessEnv) =>
      assert.throws(
        () => loadAgentConfig(env),
        (e: unknown) => hasErrorCode(e, 'CNI_AGENT_BAD_CONFIG'),
      );
    bad({ ENROLLMENT: 'labels' });
    bad({ ENROLLMENT: 'kubernetes', NODE_NAME: 'n' });
    bad({ ENROLLMENT: 'kubernetes', KUBECONFIG: '/k' });
    bad({ KUBERNETES_SERVICE_HOST: '10.0.0.1' });
  });
});

async function waitFor(what: string, pred: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('KubernetesEnrollment against a fake API server', () => {
  const api = new FakeApiServer();
  let url = '';
  let src: KubernetesEnrollment;
  const changes: EnrollmentChange[] = [];

  before(async () => {
    url = await api.listen();
    api.setNamespace(namespace('demo', 'ambient'));
    api.setNamespace(namespace('plain'));
    api.setPod(pod({ sa: 'web-sa' }, 'web-0', 'uid-web'));
    api.setPod(pod({ ns: 'plain' }, 'api-0', 'uid-api'));
    api.setPod(pod({}, 'elsewhere-0', 'uid-elsewhere', 'node-b'));
    api.failLists = 1; // the first list fails: start() must retry, not give up
    src = new KubernetesEnrollment({ kubeConfig: kubeConfigFor(url), nodeName: 'node-a', logger: silentLogger(), retryInitialMs: 20 });
    src.onChange((c) => changes.push(c));
    await src.start();
    await waitFor('both watches', () => api.watchers === 2);
  });

  after(async () => {
    await src.stop();
    await api.close();
  });

  test('decides from the caches after the first list, with the service account', async () => {
    const before = api.requests.length;
    assert.deepEqual(await src.decide({ namespace: 'demo', name: 'web-0', uid: 'uid-web' }), {
      enrolled: true,
      reason: 'namespace demo is labelled istio.io/dataplane-mode=ambient',
      serviceAccount: 'web-sa',
    });
    assert.equal((await src.decide({ namespace: 'plain', name: 'api-0', uid: 'uid-api' })).enrolled, false);
    assert.deepEqual(api.requests.slice(before), [], 'no GET for cached objects');
    assert.ok(api.requests.some((r) => r === 'GET /api/v1/pods watch'));
    assert.deepEqual(changes, [], 'nothing reported for the initial list');
    const lists = api.requests.filter((r) => r === 'GET /api/v1/namespaces' || r === 'GET /api/v1/pods');
    assert.equal(lists.length, 3, `the failed list was retried: ${lists.join(', ')}`);
  });

  test('a pod not in the cache yet (CNI ADD before the watch event) is fetched with a GET', async () => {
    api.setPod(pod({ podLabel: 'ambient', ns: 'plain', sa: 'late' }, 'late-0', 'uid-late'), { hidden: true });
    const before = api.requests.length;
    assert.deepEqual(await src.decide({ namespace: 'plain', name: 'late-0', uid: 'uid-late' }), {
      enrolled: true,
      reason: 'the pod is labelled istio.io/dataplane-mode=ambient',
      serviceAccount: 'late',
    });
    assert.deepEqual(api.requests.slice(before), ['GET /api/v1/namespaces/plain/pods/late-0']);
  });

  test('a pod the API server does not have, or that now has another uid, is not enrolled', async () => {
    const gone = await src.decide({ namespace: 'demo', name: 'nobody', uid: 'uid-x' });
    assert.equal(gone.enrolled, false);
    assert.match(gone.reason, /does not exist/);
    const replaced = await src.decide({ namespace: 'demo', name: 'web-0', uid: 'uid-old' });
    assert.equal(replaced.enrolled, false);
    assert.match(replaced.reason, /replaced/);
  });

  test('a failing GET rejects with CNI_AGENT_ENROLLMENT_UNAVAILABLE', async () => {
    api.failGets = 1;
    await assert.rejects(src.decide({ namespace: 'demo', name: 'unknown-0', uid: 'u' }), (e: unknown) =>
      hasErrorCode(e, 'CNI_AGENT_ENROLLMENT_UNAVAILABLE'),
    );
  });

  test("label changes are reported: namespace label, pod label; the agent's own annotation and other nodes are not", async () => {
    changes.length = 0;
    api.setNamespace(namespace('plain', 'ambient'));
    await waitFor('the namespace change', () => changes.length >= 1);
    assert.deepEqual(changes, [{ namespace: 'plain' }]);
    assert.equal((await src.decide({ namespace: 'plain', name: 'api-0', uid: 'uid-api' })).enrolled, true);

    changes.length = 0;
    const web = structuredClone(api.pods.get('demo/web-0') as V1Pod);
    web.metadata ??= {};
    web.metadata.annotations = { [REDIRECTION_ANNOTATION]: 'enabled', other: 'x' };
    api.setPod(web);
    api.setPod(pod({ podLabel: 'ambient' }, 'elsewhere-0', 'uid-elsewhere', 'node-b'));
    web.metadata.labels ??= {};
    web.metadata.labels[DATAPLANE_MODE_LABEL] = 'none';
    api.setPod(web);
    await waitFor('the pod change', () => changes.length >= 1);
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(changes, [{ pod: { namespace: 'demo', name: 'web-0' } }]);
    const d = await src.decide({ namespace: 'demo', name: 'web-0', uid: 'uid-web' });
    assert.equal(d.enrolled, false);
    assert.match(d.reason, /opted out/);
  });

  test('a pod the watch delivers for the first time, and a deleted pod, are reported', async () => {
    changes.length = 0;
    api.setPod(api.pods.get('plain/late-0') as V1Pod); // the watch catches up
    await waitFor('the new pod', () => changes.length >= 1);
    api.deletePod('plain', 'late-0');
    await waitFor('the deletion', () => changes.length >= 2);
    assert.deepEqual(changes, [{ pod: { namespace: 'plain', name: 'late-0' } }, { pod: { namespace: 'plain', name: 'late-0' } }]);
    assert.equal((await src.decide({ namespace: 'plain', name: 'late-0', uid: 'uid-late' })).enrolled, false);
  });

  test('start() gives up after syncTimeoutMs when the API server is unreachable', async () => {
    const dead = new FakeApiServer();
    const deadUrl = await dead.listen();
    await dead.close();
    const s = new KubernetesEnrollment({
      kubeConfig: kubeConfigFor(deadUrl),
      nodeName: 'node-a',
      logger: silentLogger(),
      syncTimeoutMs: 300,
      retryInitialMs: 20,
    });
    await assert.rejects(s.start(), (e: unknown) => hasErrorCode(e, 'CNI_AGENT_KUBE_SYNC_TIMEOUT'));
    await s.stop();
  });
});

describe('KubeRedirectionAnnotator', () => {
  const api = new FakeApiServer();
  let annotator: KubeRedirectionAnnotator;
  const log = captureLogger('debug');

  before(async () => {
    const url = await api.listen();
    api.setPod(pod({}, 'web-0', 'uid-web'));
    annotator = new KubeRedirectionAnnotator(kubeConfigFor(url), log.logger);
  });

  after(() => api.close());

  test('a JSON merge patch on pods/status sets, then removes, ambient.istio.io/redirection', async () => {
    await annotator.annotate({ namespace: 'demo', name: 'web-0' }, 'pending');
    await annotator.annotate({ namespace: 'demo', name: 'web-0' }, 'enabled');
    await annotator.annotate({ namespace: 'demo', name: 'web-0' }, undefined);
    assert.deepEqual(api.patches, [
      {
        path: '/api/v1/namespaces/demo/pods/web-0/status',
        contentType: 'application/merge-patch+json',
        body: { metadata: { annotations: { [REDIRECTION_ANNOTATION]: 'pending' } } },
      },
      {
        path: '/api/v1/namespaces/demo/pods/web-0/status',
        contentType: 'application/merge-patch+json',
        body: { metadata: { annotations: { [REDIRECTION_ANNOTATION]: 'enabled' } } },
      },
      {
        path: '/api/v1/namespaces/demo/pods/web-0/status',
        contentType: 'application/merge-patch+json',
        body: { metadata: { annotations: { [REDIRECTION_ANNOTATION]: null } } },
      },
    ]);
  });

  test('a missing pod is ignored; RBAC Forbidden is logged once and never thrown', async () => {
    await annotator.annotate({ namespace: 'demo', name: 'gone-0' }, 'enabled');
    api.patchStatus = 403;
    await annotator.annotate({ namespace: 'demo', name: 'web-0' }, 'pending');
    await annotator.annotate({ namespace: 'demo', name: 'web-0' }, 'enabled');
    const warnings = log.lines.filter((l) => l.level === 40);
    assert.equal(warnings.length, 1, JSON.stringify(log.lines));
    assert.match(String(warnings[0]?.msg), /may not patch pods\/status/);
  });
});

describe('pod state file with pods not in the mesh', () => {
  test('enrolled=false is kept and never reopened; entries from older files (no flag) are enrolled', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cni-state-'));
    try {
      const file = join(dir, 'pods.json');
      const base = { namespace: 'demo', serviceAccount: 'default', ips: ['10.0.0.1'], containerId: 'c', netnsInode: 42 };
      writeFileSync(
        file,
        JSON.stringify({
          version: 1,
          pods: [
            { ...base, uid: 'old', name: 'old-0', netnsPath: join(dir, 'gone-1') },
            { ...base, uid: 'out', name: 'out-0', netnsPath: join(dir, 'gone-2'), enrolled: false },
          ],
        }),
      );
      const cache = new PodCache(file, silentLogger());
      assert.equal(cache.load(), 2);
      assert.deepEqual([cache.get('old')?.enrolled, cache.get('out')?.enrolled], [true, false]);
      assert.equal(cache.get('out')?.netnsFd, undefined);
      assert.deepEqual(cache.enrolledUids(), ['old']);
      cache.persist();
      const saved = (JSON.parse(readFileSync(file, 'utf8')) as { pods: Array<{ uid: string; enrolled: boolean }> }).pods;
      assert.deepEqual(
        saved.map((p) => [p.uid, p.enrolled]),
        [
          ['old', true],
          ['out', false],
        ],
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
