/**
 * ztunnel's local config (`LOCAL_XDS_PATH` / `LOCAL_XDS`): YAML with top-level `workloads`, `services` and
 * `policies`, camelCase fields, unknown fields rejected (ztunnel's serde `deny_unknown_fields`). This is the edge
 * where that YAML becomes the domain records of ztunnel/state/model.ts; everything past here trusts them.
 *
 * Schema: ztunnel examples/localhost.yaml (src/xds.rs `LocalConfig`, src/state/workload.rs, src/state/service.rs,
 * src/rbac.rs). Beyond ztunnel we accept a top-level `trustDomain`, the default for workloads that set none.
 * Every rejection is a LocalConfigError whose message starts with the YAML path of the offending value.
 */
import { constants as fsConstants } from 'node:fs';
import { open } from 'node:fs/promises';
import { parseDocument, stringify } from 'yaml';

import { MeshError } from '../../lib/errors.js';
import { DEFAULT_TRUST_DOMAIN, makeIdentity, parseSpiffeId } from '../../lib/identity/spiffe.js';
import {
  absent,
  DecodeError,
  deepFreeze,
  entry,
  fail,
  field,
  isMap,
  item,
  optionalBool,
  optionalEnum,
  optionalList,
  optionalString,
  readCidr,
  readEnum,
  readInteger,
  readIp,
  readList,
  readMap,
  readPair,
  readPort,
  requiredString,
  show,
  stringList,
  type Obj,
} from '../../lib/decode/index.js';
import { canonicalIp, formatCidr } from '../../lib/net/ip.js';
import {
  DEFAULT_CLUSTER_ID,
  DEFAULT_SERVICE_ACCOUNT,
  policyKey,
  serviceKey,
  type Authorization,
  type Cidr,
  type GatewayAddress,
  type GatewayDestination,
  type LoadBalancer,
  type LoadBalancerScope,
  type Locality,
  type NetworkAddress,
  type NetworkCidr,
  type PortMap,
  type RbacMatch,
  type Service,
  type ServiceAccountMatch,
  type StateSnapshot,
  type StringMatch,
  type WeightedWaypoint,
  type Workload,
  type WorkloadType,
} from '../state/model.js';

export const LocalConfigErrorCode = {
  /** The YAML is malformed or a value does not fit the schema; the message names the YAML path. */
  INVALID: 'CONFIG_INVALID_LOCAL_CONFIG',
  /** The file could not be read (missing, permissions, too large). */
  UNREADABLE: 'CONFIG_LOCAL_CONFIG_UNREADABLE',
} as const;

export class LocalConfigError extends MeshError {
  /** YAML path of the offending value, e.g. `workloads[2].workloadIps[0]`; "" for the document as a whole. */
  readonly path: string;

  constructor(code: string, path: string, problem: string, options?: { cause?: unknown }) {
    super(code, path === '' ? problem : `${path}: ${problem}`, options);
    this.path = path;
  }
}

/** The parsed file: the state it describes plus the trust domain used for workloads that did not set one. */
export interface LocalConfig extends StateSnapshot {
  readonly trustDomain: string;
}

/** The name the proxy wiring uses for the same thing. */
export type LocalConfigState = LocalConfig;

export interface ParseLocalConfigOptions {
  /** Default trust domain when the file has no top-level `trustDomain` (e.g. the TRUST_DOMAIN env var). */
  readonly trustDomain?: string;
}

/** Files beyond this are refused unread: 1M pods of ztunnel's example shape are ~250 MB, far past one node's need. */
export const MAX_LOCAL_CONFIG_BYTES = 64 * 1024 * 1024;

// Readers (lib/decode) throw a DecodeError with the YAML path; parseLocalConfig turns it into a LocalConfigError.

/** `{80: 8080}`; YAML map keys arrive as strings. A target of 0 is only meaningful for service ports. */
function readPortMap(v: unknown, path: string, minTarget: 0 | 1): PortMap {
  if (!isMap(v)) fail(path, `expected a map of port to port, found ${show(v)}`);
  const out: Array<[number, number]> = [];
  for (const [k, target] of Object.entries(v)) {
    if (!/^[0-9]{1,5}$/.test(k) || Number(k) < 1 || Number(k) > 65535) fail(entry(path, k), `"${k}" is not a port`);
    out.push([Number(k), readInteger(target, entry(path, k), minTarget, 65535, 'a target port')]);
  }
  return Object.fromEntries(out) as PortMap;
}

function readNetworkAddress(v: unknown, path: string): NetworkAddress {
  if (typeof v !== 'string' || !v.includes('/')) fail(path, `${show(v)} is not of the form "<network>/<ip>"`);
  const slash = v.indexOf('/');
  return { network: v.slice(0, slash), address: readIp(v.slice(slash + 1), path) };
}

/** ztunnel tries "<network>/<ip>" first and falls back to "<namespace>/<hostname>" (serde untagged enum). */
function readGatewayDestination(v: unknown, path: string): GatewayDestination {
  const form = '<network>/<ip>" or "<namespace>/<hostname>';
  if (typeof v !== 'string') fail(path, `expected "${form}", found ${show(v)}`);
  const slash = v.indexOf('/');
  if (slash < 0) fail(path, `${show(v)} is not of the form "${form}"`);
  const ip = canonicalIp(v.slice(slash + 1));
  if (ip !== undefined) return { kind: 'address', network: v.slice(0, slash), address: ip };
  const [namespace, hostname] = readPair(v, path, form);
  return { kind: 'hostname', namespace, hostname };
}

function readGateway(v: unknown, path: string): GatewayAddress {
  const o = readMap(v, path, ['destination', 'hboneMtlsPort']);
  if (absent(o.destination)) fail(field(path, 'destination'), 'is required');
  return {
    destination: readGatewayDestination(o.destination, field(path, 'destination')),
    // ztunnel requires it; 15008 is the only value Istio ever sends, so an omitted port means that.
    hboneMtlsPort: absent(o.hboneMtlsPort) ? 15008 : readPort(o.hboneMtlsPort, field(path, 'hboneMtlsPort')),
  };
}

function optGateway(o: Obj, key: string, path: string): GatewayAddress | undefined {
  return absent(o[key]) ? undefined : readGateway(o[key], field(path, key));
}

// --- workloads -----------------------------------------------------------------------------------------------

const WORKLOAD_FIELDS = [
  'uid',
  'name',
  'namespace',
  'workloadIps',
  'serviceAccount',
  'trustDomain',
  'protocol',
  'networkMode',
  'network',
  'node',
  'hostname',
  'workloadName',
  'workloadType',
  'canonicalName',
  'canonicalRevision',
  'clusterId',
  'nativeTunnel',
  'waypoint',
  'networkGateway',
  'applicationTunnel',
  'authorizationPolicies',
  'status',
  'locality',
  'capacity',
  'services',
] as const;
const WORKLOAD_TYPES: readonly WorkloadType[] = ['deployment', 'cronjob', 'pod', 'job'];

function readLocality(v: unknown, path: string): Locality {
  const o = readMap(v, path, ['region', 'zone', 'subzone']);
  return { region: optionalString(o, 'region', path), zone: optionalString(o, 'zone', path), subzone: optionalString(o, 'subzone', path) };
}

function readWorkload(v: unknown, path: string, defaultTrustDomain: string): Workload {
  const o = readMap(v, path, WORKLOAD_FIELDS);
  const namespace = requiredString(o, 'namespace', path);
  const name = optionalString(o, 'name', path);
  const serviceAccount = optionalString(o, 'serviceAccount', path, DEFAULT_SERVICE_ACCOUNT) || DEFAULT_SERVICE_ACCOUNT;
  const trustDomain = optionalString(o, 'trustDomain', path, defaultTrustDomain) || defaultTrustDomain;
  const clusterId = optionalString(o, 'clusterId', path, DEFAULT_CLUSTER_ID) || DEFAULT_CLUSTER_ID;
  // The identity is what certificates are issued for and policies match on; refuse one that cannot exist.
  try {
    makeIdentity(namespace, serviceAccount, trustDomain);
  } catch (err) {
    fail(path, `namespace, serviceAccount and trustDomain do not form a SPIFFE identity: ${(err as Error).message}`);
  }
  let uid = optionalString(o, 'uid', path);
  if (uid === '') {
    // Istio's uid shape for pods; without either there is no key to store the workload under.
    if (name === '') fail(path, 'needs a uid or a name');
    uid = `${clusterId}//Pod/${namespace}/${name}`;
  }
  if (absent(o.workloadIps)) fail(field(path, 'workloadIps'), 'is required (it may be an empty list)');
  const ips = readList(o.workloadIps, field(path, 'workloadIps'), readIp);

  let applicationTunnel: Workload['applicationTunnel'];
  if (!absent(o.applicationTunnel)) {
    const p = field(path, 'applicationTunnel');
    const t = readMap(o.applicationTunnel, p, ['protocol', 'port']);
    applicationTunnel = {
      protocol: optionalEnum(t, 'protocol', p, ['NONE', 'PROXY'] as const, 'NONE'),
      port: absent(t.port) ? undefined : readPort(t.port, field(p, 'port')),
    };
  }

  const services: Record<string, PortMap> = {};
  const svcPath = field(path, 'services');
  if (!absent(o.services)) {
    if (!isMap(o.services)) fail(svcPath, `expected a map of "<namespace>/<hostname>" to port maps, found ${show(o.services)}`);
    for (const [k, ports] of Object.entries(o.services)) {
      readPair(k, entry(svcPath, k), '<namespace>/<hostname>');
      services[k] = absent(ports) ? {} : readPortMap(ports, entry(svcPath, k), 1);
    }
  }

  const authorizationPolicies = stringList(o, 'authorizationPolicies', path);
  for (const [i, k] of authorizationPolicies.entries()) readPair(k, item(field(path, 'authorizationPolicies'), i), '<namespace>/<name>');

  return {
    uid,
    name,
    namespace,
    workloadIps: [...new Set(ips)],
    hostname: optionalString(o, 'hostname', path),
    network: optionalString(o, 'network', path),
    protocol: optionalEnum(o, 'protocol', path, ['TCP', 'HBONE'] as const, 'TCP'),
    trustDomain,
    serviceAccount,
    waypoint: optGateway(o, 'waypoint', path),
    networkGateway: optGateway(o, 'networkGateway', path),
    node: optionalString(o, 'node', path),
    canonicalName: optionalString(o, 'canonicalName', path),
    canonicalRevision: optionalString(o, 'canonicalRevision', path),
    // workload.proto's enum default is DEPLOYMENT, so an unset type reads the same from WDS and from here.
    workloadType: optionalEnum(o, 'workloadType', path, WORKLOAD_TYPES, 'deployment'),
    workloadName: optionalString(o, 'workloadName', path),
    nativeTunnel: optionalBool(o, 'nativeTunnel', path),
    applicationTunnel,
    services,
    authorizationPolicies,
    status: optionalEnum(o, 'status', path, ['Healthy', 'Unhealthy'] as const, 'Healthy'),
    clusterId,
    locality: absent(o.locality) ? undefined : readLocality(o.locality, field(path, 'locality')),
    networkMode: optionalEnum(o, 'networkMode', path, ['Standard', 'HostNetwork'] as const, 'Standard'),
    capacity: absent(o.capacity) ? 1 : readInteger(o.capacity, field(path, 'capacity'), 0, 0xffffffff, 'a capacity'),
  };
}

// --- services ------------------------------------------------------------------------------------------------

const SERVICE_FIELDS = [
  'name',
  'namespace',
  'hostname',
  'vips',
  'cidrVips',
  'ports',
  'subjectAltNames',
  'waypoint',
  'weightedWaypoints',
  'loadBalancer',
  'ipFamilies',
  'canonical',
  'visibility',
  'endpoints',
] as const;
const LB_SCOPES: readonly LoadBalancerScope[] = ['Region', 'Zone', 'Subzone', 'Node', 'Cluster', 'Network'];

function readLoadBalancer(v: unknown, path: string): LoadBalancer {
  const o = readMap(v, path, ['routingPreferences', 'mode', 'healthPolicy']);
  return {
    routingPreferences: optionalList(o, 'routingPreferences', path).map((x, i) =>
      readEnum(x, item(field(path, 'routingPreferences'), i), LB_SCOPES),
    ),
    mode: optionalEnum(o, 'mode', path, ['Standard', 'Strict', 'Failover', 'Passthrough'] as const, 'Standard'),
    healthPolicy: optionalEnum(o, 'healthPolicy', path, ['OnlyHealthy', 'AllowAll'] as const, 'OnlyHealthy'),
  };
}

function readNetworkCidr(v: unknown, path: string): NetworkCidr {
  const o = readMap(v, path, ['network', 'cidr']);
  if (absent(o.cidr)) fail(field(path, 'cidr'), 'is required');
  return { network: optionalString(o, 'network', path), cidr: readCidr(o.cidr, field(path, 'cidr')) };
}

function readWeightedWaypoint(v: unknown, path: string): WeightedWaypoint {
  const o = readMap(v, path, ['destination', 'weight']);
  if (absent(o.destination)) fail(field(path, 'destination'), 'is required');
  return {
    destination: readGateway(o.destination, field(path, 'destination')),
    weight: absent(o.weight) ? 0 : readInteger(o.weight, field(path, 'weight'), 0, 0xffffffff, 'a weight'),
  };
}

function readService(v: unknown, path: string): Service {
  const o = readMap(v, path, SERVICE_FIELDS);
  const namespace = requiredString(o, 'namespace', path);
  const hostname = requiredString(o, 'hostname', path);
  if (namespace.includes('/')) fail(field(path, 'namespace'), `${show(namespace)} must not contain "/"`);
  if (hostname === '' || /[\s/]/.test(hostname)) fail(field(path, 'hostname'), `${show(hostname)} is not a hostname`);
  // Endpoints come from each workload's `services`; a second, service-side list could contradict it.
  if (!absent(o.endpoints) && !(isMap(o.endpoints) && Object.keys(o.endpoints).length === 0)) {
    fail(field(path, 'endpoints'), "is not supported; list the service under each backing workload's `services` instead");
  }
  const subjectAltNames = stringList(o, 'subjectAltNames', path);
  subjectAltNames.forEach((san, i) => {
    try {
      parseSpiffeId(san);
    } catch (err) {
      fail(item(field(path, 'subjectAltNames'), i), (err as Error).message);
    }
  });
  const ipFamilies = absent(o.ipFamilies)
    ? 'Automatic'
    : readEnum(o.ipFamilies, field(path, 'ipFamilies'), ['Dual', 'IPv4', 'IPv6'] as const);
  const service: Service = {
    name: requiredString(o, 'name', path),
    namespace,
    hostname,
    vips: optionalList(o, 'vips', path).map((x, i) => readNetworkAddress(x, item(field(path, 'vips'), i))),
    ports: absent(o.ports) ? {} : readPortMap(o.ports, field(path, 'ports'), 0),
    subjectAltNames,
    waypoint: optGateway(o, 'waypoint', path),
    loadBalancer: absent(o.loadBalancer) ? undefined : readLoadBalancer(o.loadBalancer, field(path, 'loadBalancer')),
    ipFamilies,
    canonical: optionalBool(o, 'canonical', path),
    visibility: optionalEnum(o, 'visibility', path, ['Public', 'Namespace'] as const, 'Public'),
  };
  const cidrVips = optionalList(o, 'cidrVips', path).map((x, i) => readNetworkCidr(x, item(field(path, 'cidrVips'), i)));
  const weighted = optionalList(o, 'weightedWaypoints', path).map((x, i) =>
    readWeightedWaypoint(x, item(field(path, 'weightedWaypoints'), i)),
  );
  // The optional fields are left out when empty so records compare equal to those built without them.
  return {
    ...service,
    ...(cidrVips.length > 0 ? { cidrVips } : {}),
    ...(weighted.length > 0 ? { weightedWaypoints: weighted } : {}),
  };
}

// --- policies ------------------------------------------------------------------------------------------------

const MATCH_FIELDS = [
  'namespaces',
  'notNamespaces',
  'serviceAccounts',
  'notServiceAccounts',
  'principals',
  'notPrincipals',
  'sourceIps',
  'notSourceIps',
  'destinationIps',
  'notDestinationIps',
  'destinationPorts',
  'notDestinationPorts',
] as const;

/** Externally tagged, as serde writes Rust enums: {Exact: "x"} | {Prefix: "x"} | {Suffix: "x"} | {Presence: []}. */
function readStringMatch(v: unknown, path: string): StringMatch {
  const forms = '{Exact: "x"}, {Prefix: "x"}, {Suffix: "x"} or {Presence: []}';
  if (!isMap(v) || Object.keys(v).length !== 1) fail(path, `expected one of ${forms}, found ${show(v)}`);
  const [tag, value] = Object.entries(v)[0] as [string, unknown];
  const p = field(path, tag);
  switch (tag) {
    case 'Exact':
    case 'Prefix':
    case 'Suffix':
      if (typeof value !== 'string') fail(p, `expected a string, found ${show(value)}`);
      return { kind: tag === 'Exact' ? 'exact' : tag === 'Prefix' ? 'prefix' : 'suffix', value };
    case 'Presence':
      if (!absent(value) && !(Array.isArray(value) && value.length === 0)) fail(p, `expected [], found ${show(value)}`);
      return { kind: 'presence' };
    default:
      return fail(p, `unknown string match; expected one of ${forms}`);
  }
}

function readServiceAccountMatch(v: unknown, path: string): ServiceAccountMatch {
  const o = readMap(v, path, ['namespace', 'serviceAccount']);
  return { namespace: requiredString(o, 'namespace', path), serviceAccount: requiredString(o, 'serviceAccount', path) };
}

function readMatch(v: unknown, path: string): RbacMatch {
  const o = readMap(v, path, MATCH_FIELDS);
  const list = <T>(key: string, read: (x: unknown, p: string) => T): T[] =>
    optionalList(o, key, path).map((x, i) => read(x, item(field(path, key), i)));
  return {
    namespaces: list('namespaces', readStringMatch),
    notNamespaces: list('notNamespaces', readStringMatch),
    serviceAccounts: list('serviceAccounts', readServiceAccountMatch),
    notServiceAccounts: list('notServiceAccounts', readServiceAccountMatch),
    principals: list('principals', readStringMatch),
    notPrincipals: list('notPrincipals', readStringMatch),
    sourceIps: list('sourceIps', readCidr),
    notSourceIps: list('notSourceIps', readCidr),
    destinationIps: list('destinationIps', readCidr),
    notDestinationIps: list('notDestinationIps', readCidr),
    destinationPorts: list('destinationPorts', readPort),
    notDestinationPorts: list('notDestinationPorts', readPort),
  };
}

function readPolicy(v: unknown, path: string): Authorization {
  const o = readMap(v, path, ['name', 'namespace', 'scope', 'action', 'rules', 'dryRun']);
  if (absent(o.scope)) fail(field(path, 'scope'), 'is required (Global, Namespace or WorkloadSelector)');
  if (absent(o.action)) fail(field(path, 'action'), 'is required (Allow or Deny)');
  const rulesPath = field(path, 'rules');
  return {
    name: requiredString(o, 'name', path),
    namespace: optionalString(o, 'namespace', path),
    scope: readEnum(o.scope, field(path, 'scope'), ['Global', 'Namespace', 'WorkloadSelector'] as const),
    action: readEnum(o.action, field(path, 'action'), ['Allow', 'Deny'] as const),
    dryRun: optionalBool(o, 'dryRun', path),
    // rules (OR) -> clauses (AND) -> matches (OR): three nested lists, as ztunnel's Vec<Vec<Vec<RbacMatch>>>.
    rules: absent(o.rules)
      ? []
      : readList(o.rules, rulesPath, (rule, rp) => readList(rule, rp, (clause, cp) => readList(clause, cp, readMatch))),
  };
}

// --- document ------------------------------------------------------------------------------------------------

/** Rejects a second record with the same key; ztunnel would silently keep the last, hiding a typo. */
function checkUnique<T>(records: readonly T[], key: (r: T) => string, path: string, what: string): void {
  const seen = new Map<string, number>();
  records.forEach((r, i) => {
    const k = key(r);
    const first = seen.get(k);
    if (first !== undefined) fail(item(path, i), `duplicate ${what} ${JSON.stringify(k)} (also ${item(path, first)})`);
    seen.set(k, i);
  });
}

/** Parses local-config YAML text into domain records, or throws a LocalConfigError naming the YAML path. */
export function parseLocalConfig(text: string, options: ParseLocalConfigOptions = {}): LocalConfig {
  try {
    return readDocument(text, options);
  } catch (err) {
    if (!(err instanceof DecodeError)) throw err;
    throw new LocalConfigError(LocalConfigErrorCode.INVALID, err.path, err.problem, { cause: err });
  }
}

function readDocument(text: string, options: ParseLocalConfigOptions): LocalConfig {
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: true, version: '1.2' });
  const syntax = doc.errors[0];
  // prettyErrors appends a source excerpt on later lines; the first line already says where.
  if (syntax) fail('', `not valid YAML: ${(syntax.message.split('\n')[0] ?? '').replace(/:$/, '')}`);
  let root: unknown;
  try {
    // The alias cap stops "billion laughs" documents from expanding into gigabytes.
    root = doc.toJS({ maxAliasCount: 1000 });
  } catch (err) {
    throw new LocalConfigError(LocalConfigErrorCode.INVALID, '', `not valid YAML: ${(err as Error).message}`, { cause: err });
  }
  if (absent(root)) root = {};
  const o = readMap(root, '', ['workloads', 'services', 'policies', 'trustDomain']);
  const trustDomain = optionalString(o, 'trustDomain', '', options.trustDomain ?? DEFAULT_TRUST_DOMAIN);
  if (!absent(o.trustDomain)) {
    try {
      makeIdentity('ns', 'sa', trustDomain);
    } catch {
      fail('trustDomain', `${show(trustDomain)} is not a trust domain (lowercase letters, digits, ".", "-", "_")`);
    }
  }
  const workloads = optionalList(o, 'workloads', '').map((w, i) => readWorkload(w, item('workloads', i), trustDomain));
  const services = optionalList(o, 'services', '').map((s, i) => readService(s, item('services', i)));
  const policies = optionalList(o, 'policies', '').map((p, i) => readPolicy(p, item('policies', i)));
  checkUnique(workloads, (w) => w.uid, 'workloads', 'uid');
  checkUnique(services, serviceKey, 'services', 'service');
  checkUnique(policies, policyKey, 'policies', 'policy');
  return deepFreeze({ trustDomain, workloads, services, policies });
}

/** Reads and parses a local-config file (ztunnel's LOCAL_XDS_PATH). Errors name the file and the YAML path. */
/**
 * The file's bytes, at most `max`: opened non-blocking (a FIFO put at the path must not hang the reload), refused
 * unless it is a regular file, and never read past the cap whatever it grows to meanwhile.
 */
async function readBounded(path: string, max: number): Promise<Buffer> {
  const fh = await open(path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
  try {
    const st = await fh.stat();
    if (!st.isFile()) {
      throw new LocalConfigError(LocalConfigErrorCode.UNREADABLE, '', `local config ${path} is not a regular file`);
    }
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const chunk = Buffer.alloc(Math.min(Math.max(st.size, 64 * 1024), max + 1));
      const { bytesRead } = await fh.read(chunk, 0, chunk.length, null);
      if (bytesRead === 0) return Buffer.concat(chunks, total);
      total += bytesRead;
      if (total > max) {
        throw new LocalConfigError(LocalConfigErrorCode.UNREADABLE, '', `local config ${path} is more than the ${max} bytes accepted`);
      }
      chunks.push(chunk.subarray(0, bytesRead));
    }
  } finally {
    await fh.close();
  }
}

export async function loadLocalConfigFile(path: string, options: ParseLocalConfigOptions = {}): Promise<LocalConfig> {
  let buf: Buffer;
  try {
    buf = await readBounded(path, MAX_LOCAL_CONFIG_BYTES);
  } catch (err) {
    if (err instanceof LocalConfigError) throw err;
    throw new LocalConfigError(LocalConfigErrorCode.UNREADABLE, '', `cannot read local config ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  try {
    return parseLocalConfig(buf.toString('utf8'), options);
  } catch (err) {
    if (!(err instanceof LocalConfigError)) throw err;
    throw new LocalConfigError(err.code, err.path, `in ${path}: ${err.message}`, { cause: err });
  }
}

// --- the inverse: records -> YAML ----------------------------------------------------------------------------

// Defaults are left out as ztunnel's serializer does, except fields its deserializer requires; ports stay YAML ints.
function portMapOut(m: PortMap): Map<number, number> {
  return new Map(Object.entries(m).map(([k, v]) => [Number(k), v] as [number, number]));
}

function destinationOut(d: GatewayDestination): string {
  return d.kind === 'address' ? `${d.network}/${d.address}` : `${d.namespace}/${d.hostname}`;
}

function gatewayOut(g: GatewayAddress): Record<string, unknown> {
  return { destination: destinationOut(g.destination), hboneMtlsPort: g.hboneMtlsPort };
}

function put(out: Record<string, unknown>, key: string, value: unknown, omit: boolean): void {
  if (!omit) out[key] = value;
}

function workloadOut(w: Workload): Record<string, unknown> {
  const o: Record<string, unknown> = { uid: w.uid };
  put(o, 'name', w.name, w.name === '');
  o.namespace = w.namespace;
  put(o, 'serviceAccount', w.serviceAccount, w.serviceAccount === DEFAULT_SERVICE_ACCOUNT);
  // Always written: Istio's ztunnel has no default trust domain in local mode (ztunnel src/xds.rs `LocalConfig`).
  o.trustDomain = w.trustDomain;
  o.workloadIps = [...w.workloadIps];
  o.protocol = w.protocol;
  put(o, 'networkMode', w.networkMode, w.networkMode === 'Standard');
  put(o, 'network', w.network, w.network === '');
  put(o, 'node', w.node, w.node === '');
  put(o, 'hostname', w.hostname, w.hostname === '');
  put(o, 'workloadName', w.workloadName, w.workloadName === '');
  put(o, 'workloadType', w.workloadType, w.workloadType === 'deployment');
  put(o, 'canonicalName', w.canonicalName, w.canonicalName === '');
  put(o, 'canonicalRevision', w.canonicalRevision, w.canonicalRevision === '');
  put(o, 'clusterId', w.clusterId, w.clusterId === DEFAULT_CLUSTER_ID);
  put(o, 'nativeTunnel', w.nativeTunnel, !w.nativeTunnel);
  if (w.waypoint) o.waypoint = gatewayOut(w.waypoint);
  if (w.networkGateway) o.networkGateway = gatewayOut(w.networkGateway);
  if (w.applicationTunnel) {
    o.applicationTunnel = {
      protocol: w.applicationTunnel.protocol,
      ...(w.applicationTunnel.port ? { port: w.applicationTunnel.port } : {}),
    };
  }
  put(o, 'authorizationPolicies', [...w.authorizationPolicies], w.authorizationPolicies.length === 0);
  put(o, 'status', w.status, w.status === 'Healthy');
  if (w.locality) o.locality = { ...w.locality };
  put(o, 'capacity', w.capacity, w.capacity === 1);
  // Required by ztunnel's LocalWorkload even when empty.
  o.services = Object.fromEntries(Object.entries(w.services).map(([k, m]) => [k, portMapOut(m)]));
  return o;
}

function serviceOut(s: Service): Record<string, unknown> {
  const o: Record<string, unknown> = { name: s.name, namespace: s.namespace, hostname: s.hostname };
  o.vips = s.vips.map((v) => `${v.network}/${v.address}`);
  if (s.cidrVips?.length) o.cidrVips = s.cidrVips.map((c) => ({ network: c.network, cidr: formatCidr(c.cidr) }));
  o.ports = portMapOut(s.ports);
  put(o, 'subjectAltNames', [...s.subjectAltNames], s.subjectAltNames.length === 0);
  if (s.waypoint) o.waypoint = gatewayOut(s.waypoint);
  if (s.weightedWaypoints?.length) {
    o.weightedWaypoints = s.weightedWaypoints.map((w) => ({ destination: gatewayOut(w.destination), weight: w.weight }));
  }
  if (s.loadBalancer) {
    const lb = s.loadBalancer;
    o.loadBalancer = { routingPreferences: [...lb.routingPreferences], mode: lb.mode, healthPolicy: lb.healthPolicy };
  }
  put(o, 'ipFamilies', s.ipFamilies, s.ipFamilies === 'Automatic');
  put(o, 'canonical', s.canonical, !s.canonical);
  put(o, 'visibility', s.visibility, s.visibility === 'Public');
  return o;
}

function stringMatchOut(m: StringMatch): Record<string, unknown> {
  switch (m.kind) {
    case 'exact':
      return { Exact: m.value };
    case 'prefix':
      return { Prefix: m.value };
    case 'suffix':
      return { Suffix: m.value };
    case 'presence':
      return { Presence: [] };
  }
}

function matchOut(m: RbacMatch): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  const strings = (k: string, v: readonly StringMatch[]): void => put(o, k, v.map(stringMatchOut), v.length === 0);
  const accounts = (k: string, v: readonly ServiceAccountMatch[]): void =>
    put(
      o,
      k,
      v.map((a) => ({ ...a })),
      v.length === 0,
    );
  const cidrs = (k: string, v: readonly Cidr[]): void => put(o, k, v.map(formatCidr), v.length === 0);
  const ports = (k: string, v: readonly number[]): void => put(o, k, [...v], v.length === 0);
  strings('namespaces', m.namespaces);
  strings('notNamespaces', m.notNamespaces);
  accounts('serviceAccounts', m.serviceAccounts);
  accounts('notServiceAccounts', m.notServiceAccounts);
  strings('principals', m.principals);
  strings('notPrincipals', m.notPrincipals);
  cidrs('sourceIps', m.sourceIps);
  cidrs('notSourceIps', m.notSourceIps);
  cidrs('destinationIps', m.destinationIps);
  cidrs('notDestinationIps', m.notDestinationIps);
  ports('destinationPorts', m.destinationPorts);
  ports('notDestinationPorts', m.notDestinationPorts);
  return o;
}

function policyOut(p: Authorization): Record<string, unknown> {
  return {
    name: p.name,
    namespace: p.namespace,
    scope: p.scope,
    action: p.action,
    dryRun: p.dryRun,
    rules: p.rules.map((rule) => rule.map((clause) => clause.map(matchOut))),
  };
}

/** Writes a state as local-config YAML that parseLocalConfig (and Istio's ztunnel) read back to the same records. */
export function toLocalConfigYaml(state: StateSnapshot): string {
  return stringify(
    {
      workloads: state.workloads.map(workloadOut),
      services: state.services.map(serviceOut),
      policies: state.policies.map(policyOut),
    },
    { aliasDuplicateObjects: false, lineWidth: 0 },
  );
}
