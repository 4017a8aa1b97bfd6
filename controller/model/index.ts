/**
 * The controller's pure core: Kubernetes records (controller/kube/records.ts) → workload discovery resources.
 * No I/O here; watches feed ClusterState in, the xDS server takes WdsSnapshots out.
 *
 *   options.ts              the knobs (cluster id, domain, trust domain, root namespace, dry-run) and defaults
 *   enrollment.ts           is a pod in the ambient mesh (istio.io/dataplane-mode and the exclusions)
 *   selectors.ts            label selection
 *   services.ts             Service → istio.workload.Service
 *   workloads.ts            Pod (+ namespace, node, services, slices, policies) → istio.workload.Workload
 *   authorization.ts        AuthorizationPolicy → istio.security.Authorization (+ the status message)
 *   peer-authentication.ts  PeerAuthentication → effective mTLS mode, static STRICT and port-level policies
 *   snapshot.ts             ClusterState → WdsSnapshot, incremental through a WdsCache
 *   resource-set.ts         the snapshot's resource sets, sharing unchanged chunks between snapshots
 */
export {
  ambientEnrollment,
  DATAPLANE_MODE_LABEL,
  SIDECAR_STATUS_ANNOTATION,
  type Enrollment,
  type EnrollmentReason,
} from './enrollment.js';
export {
  convertAuthorizationPolicy,
  hasEffectiveRules,
  isSentToZtunnel,
  L4_WHEN_KEYS,
  policyResourceName,
  stringMatch,
  type AuthorizationConversion,
} from './authorization.js';
export { DEFAULT_MODEL_OPTIONS, modelOptions, type ModelOptions } from './options.js';
export {
  convertedPeerAuthenticationName,
  convertPeerAuthentication,
  STATIC_STRICT_POLICY_NAME,
  staticStrictPolicy,
  workloadPeerAuthentication,
  type WorkloadPeerAuthentication,
} from './peer-authentication.js';
export { appProtocolOf, buildService, serviceHostname, serviceResourceName } from './services.js';
export { buildWorkload, canonicalService, workloadIdentity, workloadUid, type WorkloadInputs } from './workloads.js';
export {
  buildWds,
  emptyClusterState,
  WdsCache,
  type ClusterState,
  type WdsBuildOptions,
  type WdsBuildStats,
  type WdsSnapshot,
  type WdsWarning,
} from './snapshot.js';
