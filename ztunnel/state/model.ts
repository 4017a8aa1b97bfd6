/**
 * ztunnel's view of the mesh as plain, readonly domain records. Everything that arrives from outside (the
 * local config YAML, WDS protobufs from the controller) is converted into these at the edge and validated
 * there; the proxy, the policy engine and /config_dump only ever see these.
 *
 * Field names follow ztunnel's own JSON (camelCase, as in its local-config schema and /config_dump), so a
 * config dump from our ztunnel and from Istio's read alike.
 */
import type { Cidr } from '../../lib/net/ip.js';

/** An IP on a network. Workloads and VIPs are looked up by (network, ip); "" is the default network. */
export interface NetworkAddress {
  readonly network: string;
  readonly address: string;
}

/** Where a waypoint or network gateway is: a workload/VIP address, or a service hostname. */
export type GatewayDestination =
  | { readonly kind: 'address'; readonly network: string; readonly address: string }
  | { readonly kind: 'hostname'; readonly namespace: string; readonly hostname: string };

export interface GatewayAddress {
  readonly destination: GatewayDestination;
  /** HBONE port of the gateway, normally 15008. */
  readonly hboneMtlsPort: number;
}

export type TunnelProtocol = 'TCP' | 'HBONE';
export type WorkloadType = 'deployment' | 'cronjob' | 'pod' | 'job';
export type HealthStatus = 'Healthy' | 'Unhealthy';

export interface Locality {
  readonly region: string;
  readonly zone: string;
  readonly subzone: string;
}

/** servicePort → targetPort. */
export type PortMap = Readonly<Record<number, number>>;

export interface Workload {
  /** Resource name, e.g. "Kubernetes//Pod/default/sleep-abc". */
  readonly uid: string;
  readonly name: string;
  readonly namespace: string;
  readonly workloadIps: readonly string[];
  readonly hostname: string;
  readonly network: string;
  /** HBONE: in the mesh, reached through port 15008. TCP: plain TCP, not captured. */
  readonly protocol: TunnelProtocol;
  /** Defaulted to "cluster.local" at the edge. */
  readonly trustDomain: string;
  /** Defaulted to "default" at the edge. */
  readonly serviceAccount: string;
  readonly waypoint: GatewayAddress | undefined;
  readonly networkGateway: GatewayAddress | undefined;
  readonly node: string;
  readonly canonicalName: string;
  readonly canonicalRevision: string;
  readonly workloadType: WorkloadType;
  readonly workloadName: string;
  readonly nativeTunnel: boolean;
  readonly applicationTunnel: { readonly protocol: 'NONE' | 'PROXY'; readonly port: number | undefined } | undefined;
  /** "<namespace>/<hostname>" of each service this workload backs → its per-workload port map. */
  readonly services: Readonly<Record<string, PortMap>>;
  /** "<namespace>/<name>" of selector-scoped policies that apply to this workload. */
  readonly authorizationPolicies: readonly string[];
  readonly status: HealthStatus;
  readonly clusterId: string;
  readonly locality: Locality | undefined;
  readonly networkMode: 'Standard' | 'HostNetwork';
  /** Load-balancing weight; 1 when unset. */
  readonly capacity: number;
}

export type LoadBalancerScope = 'Region' | 'Zone' | 'Subzone' | 'Node' | 'Cluster' | 'Network';

export interface LoadBalancer {
  readonly routingPreferences: readonly LoadBalancerScope[];
  readonly mode: 'Standard' | 'Strict' | 'Failover' | 'Passthrough';
  readonly healthPolicy: 'OnlyHealthy' | 'AllowAll';
}

export interface Service {
  readonly name: string;
  readonly namespace: string;
  /** Fully qualified, e.g. "echo.default.svc.cluster.local". Key: "<namespace>/<hostname>". */
  readonly hostname: string;
  readonly vips: readonly NetworkAddress[];
  /** servicePort → targetPort (0 = "use the endpoint's own mapping"). */
  readonly ports: PortMap;
  readonly subjectAltNames: readonly string[];
  readonly waypoint: GatewayAddress | undefined;
  readonly loadBalancer: LoadBalancer | undefined;
  readonly ipFamilies: 'Automatic' | 'IPv4' | 'IPv6' | 'Dual';
  readonly canonical: boolean;
  readonly visibility: 'Public' | 'Namespace';
  /**
   * VIP ranges (WDS NetworkAddress with a length; local config `cidrVips`): a destination inside one is this
   * service when no exact VIP matches. Absent = none.
   */
  readonly cidrVips?: readonly NetworkCidr[];
  /** When non-empty, one waypoint is sampled per connection by weight instead of `waypoint` (canary shifts). */
  readonly weightedWaypoints?: readonly WeightedWaypoint[];
}

export interface NetworkCidr {
  readonly network: string;
  readonly cidr: Cidr;
}

export interface WeightedWaypoint {
  readonly destination: GatewayAddress;
  readonly weight: number;
}

/** L4 AuthorizationPolicy (istio.security.Authorization), as ztunnel enforces it. */
export type StringMatch =
  | { readonly kind: 'exact'; readonly value: string }
  | { readonly kind: 'prefix'; readonly value: string }
  | { readonly kind: 'suffix'; readonly value: string }
  | { readonly kind: 'presence' };

export interface ServiceAccountMatch {
  readonly namespace: string;
  readonly serviceAccount: string;
}

export type { Cidr };

/** Every populated field must match (values of one field are OR-ed); no not_* value may match. */
export interface RbacMatch {
  readonly namespaces: readonly StringMatch[];
  readonly notNamespaces: readonly StringMatch[];
  readonly serviceAccounts: readonly ServiceAccountMatch[];
  readonly notServiceAccounts: readonly ServiceAccountMatch[];
  readonly principals: readonly StringMatch[];
  readonly notPrincipals: readonly StringMatch[];
  readonly sourceIps: readonly Cidr[];
  readonly notSourceIps: readonly Cidr[];
  readonly destinationIps: readonly Cidr[];
  readonly notDestinationIps: readonly Cidr[];
  readonly destinationPorts: readonly number[];
  readonly notDestinationPorts: readonly number[];
}

export type PolicyScope = 'Global' | 'Namespace' | 'WorkloadSelector';
export type PolicyAction = 'Allow' | 'Deny';

export interface Authorization {
  readonly name: string;
  readonly namespace: string;
  readonly scope: PolicyScope;
  readonly action: PolicyAction;
  readonly dryRun: boolean;
  /** rules (OR) → clauses (AND) → matches (OR). */
  readonly rules: readonly (readonly (readonly RbacMatch[])[])[];
}

export const workloadKey = (w: Pick<Workload, 'uid'>): string => w.uid;
export const serviceKey = (s: Pick<Service, 'namespace' | 'hostname'>): string => `${s.namespace}/${s.hostname}`;
export const policyKey = (p: Pick<Authorization, 'namespace' | 'name'>): string => `${p.namespace}/${p.name}`;

/** The whole state at once: a local config file, or a full reload. */
export interface StateSnapshot {
  readonly workloads: readonly Workload[];
  readonly services: readonly Service[];
  readonly policies: readonly Authorization[];
}

/** Defaults applied at the edges (local config, WDS) when a workload leaves a field empty, as ztunnel does. */
export const DEFAULT_SERVICE_ACCOUNT = 'default';
export const DEFAULT_CLUSTER_ID = 'Kubernetes';

/** A change to the state: what to add or replace, and what to remove, by key. */
export interface StateDelta {
  readonly workloads?: readonly Workload[];
  readonly services?: readonly Service[];
  readonly policies?: readonly Authorization[];
  readonly removedWorkloads?: readonly string[];
  readonly removedServices?: readonly string[];
  readonly removedPolicies?: readonly string[];
}

/** An RbacMatch with every field empty, to spread the populated ones into. */
export const EMPTY_RBAC_MATCH: RbacMatch = Object.freeze({
  namespaces: [],
  notNamespaces: [],
  serviceAccounts: [],
  notServiceAccounts: [],
  principals: [],
  notPrincipals: [],
  sourceIps: [],
  notSourceIps: [],
  destinationIps: [],
  notDestinationIps: [],
  destinationPorts: [],
  notDestinationPorts: [],
});

/**
 * A workload with every field at the default the edges apply (WDS and the local config: HBONE, trust domain
 * cluster.local, service account "default", capacity 1, healthy, ...); the given fields win.
 */
export function workloadWithDefaults(over: Partial<Workload> & Pick<Workload, 'name' | 'namespace'>): Workload {
  return {
    uid: `${DEFAULT_CLUSTER_ID}//Pod/${over.namespace}/${over.name}`,
    workloadIps: [],
    hostname: '',
    network: '',
    protocol: 'HBONE',
    trustDomain: 'cluster.local',
    serviceAccount: DEFAULT_SERVICE_ACCOUNT,
    waypoint: undefined,
    networkGateway: undefined,
    node: '',
    canonicalName: over.name,
    canonicalRevision: 'latest',
    workloadType: 'deployment',
    workloadName: over.name,
    nativeTunnel: false,
    applicationTunnel: undefined,
    services: {},
    authorizationPolicies: [],
    status: 'Healthy',
    clusterId: DEFAULT_CLUSTER_ID,
    locality: undefined,
    networkMode: 'Standard',
    capacity: 1,
    ...over,
  };
}
