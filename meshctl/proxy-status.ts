/**
 * `meshctl proxy-status`: every proxy connected to a controller and, per resource type, whether it has what the
 * controller last sent (SYNCED), not yet acknowledged (STALE), never sent (NOT SENT) or rejected (ERROR) — from
 * the controller's /debug/syncz, as istioctl proxy-status reads istiod's.
 */
import { adminGet, type AdminTarget } from './admin-client.js';
import { renderTable } from './table.js';

interface TypeStatus {
  typeUrl: string;
  status: string;
  lastError?: string;
  resources: number;
}
interface ProxyStatus {
  proxy: string;
  type: string;
  clusterId: string;
  nodeName?: string;
  types: TypeStatus[];
}

const SHORT: Record<string, string> = {
  'type.googleapis.com/istio.workload.Address': 'ADDRESS',
  'type.googleapis.com/istio.security.Authorization': 'AUTHORIZATION',
  'type.googleapis.com/envoy.config.cluster.v3.Cluster': 'CDS',
  'type.googleapis.com/envoy.config.listener.v3.Listener': 'LDS',
  'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment': 'EDS',
  'type.googleapis.com/envoy.config.route.v3.RouteConfiguration': 'RDS',
};

export async function proxyStatus(target: AdminTarget, controllerName: string, output: 'table' | 'json'): Promise<string> {
  const res = await adminGet(target, '/debug/syncz');
  if (res.status !== 200) throw new Error(`controller answered ${res.status} on /debug/syncz`);
  const proxies = JSON.parse(res.body) as ProxyStatus[];
  if (output === 'json') return `${JSON.stringify(proxies, null, 2)}\n`;
  const columns = [...new Set(proxies.flatMap((p) => p.types.map((t) => t.typeUrl)))].sort();
  const headers = [
    'NAME',
    'CLUSTER',
    'NODE',
    'TYPE',
    ...columns.map((c) => SHORT[c] ?? c.slice(c.lastIndexOf('.') + 1).toUpperCase()),
    'CONTROLLER',
  ];
  const rows = proxies
    .sort((a, b) => a.proxy.localeCompare(b.proxy))
    .map((p) => [
      p.proxy,
      p.clusterId,
      p.nodeName ?? '',
      p.type,
      ...columns.map((c) => {
        const t = p.types.find((x) => x.typeUrl === c);
        if (!t) return 'IGNORED';
        return t.status === 'SYNCED' ? `SYNCED (${t.resources})` : t.status;
      }),
      controllerName,
    ]);
  return renderTable(headers, rows);
}
