/**
 * The WDS edge of ztunnel: istio.workload.Address and istio.security.Authorization protobufs (delta xDS
 * resources) become the domain records of ztunnel/state/model.ts, with the defaults and the strictness of the
 * local-config loader (ztunnel/config/local-config.ts), so one workload reads the same from either source:
 *
 *  - defaults as ztunnel's (src/state/workload.rs): trust_domain "" → cluster.local, service_account "" → default,
 *    cluster_id "" → Kubernetes, capacity unset → 1, hbone_mtls_port 0 → 15008, application tunnel port 0 → none.
 *  - rejected: LEGACY_ISTIO_MTLS (ztunnel cannot speak it), addresses that are not 4 or 16 bytes, prefix lengths
 *    beyond the address, ports outside 1..65535 (target ports of a service may be 0: "per workload"), unknown
 *    enum values (except workload_type and visibility, which ztunnel reads leniently), a StringMatch with no
 *    value, an identity that cannot be a SPIFFE ID, keys not of the form "<namespace>/<x>", and a resource name
 *    that is not the workload uid, "<namespace>/<hostname>" or "<namespace>/<name>".
 *
 * Where ztunnel silently drops a bad value inside a policy (an address of the wrong length, a StringMatch without
 * a value), the whole resource is rejected instead: dropping one value of an ALLOW or DENY list changes what it
 * means, and a NACK is visible where a silently widened policy is not.
 *
 * Every rejection is a WdsConvertError whose message names the resource and the field; the xDS client joins
 * them into the NACK's error_detail and keeps the last good state (ztunnel's per-resource rejection).
 */
// `at`/`idx`: the proto field paths; `field` is the name each reader below gives its path parameter.
import { field as at, deepFreeze, entry, isPort, item as idx, show, splitPair } from '../../lib/decode/index.js';
import { MeshError } from '../../lib/errors.js';
import { DEFAULT_TRUST_DOMAIN, makeIdentity, parseSpiffeId } from '../../lib/identity/spiffe.js';
import { istio } from '../../lib/proto/index.js';
import { canonicalIp, formatIp, parseCidr } from '../../lib/net/ip.js';
import {
  DEFAULT_CLUSTER_ID,
  DEFAULT_SERVICE_ACCOUNT,
  type Authorization,
  type Cidr,
  type GatewayAddress,
  type LoadBalancer,
  type LoadBalancerScope,
  type Locality,
  type NetworkAddress,
  type NetworkCidr,
  type PolicyAction,
  type PolicyScope,
  type PortMap,
  type RbacMatch,
  type Service,
  type ServiceAccountMatch,
  type StringMatch,
  type WeightedWaypoint,
  type Workload,
  type WorkloadType,
} from '../state/model.js';

export const WdsConvertErrorCode = {
  /** A WDS resource cannot become a domain record; the resource is NACKed and the last good state kept. */
  INVALID_RESOURCE: 'XDS_INVALID_RESOURCE',
} as const;

export type WdsRejectReason =
  /** The resource name is not the workload uid / `<ns>/<hostname>` / `<ns>/<name>`. */
  | 'NAME_MISMATCH'
  /** Bytes that are not a protobuf of the expected message. */
  | 'UNDECODABLE'
  /** An Address with neither a workload nor a service, or a required field left empty. */
  | 'MISSING_FIELD'
  /** An address that is not 4 (IPv4) or 16 (IPv6) bytes. */
  | 'BAD_ADDRESS'
  /** A prefix length longer than its address. */
  | 'BAD_CIDR'
  | 'BAD_PORT'
  /** tunnel_protocol LEGACY_ISTIO_MTLS. */
  | 'UNSUPPORTED_TUNNEL_PROTOCOL'
  | 'UNKNOWN_ENUM'
  /** A map key or list entry that is not "<namespace>/<x>". */
  | 'BAD_KEY'
  /** namespace, service account and trust domain do not form a SPIFFE identity. */
  | 'BAD_IDENTITY'
  /** A GatewayAddress without a destination. */
  | 'MISSING_GATEWAY_ADDRESS'
  /** A StringMatch with none of exact/prefix/suffix/presence. */
  | 'BAD_STRING_MATCH'
  | 'BAD_HOSTNAME'
  | 'BAD_SUBJECT_ALT_NAME';

export class WdsConvertError extends MeshError {
  /** The xDS resource name as received. */
  readonly resource: string;
  /** Proto field path of the offending value, e.g. `workload.addresses[1]`; "" for the resource as a whole. */
  readonly field: string;
  readonly reason: WdsRejectReason;

  constructor(resource: string, field: string, reason: WdsRejectReason, problem: string, options?: { cause?: unknown }) {
    super(
      WdsConvertErrorCode.INVALID_RESOURCE,
      `resource ${JSON.stringify(resource)}: ${field === '' ? '' : `${field}: `}${problem}`,
      options,
    );
    this.resource = resource;
    this.field = field;
    this.reason = reason;
  }
}

export type AddressModel =
  | { readonly kind: 'workload'; readonly workload: Workload }
  | { readonly kind: 'service'; readonly service: Service };

// --- helpers -------------------------------------------------------------------------------------------------

/** Binds the resource name so the readers below only say where and what. */
class Reader {
  constructor(readonly resource: string) {}

  fail(field: string, reason: WdsRejectReason, problem: string): never {
    throw new WdsConvertError(this.resource, field, reason, problem);
  }

  ip(bytes: Uint8Array | null | undefined, field: string): string {
    const b = bytes ?? new Uint8Array(0);
    if (b.length !== 4 && b.length !== 16) this.fail(field, 'BAD_ADDRESS', `an address has 4 (IPv4) or 16 (IPv6) bytes, found ${b.length}`);
    // The same canonical text the local config uses (IPv4-mapped IPv6 becomes IPv4), so lookups agree.
    return canonicalIp(formatIp(b)) as string;
  }

  cidr(bytes: Uint8Array | null | undefined, length: number, field: string): Cidr {
    const address = this.ip(bytes, at(field, 'address'));
    const max = (bytes?.length ?? 0) * 8;
    if (!Number.isInteger(length) || length < 0 || length > max)
      this.fail(at(field, 'length'), 'BAD_CIDR', `prefix length ${length} is not within 0..${max}`);
    return parseCidr(`${formatIp(bytes ?? new Uint8Array(0))}/${length}`) ?? { address, prefixLength: length };
  }

  port(v: number | null | undefined, field: string, min: 0 | 1 = 1): number {
    const p = v ?? 0;
    if (!isPort(p, min)) this.fail(field, 'BAD_PORT', `${p} is not a port (${min}..65535)`);
    return p;
  }

  enumValue<T>(v: number | null | undefined, field: string, table: Readonly<Record<number, T>>, name: string): T {
    const r = table[v ?? 0];
    if (r === undefined) this.fail(field, 'UNKNOWN_ENUM', `${String(v)} is not a known ${name}`);
    return r;
  }

  /** "<a>/<b>" with both parts non-empty, as the local config's keys. */
  key(s: string, field: string, form: string): void {
    if (splitPair(s) === undefined) this.fail(field, 'BAD_KEY', `${show(s)} is not of the form "${form}"`);
  }

  gateway(g: istio.workload.GatewayAddress.$Properties, field: string): GatewayAddress {
    const hboneMtlsPort = g.hboneMtlsPort ? this.port(g.hboneMtlsPort, at(field, 'hbone_mtls_port')) : 15008;
    if (g.hostname !== undefined && g.hostname !== null && g.address !== undefined && g.address !== null) {
      this.fail(field, 'MISSING_GATEWAY_ADDRESS', 'has both a hostname and an address destination');
    }
    if (g.address !== undefined && g.address !== null) {
      return {
        destination: {
          kind: 'address',
          network: g.address.network ?? '',
          address: this.ip(g.address.address, at(field, 'address.address')),
        },
        hboneMtlsPort,
      };
    }
    if (g.hostname !== undefined && g.hostname !== null) {
      const namespace = g.hostname.namespace ?? '';
      const hostname = g.hostname.hostname ?? '';
      if (namespace === '' || hostname === '')
        this.fail(at(field, 'hostname'), 'MISSING_FIELD', 'a hostname destination needs a namespace and a hostname');
      return { destination: { kind: 'hostname', namespace, hostname }, hboneMtlsPort };
    }
    return this.fail(field, 'MISSING_GATEWAY_ADDRESS', 'a gateway address needs a hostname or an address destination');
  }
}

const present = <T>(v: T | null | undefined): v is T => v !== undefined && v !== null;

// --- workloads -----------------------------------------------------------------------------------------------

const TP = istio.workload.TunnelProtocol;
const WORKLOAD_TYPES: Readonly<Record<number, WorkloadType>> = {
  [istio.workload.WorkloadType.DEPLOYMENT]: 'deployment',
  [istio.workload.WorkloadType.CRONJOB]: 'cronjob',
  [istio.workload.WorkloadType.POD]: 'pod',
  [istio.workload.WorkloadType.JOB]: 'job',
};
const STATUS: Readonly<Record<number, Workload['status']>> = {
  [istio.workload.WorkloadStatus.HEALTHY]: 'Healthy',
  [istio.workload.WorkloadStatus.UNHEALTHY]: 'Unhealthy',
};
const NETWORK_MODES: Readonly<Record<number, Workload['networkMode']>> = {
  [istio.workload.NetworkMode.STANDARD]: 'Standard',
  [istio.workload.NetworkMode.HOST_NETWORK]: 'HostNetwork',
};
const APP_TUNNEL: Readonly<Record<number, 'NONE' | 'PROXY'>> = {
  [istio.workload.ApplicationTunnel.Protocol.NONE]: 'NONE',
  [istio.workload.ApplicationTunnel.Protocol.PROXY]: 'PROXY',
};

function portList(r: Reader, pl: istio.workload.PortList.$Properties | null | undefined, field: string, minTarget: 0 | 1): PortMap {
  const out: Record<number, number> = {};
  // A port listed twice (TCP and UDP 53 of a DNS service) keeps the last entry, as ztunnel's map does.
  (pl?.ports ?? []).forEach((p, i) => {
    const f = idx(at(field, 'ports'), i);
    out[r.port(p.servicePort, at(f, 'service_port'))] = r.port(p.targetPort, at(f, 'target_port'), minTarget);
  });
  return out;
}

function workloadToModel(r: Reader, w: istio.workload.Workload.$Properties): Workload {
  const f = 'workload';
  const uid = w.uid ?? '';
  if (uid === '') r.fail(at(f, 'uid'), 'MISSING_FIELD', 'a workload needs a uid (it is its resource name)');
  if (uid !== r.resource) r.fail(at(f, 'uid'), 'NAME_MISMATCH', `uid ${JSON.stringify(uid)} is not the resource name`);
  const namespace = w.namespace ?? '';
  const serviceAccount = w.serviceAccount || DEFAULT_SERVICE_ACCOUNT;
  const trustDomain = w.trustDomain || DEFAULT_TRUST_DOMAIN;
  try {
    makeIdentity(namespace, serviceAccount, trustDomain);
  } catch (err) {
    r.fail(f, 'BAD_IDENTITY', `namespace, service_account and trust_domain do not form a SPIFFE identity: ${(err as Error).message}`);
  }
  const tp = w.tunnelProtocol ?? TP.NONE;
  if (tp === TP.LEGACY_ISTIO_MTLS)
    r.fail(at(f, 'tunnel_protocol'), 'UNSUPPORTED_TUNNEL_PROTOCOL', 'LEGACY_ISTIO_MTLS is not supported; use HBONE');
  const protocol = r.enumValue(tp, at(f, 'tunnel_protocol'), { [TP.NONE]: 'TCP', [TP.HBONE]: 'HBONE' } as const, 'tunnel protocol');

  const ips = (w.addresses ?? []).map((a, i) => r.ip(a, idx(at(f, 'addresses'), i)));
  const services: Record<string, PortMap> = {};
  for (const [k, pl] of Object.entries(w.services ?? {})) {
    const sf = entry(at(f, 'services'), k);
    r.key(k, sf, '<namespace>/<hostname>');
    services[k] = portList(r, pl, sf, 1);
  }
  const authorizationPolicies = [...(w.authorizationPolicies ?? [])];
  for (const [i, k] of authorizationPolicies.entries()) r.key(k, idx(at(f, 'authorization_policies'), i), '<namespace>/<name>');

  let applicationTunnel: Workload['applicationTunnel'];
  if (present(w.applicationTunnel)) {
    const af = at(f, 'application_tunnel');
    const port = w.applicationTunnel.port ?? 0;
    applicationTunnel = {
      protocol: r.enumValue(w.applicationTunnel.protocol, at(af, 'protocol'), APP_TUNNEL, 'application tunnel protocol'),
      port: port === 0 ? undefined : r.port(port, at(af, 'port')),
    };
  }
  const locality: Locality | undefined = present(w.locality)
    ? { region: w.locality.region ?? '', zone: w.locality.zone ?? '', subzone: w.locality.subzone ?? '' }
    : undefined;
  const capacity = present(w.capacity) ? (w.capacity.value ?? 0) : 1;

  return {
    uid,
    name: w.name ?? '',
    namespace,
    workloadIps: [...new Set(ips)],
    hostname: w.hostname ?? '',
    network: w.network ?? '',
    protocol,
    trustDomain,
    serviceAccount,
    waypoint: present(w.waypoint) ? r.gateway(w.waypoint, at(f, 'waypoint')) : undefined,
    networkGateway: present(w.networkGateway) ? r.gateway(w.networkGateway, at(f, 'network_gateway')) : undefined,
    node: w.node ?? '',
    canonicalName: w.canonicalName ?? '',
    canonicalRevision: w.canonicalRevision ?? '',
    // ztunnel reads an unknown type as the enum default rather than refusing the workload.
    workloadType: WORKLOAD_TYPES[w.workloadType ?? 0] ?? 'deployment',
    workloadName: w.workloadName ?? '',
    nativeTunnel: w.nativeTunnel ?? false,
    applicationTunnel,
    services,
    authorizationPolicies,
    status: r.enumValue(w.status, at(f, 'status'), STATUS, 'workload status'),
    clusterId: w.clusterId || DEFAULT_CLUSTER_ID,
    locality,
    networkMode: r.enumValue(w.networkMode, at(f, 'network_mode'), NETWORK_MODES, 'network mode'),
    capacity,
  };
}

// --- services ------------------------------------------------------------------------------------------------

const LBS = istio.workload.LoadBalancing.Scope;
const LB_SCOPES: Readonly<Record<number, LoadBalancerScope>> = {
  [LBS.REGION]: 'Region',
  [LBS.ZONE]: 'Zone',
  [LBS.SUBZONE]: 'Subzone',
  [LBS.NODE]: 'Node',
  [LBS.CLUSTER]: 'Cluster',
  [LBS.NETWORK]: 'Network',
};
const LBM = istio.workload.LoadBalancing.Mode;
const LB_MODES: Readonly<Record<number, LoadBalancer['mode']>> = {
  [LBM.UNSPECIFIED_MODE]: 'Standard',
  [LBM.STRICT]: 'Strict',
  [LBM.FAILOVER]: 'Failover',
  [LBM.PASSTHROUGH]: 'Passthrough',
};
const LB_HEALTH: Readonly<Record<number, LoadBalancer['healthPolicy']>> = {
  [istio.workload.LoadBalancing.HealthPolicy.ONLY_HEALTHY]: 'OnlyHealthy',
  [istio.workload.LoadBalancing.HealthPolicy.ALLOW_ALL]: 'AllowAll',
};
const IP_FAMILIES: Readonly<Record<number, Service['ipFamilies']>> = {
  [istio.workload.IPFamilies.AUTOMATIC]: 'Automatic',
  [istio.workload.IPFamilies.IPV4_ONLY]: 'IPv4',
  [istio.workload.IPFamilies.IPV6_ONLY]: 'IPv6',
  [istio.workload.IPFamilies.DUAL]: 'Dual',
};

function serviceToModel(r: Reader, s: istio.workload.Service.$Properties): Service {
  const f = 'service';
  const namespace = s.namespace ?? '';
  const hostname = s.hostname ?? '';
  if (namespace === '' || namespace.includes('/'))
    r.fail(at(f, 'namespace'), 'MISSING_FIELD', `${JSON.stringify(namespace)} is not a namespace`);
  if (hostname === '' || /[\s/]/.test(hostname)) r.fail(at(f, 'hostname'), 'BAD_HOSTNAME', `${JSON.stringify(hostname)} is not a hostname`);
  if (`${namespace}/${hostname}` !== r.resource)
    r.fail('', 'NAME_MISMATCH', `a service is named "<namespace>/<hostname>", here ${JSON.stringify(`${namespace}/${hostname}`)}`);

  const vips: NetworkAddress[] = [];
  const cidrVips: NetworkCidr[] = [];
  (s.addresses ?? []).forEach((a, i) => {
    const af = idx(at(f, 'addresses'), i);
    const network = a.network ?? '';
    const max = (a.address?.length ?? 0) * 8;
    // A length shorter than the address makes the VIP a range (ztunnel: cidr_vips); a full one is a plain VIP.
    if (present(a.length) && a.length !== max) cidrVips.push({ network, cidr: r.cidr(a.address, a.length, af) });
    else vips.push({ network, address: r.ip(a.address, at(af, 'address')) });
  });
  const subjectAltNames = [...(s.subjectAltNames ?? [])];
  subjectAltNames.forEach((san, i) => {
    try {
      parseSpiffeId(san);
    } catch (err) {
      r.fail(idx(at(f, 'subject_alt_names'), i), 'BAD_SUBJECT_ALT_NAME', (err as Error).message);
    }
  });
  let loadBalancer: LoadBalancer | undefined;
  if (present(s.loadBalancing)) {
    const lf = at(f, 'load_balancing');
    const lb = s.loadBalancing;
    loadBalancer = {
      routingPreferences: (lb.routingPreference ?? []).map((p, i) =>
        r.enumValue(p, idx(at(lf, 'routing_preference'), i), LB_SCOPES, 'routing scope'),
      ),
      mode: r.enumValue(lb.mode, at(lf, 'mode'), LB_MODES, 'load balancing mode'),
      healthPolicy: r.enumValue(lb.healthPolicy, at(lf, 'health_policy'), LB_HEALTH, 'health policy'),
    };
  }
  const weightedWaypoints: WeightedWaypoint[] = (s.weightedWaypoints ?? []).map((ww, i) => {
    const wf = idx(at(f, 'weighted_waypoints'), i);
    if (!present(ww.destination)) r.fail(at(wf, 'destination'), 'MISSING_GATEWAY_ADDRESS', 'a weighted waypoint needs a destination');
    return { destination: r.gateway(ww.destination, at(wf, 'destination')), weight: ww.weight ?? 0 };
  });
  const service: Service = {
    name: s.name ?? '',
    namespace,
    hostname,
    vips,
    ports: portList(r, { ports: s.ports ?? [] }, f, 0),
    subjectAltNames,
    waypoint: present(s.waypoint) ? r.gateway(s.waypoint, at(f, 'waypoint')) : undefined,
    loadBalancer,
    ipFamilies: r.enumValue(s.ipFamilies, at(f, 'ip_families'), IP_FAMILIES, 'IP family'),
    canonical: s.canonical ?? false,
    // ztunnel reads an unknown visibility as PUBLIC on purpose (fail open rather than drop the service).
    visibility: s.visibility === istio.workload.Service.Visibility.NAMESPACE ? 'Namespace' : 'Public',
  };
  // Left out when empty, as the local config does, so records from both sources compare equal.
  return {
    ...service,
    ...(cidrVips.length > 0 ? { cidrVips } : {}),
    ...(weightedWaypoints.length > 0 ? { weightedWaypoints } : {}),
  };
}

/** An istio.workload.Address named `name` as a workload or service record; throws WdsConvertError. */
export function addressToModel(name: string, address: istio.workload.IAddress): AddressModel {
  const r = new Reader(name);
  const w = address.workload;
  const s = address.service;
  if (present(w) && present(s)) r.fail('', 'MISSING_FIELD', 'an Address holds a workload or a service, not both');
  if (present(w)) return { kind: 'workload', workload: deepFreeze(workloadToModel(r, w)) };
  if (present(s)) return { kind: 'service', service: deepFreeze(serviceToModel(r, s)) };
  return r.fail('', 'MISSING_FIELD', 'an Address holds neither a workload nor a service');
}

// --- authorization -------------------------------------------------------------------------------------------

const SCOPES: Readonly<Record<number, PolicyScope>> = {
  [istio.security.Scope.GLOBAL]: 'Global',
  [istio.security.Scope.NAMESPACE]: 'Namespace',
  [istio.security.Scope.WORKLOAD_SELECTOR]: 'WorkloadSelector',
};
const ACTIONS: Readonly<Record<number, PolicyAction>> = {
  [istio.security.Action.ALLOW]: 'Allow',
  [istio.security.Action.DENY]: 'Deny',
};

function stringMatch(r: Reader, m: istio.security.StringMatch.$Properties, field: string): StringMatch {
  if (present(m.exact)) return { kind: 'exact', value: m.exact };
  if (present(m.prefix)) return { kind: 'prefix', value: m.prefix };
  if (present(m.suffix)) return { kind: 'suffix', value: m.suffix };
  if (present(m.presence)) return { kind: 'presence' };
  return r.fail(field, 'BAD_STRING_MATCH', 'a string match needs one of exact, prefix, suffix or presence');
}

function matchToModel(r: Reader, m: istio.security.Match.$Properties, field: string): RbacMatch {
  const strings = (v: istio.security.StringMatch.$Properties[] | null | undefined, key: string): StringMatch[] =>
    (v ?? []).map((s, i) => stringMatch(r, s, idx(at(field, key), i)));
  const accounts = (v: istio.security.ServiceAccountMatch.$Properties[] | null | undefined): ServiceAccountMatch[] =>
    (v ?? []).map((a) => ({ namespace: a.namespace ?? '', serviceAccount: a.serviceAccount ?? '' }));
  const cidrs = (v: istio.security.Address.$Properties[] | null | undefined, key: string): Cidr[] =>
    (v ?? []).map((a, i) => r.cidr(a.address, a.length ?? 0, idx(at(field, key), i)));
  const ports = (v: number[] | null | undefined, key: string): number[] => (v ?? []).map((p, i) => r.port(p, idx(at(field, key), i)));
  return {
    namespaces: strings(m.namespaces, 'namespaces'),
    notNamespaces: strings(m.notNamespaces, 'not_namespaces'),
    serviceAccounts: accounts(m.serviceAccounts),
    notServiceAccounts: accounts(m.notServiceAccounts),
    principals: strings(m.principals, 'principals'),
    notPrincipals: strings(m.notPrincipals, 'not_principals'),
    sourceIps: cidrs(m.sourceIps, 'source_ips'),
    notSourceIps: cidrs(m.notSourceIps, 'not_source_ips'),
    destinationIps: cidrs(m.destinationIps, 'destination_ips'),
    notDestinationIps: cidrs(m.notDestinationIps, 'not_destination_ips'),
    destinationPorts: ports(m.destinationPorts, 'destination_ports'),
    notDestinationPorts: ports(m.notDestinationPorts, 'not_destination_ports'),
  };
}

/** An istio.security.Authorization named `name` as a policy record; throws WdsConvertError. */
export function authorizationToModel(name: string, auth: istio.security.IAuthorization): Authorization {
  const r = new Reader(name);
  const namespace = auth.namespace ?? '';
  const policyName = auth.name ?? '';
  if (namespace === '' || policyName === '')
    r.fail(namespace === '' ? 'namespace' : 'name', 'MISSING_FIELD', 'a policy needs a namespace and a name');
  if (`${namespace}/${policyName}` !== name)
    r.fail('', 'NAME_MISMATCH', `a policy is named "<namespace>/<name>", here ${JSON.stringify(`${namespace}/${policyName}`)}`);
  return deepFreeze({
    name: policyName,
    namespace,
    scope: r.enumValue(auth.scope, 'scope', SCOPES, 'policy scope'),
    action: r.enumValue(auth.action, 'action', ACTIONS, 'policy action'),
    dryRun: auth.dryRun ?? false,
    rules: (auth.rules ?? []).map((rule, i) =>
      (rule.clauses ?? []).map((clause, j) =>
        (clause.matches ?? []).map((m, k) => matchToModel(r, m, idx(at(idx(at(idx('rules', i), 'clauses'), j), 'matches'), k))),
      ),
    ),
  });
}

// --- decoding --------------------------------------------------------------------------------------------------

/** Decodes the body of an Address resource (the Any's value) and converts it; throws WdsConvertError. */
export function decodeAddress(name: string, body: Uint8Array): AddressModel {
  let msg: istio.workload.Address;
  try {
    msg = istio.workload.Address.decode(body);
  } catch (err) {
    throw new WdsConvertError(name, '', 'UNDECODABLE', `not an istio.workload.Address: ${(err as Error).message}`, { cause: err });
  }
  return addressToModel(name, msg);
}

/** Decodes the body of an Authorization resource and converts it; throws WdsConvertError. */
export function decodeAuthorization(name: string, body: Uint8Array): Authorization {
  let msg: istio.security.Authorization;
  try {
    msg = istio.security.Authorization.decode(body);
  } catch (err) {
    throw new WdsConvertError(name, '', 'UNDECODABLE', `not an istio.security.Authorization: ${(err as Error).message}`, { cause: err });
  }
  return authorizationToModel(name, msg);
}
