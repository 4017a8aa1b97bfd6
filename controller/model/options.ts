/**
 * The knobs of the Kubernetes → WDS transforms, each with Istio's default and the reason for it. One record is
 * threaded through every transform so that a change of any knob is one change of input (the snapshot builder
 * starts over when they differ).
 */

export interface ModelOptions {
  /** Istio's CLUSTER_ID; the first segment of every workload uid and Workload.cluster_id. */
  readonly clusterId: string;
  /** Kubernetes cluster domain: service hostnames are `<name>.<ns>.svc.<clusterDomain>`. */
  readonly clusterDomain: string;
  /** Mesh trust domain; sent in Workload.trust_domain only when it is not ztunnel's default (as istiod does). */
  readonly trustDomain: string;
  /** MeshConfig rootNamespace: its selector-less policies are mesh-wide (GLOBAL scope, mesh PeerAuthentication). */
  readonly rootNamespace: string;
  /** Namespace of ztunnel and the control plane (ztunnel pods are never enrolled). */
  readonly systemNamespace: string;
  /** Network of this cluster's workloads ("" = the default network). */
  readonly network: string;
  /**
   * Send policies annotated `istio.io/dry-run: "true"` with dry_run set. Istio gates this behind
   * AMBIENT_ENABLE_DRY_RUN_AUTHORIZATION_POLICY (default off) because ztunnels older than the dry_run field would
   * enforce such a policy; every ztunnel that knows field 6 (ours included) only logs it, so the default here is on.
   * Off reproduces istiod's default: the policy is not sent and its status says why.
   */
  readonly dryRunEnabled: boolean;
}

export const DEFAULT_MODEL_OPTIONS: ModelOptions = Object.freeze({
  clusterId: 'Kubernetes',
  clusterDomain: 'cluster.local',
  trustDomain: 'cluster.local',
  rootNamespace: 'istio-system',
  systemNamespace: 'istio-system',
  network: '',
  dryRunEnabled: true,
});

/** The given options over the defaults. */
export function modelOptions(over: Partial<ModelOptions> = {}): ModelOptions {
  return Object.freeze({ ...DEFAULT_MODEL_OPTIONS, ...over });
}

export function sameOptions(a: ModelOptions, b: ModelOptions): boolean {
  return (Object.keys(DEFAULT_MODEL_OPTIONS) as (keyof ModelOptions)[]).every((k) => a[k] === b[k]);
}
