/**
 * Kubernetes Service → istio.workload.Service (the Service arm of a WDS Address), as istiod builds it
 * (pilot/pkg/serviceregistry/ambient/services.go `constructService`).
 *
 * Resource name `<namespace>/<hostname>`. VIPs are the cluster IPs; a headless service ("None") has none and is
 * still sent, so clients can resolve its endpoints by hostname. Ports carry the numeric targetPort, or 0 for a
 * named one: ztunnel then takes the per-workload mapping from Workload.services. ExternalName services are not
 * sent (istiod leaves them to DNS).
 */
import { istio } from '../../lib/proto/index.js';
import { parseIp } from '../../lib/net/ip.js';
import type { ServicePortRecord, ServiceRecord } from '../kube/records.js';
import type { ModelOptions } from './options.js';

export const serviceHostname = (name: string, namespace: string, clusterDomain: string): string =>
  `${name}.${namespace}.svc.${clusterDomain}`;

/** WDS resource name of a service and key of Workload.services. */
export const serviceResourceName = (namespace: string, hostname: string): string => `${namespace}/${hostname}`;

// The port-name protocol prefixes Istio recognises (pkg/config/protocol Parse) that have a WDS AppProtocol.
const APP_PROTOCOLS: Readonly<Record<string, istio.workload.AppProtocol>> = {
  tcp: istio.workload.AppProtocol.TCP,
  http: istio.workload.AppProtocol.HTTP11,
  http2: istio.workload.AppProtocol.HTTP2,
  grpc: istio.workload.AppProtocol.GRPC,
  https: istio.workload.AppProtocol.TLS,
  tls: istio.workload.AppProtocol.TLS,
};
// Ports Istio treats as TCP when nothing names their protocol (SMTP, DNS, MySQL, MongoDB).
const WELL_KNOWN_TCP_PORTS = new Set([25, 53, 3306, 27017]);

/**
 * Istio's protocol selection for a Service port (pkg/config/kube ConvertProtocol): UDP is never an app protocol;
 * appProtocol wins over the port name (with the kubernetes.io/h2c|ws|wss names); the name counts up to its
 * first '-' ("http-web" is HTTP).
 */
export function appProtocolOf(p: Pick<ServicePortRecord, 'name' | 'port' | 'protocol' | 'appProtocol'>): istio.workload.AppProtocol {
  if (p.protocol === 'UDP') return istio.workload.AppProtocol.UNKNOWN;
  let name = p.name;
  if (p.appProtocol !== undefined) {
    if (p.appProtocol === 'kubernetes.io/h2c') return istio.workload.AppProtocol.HTTP2;
    if (p.appProtocol === 'kubernetes.io/ws') return istio.workload.AppProtocol.HTTP11;
    if (p.appProtocol === 'kubernetes.io/wss') return istio.workload.AppProtocol.TLS;
    name = p.appProtocol;
  }
  // "grpc-web" is a protocol of its own (no WDS AppProtocol); it must be recognised before the '-' split.
  if (name.toLowerCase().startsWith('grpc-web')) return istio.workload.AppProtocol.UNKNOWN;
  const dash = name.indexOf('-');
  const prefix = (dash >= 0 ? name.slice(0, dash) : name).toLowerCase();
  const known = APP_PROTOCOLS[prefix];
  if (known !== undefined) return known;
  // Only a port whose protocol Istio cannot parse at all falls back to TCP on the well-known ports.
  if (OTHER_PROTOCOLS.has(prefix)) return istio.workload.AppProtocol.UNKNOWN;
  return WELL_KNOWN_TCP_PORTS.has(p.port) ? istio.workload.AppProtocol.TCP : istio.workload.AppProtocol.UNKNOWN;
}

// Protocols Istio parses but WDS has no AppProtocol for.
const OTHER_PROTOCOLS = new Set(['udp', 'http_proxy', 'mongo', 'redis', 'mysql']);

const LB = istio.workload.LoadBalancing;

/** Locality-aware routing as istiod derives it (internalTrafficPolicy, trafficDistribution, its annotation). */
function loadBalancing(svc: ServiceRecord): istio.workload.LoadBalancing.$Properties | undefined {
  let lb: istio.workload.LoadBalancing.$Properties | undefined;
  if (svc.internalTrafficPolicy === 'Local') {
    lb = { routingPreference: [LB.Scope.NODE], mode: LB.Mode.STRICT };
  } else {
    const td = svc.trafficDistribution ?? svc.annotations['networking.istio.io/traffic-distribution'];
    const v = td?.toLowerCase();
    if (v === 'preferclose' || v === 'prefersamezone') {
      lb = { routingPreference: [LB.Scope.NETWORK, LB.Scope.REGION, LB.Scope.ZONE], mode: LB.Mode.FAILOVER };
    } else if (v === 'prefersamenode') {
      lb = {
        routingPreference: [LB.Scope.NETWORK, LB.Scope.REGION, LB.Scope.ZONE, LB.Scope.SUBZONE, LB.Scope.NODE],
        mode: LB.Mode.FAILOVER,
      };
    }
  }
  if (svc.publishNotReadyAddresses) lb = { ...(lb ?? {}), healthPolicy: LB.HealthPolicy.ALLOW_ALL };
  return lb;
}

function ipFamilies(svc: ServiceRecord): istio.workload.IPFamilies {
  if (svc.ipFamilies.length === 2) return istio.workload.IPFamilies.DUAL;
  if (svc.ipFamilies.length === 1)
    return svc.ipFamilies[0] === 'IPv4' ? istio.workload.IPFamilies.IPV4_ONLY : istio.workload.IPFamilies.IPV6_ONLY;
  return istio.workload.IPFamilies.AUTOMATIC;
}

/** The WDS Service for a Kubernetes Service, or undefined for ExternalName services (not sent). */
export function buildService(
  svc: ServiceRecord,
  opts: Pick<ModelOptions, 'clusterDomain' | 'network'>,
): istio.workload.Service.$Properties | undefined {
  if (svc.type === 'ExternalName') return undefined;
  const addresses: istio.workload.NetworkAddress.$Properties[] = [];
  for (const cip of svc.clusterIPs) {
    const bytes = cip === 'None' ? undefined : parseIp(cip);
    if (bytes !== undefined) addresses.push({ network: opts.network, address: bytes });
  }
  const lb = loadBalancing(svc);
  return {
    name: svc.name,
    namespace: svc.namespace,
    hostname: serviceHostname(svc.name, svc.namespace, opts.clusterDomain),
    addresses,
    ports: svc.ports.map((p) => ({
      servicePort: p.port,
      targetPort: typeof p.targetPort === 'number' ? p.targetPort : 0,
      appProtocol: appProtocolOf(p),
    })),
    // Kubernetes services carry no extra identities; ServiceEntry's subjectAltNames would go here.
    subjectAltNames: [],
    ...(lb !== undefined ? { loadBalancing: lb } : {}),
    ipFamilies: ipFamilies(svc),
    // A Kubernetes Service owns its hostname; overrides must be namespace-local (istiod sets this for every one).
    canonical: true,
  };
}
