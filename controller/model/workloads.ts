/**
 * Pod → istio.workload.Workload (the Workload arm of a WDS Address), following istiod's pod workload builder
 * (pilot/pkg/serviceregistry/ambient/workloads.go; istio pkg/workloadapi/workload.proto). A pure function of the pod and
 * the records it depends on; the snapshot builder decides which of those to pass and when to call it again.
 *
 * Choices where istiod and the brief differ, or where neither says:
 *  - A pod without an IP yet is still a workload (no addresses), so its identity and policies are known before
 *    the CNI reports an IP; istiod waits for the IP. Terminal pods (Succeeded/Failed) are not workloads.
 *  - tunnel_protocol is HBONE when the pod is enrolled (enrollment.ts, from labels), when istio-cni reports it
 *    redirected (annotation ambient.istio.io/redirection: enabled, istiod's own signal), or when the pod speaks
 *    HBONE natively (label networking.istio.io/tunnel: http, which also sets native_tunnel); NONE otherwise.
 *  - workload_name is the controller's name (a ReplicaSet's pod-template-hash suffix removed → the Deployment; a
 *    Job's -<timestamp> suffix removed → the CronJob), overridden by label service.istio.io/workload-name, as
 *    istiod names it. When ownerReferences are missing but the name is pod-template-hash shaped
 *    (`<deployment>-<hash>-<random>`), the Deployment name is taken from generateName. workload_type is the kind
 *    found (DEPLOYMENT, CRONJOB, JOB, else POD); istiod always sends POD, which ztunnel only displays.
 *  - Named Service target ports resolve against the pod's TCP container ports (istiod), else against the port of
 *    the same name in an EndpointSlice of that service listing the pod; a port that resolves nowhere is left out.
 */
import { istio } from '../../lib/proto/index.js';
import { parseIp } from '../../lib/net/ip.js';
import type {
  AuthorizationPolicyRecord,
  EndpointSliceRecord,
  Labels,
  NamespaceRecord,
  NodeRecord,
  PeerAuthenticationRecord,
  PodRecord,
  ServiceRecord,
} from '../kube/records.js';
import { isSentToZtunnel, policyResourceName } from './authorization.js';
import { ambientEnrollment } from './enrollment.js';
import type { ModelOptions } from './options.js';
import { workloadPeerAuthentication } from './peer-authentication.js';
import { selects } from './selectors.js';
import { serviceHostname, serviceResourceName } from './services.js';

type IWorkload = istio.workload.Workload.$Properties;
type IPortList = istio.workload.PortList.$Properties;

export const REDIRECTION_ANNOTATION = 'ambient.istio.io/redirection';
export const TUNNEL_LABEL = 'networking.istio.io/tunnel';
export const WORKLOAD_NAME_LABEL = 'service.istio.io/workload-name';

/** Istio's pod uid: `<clusterId>//Pod/<namespace>/<name>` (the WDS resource name of the workload). */
export const workloadUid = (clusterId: string, namespace: string, name: string): string => `${clusterId}//Pod/${namespace}/${name}`;

export interface WorkloadInputs {
  readonly pod: PodRecord;
  readonly namespace: NamespaceRecord | undefined;
  readonly node: NodeRecord | undefined;
  /**
   * Services that may back the pod: at least those of its namespace whose selector could select it and those
   * named by `endpointSlices`. Others are ignored (selection is checked here), so passing more is only slower.
   */
  readonly services: Iterable<ServiceRecord>;
  /** EndpointSlices that may list the pod; the ones that do (targetRef) are picked here. */
  readonly endpointSlices: Iterable<EndpointSliceRecord>;
  /** Candidate policies; the selector policies of the pod's namespace and of the root namespace that select it apply. */
  readonly authorizationPolicies: Iterable<AuthorizationPolicyRecord>;
  /** Candidate PeerAuthentications (the pod's namespace and the root namespace). */
  readonly peerAuthentications: Iterable<PeerAuthenticationRecord>;
}

// Istio's order of precedence (pkg/kube/labels): the first label present wins.
const NAME_LABELS = ['service.istio.io/canonical-name', 'app.kubernetes.io/name', 'app'] as const;
const REVISION_LABELS = ['service.istio.io/canonical-revision', 'app.kubernetes.io/version', 'version'] as const;

export function canonicalService(labels: Labels, workloadName: string): { readonly name: string; readonly revision: string } {
  const first = (keys: readonly string[]): string | undefined => {
    for (const k of keys) if (labels[k] !== undefined) return labels[k];
    return undefined;
  };
  return { name: first(NAME_LABELS) ?? workloadName, revision: first(REVISION_LABELS) ?? 'latest' };
}

const CRONJOB_JOB_NAME = /^(.+)-\d{8,10}$/;
const W = istio.workload.WorkloadType;

/** The workload a pod belongs to, as istiod names it (pkg/kube GetWorkloadMetaFromPod). */
export function workloadIdentity(pod: Pick<PodRecord, 'name' | 'generateName' | 'controller' | 'labels'>): {
  readonly name: string;
  readonly type: istio.workload.WorkloadType;
} {
  let name = pod.name;
  let kind = 'Pod';
  const hash = pod.labels['pod-template-hash'];
  if (pod.generateName !== '' && pod.controller !== undefined) {
    const c = pod.controller;
    name = c.name;
    kind = c.kind;
    const rolloutHash = pod.labels['rollouts-pod-template-hash'];
    if (c.kind === 'ReplicaSet' && hash && c.name.endsWith(hash)) {
      name = c.name.endsWith(`-${hash}`) ? c.name.slice(0, -(hash.length + 1)) : c.name;
      kind = 'Deployment';
    } else if (c.kind === 'ReplicaSet' && rolloutHash && c.name.endsWith(rolloutHash)) {
      name = c.name.endsWith(`-${rolloutHash}`) ? c.name.slice(0, -(rolloutHash.length + 1)) : c.name;
      kind = 'Rollout';
    } else if (c.kind === 'ReplicationController' && pod.labels.deploymentconfig) {
      name = pod.labels.deploymentconfig;
      kind = 'DeploymentConfig';
    } else if (c.kind === 'Job') {
      const m = CRONJOB_JOB_NAME.exec(c.name);
      if (m?.[1] !== undefined) {
        name = m[1];
        kind = 'CronJob';
      }
    }
  } else if (pod.controller === undefined && hash && pod.generateName.endsWith(`-${hash}-`)) {
    // ReplicaSet pods are named <deployment>-<hash>-<random>; recover the Deployment without ownerReferences.
    name = pod.generateName.slice(0, -(hash.length + 2));
    kind = 'Deployment';
  }
  if (name === '') name = pod.name;
  const override = pod.labels[WORKLOAD_NAME_LABEL];
  if (override !== undefined) name = override;
  const type = kind === 'Deployment' ? W.DEPLOYMENT : kind === 'CronJob' ? W.CRONJOB : kind === 'Job' ? W.JOB : W.POD;
  return { name, type };
}

function referencesPod(slice: EndpointSliceRecord, pod: PodRecord): boolean {
  return slice.endpoints.some(
    (e) =>
      e.targetRef !== undefined &&
      e.targetRef.namespace === pod.namespace &&
      e.targetRef.name === pod.name &&
      // A slice naming an earlier pod of the same name (another uid) is stale.
      (e.targetRef.uid === '' || pod.uid === '' || e.targetRef.uid === pod.uid),
  );
}

function containerPortByName(pod: PodRecord, name: string): number | undefined {
  return pod.containerPorts.find((p) => p.name === name && p.protocol === 'TCP')?.containerPort;
}

/** `<ns>/<hostname>` → service port → target port, for the services backing the pod. */
function servicePorts(
  pod: PodRecord,
  services: Iterable<ServiceRecord>,
  slices: readonly EndpointSliceRecord[],
  clusterDomain: string,
): Record<string, IPortList> {
  const entries: [string, IPortList][] = [];
  const seen = new Set<string>();
  for (const svc of services) {
    // ExternalName services are not WDS services, so nothing can reference them.
    if (svc.type === 'ExternalName') continue;
    const hostname = serviceHostname(svc.name, svc.namespace, clusterDomain);
    const key = serviceResourceName(svc.namespace, hostname);
    if (seen.has(key)) continue;
    const svcSlices = slices.filter((s) => s.namespace === svc.namespace && s.serviceName === svc.name);
    const bySelector = svc.namespace === pod.namespace && svc.selector !== undefined && selects(svc.selector, pod.labels);
    if (!bySelector && svcSlices.length === 0) continue;
    seen.add(key);
    const ports: istio.workload.Port.$Properties[] = [];
    for (const p of svc.ports) {
      let target: number | undefined;
      if (typeof p.targetPort === 'number') target = p.targetPort;
      else {
        target = containerPortByName(pod, p.targetPort);
        for (const s of svcSlices) {
          if (target !== undefined) break;
          target = s.ports.find((sp) => sp.name === p.name && sp.protocol === p.protocol)?.port;
        }
      }
      // Not exposed by this pod: leave the port out rather than guess (istiod does the same).
      if (target !== undefined) ports.push({ servicePort: p.port, targetPort: target });
    }
    entries.push([key, { ports }]);
  }
  entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return Object.fromEntries(entries);
}

function locality(node: NodeRecord | undefined): istio.workload.Locality.$Properties | undefined {
  if (node === undefined) return undefined;
  const region = node.labels['topology.kubernetes.io/region'] ?? '';
  const zone = node.labels['topology.kubernetes.io/zone'] ?? '';
  const subzone = node.labels['topology.istio.io/subzone'] ?? '';
  return region === '' && zone === '' && subzone === '' ? undefined : { region, zone, subzone };
}

function selectorPolicyKeys(pod: PodRecord, policies: Iterable<AuthorizationPolicyRecord>, opts: ModelOptions): string[] {
  const keys: string[] = [];
  for (const p of policies) {
    if (p.selector === undefined) continue;
    if (p.namespace !== pod.namespace && p.namespace !== opts.rootNamespace) continue;
    if (!selects(p.selector, pod.labels) || !isSentToZtunnel(p, opts)) continue;
    keys.push(policyResourceName(p.namespace, p.name));
  }
  return keys.sort();
}

/** The WDS Workload for a pod, or undefined for a pod that is not a workload (terminal). */
export function buildWorkload(inputs: WorkloadInputs, opts: ModelOptions): IWorkload | undefined {
  const { pod } = inputs;
  if (pod.phase === 'Succeeded' || pod.phase === 'Failed') return undefined;
  const enrolled = ambientEnrollment(pod, inputs.namespace, opts.systemNamespace).enrolled;
  const nativeTunnel = (pod.labels[TUNNEL_LABEL] ?? '').split(',').includes('http');
  const hbone = enrolled || nativeTunnel || pod.annotations[REDIRECTION_ANNOTATION] === 'enabled';
  const slices: EndpointSliceRecord[] = [];
  for (const s of inputs.endpointSlices) {
    if (s.addressType !== 'FQDN' && s.serviceName !== undefined && referencesPod(s, pod)) slices.push(s);
  }
  const pa = workloadPeerAuthentication(pod.labels, pod.namespace, inputs.peerAuthentications, opts.rootNamespace);
  const { name: workloadName, type: workloadType } = workloadIdentity(pod);
  const canonical = canonicalService(pod.labels, workloadName);
  const addresses: Uint8Array[] = [];
  for (const ip of pod.podIPs) {
    const b = parseIp(ip);
    if (b !== undefined) addresses.push(b);
  }
  const loc = locality(inputs.node);
  return {
    uid: workloadUid(opts.clusterId, pod.namespace, pod.name),
    name: pod.name,
    namespace: pod.namespace,
    addresses,
    network: opts.network,
    tunnelProtocol: hbone ? istio.workload.TunnelProtocol.HBONE : istio.workload.TunnelProtocol.NONE,
    // istiod leaves ztunnel's default trust domain implicit.
    trustDomain: opts.trustDomain === 'cluster.local' ? '' : opts.trustDomain,
    serviceAccount: pod.serviceAccount,
    node: pod.nodeName,
    canonicalName: canonical.name,
    canonicalRevision: canonical.revision,
    workloadType,
    workloadName,
    nativeTunnel,
    services: servicePorts(pod, inputs.services, slices, opts.clusterDomain),
    authorizationPolicies: [...selectorPolicyKeys(pod, inputs.authorizationPolicies, opts), ...pa.policyKeys],
    status: pod.ready && !pod.deleting ? istio.workload.WorkloadStatus.HEALTHY : istio.workload.WorkloadStatus.UNHEALTHY,
    clusterId: opts.clusterId,
    ...(loc !== undefined ? { locality: loc } : {}),
    networkMode: pod.hostNetwork ? istio.workload.NetworkMode.HOST_NETWORK : istio.workload.NetworkMode.STANDARD,
  };
}
