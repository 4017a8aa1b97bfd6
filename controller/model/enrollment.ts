/**
 * Is a pod in the ambient mesh (its traffic captured by the node's ztunnel)? This is the decision istio-cni makes
 * with its default enablement selectors (Helm `cni.ambient.enablementSelectors` in istio manifests/charts/istio-cni/values.yaml,
 * istio cni/pkg/util/enablement_selector.go), evaluated in this order:
 *
 *   1. hostNetwork pods: never. Redirection rules live in the pod's own network namespace; a host-network pod has
 *      none (it would capture the node).
 *   2. pods with a sidecar (annotation `sidecar.istio.io/status`, written by injection): never; a sidecar and
 *      ztunnel on one pod is not supported.
 *   3. ztunnel itself (label app=ztunnel in the system namespace): never, it cannot capture its own traffic.
 *      (Istio's chart also labels it `istio.io/dataplane-mode: none`; this guards a chart that forgets.)
 *   4. pod label `istio.io/dataplane-mode: none`: never (explicit opt-out). Waypoints are opted out this way by
 *      their deployment template, as in Istio: they terminate HBONE themselves.
 *   5. pod label `istio.io/dataplane-mode: ambient`: enrolled, whatever the namespace says.
 *   6. namespace label `istio.io/dataplane-mode: ambient`: enrolled.
 *   7. otherwise not.
 */
import type { NamespaceRecord, PodRecord } from '../kube/records.js';

export const DATAPLANE_MODE_LABEL = 'istio.io/dataplane-mode';
export const SIDECAR_STATUS_ANNOTATION = 'sidecar.istio.io/status';

export type EnrollmentReason = 'host-network' | 'sidecar' | 'ztunnel' | 'pod-opt-out' | 'pod-label' | 'namespace-label' | 'not-selected';

export interface Enrollment {
  readonly enrolled: boolean;
  /** Which rule decided, for `explain`-style tooling and logs. */
  readonly reason: EnrollmentReason;
}

const decided = (enrolled: boolean, reason: EnrollmentReason): Enrollment => ({ enrolled, reason });

export function ambientEnrollment(
  pod: Pick<PodRecord, 'namespace' | 'labels' | 'annotations' | 'hostNetwork'>,
  namespace: Pick<NamespaceRecord, 'labels'> | undefined,
  systemNamespace: string,
): Enrollment {
  if (pod.hostNetwork) return decided(false, 'host-network');
  if (pod.annotations[SIDECAR_STATUS_ANNOTATION] !== undefined) return decided(false, 'sidecar');
  if (pod.namespace === systemNamespace && pod.labels.app === 'ztunnel') return decided(false, 'ztunnel');
  const podMode = pod.labels[DATAPLANE_MODE_LABEL];
  if (podMode === 'none') return decided(false, 'pod-opt-out');
  if (podMode === 'ambient') return decided(true, 'pod-label');
  if (namespace?.labels[DATAPLANE_MODE_LABEL] === 'ambient') return decided(true, 'namespace-label');
  return decided(false, 'not-selected');
}
