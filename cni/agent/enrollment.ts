/**
 * Which pods the node agent puts in the mesh: a pluggable source the agent asks at CNI ADD and that tells the
 * agent when its answer for some pods may have changed (the agent then re-asks and enrolls or unenrolls them).
 *
 *   StaticEnrollment      AMBIENT_NAMESPACES / AMBIENT_EXCLUDED_PODS from the environment (config.ts); never
 *                         reports changes. Used on fake nodes and by the local mesh, where there is no API server.
 *   KubernetesEnrollment  (kube-enrollment.ts) Istio's rules over the Namespace and Pod objects, followed with
 *                         informers. Kept in its own module so that the static agent never loads the Kubernetes
 *                         client.
 *
 * Istio's rules (istio cni/pkg/util/podutil.go PodRedirectionEnabled, plus the agent's exclusions from
 * cni/pkg/nodeagent: excludeNamespaces and the ztunnel pod) are here as a pure function over the objects, so
 * they are tested without an API server.
 */
import type { V1Namespace, V1Pod } from '@kubernetes/client-node';
import { ALWAYS_EXCLUDED_NAMESPACES, DEFAULT_SYSTEM_NAMESPACE, enrollment, type AgentConfig } from './config.js';

export { DEFAULT_SYSTEM_NAMESPACE };

/** The pod as the CNI event names it. `uid` may be '' (CNI_ARGS without K8S_POD_UID). */
export interface EnrollmentPodRef {
  namespace: string;
  name: string;
  uid: string;
}

export interface EnrollmentDecision {
  enrolled: boolean;
  /** Why, for logs and the plugin's answer. */
  reason: string;
  /** spec.serviceAccountName when the source knows the pod; undefined = the agent uses "default". */
  serviceAccount: string | undefined;
}

/**
 * What may have changed: a namespace (every pod in it), one pod, or, with neither field, anything (the agent
 * re-checks every pod it knows).
 */
export interface EnrollmentChange {
  namespace?: string;
  pod?: { namespace: string; name: string };
}

export type EnrollmentListener = (changed: EnrollmentChange) => void;

export interface EnrollmentSource {
  /** Rejects only when the source cannot tell (e.g. the API server is unreachable); never for "no". */
  decide(pod: EnrollmentPodRef): Promise<EnrollmentDecision>;
  /** Registers a listener; returns the function that removes it. Listeners are called synchronously. */
  onChange(listener: EnrollmentListener): () => void;
  /** Called by the agent before it serves pods; resolves once decide() answers from an up-to-date view. */
  start(): Promise<void>;
  /** Called by the agent when it stops; no listener is called afterwards. */
  stop(): Promise<void>;
}

/** Writes the pod annotation ambient.istio.io/redirection (Istio's istio-cni does, for users and istioctl). */
export interface RedirectionAnnotator {
  /** `undefined` removes the annotation. Never rejects: failures are the annotator's to log. */
  annotate(pod: { namespace: string; name: string }, state: RedirectionState | undefined): Promise<void>;
}

/** Service account sent in WorkloadInfo when the source does not know the pod's (static enrollment). */
export const DEFAULT_SERVICE_ACCOUNT = 'default';

/** Labels and annotations (istio api label/labels.yaml, annotation/annotations.yaml). */
export const DATAPLANE_MODE_LABEL = 'istio.io/dataplane-mode';
export const DATAPLANE_MODE_AMBIENT = 'ambient';
export const DATAPLANE_MODE_NONE = 'none';
export const SIDECAR_STATUS_ANNOTATION = 'sidecar.istio.io/status';
export const REDIRECTION_ANNOTATION = 'ambient.istio.io/redirection';
/** `pending`: rules in place, no ztunnel ack yet; `enabled`: ztunnel acked (istio pkg/config/constants). */
export type RedirectionState = 'pending' | 'enabled';

export interface EnrollmentRuleOptions {
  /** Namespaces never enrolled; default kube-system (Istio's excludeNamespaces). */
  excludedNamespaces?: ReadonlySet<string>;
  /** Where ztunnel runs (pods labelled app=ztunnel there are never enrolled); default istio-system. */
  systemNamespace?: string;
}

/**
 * Istio's enrollment rule for one pod. `namespace` undefined = the namespace object is unknown (no labels).
 * Order of the checks only matters for the reason given; every check must pass.
 */
export function podRedirectionEnabled(
  pod: V1Pod,
  namespace: V1Namespace | undefined,
  opts: EnrollmentRuleOptions = {},
): EnrollmentDecision {
  const ns = pod.metadata?.namespace ?? '';
  const labels = pod.metadata?.labels ?? {};
  const serviceAccount = pod.spec?.serviceAccountName || pod.spec?.serviceAccount || DEFAULT_SERVICE_ACCOUNT;
  const no = (reason: string): EnrollmentDecision => ({ enrolled: false, reason, serviceAccount });
  if ((opts.excludedNamespaces ?? ALWAYS_EXCLUDED_NAMESPACES).has(ns)) return no(`namespace ${ns} is never enrolled`);
  if (ns === (opts.systemNamespace ?? DEFAULT_SYSTEM_NAMESPACE) && labels.app === 'ztunnel') return no('the pod is ztunnel');
  const podMode = labels[DATAPLANE_MODE_LABEL];
  const nsMode = namespace?.metadata?.labels?.[DATAPLANE_MODE_LABEL];
  if (podMode !== DATAPLANE_MODE_AMBIENT && nsMode !== DATAPLANE_MODE_AMBIENT) {
    return no(`neither the pod nor namespace ${ns} is labelled ${DATAPLANE_MODE_LABEL}=${DATAPLANE_MODE_AMBIENT}`);
  }
  if (pod.metadata?.annotations?.[SIDECAR_STATUS_ANNOTATION] !== undefined) {
    return no(`the pod has a sidecar (${SIDECAR_STATUS_ANNOTATION})`);
  }
  if (podMode === DATAPLANE_MODE_NONE) return no(`the pod opted out (${DATAPLANE_MODE_LABEL}=${DATAPLANE_MODE_NONE})`);
  // Rules would land in the node's own network namespace.
  if (pod.spec?.hostNetwork === true) return no('the pod uses the host network');
  return {
    enrolled: true,
    reason:
      podMode === DATAPLANE_MODE_AMBIENT
        ? `the pod is labelled ${DATAPLANE_MODE_LABEL}=${DATAPLANE_MODE_AMBIENT}`
        : `namespace ${ns} is labelled ${DATAPLANE_MODE_LABEL}=${DATAPLANE_MODE_AMBIENT}`,
    serviceAccount,
  };
}

/** Today's environment lists (config.ts enrollment()); the service account is unknown, so "default" is sent. */
export class StaticEnrollment implements EnrollmentSource {
  readonly #config: Pick<AgentConfig, 'ambientNamespaces' | 'excludedPods'>;

  constructor(config: Pick<AgentConfig, 'ambientNamespaces' | 'excludedPods'>) {
    this.#config = config;
  }

  decide(pod: EnrollmentPodRef): Promise<EnrollmentDecision> {
    return Promise.resolve({ ...enrollment(this.#config, pod.namespace, pod.name), serviceAccount: undefined });
  }

  onChange(_listener: EnrollmentListener): () => void {
    return () => undefined; // the lists are fixed for the agent's lifetime
  }

  start(): Promise<void> {
    return Promise.resolve();
  }

  stop(): Promise<void> {
    return Promise.resolve();
  }
}
