/**
 * Routing decisions, pure (no sockets): where an outbound connection goes (ztunnel src/proxy/outbound.rs
 * `build_request`, src/state.rs `find_upstream`/`load_balance`/`fetch_waypoint`) and
 * what an inbound CONNECT resolves to (src/proxy/inbound.rs `validate_destination`/`find_inbound_upstream`, §1.3).
 *
 * Not implemented, and rejected with a code instead: double HBONE through an east-west gateway (destinations on
 * another network) and on-demand DNS for hostname-only workloads.
 */
import { formatAuthority, type HboneTarget } from '../../lib/hbone/authority.js';
import { sameIdentity, tryParseSpiffeId, type Identity } from '../../lib/identity/spiffe.js';
import { ILLEGAL_PORTS, INBOUND_HBONE_PORT } from '../config/ports.js';
import { canonicalIp, ipFamily, isLoopback } from '../../lib/net/ip.js';
import { serviceKey, type GatewayAddress, type LoadBalancer, type Service, type Workload } from '../state/model.js';
import type { WorkloadStore } from '../state/store.js';

export const RouteRejectCode = {
  /** The destination is one of ztunnel's own ports on loopback: forwarding would loop. */
  SELF_CALL: 'SELF_CALL',
  /** A known service (not Passthrough) has no endpoint that is healthy and serves the port. */
  NO_HEALTHY_UPSTREAM: 'NO_HEALTHY_UPSTREAM',
  /** The destination's waypoint is not known, or has no usable endpoint. */
  UNKNOWN_WAYPOINT: 'UNKNOWN_WAYPOINT',
  /** The chosen workload has no address of a usable family. */
  NO_VALID_DESTINATION: 'NO_VALID_DESTINATION',
  /** The destination (or its waypoint) is on another network; double HBONE is not implemented. */
  CROSS_NETWORK_UNSUPPORTED: 'CROSS_NETWORK_UNSUPPORTED',
  /** The original destination is not an IP address. */
  INVALID_DESTINATION: 'INVALID_DESTINATION',
} as const;
export type OutboundRejectCode = (typeof RouteRejectCode)[keyof typeof RouteRejectCode];

export const InboundRejectCode = {
  /** 400: an IP authority that is not this pod, and this pod is neither its waypoint nor an app tunnel. */
  IP_MISMATCH: 'IP_MISMATCH',
  /** 503: a hostname authority that names no known service. */
  UNKNOWN_SERVICE: 'UNKNOWN_SERVICE',
  /** 503: the service has no target port for the requested service port on this pod. */
  NO_PORT_FOR_SERVICE: 'NO_PORT_FOR_SERVICE',
  /** 503: the resolved port is one of ztunnel's own. */
  SELF_CALL: 'SELF_CALL',
  /** 503: a PROXY-protocol app tunnel needs a service VIP to name, and the service has none here. */
  NO_IP_FOR_SERVICE: 'NO_IP_FOR_SERVICE',
} as const;
export type InboundRejectCode = (typeof InboundRejectCode)[keyof typeof InboundRejectCode];

export type OutboundRoute =
  | {
      readonly kind: 'hbone';
      /** Where the TLS connection goes: `<pod IP>:15008`, or `<waypoint IP>:<hboneMtlsPort>`. */
      readonly address: string;
      readonly port: number;
      /** CONNECT :authority: `<pod IP>:<target port>` direct, the original `<VIP>:<port>` via a waypoint. */
      readonly authority: string;
      /** The server's certificate must carry one of these. */
      readonly expectedIdentities: readonly Identity[];
      /** The workload the tunnel ends at (the waypoint's, when via a waypoint). */
      readonly destination: Workload;
      /** The service the app addressed, if it addressed one. */
      readonly service: Service | undefined;
      readonly targetPort: number;
      readonly viaWaypoint: boolean;
    }
  | {
      readonly kind: 'tcp';
      readonly address: string;
      readonly port: number;
      readonly destination: Workload;
      readonly service: Service | undefined;
    }
  | { readonly kind: 'passthrough'; readonly address: string; readonly port: number; readonly service?: Service }
  | { readonly kind: 'reject'; readonly code: OutboundRejectCode; readonly reason: string };

type Reject = Extract<OutboundRoute, { kind: 'reject' }>;
const reject = (code: OutboundRejectCode, reason: string): Reject => ({ kind: 'reject', code, reason });

export interface InboundTunnel {
  /** The app's own tunnel protocol (Workload.applicationTunnel); PROXY = write a PROXY v2 header first. */
  readonly protocol: 'NONE' | 'PROXY';
  /** The destination to announce in the PROXY header: the authority's address, or the service VIP. */
  readonly target: { readonly address: string; readonly port: number };
}

export type InboundResolution =
  | {
      readonly kind: 'ok';
      /** Always the local pod IP (the address the connection arrived on). */
      readonly address: string;
      /** Port to connect to on the pod; also the port authorization matches (ztunnel checks the upstream address). */
      readonly port: number;
      /** The service the client addressed, or the best guess for telemetry when it dialled the pod IP. */
      readonly service?: Service;
      readonly tunnel?: InboundTunnel;
    }
  | { readonly kind: 'reject'; readonly status: 400 | 503; readonly code: InboundRejectCode; readonly reason: string };

// --- identities ----------------------------------------------------------------------------------------------

const identities = new WeakMap<Workload, Identity>();

/** The SPIFFE identity a workload's certificate carries (trust domain / namespace / service account). */
export function identityOf(w: Workload): Identity {
  let id = identities.get(w);
  if (!id) {
    id = Object.freeze({ trustDomain: w.trustDomain, namespace: w.namespace, serviceAccount: w.serviceAccount });
    identities.set(w, id);
  }
  return id;
}

/** Reached through HBONE: captured by a ztunnel, or speaks HBONE itself (a waypoint). */
export function isInMesh(w: Workload): boolean {
  return w.protocol === 'HBONE' || w.nativeTunnel;
}

const sans = new WeakMap<Service, readonly Identity[]>();

/** Service-level SANs as identities; ones that are not ns/sa SPIFFE IDs are ignored, as ztunnel does. */
function serviceSans(s: Service | undefined): readonly Identity[] {
  if (!s) return [];
  let ids = sans.get(s);
  if (!ids) {
    ids = s.subjectAltNames.map(tryParseSpiffeId).filter((x): x is Identity => x !== undefined);
    sans.set(s, ids);
  }
  return ids;
}

function expected(w: Workload, s: Service | undefined): readonly Identity[] {
  const out: Identity[] = [identityOf(w)];
  for (const id of serviceSans(s)) if (!out.some((o) => sameIdentity(o, id))) out.push(id);
  return out;
}

// --- load balancing ------------------------------------------------------------------------------------------

/** Weighted random choice; zero weights are never chosen; undefined when nothing has weight. */
export function pickWeighted<T>(items: readonly T[], weight: (t: T) => number, random: () => number): T | undefined {
  let total = 0;
  for (const it of items) total += Math.max(0, weight(it));
  if (total <= 0) return undefined;
  let r = random() * total;
  let last: T | undefined;
  for (const it of items) {
    const w = Math.max(0, weight(it));
    if (w === 0) continue;
    if (r < w) return it;
    r -= w;
    last = it;
  }
  return last; // only reached when random() returned 1 or rounding left r >= the last weight
}

const NO_LOCALITY = { region: '', zone: '', subzone: '' } as const;

/**
 * STRICT / FAILOVER: rank endpoints by how many routing preferences match the source, in order, and keep the
 * best rank; STRICT drops endpoints that do not match them all (state.rs `load_balance`).
 */
function byLocality(source: Workload, lb: LoadBalancer, candidates: readonly Workload[]): Workload[] {
  const prefs = lb.routingPreferences;
  const networkFirst = prefs[0] === 'Network';
  const src = source.locality ?? NO_LOCALITY;
  const ranked: Array<[number, Workload]> = [];
  for (const w of candidates) {
    const loc = w.locality ?? NO_LOCALITY;
    let rank = 0;
    let adjust = 0;
    for (const scope of prefs) {
      let matches: boolean;
      switch (scope) {
        case 'Region':
          matches = src.region === loc.region;
          break;
        case 'Zone':
          matches = src.zone === loc.zone;
          break;
        case 'Subzone':
          matches = src.subzone === loc.subzone;
          break;
        case 'Node':
          matches = source.node === w.node;
          break;
        case 'Cluster':
          matches = source.clusterId === w.clusterId;
          break;
        case 'Network':
          matches = source.network === w.network;
          // Network listed first: a same-network endpoint outranks any other, whatever else matches.
          if (networkFirst) {
            if (!matches) continue;
            adjust = prefs.length - 1;
          }
          break;
      }
      if (!matches) break;
      rank++;
    }
    if (lb.mode === 'Strict' && rank !== prefs.length) continue;
    ranked.push([rank + adjust, w]);
  }
  const max = ranked.reduce((m, [r]) => Math.max(m, r), -1);
  return ranked.filter(([r]) => r === max).map(([, w]) => w);
}

type Upstream = { readonly workload: Workload; readonly port: number };

/**
 * Picks an endpoint of `svc` for `svcPort`. 'service' mode: the port must be on the service, and a service
 * target port of 0 (a named port) needs the endpoint's own mapping. 'waypoint' mode (svcPort = the waypoint's
 * HBONE port): endpoints with an app tunnel are usable even when the service does not list the port.
 */
function loadBalance(
  store: WorkloadStore,
  source: Workload,
  svc: Service,
  svcPort: number,
  mode: 'service' | 'waypoint',
  random: () => number,
): Upstream | string {
  const key = serviceKey(svc);
  const svcTarget = svc.ports[svcPort];
  if (mode === 'service' && svcTarget === undefined) return `service ${key} has no port ${svcPort}`;
  const allowUnhealthy = svc.loadBalancer?.healthPolicy === 'AllowAll';
  let candidates: Workload[] = [];
  let elsewhere = 0;
  for (const w of store.endpoints(key)) {
    if (w.status !== 'Healthy' && !allowUnhealthy) continue;
    if (w.workloadIps.length === 0) continue; // hostname-only: needs on-demand DNS
    if (w.network !== source.network) {
      elsewhere++;
      continue;
    }
    if (mode === 'service') {
      if (!svcTarget && w.services[key]?.[svcPort] === undefined) continue;
    } else if (svcTarget === undefined && !w.applicationTunnel) continue;
    candidates.push(w);
  }
  const lb = svc.loadBalancer;
  if (lb && (lb.mode === 'Strict' || lb.mode === 'Failover')) candidates = byLocality(source, lb, candidates);
  const chosen = pickWeighted(candidates, (w) => w.capacity, random);
  if (!chosen) {
    if (elsewhere > 0) return `service ${key} has endpoints only on other networks (double HBONE is not supported)`;
    return `service ${key} has no healthy endpoint for port ${svcPort}`;
  }
  // Endpoint mapping > service target port > (app tunnel) the service port itself.
  const port =
    chosen.services[key]?.[svcPort] ?? (svcTarget ? svcTarget : chosen.applicationTunnel?.port !== undefined ? svcPort : undefined);
  if (port === undefined) return `service ${key} has no target port for ${svcPort} on ${chosen.uid}`;
  return { workload: chosen, port };
}

/** The original IP if it is the workload's; else one of the same family (within the service's families). */
function pickIp(w: Workload, original: string, families: Service['ipFamilies'] | undefined): string | undefined {
  const ips = w.workloadIps.map((ip) => canonicalIp(ip)).filter((ip): ip is string => ip !== undefined);
  if (ips.includes(original)) return original;
  const allowed = ips.filter((ip) => (families === 'IPv4' ? ipFamily(ip) === 4 : families === 'IPv6' ? ipFamily(ip) === 6 : true));
  const family = ipFamily(original);
  return allowed.find((ip) => ipFamily(ip) === family) ?? allowed[0];
}

// --- waypoints -----------------------------------------------------------------------------------------------

function describeGateway(gw: GatewayAddress): string {
  const d = gw.destination;
  return d.kind === 'address' ? `${d.network}/${d.address}` : `${d.namespace}/${d.hostname}`;
}

/** A service's waypoint: one sampled by weight when weighted waypoints are set, else `waypoint`. */
function serviceWaypoint(svc: Service, random: () => number): GatewayAddress | undefined {
  const weighted = svc.weightedWaypoints;
  if (weighted && weighted.length > 0) {
    const w = pickWeighted(weighted, (x) => x.weight, random);
    if (w) return w.destination;
  }
  return svc.waypoint;
}

/** The workloads a gateway address stands for (state.rs `find_destination`): one workload or a service's endpoints. */
function gatewayMembers(store: WorkloadStore, gw: GatewayAddress): readonly Workload[] {
  const d = gw.destination;
  if (d.kind === 'address') {
    const w = store.workloadByIp(d.network, d.address);
    if (w) return [w];
    const s = store.serviceByVip(d.network, d.address);
    return s ? store.endpoints(serviceKey(s)) : [];
  }
  const s = store.service(`${d.namespace}/${d.hostname}`);
  if (s) return store.endpoints(serviceKey(s));
  const w = store.workloadByHostname(d.namespace, d.hostname);
  return w ? [w] : [];
}

/**
 * Whether `source` is one of the workloads behind `gw` (proxy.rs `check_from_waypoint`: same identity and
 * address). A waypoint's own traffic to the workloads it serves must not be sent back to itself.
 */
function isMemberOf(store: WorkloadStore, gw: GatewayAddress, source: Workload): boolean {
  const srcId = identityOf(source);
  const srcIps = new Set(source.workloadIps.map((ip) => canonicalIp(ip)));
  return gatewayMembers(store, gw).some(
    (m) => m.uid === source.uid || (sameIdentity(identityOf(m), srcId) && m.workloadIps.some((ip) => srcIps.has(canonicalIp(ip)))),
  );
}

/**
 * HBONE to a waypoint (state.rs `fetch_waypoint`), keeping the original destination as the :authority. A waypoint
 * named by address is dialled at that address's workload (or the VIP's endpoints); one named by hostname is
 * load-balanced over its service, choosing the IP family of the original destination.
 */
function viaWaypoint(
  store: WorkloadStore,
  source: Workload,
  gw: GatewayAddress,
  original: { readonly ip: string; readonly port: number },
  service: Service | undefined,
  random: () => number,
): OutboundRoute {
  const d = gw.destination;
  const what = `waypoint ${describeGateway(gw)}`;
  let svc: Service | undefined;
  let up: Upstream | undefined;
  let ipHint = original.ip;
  if (d.kind === 'address') {
    ipHint = canonicalIp(d.address) ?? d.address;
    svc = store.serviceByVip(d.network, d.address, source.namespace);
    if (!svc) {
      const w = store.workloadByIp(d.network, d.address);
      if (w) up = { workload: w, port: gw.hboneMtlsPort };
    }
  } else {
    svc = store.service(`${d.namespace}/${d.hostname}`);
    if (!svc) {
      const w = store.workloadByHostname(d.namespace, d.hostname);
      if (w) up = { workload: w, port: gw.hboneMtlsPort };
    }
  }
  if (svc) {
    if (svc.loadBalancer?.mode === 'Passthrough') return reject(RouteRejectCode.UNKNOWN_WAYPOINT, `${what} is a passthrough service`);
    const lb = loadBalance(store, source, svc, gw.hboneMtlsPort, 'waypoint', random);
    if (typeof lb === 'string') return reject(RouteRejectCode.UNKNOWN_WAYPOINT, `${what}: ${lb}`);
    up = lb;
  }
  if (!up) return reject(RouteRejectCode.UNKNOWN_WAYPOINT, `${what} not found`);
  if (up.workload.network !== source.network) {
    return reject(
      RouteRejectCode.CROSS_NETWORK_UNSUPPORTED,
      `${what} is on network "${up.workload.network}"; double HBONE is not supported`,
    );
  }
  const address = pickIp(up.workload, ipHint, svc?.ipFamilies);
  if (address === undefined) return reject(RouteRejectCode.NO_VALID_DESTINATION, `${what} (${up.workload.uid}) has no usable address`);
  return {
    kind: 'hbone',
    address,
    port: up.port,
    authority: formatAuthority(original.ip, original.port),
    expectedIdentities: expected(up.workload, svc),
    destination: up.workload,
    service,
    targetPort: original.port,
    viaWaypoint: true,
  };
}

// --- outbound ------------------------------------------------------------------------------------------------

/**
 * Where a connection from `source` to the original destination `dst` goes (ztunnel src/proxy/outbound.rs `build_request`).
 * `random` drives endpoint and weighted-waypoint choice; inject it for deterministic tests.
 */
export function routeOutbound(
  store: WorkloadStore,
  source: Workload,
  dst: { readonly ip: string; readonly port: number },
  random: () => number = Math.random,
): OutboundRoute {
  const ip = canonicalIp(dst.ip);
  if (ip === undefined) return reject(RouteRejectCode.INVALID_DESTINATION, `original destination "${dst.ip}" is not an IP address`);
  if (isLoopback(ip) && ILLEGAL_PORTS.has(dst.port)) {
    return reject(RouteRejectCode.SELF_CALL, `${formatAuthority(ip, dst.port)} is ztunnel's own port; refusing to loop`);
  }
  const original = { ip, port: dst.port };

  // A workload address wins over a VIP (state.rs `find_address`); lookups are on the source's network.
  const workload = store.workloadByIp(source.network, ip);
  let service: Service | undefined;
  let upstream: Upstream;
  if (workload) {
    // The destination's waypoint, unless this connection is that waypoint's own (no loop through it).
    if (workload.waypoint && !isMemberOf(store, workload.waypoint, source)) {
      return viaWaypoint(store, source, workload.waypoint, original, undefined, random);
    }
    upstream = { workload, port: dst.port };
  } else {
    service = store.serviceByVip(source.network, ip, source.namespace);
    if (!service) return { kind: 'passthrough', address: ip, port: dst.port };
    const waypoint = serviceWaypoint(service, random);
    if (waypoint) return viaWaypoint(store, source, waypoint, original, service, random);
    if (service.loadBalancer?.mode === 'Passthrough') return { kind: 'passthrough', address: ip, port: dst.port, service };
    const lb = loadBalance(store, source, service, dst.port, 'service', random);
    if (typeof lb === 'string') return reject(RouteRejectCode.NO_HEALTHY_UPSTREAM, lb);
    upstream = lb;
  }

  const w = upstream.workload;
  const address = pickIp(w, ip, service?.ipFamilies);
  if (address === undefined) return reject(RouteRejectCode.NO_VALID_DESTINATION, `workload ${w.uid} has no usable address`);
  if (w.protocol === 'HBONE') {
    return {
      kind: 'hbone',
      address,
      port: INBOUND_HBONE_PORT,
      authority: formatAuthority(address, upstream.port),
      expectedIdentities: expected(w, service),
      destination: w,
      service,
      targetPort: upstream.port,
      viaWaypoint: false,
    };
  }
  return { kind: 'tcp', address, port: upstream.port, destination: w, service };
}

// --- inbound -------------------------------------------------------------------------------------------------

/** Whether the authority's target (workload or service at that IP) has `local` as its waypoint ("sandwich"). */
function isWaypointFor(store: WorkloadStore, local: Workload, localIp: string, targetIp: string): boolean {
  const w = store.workloadByIp(local.network, targetIp);
  const s = w ? undefined : store.serviceByVip(local.network, targetIp);
  const gateways: GatewayAddress[] = [];
  if (w?.waypoint) gateways.push(w.waypoint);
  if (s?.waypoint) gateways.push(s.waypoint);
  for (const ww of s?.weightedWaypoints ?? []) gateways.push(ww.destination);
  // ztunnel: a service waypoint must list this pod as an endpoint; a workload waypoint must be this pod's IP.
  return gateways.some((gw) =>
    gatewayMembers(store, gw).some((m) => m.uid === local.uid || m.workloadIps.some((ip) => canonicalIp(ip) === localIp)),
  );
}

/**
 * The service a connection to the pod's own IP was meant for (proxy.rs `guess_inbound_service`): the one the
 * client named in `forwarded: host=`, else the first of the pod's services whose target port is `port`.
 */
export function guessInboundService(store: WorkloadStore, local: Workload, port: number, forwardedHost?: string): Service | undefined {
  const candidates = Object.keys(local.services)
    .map((k) => store.service(k))
    .filter((s): s is Service => s !== undefined);
  const named = forwardedHost === undefined ? undefined : candidates.find((s) => s.hostname === forwardedHost);
  if (named) return named;
  return candidates.find((s) =>
    Object.entries(s.ports).some(([sport, tport]) => tport === port || local.services[serviceKey(s)]?.[Number(sport)] === port),
  );
}

/** A VIP of `svc` on `network` to write into a PROXY header, IPv4 first (inbound.rs). */
function vipFor(svc: Service, network: string): string | undefined {
  const vips = svc.vips.filter((v) => v.network === network).map((v) => v.address);
  return vips.find((v) => ipFamily(v) === 4) ?? vips[0];
}

/**
 * Resolves a CONNECT that arrived for `local` on `connectionLocalIp` (its pod IP): steps 5-6 of
 * ztunnel src/proxy/inbound.rs. Rejections carry the HTTP status the HBONE server answers with.
 */
export function resolveInbound(
  store: WorkloadStore,
  local: Workload,
  connectionLocalIp: string,
  target: HboneTarget,
  forwardedHost?: string,
): InboundResolution {
  const localIp = canonicalIp(connectionLocalIp) ?? connectionLocalIp;
  let port: number;
  let service: Service | undefined;
  let tunnelTarget: { address: string; port: number } | undefined;
  if (target.kind === 'address') {
    const targetIp = canonicalIp(target.address) ?? target.address;
    if (targetIp !== localIp && !local.applicationTunnel && !isWaypointFor(store, local, localIp, targetIp)) {
      return {
        kind: 'reject',
        status: 400,
        code: InboundRejectCode.IP_MISMATCH,
        reason: `CONNECT to ${formatAuthority(targetIp, target.port)} arrived at ${localIp}, which is neither that address nor its waypoint`,
      };
    }
    port = target.port;
    service = guessInboundService(store, local, port, forwardedHost);
    tunnelTarget = { address: targetIp, port: target.port };
  } else {
    const svc = store.serviceByHostname(target.hostname, local.namespace);
    if (!svc) {
      return {
        kind: 'reject',
        status: 503,
        code: InboundRejectCode.UNKNOWN_SERVICE,
        reason: `no service with hostname ${target.hostname}`,
      };
    }
    const key = serviceKey(svc);
    // The pod's own mapping first (named target ports), then the service's numeric target port.
    const mapped = local.services[key]?.[target.port] ?? svc.ports[target.port];
    if (!mapped) {
      return {
        kind: 'reject',
        status: 503,
        code: InboundRejectCode.NO_PORT_FOR_SERVICE,
        reason: `service ${key} has no target port for port ${target.port} on ${local.uid}`,
      };
    }
    port = mapped;
    service = svc;
    if (local.applicationTunnel) {
      const vip = vipFor(svc, local.network);
      if (vip === undefined) {
        return {
          kind: 'reject',
          status: 503,
          code: InboundRejectCode.NO_IP_FOR_SERVICE,
          reason: `service ${key} has no VIP to name in the PROXY header`,
        };
      }
      tunnelTarget = { address: vip, port: target.port };
    }
  }
  // Checked on the resolved port: a service port may map onto one of ztunnel's own.
  if (ILLEGAL_PORTS.has(port)) {
    return { kind: 'reject', status: 503, code: InboundRejectCode.SELF_CALL, reason: `port ${port} is ztunnel's own; refusing to loop` };
  }
  const base = { kind: 'ok' as const, address: localIp, ...(service ? { service } : {}) };
  const app = local.applicationTunnel;
  if (!app || tunnelTarget === undefined) return { ...base, port };
  // An app tunnel (e.g. a waypoint taking PROXY protocol on 15088) may receive everything on one port.
  return { ...base, port: app.port ?? port, tunnel: { protocol: app.protocol, target: tunnelTarget } };
}
