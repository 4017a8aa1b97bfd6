/** Builders of ztunnel domain records for tests: every field defaulted as the edges default it. */
import type { Authorization, RbacMatch, Service, Workload } from '../../ztunnel/state/model.js';

export function workload(over: Partial<Workload> & { readonly name: string }): Workload {
  const namespace = over.namespace ?? 'default';
  return {
    uid: `Kubernetes//Pod/${namespace}/${over.name}`,
    namespace,
    workloadIps: [],
    hostname: '',
    network: '',
    protocol: 'HBONE',
    trustDomain: 'cluster.local',
    serviceAccount: 'default',
    waypoint: undefined,
    networkGateway: undefined,
    node: 'node-1',
    canonicalName: over.name,
    canonicalRevision: 'latest',
    workloadType: 'pod',
    workloadName: over.name,
    nativeTunnel: false,
    applicationTunnel: undefined,
    services: {},
    authorizationPolicies: [],
    status: 'Healthy',
    clusterId: 'Kubernetes',
    locality: undefined,
    networkMode: 'Standard',
    capacity: 1,
    ...over,
  };
}

export function service(over: Partial<Service> & { readonly name: string }): Service {
  const namespace = over.namespace ?? 'default';
  return {
    namespace,
    hostname: `${over.name}.${namespace}.svc.cluster.local`,
    vips: [],
    ports: {},
    subjectAltNames: [],
    waypoint: undefined,
    loadBalancer: undefined,
    ipFamilies: 'Automatic',
    canonical: true,
    visibility: 'Public',
    ...over,
  };
}

export function match(over: Partial<RbacMatch>): RbacMatch {
  return {
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
    ...over,
  };
}

export function policy(over: Partial<Authorization> & { readonly name: string }): Authorization {
  return { namespace: 'default', scope: 'Namespace', action: 'Allow', dryRun: false, rules: [], ...over };
}
