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
 *   collections/            the same conversions as derived collections (../krt): what each reads, so a change
 *                           recomputes only what read it (inputs, workloads, services, authorizations,
 *                           peer-authentications, resources)
 *   snapshot.ts             ClusterState → WdsSnapshot: WdsModel (incremental) and buildWds (once)
 *   address-lookup.ts       on-demand Address names (uid, <network>/<ip>, <ns>/<hostname>) and node-local workloads
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
export { addressLookup, type AddressLookup } from './address-lookup.js';
export {
  buildWds,
  emptyClusterState,
  WdsModel,
  type ClusterState,
  type WdsContents,
  type WdsBuildStats,
  type WdsSnapshot,
  type WdsWarning,
} from './snapshot.js';
