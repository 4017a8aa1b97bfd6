/** Builders of ztunnel domain records for tests: every field defaulted as the edges default it. */
import { EMPTY_RBAC_MATCH, workloadWithDefaults, type Authorization, type RbacMatch, type Service, type Workload } from '../../ztunnel/state/model.js';

export function workload(over: Partial<Workload> & { readonly name: string }): Workload {
  return workloadWithDefaults({ namespace: 'default', node: 'node-1', workloadType: 'pod', ...over });
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
  return { ...EMPTY_RBAC_MATCH, ...over };
}

export function policy(over: Partial<Authorization> & { readonly name: string }): Authorization {
  return { namespace: 'default', scope: 'Namespace', action: 'Allow', dryRun: false, rules: [], ...over };
}
