/**
 * `meshctl ztunnel-config workloads|services|policies|certificates|all`: what a ztunnel knows, from its
 * /config_dump, as tables in istioctl's shape or as JSON (`-o json`).
 */
import { adminGet, type AdminTarget } from './admin-client.js';
import { renderTable } from './table.js';

interface DumpWorkload {
  uid: string;
  name: string;
  namespace: string;
  workloadIps: string[];
  node: string;
  protocol: string;
  serviceAccount: string;
  services: Record<string, unknown>;
  status: string;
  waypoint?: { destination: { kind: string; address?: string; hostname?: string; namespace?: string } };
}
interface DumpService {
  name: string;
  namespace: string;
  hostname: string;
  vips: { network: string; address: string }[];
  waypoint?: { destination: { kind: string; address?: string; hostname?: string } };
}
interface DumpPolicy {
  name: string;
  namespace: string;
  action: string;
  scope: string;
}
interface DumpCert {
  identity: string;
  state: string;
  certChain: { serialNumber: string; validFrom: string; expirationTime: string }[];
  rootCerts: { serialNumber: string; validFrom: string; expirationTime: string }[];
}
interface ConfigDump {
  workloads: DumpWorkload[];
  services: DumpService[];
  policies: DumpPolicy[];
  certificates: DumpCert[];
}

export const ZTUNNEL_CONFIG_KINDS = ['workloads', 'services', 'policies', 'certificates', 'all'] as const;
export type ZtunnelConfigKind = (typeof ZTUNNEL_CONFIG_KINDS)[number];

const waypointOf = (w?: DumpWorkload['waypoint'] | DumpService['waypoint']): string => {
  if (!w) return 'None';
  const d = w.destination;
  return d.kind === 'hostname' ? `${d.hostname ?? ''}` : `${d.address ?? ''}`;
};

export function renderConfig(kind: Exclude<ZtunnelConfigKind, 'all'>, dump: ConfigDump): string {
  switch (kind) {
    case 'workloads':
      return renderTable(
        ['NAMESPACE', 'POD NAME', 'ADDRESS', 'NODE', 'WAYPOINT', 'PROTOCOL'],
        dump.workloads.map((w) => [w.namespace, w.name, w.workloadIps.join(','), w.node || 'None', waypointOf(w.waypoint), w.protocol]),
      );
    case 'services':
      return renderTable(
        ['NAMESPACE', 'SERVICE NAME', 'SERVICE VIP', 'WAYPOINT', 'ENDPOINTS'],
        dump.services.map((s) => {
          const eps = dump.workloads.filter((w) => Object.hasOwn(w.services, `${s.namespace}/${s.hostname}`));
          const healthy = eps.filter((w) => w.status !== 'Unhealthy').length;
          return [s.namespace, s.name, s.vips.map((v) => v.address).join(','), waypointOf(s.waypoint), `${healthy}/${eps.length}`];
        }),
      );
    case 'policies':
      return renderTable(
        ['NAMESPACE', 'POLICY NAME', 'ACTION', 'SCOPE'],
        dump.policies.map((p) => [p.namespace, p.name, p.action, p.scope]),
      );
    case 'certificates':
      return renderTable(
        ['CERTIFICATE NAME', 'TYPE', 'STATUS', 'VALID CERT', 'SERIAL NUMBER', 'NOT AFTER', 'NOT BEFORE'],
        dump.certificates.flatMap((c) => [
          ...c.certChain.map((x, i) => [
            c.identity,
            i === 0 ? 'Leaf' : 'Intermediate',
            c.state,
            String(c.state === 'Available'),
            x.serialNumber,
            x.expirationTime,
            x.validFrom,
          ]),
          ...c.rootCerts.map((x) => [
            c.identity,
            'Root',
            c.state,
            String(c.state === 'Available'),
            x.serialNumber,
            x.expirationTime,
            x.validFrom,
          ]),
          ...(c.certChain.length === 0 ? [[c.identity, 'Leaf', c.state, 'false', '', '', '']] : []),
        ]),
      );
  }
}

export async function ztunnelConfig(target: AdminTarget, kind: ZtunnelConfigKind, output: 'table' | 'json'): Promise<string> {
  const res = await adminGet(target, '/config_dump');
  if (res.status !== 200) throw new Error(`ztunnel answered ${res.status} on /config_dump: ${res.body.slice(0, 200)}`);
  const dump = JSON.parse(res.body) as ConfigDump;
  if (output === 'json') return `${JSON.stringify(kind === 'all' ? dump : dump[kind], null, 2)}\n`;
  if (kind === 'all')
    return (['workloads', 'services', 'policies', 'certificates'] as const)
      .map((k) => `${k.toUpperCase()}\n${renderConfig(k, dump)}`)
      .join('\n');
  return renderConfig(kind, dump);
}
