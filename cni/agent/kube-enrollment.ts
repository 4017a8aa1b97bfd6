/**
 * Enrollment from the Kubernetes API (Istio's istio-cni node agent informers, cni/pkg/nodeagent/informers.go):
 * one informer on Namespaces and one on the Pods scheduled on this node (field selector spec.nodeName), and
 * Istio's rule (enrollment.ts podRedirectionEnabled) over them.
 *
 *   decide()   from the informer caches. At CNI ADD the pod (or a brand-new namespace) is often not in the cache
 *              yet — the runtime sets up the sandbox as soon as the pod is bound — so a cache miss, or a cached
 *              object of an older pod with the same name (other uid), falls back to a direct GET. A pod the API
 *              server does not have (404), or that now has another uid, is not enrolled. Other API errors
 *              reject: the agent then fails the ADD and the runtime retries, as Istio does.
 *   changes    reported when what the rule reads changes: a namespace's istio.io/dataplane-mode label
 *              ({namespace}); a pod's uid, dataplane-mode and app labels, sidecar-status annotation, hostNetwork
 *              or service account, or the pod being added or deleted ({pod}). Comparing only these (rather than
 *              all labels and annotations) keeps the agent's own ambient.istio.io/redirection writes from
 *              echoing back as changes. Nothing is reported until an informer has finished its first list; the
 *              agent re-checks all its pods after start() anyway.
 *   errors     the informers (lib/kube/informer.ts) retry failed lists and watches with client-go's backoff,
 *              and relist when the server says the resource version is too old (410).
 *
 * KubernetesEnrollment takes a KubeConfig, so tests can point it at any API server; kubeConfigFromEnv() is how
 * the agent gets one (KUBECONFIG, else the in-cluster service account).
 *
 * The annotator writes ambient.istio.io/redirection like Istio (cni/pkg/util/podutil.go): a JSON merge patch on
 * the pods/status subresource, which may change metadata and needs less privilege than patching pods. RBAC
 * Forbidden is logged once and otherwise ignored (the annotation is informational); 404 (pod gone) is ignored.
 */
import { CoreV1Api, KubeConfig, PatchStrategy, setHeaderOptions, type V1Namespace, type V1Pod } from '@kubernetes/client-node';
import { describeError } from '../../lib/errors.js';
import { Informer } from '../../lib/kube/informer.js';
import { httpStatusOf } from '../../lib/kube/rest.js';
import { componentLogger, type Logger } from '../../lib/telemetry/logger.js';
import type { AgentConfig } from './config.js';
import {
  DATAPLANE_MODE_LABEL,
  REDIRECTION_ANNOTATION,
  SIDECAR_STATUS_ANNOTATION,
  podRedirectionEnabled,
  type EnrollmentDecision,
  type EnrollmentListener,
  type EnrollmentPodRef,
  type EnrollmentRuleOptions,
  type EnrollmentSource,
  type RedirectionAnnotator,
  type RedirectionState,
} from './enrollment.js';
import { CniAgentError, CniAgentErrorCode } from './errors.js';

export interface KubernetesEnrollmentOptions extends EnrollmentRuleOptions {
  kubeConfig: KubeConfig;
  /** Only pods with this spec.nodeName are watched. */
  nodeName: string;
  logger?: Logger;
  /** How long start() waits for the first list of namespaces and pods; default 60 s, then it rejects. */
  syncTimeoutMs?: number;
  /** Informer retry backoff after an error (tests shorten it); default lib/kube/informer.ts INFORMER_BACKOFF. */
  retryInitialMs?: number;
  retryMaxMs?: number;
}

/** What of a pod the rule reads: a change here may change the decision. */
function podFingerprint(p: V1Pod): string {
  return JSON.stringify([
    p.metadata?.uid,
    p.metadata?.labels?.[DATAPLANE_MODE_LABEL],
    p.metadata?.labels?.app,
    p.metadata?.annotations?.[SIDECAR_STATUS_ANNOTATION] !== undefined,
    p.spec?.hostNetwork === true,
    p.spec?.serviceAccountName ?? p.spec?.serviceAccount,
  ]);
}

function namespaceFingerprint(ns: V1Namespace): string {
  return JSON.stringify([ns.metadata?.labels?.[DATAPLANE_MODE_LABEL]]);
}

export class KubernetesEnrollment implements EnrollmentSource {
  readonly nodeName: string;
  readonly #core: CoreV1Api;
  readonly #log: Logger;
  readonly #rules: EnrollmentRuleOptions;
  readonly #syncTimeoutMs: number;
  readonly #namespaces: Informer<V1Namespace>;
  readonly #pods: Informer<V1Pod>;
  readonly #listeners = new Set<EnrollmentListener>();
  readonly #nsPrints = new Map<string, string>();
  readonly #podPrints = new Map<string, string>();
  #stopped = false;

  constructor(opts: KubernetesEnrollmentOptions) {
    if (opts.nodeName === '') throw new CniAgentError(CniAgentErrorCode.BAD_CONFIG, 'KubernetesEnrollment needs the node name');
    this.nodeName = opts.nodeName;
    this.#log = opts.logger ?? componentLogger('cni-enrollment');
    this.#rules = { excludedNamespaces: opts.excludedNamespaces, systemNamespace: opts.systemNamespace };
    this.#syncTimeoutMs = opts.syncTimeoutMs ?? 60_000;
    this.#core = opts.kubeConfig.makeApiClient(CoreV1Api);
    const backoff = {
      ...(opts.retryInitialMs !== undefined ? { initialMs: opts.retryInitialMs } : {}),
      ...(opts.retryMaxMs !== undefined ? { maxMs: opts.retryMaxMs } : {}),
    };
    const fieldSelector = `spec.nodeName=${opts.nodeName}`;
    this.#namespaces = new Informer<V1Namespace>(opts.kubeConfig, {
      what: 'namespaces',
      path: '/api/v1/namespaces',
      list: () => this.#core.listNamespace(),
      logger: this.#log,
      backoff,
    });
    this.#pods = new Informer<V1Pod>(opts.kubeConfig, {
      what: `pods on node ${opts.nodeName}`,
      path: '/api/v1/pods',
      list: () => this.#core.listPodForAllNamespaces({ fieldSelector }),
      fieldSelector,
      logger: this.#log,
      backoff,
    });

    const nsSeen = (ns: V1Namespace): void => {
      const name = ns.metadata?.name ?? '';
      const print = namespaceFingerprint(ns);
      const before = this.#nsPrints.get(name);
      this.#nsPrints.set(name, print);
      // New namespaces too: the watches are independent, so a pod may have been decided from a GET of it.
      if (before !== print) this.#emit({ namespace: name }, this.#namespaces.synced);
    };
    this.#namespaces.on('add', nsSeen);
    this.#namespaces.on('update', nsSeen);
    this.#namespaces.on('delete', (ns: V1Namespace) => {
      const name = ns.metadata?.name ?? '';
      if (this.#nsPrints.delete(name)) this.#emit({ namespace: name }, this.#namespaces.synced);
    });

    const podSeen = (p: V1Pod): void => {
      const key = `${p.metadata?.namespace ?? ''}/${p.metadata?.name ?? ''}`;
      const print = podFingerprint(p);
      const before = this.#podPrints.get(key);
      this.#podPrints.set(key, print);
      // A pod seen for the first time is reported too: an ADD may have decided from a GET before the watch
      // delivered the pod, and the pod may have changed in between.
      if (before !== print) this.#emit({ pod: podRef(p) }, this.#pods.synced);
    };
    this.#pods.on('add', podSeen);
    this.#pods.on('update', podSeen);
    this.#pods.on('delete', (p: V1Pod) => {
      const key = `${p.metadata?.namespace ?? ''}/${p.metadata?.name ?? ''}`;
      if (this.#podPrints.delete(key)) this.#emit({ pod: podRef(p) }, this.#pods.synced);
    });
  }

  #emit(changed: { namespace?: string; pod?: { namespace: string; name: string } }, synced: boolean): void {
    if (!synced || this.#stopped) return;
    for (const l of [...this.#listeners]) {
      try {
        l(changed);
      } catch (err) {
        this.#log.error({ err: describeError(err) }, 'an enrollment listener threw');
      }
    }
  }

  onChange(listener: EnrollmentListener): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  async start(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new CniAgentError(
              CniAgentErrorCode.KUBE_SYNC_TIMEOUT,
              `no complete list of namespaces and pods on node ${this.nodeName} from the API server within ${this.#syncTimeoutMs} ms ` +
                '(is it reachable, and may this service account list/watch namespaces and pods?)',
            ),
          ),
        this.#syncTimeoutMs,
      );
    });
    try {
      await Promise.race([Promise.all([this.#namespaces.start(), this.#pods.start()]), timeout]);
    } catch (err) {
      await this.stop();
      throw err;
    } finally {
      clearTimeout(timer);
    }
    this.#log.info({ node: this.nodeName, namespaces: this.#nsPrints.size, pods: this.#podPrints.size }, 'watching namespaces and pods');
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#listeners.clear();
    await Promise.all([this.#namespaces.stop(), this.#pods.stop()]);
  }

  async decide(ref: EnrollmentPodRef): Promise<EnrollmentDecision> {
    const label = `${ref.namespace}/${ref.name}`;
    let pod = this.#pods.get(ref.name, ref.namespace);
    if (pod === undefined || (ref.uid !== '' && pod.metadata?.uid !== ref.uid)) {
      pod = await this.#get('pod', label, () => this.#core.readNamespacedPod({ name: ref.name, namespace: ref.namespace }));
    }
    if (pod === undefined) return { enrolled: false, reason: `pod ${label} does not exist in the API server`, serviceAccount: undefined };
    if (ref.uid !== '' && pod.metadata?.uid !== ref.uid) {
      return { enrolled: false, reason: `pod ${label} now has uid ${pod.metadata?.uid ?? '?'} (replaced)`, serviceAccount: undefined };
    }
    const ns =
      this.#namespaces.get(ref.namespace) ??
      (await this.#get('namespace', ref.namespace, () => this.#core.readNamespace({ name: ref.namespace })));
    return podRedirectionEnabled(pod, ns, this.#rules);
  }

  /** A direct GET: undefined on 404, CniAgentError on anything else. */
  async #get<T>(kind: string, name: string, fn: () => Promise<T>): Promise<T | undefined> {
    try {
      return await fn();
    } catch (err) {
      if (httpStatusOf(err) === 404) return undefined;
      throw new CniAgentError(CniAgentErrorCode.ENROLLMENT_UNAVAILABLE, `GET ${kind} ${name} from the API server failed`, { cause: err });
    }
  }
}

function podRef(p: V1Pod): { namespace: string; name: string } {
  return { namespace: p.metadata?.namespace ?? '', name: p.metadata?.name ?? '' };
}

/** Patches ambient.istio.io/redirection through pods/status (see the module comment). */
export class KubeRedirectionAnnotator implements RedirectionAnnotator {
  readonly #core: CoreV1Api;
  readonly #log: Logger;
  #forbiddenLogged = false;

  constructor(kubeConfig: KubeConfig, logger?: Logger) {
    this.#core = kubeConfig.makeApiClient(CoreV1Api);
    this.#log = logger ?? componentLogger('cni-enrollment');
  }

  async annotate(pod: { namespace: string; name: string }, state: RedirectionState | undefined): Promise<void> {
    try {
      await this.#core.patchNamespacedPodStatus(
        { name: pod.name, namespace: pod.namespace, body: { metadata: { annotations: { [REDIRECTION_ANNOTATION]: state ?? null } } } },
        // The generated client would send a JSON Patch content type; the body is a merge patch.
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
    } catch (err) {
      const status = httpStatusOf(err);
      if (status === 404) return; // the pod is gone
      if (status === 403) {
        if (!this.#forbiddenLogged) {
          this.#forbiddenLogged = true;
          this.#log.warn(
            { pod: `${pod.namespace}/${pod.name}` },
            `may not patch pods/status: pods are not annotated ${REDIRECTION_ANNOTATION} (grant patch on pods/status to enable it)`,
          );
        }
        return;
      }
      this.#log.warn(
        { pod: `${pod.namespace}/${pod.name}`, state: state ?? null, status, err: describeError(err) },
        `annotating ${REDIRECTION_ANNOTATION} failed`,
      );
    }
  }
}

/** The agent's kubeconfig: the KUBECONFIG file, else the in-cluster service account; undefined when neither. */
export function kubeConfigFromEnv(config: Pick<AgentConfig, 'kubeconfigPath' | 'inCluster'>): KubeConfig | undefined {
  const kc = new KubeConfig();
  if (config.kubeconfigPath !== undefined) {
    kc.loadFromFile(config.kubeconfigPath);
    return kc;
  }
  if (config.inCluster) {
    kc.loadFromCluster();
    return kc;
  }
  return undefined;
}

/** The source and annotator main.ts uses with ENROLLMENT=kubernetes. */
export function kubernetesEnrollmentFromConfig(
  config: AgentConfig,
  logger?: Logger,
): {
  enrollment: KubernetesEnrollment;
  annotator: KubeRedirectionAnnotator;
} {
  const kubeConfig = kubeConfigFromEnv(config);
  if (kubeConfig === undefined) {
    throw new CniAgentError(CniAgentErrorCode.BAD_CONFIG, 'kubernetes enrollment needs KUBECONFIG or KUBERNETES_SERVICE_HOST');
  }
  return {
    enrollment: new KubernetesEnrollment({ kubeConfig, nodeName: config.nodeName, systemNamespace: config.systemNamespace, logger }),
    annotator: new KubeRedirectionAnnotator(kubeConfig, logger),
  };
}
