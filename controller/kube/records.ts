/**
 * The controller's Kubernetes edge: Namespaces, Pods, Services, EndpointSlices, Nodes and Istio's
 * AuthorizationPolicy / PeerAuthentication become small readonly records holding only what the model uses.
 * Input is either a `@kubernetes/client-node` object (dates as `Date`) or plain JSON of the same shape (dates as
 * RFC 3339 strings); both are read structurally, because an informer hands us whatever the API server sent.
 *
 * A malformed object is never an exception: every converter returns `{ ok: false, rejection }` naming the field
 * path and what is wrong, so the caller can skip the object, log it and write a status condition (BRIEF §7).
 * Fields that Kubernetes defaults at admission (Service port protocol, targetPort, EndpointSlice readiness) are
 * defaulted here the same way, so plain test JSON and server output produce the same record.
 */
import { canonicalIp, parseCidr } from '../../lib/net/ip.js';

// --- records -------------------------------------------------------------------------------------------------

export type Labels = Readonly<Record<string, string>>;

export interface NamespaceRecord {
  readonly name: string;
  readonly labels: Labels;
}

export type PortProtocol = 'TCP' | 'UDP' | 'SCTP';

export interface ContainerPort {
  readonly name: string;
  readonly containerPort: number;
  readonly protocol: PortProtocol;
}

/** The controlling owner (ownerReferences[].controller = true), used to name the workload (Deployment, Job...). */
export interface OwnerRef {
  readonly apiVersion: string;
  readonly kind: string;
  readonly name: string;
}

export type PodPhase = 'Pending' | 'Running' | 'Succeeded' | 'Failed' | 'Unknown' | '';

export interface PodRecord {
  readonly namespace: string;
  readonly name: string;
  readonly uid: string;
  /** metadata.generateName; with `controller` it lets the workload be named after its Deployment. */
  readonly generateName: string;
  readonly controller: OwnerRef | undefined;
  readonly labels: Labels;
  readonly annotations: Labels;
  /** spec.serviceAccountName ("" when absent; the API server normally defaults it to "default"). */
  readonly serviceAccount: string;
  readonly nodeName: string;
  /** status.podIPs (or status.podIP), canonical text, in the order Kubernetes lists them. */
  readonly podIPs: readonly string[];
  readonly hostNetwork: boolean;
  readonly phase: PodPhase;
  /** The Ready condition is "True". */
  readonly ready: boolean;
  /** metadata.deletionTimestamp is set. */
  readonly deleting: boolean;
  /**
   * Ports of the app containers and of native sidecars (init containers with restartPolicy Always), the ones a
   * Service's named targetPort can resolve to.
   */
  readonly containerPorts: readonly ContainerPort[];
}

export interface ServicePortRecord {
  readonly name: string;
  readonly port: number;
  /** A number, or a container port name to resolve per pod. Defaults to `port`, as the API server does. */
  readonly targetPort: number | string;
  readonly protocol: PortProtocol;
  readonly appProtocol: string | undefined;
}

export type ServiceType = 'ClusterIP' | 'NodePort' | 'LoadBalancer' | 'ExternalName';

export interface ServiceRecord {
  readonly namespace: string;
  readonly name: string;
  readonly type: ServiceType;
  /** spec.clusterIPs (or spec.clusterIP): canonical IPs, or "None" for a headless service. */
  readonly clusterIPs: readonly string[];
  readonly ports: readonly ServicePortRecord[];
  /** spec.selector; undefined when absent or empty (such a service selects no pods: endpoints are manual). */
  readonly selector: Labels | undefined;
  readonly labels: Labels;
  readonly annotations: Labels;
  readonly ipFamilies: readonly ('IPv4' | 'IPv6')[];
  readonly internalTrafficPolicy: 'Cluster' | 'Local' | undefined;
  readonly trafficDistribution: string | undefined;
  readonly publishNotReadyAddresses: boolean;
}

export interface EndpointSlicePortRecord {
  readonly name: string;
  /** Undefined means "all ports" (EndpointSlice API). */
  readonly port: number | undefined;
  readonly protocol: PortProtocol;
}

export interface PodRef {
  readonly namespace: string;
  readonly name: string;
  readonly uid: string;
}

export interface EndpointRecord {
  readonly addresses: readonly string[];
  /** conditions.ready; unset means ready (EndpointSlice API: "nil should be interpreted as true"). */
  readonly ready: boolean;
  /** The pod behind the endpoint (targetRef of kind Pod); undefined for other targets and manual endpoints. */
  readonly targetRef: PodRef | undefined;
  readonly nodeName: string;
}

export interface EndpointSliceRecord {
  readonly namespace: string;
  readonly name: string;
  /** Label kubernetes.io/service-name; undefined for slices that belong to no Service. */
  readonly serviceName: string | undefined;
  readonly addressType: 'IPv4' | 'IPv6' | 'FQDN';
  readonly ports: readonly EndpointSlicePortRecord[];
  readonly endpoints: readonly EndpointRecord[];
}

export interface NodeRecord {
  readonly name: string;
  /**
   * Only the topology labels (topology.kubernetes.io/region, topology.kubernetes.io/zone, topology.istio.io/subzone):
   * nodes change often (heartbeats, conditions) and nothing else of theirs reaches a workload.
   */
  readonly labels: Labels;
}

export type AuthorizationAction = 'ALLOW' | 'DENY' | 'AUDIT' | 'CUSTOM';

export interface PolicyTargetRef {
  readonly group: string;
  readonly kind: string;
  readonly name: string;
  readonly namespace: string | undefined;
}

/** security.istio.io Source. Fields the ztunnel conversion does not know (trustDomains) are not carried. */
export interface AuthorizationSource {
  readonly principals: readonly string[];
  readonly notPrincipals: readonly string[];
  readonly requestPrincipals: readonly string[];
  readonly notRequestPrincipals: readonly string[];
  readonly namespaces: readonly string[];
  readonly notNamespaces: readonly string[];
  readonly serviceAccounts: readonly string[];
  readonly notServiceAccounts: readonly string[];
  readonly ipBlocks: readonly string[];
  readonly notIpBlocks: readonly string[];
  readonly remoteIpBlocks: readonly string[];
  readonly notRemoteIpBlocks: readonly string[];
}

export interface AuthorizationOperation {
  readonly hosts: readonly string[];
  readonly notHosts: readonly string[];
  readonly ports: readonly string[];
  readonly notPorts: readonly string[];
  readonly methods: readonly string[];
  readonly notMethods: readonly string[];
  readonly paths: readonly string[];
  readonly notPaths: readonly string[];
}

export interface AuthorizationCondition {
  readonly key: string;
  readonly values: readonly string[];
  readonly notValues: readonly string[];
}

export interface AuthorizationRuleRecord {
  readonly from: readonly { readonly source: AuthorizationSource }[];
  readonly to: readonly { readonly operation: AuthorizationOperation }[];
  readonly when: readonly AuthorizationCondition[];
}

export interface AuthorizationPolicyRecord {
  readonly namespace: string;
  readonly name: string;
  /** Only `istio.io/dry-run`: other annotations (kubectl's last-applied...) must not cause a re-conversion. */
  readonly annotations: Labels;
  /** spec.selector.matchLabels; undefined when there is no selector (an empty one selects every pod). */
  readonly selector: Labels | undefined;
  /** spec.targetRef and spec.targetRefs together. */
  readonly targetRefs: readonly PolicyTargetRef[];
  readonly action: AuthorizationAction;
  readonly provider: { readonly name: string } | undefined;
  readonly rules: readonly AuthorizationRuleRecord[];
}

export type MtlsMode = 'UNSET' | 'DISABLE' | 'PERMISSIVE' | 'STRICT';

export interface PeerAuthenticationRecord {
  readonly namespace: string;
  readonly name: string;
  /** metadata.creationTimestamp in ms since the epoch (0 if absent): the oldest policy wins a conflict. */
  readonly createdAt: number;
  /** spec.selector.matchLabels; undefined when absent or empty (Istio treats both as namespace-wide). */
  readonly selector: Labels | undefined;
  readonly mtlsMode: MtlsMode;
  /** spec.portLevelMtls, sorted by port. */
  readonly portLevelMtls: readonly { readonly port: number; readonly mode: MtlsMode }[];
}

// --- rejections ----------------------------------------------------------------------------------------------

export type KubeKind = 'Namespace' | 'Pod' | 'Service' | 'EndpointSlice' | 'Node' | 'AuthorizationPolicy' | 'PeerAuthentication';

export const KubeRecordErrorCode = {
  /** An object does not have the shape its kind requires; it is skipped and reported. */
  INVALID_OBJECT: 'CONTROLLER_INVALID_OBJECT',
} as const;

/** Why an object was not turned into a record. Data, so it can travel to a log line and a status condition. */
export interface KubeRejection {
  readonly code: (typeof KubeRecordErrorCode)[keyof typeof KubeRecordErrorCode];
  readonly kind: KubeKind;
  /** "" when unknown (the metadata itself is malformed) or for cluster-scoped kinds. */
  readonly namespace: string;
  readonly name: string;
  /** Field path of the offending value, e.g. `spec.ports[1].port`; "" for the object as a whole. */
  readonly path: string;
  /** One line a person can act on, starting with the path. */
  readonly reason: string;
}

export type RecordResult<T> = { readonly ok: true; readonly record: T } | { readonly ok: false; readonly rejection: KubeRejection };

// --- reading helpers -----------------------------------------------------------------------------------------

type Obj = Readonly<Record<string, unknown>>;

/** Thrown inside a converter only; `convert` turns it into a rejection, so it never escapes this module. */
class Malformed extends Error {
  constructor(
    readonly path: string,
    readonly problem: string,
  ) {
    super(path === '' ? problem : `${path}: ${problem}`);
  }
}

function fail(path: string, problem: string): never {
  throw new Malformed(path, problem);
}

function show(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'string') return JSON.stringify(v.length > 80 ? `${v.slice(0, 80)}...` : v);
  if (Array.isArray(v)) return 'a list';
  if (v instanceof Date) return v.toISOString();
  if (typeof v === 'object') return 'a map';
  return String(v);
}

const at = (path: string, key: string): string => (path === '' ? key : `${path}.${key}`);
const idx = (path: string, i: number): string => `${path}[${i}]`;
const absent = (v: unknown): boolean => v === undefined || v === null;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

function obj(v: unknown, path: string): Obj {
  if (!isObj(v)) fail(path, `expected a map, found ${show(v)}`);
  return v;
}

function optObj(o: Obj, key: string, path: string): Obj {
  return absent(o[key]) ? {} : obj(o[key], at(path, key));
}

function str(o: Obj, key: string, path: string, def = ''): string {
  const v = o[key];
  if (absent(v)) return def;
  if (typeof v !== 'string') fail(at(path, key), `expected a string, found ${show(v)}`);
  return v;
}

function reqStr(o: Obj, key: string, path: string): string {
  const v = str(o, key, path);
  if (v === '') fail(at(path, key), 'is required');
  return v;
}

function bool(o: Obj, key: string, path: string): boolean {
  const v = o[key];
  if (absent(v)) return false;
  if (typeof v !== 'boolean') fail(at(path, key), `expected true or false, found ${show(v)}`);
  return v;
}

function list(o: Obj, key: string, path: string): readonly unknown[] {
  const v = o[key];
  if (absent(v)) return [];
  if (!Array.isArray(v)) fail(at(path, key), `expected a list, found ${show(v)}`);
  return v;
}

function strList(o: Obj, key: string, path: string): readonly string[] {
  return list(o, key, path).map((x, i) => {
    if (typeof x !== 'string') fail(idx(at(path, key), i), `expected a string, found ${show(x)}`);
    return x;
  });
}

function stringMap(o: Obj, key: string, path: string): Labels {
  const v = o[key];
  if (absent(v)) return {};
  const m = obj(v, at(path, key));
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(m)) {
    if (typeof x !== 'string') fail(`${at(path, key)}[${JSON.stringify(k)}]`, `expected a string, found ${show(x)}`);
    out[k] = x;
  }
  return Object.freeze(out);
}

function port(v: unknown, path: string, min = 1): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > 65535) {
    fail(path, `${show(v)} is not a port (an integer ${min}..65535)`);
  }
  return v;
}

function oneOf<T extends string>(v: unknown, path: string, values: readonly T[], def: T): T {
  if (absent(v)) return def;
  if (typeof v !== 'string' || !(values as readonly string[]).includes(v)) {
    fail(path, `${show(v)} is not one of: ${values.join(', ')}`);
  }
  return v as T;
}

function ip(v: unknown, path: string): string {
  const c = typeof v === 'string' ? canonicalIp(v) : undefined;
  if (c === undefined) fail(path, `${show(v)} is not an IP address`);
  return c;
}

/** RFC 3339 string (plain JSON) or Date (client-node) → ms since the epoch; absent → 0. */
function timestamp(v: unknown, path: string): number {
  if (absent(v)) return 0;
  const ms = v instanceof Date ? v.getTime() : typeof v === 'string' ? Date.parse(v) : Number.NaN;
  if (Number.isNaN(ms)) fail(path, `${show(v)} is not a timestamp`);
  return ms;
}

const PROTOCOLS: readonly PortProtocol[] = ['TCP', 'UDP', 'SCTP'];
const protocolOf = (o: Obj, path: string): PortProtocol => oneOf(o.protocol, at(path, 'protocol'), PROTOCOLS, 'TCP');

interface Meta {
  readonly namespace: string;
  readonly name: string;
  readonly o: Obj;
  readonly meta: Obj;
}

/**
 * Runs a converter; a Malformed becomes a rejection. The namespace/name are read leniently first so that even
 * an object with broken metadata is reported under whatever name it has.
 */
function convert<T>(kind: KubeKind, input: unknown, body: (m: Meta) => T, namespaced = true): RecordResult<T> {
  const meta = isObj(input) && isObj(input.metadata) ? input.metadata : undefined;
  const namespace = meta !== undefined && typeof meta.namespace === 'string' ? meta.namespace : '';
  const name = meta !== undefined && typeof meta.name === 'string' ? meta.name : '';
  try {
    const o = obj(input, '');
    const m = obj(o.metadata, 'metadata');
    reqStr(m, 'name', 'metadata');
    if (namespaced) reqStr(m, 'namespace', 'metadata');
    return { ok: true, record: deepFreeze(body({ namespace, name, o, meta: m })) };
  } catch (err) {
    if (!(err instanceof Malformed)) {
      // A bug in a converter, not bad input: still reported, never thrown at the watch loop.
      return reject(kind, namespace, name, '', `could not be read: ${err instanceof Error ? err.message : String(err)}`);
    }
    return reject(kind, namespace, name, err.path, err.message);
  }
}

function reject<T>(kind: KubeKind, namespace: string, name: string, path: string, reason: string): RecordResult<T> {
  return { ok: false, rejection: Object.freeze({ code: KubeRecordErrorCode.INVALID_OBJECT, kind, namespace, name, path, reason }) };
}

function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v)) deepFreeze(x);
  }
  return v;
}

// --- core kinds ----------------------------------------------------------------------------------------------

/** A v1 Namespace (V1Namespace or its JSON). */
export function namespaceRecord(input: unknown): RecordResult<NamespaceRecord> {
  return convert<NamespaceRecord>('Namespace', input, ({ name, meta }) => ({ name, labels: stringMap(meta, 'labels', 'metadata') }), false);
}

const TOPOLOGY_LABELS = ['topology.kubernetes.io/region', 'topology.kubernetes.io/zone', 'topology.istio.io/subzone'] as const;

/** A v1 Node (V1Node or its JSON). */
export function nodeRecord(input: unknown): RecordResult<NodeRecord> {
  return convert(
    'Node',
    input,
    ({ name, meta }) => {
      const all = stringMap(meta, 'labels', 'metadata');
      const labels: Record<string, string> = {};
      for (const k of TOPOLOGY_LABELS) if (all[k] !== undefined) labels[k] = all[k];
      return { name, labels };
    },
    false,
  );
}

function containerPorts(containers: readonly unknown[], path: string, onlyRestartAlways: boolean): ContainerPort[] {
  const out: ContainerPort[] = [];
  containers.forEach((c, i) => {
    const cp = idx(path, i);
    const co = obj(c, cp);
    if (onlyRestartAlways && str(co, 'restartPolicy', cp) !== 'Always') return;
    list(co, 'ports', cp).forEach((p, j) => {
      const pp = idx(at(cp, 'ports'), j);
      const po = obj(p, pp);
      out.push({ name: str(po, 'name', pp), containerPort: port(po.containerPort, at(pp, 'containerPort')), protocol: protocolOf(po, pp) });
    });
  });
  return out;
}

const POD_PHASES: readonly PodPhase[] = ['Pending', 'Running', 'Succeeded', 'Failed', 'Unknown'];

/** A v1 Pod (V1Pod or its JSON). */
export function podRecord(input: unknown): RecordResult<PodRecord> {
  return convert<PodRecord>('Pod', input, ({ namespace, name, o, meta }) => {
    const spec = optObj(o, 'spec', '');
    const status = optObj(o, 'status', '');
    const owners = list(meta, 'ownerReferences', 'metadata');
    let controller: OwnerRef | undefined;
    owners.forEach((r, i) => {
      const p = idx('metadata.ownerReferences', i);
      const ro = obj(r, p);
      if (controller === undefined && bool(ro, 'controller', p)) {
        controller = { apiVersion: str(ro, 'apiVersion', p), kind: reqStr(ro, 'kind', p), name: reqStr(ro, 'name', p) };
      }
    });
    // status.podIPs is authoritative; status.podIP alone is what older API servers (and some tests) write.
    let ips = list(status, 'podIPs', 'status').map((x, i) => ip(obj(x, idx('status.podIPs', i)).ip, at(idx('status.podIPs', i), 'ip')));
    if (ips.length === 0 && str(status, 'podIP', 'status') !== '') ips = [ip(status.podIP, 'status.podIP')];
    const conditions = list(status, 'conditions', 'status');
    const ready = conditions.some((c, i) => {
      const co = obj(c, idx('status.conditions', i));
      return co.type === 'Ready' && co.status === 'True';
    });
    return {
      namespace,
      name,
      uid: str(meta, 'uid', 'metadata'),
      generateName: str(meta, 'generateName', 'metadata'),
      controller,
      labels: stringMap(meta, 'labels', 'metadata'),
      annotations: stringMap(meta, 'annotations', 'metadata'),
      serviceAccount: str(spec, 'serviceAccountName', 'spec'),
      nodeName: str(spec, 'nodeName', 'spec'),
      podIPs: [...new Set(ips)],
      hostNetwork: bool(spec, 'hostNetwork', 'spec'),
      phase: oneOf(status.phase, 'status.phase', POD_PHASES, ''),
      ready,
      deleting: timestamp(meta.deletionTimestamp, 'metadata.deletionTimestamp') !== 0,
      containerPorts: [
        ...containerPorts(list(spec, 'containers', 'spec'), 'spec.containers', false),
        ...containerPorts(list(spec, 'initContainers', 'spec'), 'spec.initContainers', true),
      ],
    };
  });
}

const SERVICE_TYPES: readonly ServiceType[] = ['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName'];

/** A v1 Service (V1Service or its JSON). */
export function serviceRecord(input: unknown): RecordResult<ServiceRecord> {
  return convert<ServiceRecord>('Service', input, ({ namespace, name, o, meta }) => {
    const spec = optObj(o, 'spec', '');
    const type = oneOf(spec.type, 'spec.type', SERVICE_TYPES, 'ClusterIP');
    let cips = strList(spec, 'clusterIPs', 'spec').map((c, i) => (c === 'None' ? c : ip(c, idx('spec.clusterIPs', i))));
    const single = str(spec, 'clusterIP', 'spec');
    if (cips.length === 0 && single !== '') cips = [single === 'None' ? single : ip(single, 'spec.clusterIP')];
    const ports = list(spec, 'ports', 'spec').map((p, i): ServicePortRecord => {
      const pp = idx('spec.ports', i);
      const po = obj(p, pp);
      const servicePort = port(po.port, at(pp, 'port'));
      const tp = po.targetPort;
      let targetPort: number | string;
      if (absent(tp) || tp === 0 || tp === '') targetPort = servicePort;
      else if (typeof tp === 'number') targetPort = port(tp, at(pp, 'targetPort'));
      else if (typeof tp === 'string') {
        // IntOrString: a JSON string of digits is still a number ("8080"), as the API server's unmarshalling does.
        targetPort = /^[0-9]+$/.test(tp) ? port(Number(tp), at(pp, 'targetPort')) : tp;
      } else fail(at(pp, 'targetPort'), `expected a port number or a port name, found ${show(tp)}`);
      const appProtocol = str(po, 'appProtocol', pp);
      return {
        name: str(po, 'name', pp),
        port: servicePort,
        targetPort,
        protocol: protocolOf(po, pp),
        appProtocol: appProtocol === '' ? undefined : appProtocol,
      };
    });
    const selector = stringMap(spec, 'selector', 'spec');
    const itp = spec.internalTrafficPolicy;
    const td = str(spec, 'trafficDistribution', 'spec');
    return {
      namespace,
      name,
      type,
      clusterIPs: cips,
      ports,
      selector: Object.keys(selector).length === 0 ? undefined : selector,
      labels: stringMap(meta, 'labels', 'metadata'),
      annotations: stringMap(meta, 'annotations', 'metadata'),
      ipFamilies: list(spec, 'ipFamilies', 'spec').map((f, i) => oneOf(f, idx('spec.ipFamilies', i), ['IPv4', 'IPv6'] as const, 'IPv4')),
      internalTrafficPolicy: absent(itp) ? undefined : oneOf(itp, 'spec.internalTrafficPolicy', ['Cluster', 'Local'] as const, 'Cluster'),
      trafficDistribution: td === '' ? undefined : td,
      publishNotReadyAddresses: bool(spec, 'publishNotReadyAddresses', 'spec'),
    };
  });
}

const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

/** A discovery.k8s.io/v1 EndpointSlice (V1EndpointSlice or its JSON). */
export function endpointSliceRecord(input: unknown): RecordResult<EndpointSliceRecord> {
  return convert<EndpointSliceRecord>('EndpointSlice', input, ({ namespace, name, o, meta }) => {
    const labels = stringMap(meta, 'labels', 'metadata');
    if (absent(o.addressType)) fail('addressType', 'is required (IPv4, IPv6 or FQDN)');
    const addressType = oneOf(o.addressType, 'addressType', ['IPv4', 'IPv6', 'FQDN'] as const, 'IPv4');
    const ports = list(o, 'ports', '').map((p, i): EndpointSlicePortRecord => {
      const pp = idx('ports', i);
      const po = obj(p, pp);
      return { name: str(po, 'name', pp), port: absent(po.port) ? undefined : port(po.port, at(pp, 'port')), protocol: protocolOf(po, pp) };
    });
    const endpoints = list(o, 'endpoints', '').map((e, i): EndpointRecord => {
      const ep = idx('endpoints', i);
      const eo = obj(e, ep);
      const addresses = strList(eo, 'addresses', ep);
      // FQDN slices hold hostnames; only IP slices are checked as addresses.
      const checked = addressType === 'FQDN' ? addresses : addresses.map((a, j) => ip(a, idx(at(ep, 'addresses'), j)));
      const cond = optObj(eo, 'conditions', ep);
      const ready = absent(cond.ready) ? true : bool(cond, 'ready', at(ep, 'conditions'));
      let targetRef: PodRef | undefined;
      if (!absent(eo.targetRef)) {
        const tp = at(ep, 'targetRef');
        const to = obj(eo.targetRef, tp);
        if (str(to, 'kind', tp) === 'Pod') {
          // A targetRef without a namespace refers to the slice's own namespace.
          targetRef = {
            namespace: str(to, 'namespace', tp, namespace) || namespace,
            name: reqStr(to, 'name', tp),
            uid: str(to, 'uid', tp),
          };
        }
      }
      return { addresses: checked, ready, targetRef, nodeName: str(eo, 'nodeName', ep) };
    });
    return { namespace, name, serviceName: labels[SERVICE_NAME_LABEL], addressType, ports, endpoints };
  });
}

// --- Istio security CRDs -------------------------------------------------------------------------------------

const DRY_RUN_ANNOTATION = 'istio.io/dry-run';
const ACTIONS: readonly AuthorizationAction[] = ['ALLOW', 'DENY', 'AUDIT', 'CUSTOM'];
/** when-keys whose values must be IPs/CIDRs or ports; a typo there would silently widen or narrow a policy. */
const IP_KEYS = new Set(['source.ip', 'destination.ip', 'remote.ip']);

function selectorOf(spec: Obj, path: string): Labels | undefined {
  if (absent(spec.selector)) return undefined;
  return stringMap(obj(spec.selector, at(path, 'selector')), 'matchLabels', at(path, 'selector'));
}

function targetRef(v: unknown, path: string): PolicyTargetRef {
  const o = obj(v, path);
  const ns = str(o, 'namespace', path);
  return {
    group: str(o, 'group', path),
    kind: reqStr(o, 'kind', path),
    name: reqStr(o, 'name', path),
    namespace: ns === '' ? undefined : ns,
  };
}

function ipBlocks(o: Obj, key: string, path: string): readonly string[] {
  const values = strList(o, key, path);
  values.forEach((v, i) => {
    if (parseCidr(v) === undefined) fail(idx(at(path, key), i), `${show(v)} is not an IP address or CIDR block`);
  });
  return values;
}

function portStrings(o: Obj, key: string, path: string): readonly string[] {
  const values = strList(o, key, path);
  values.forEach((v, i) => {
    if (!/^[0-9]{1,5}$/.test(v) || Number(v) < 1 || Number(v) > 65535) fail(idx(at(path, key), i), `${show(v)} is not a port (1..65535)`);
  });
  return values;
}

function source(v: unknown, path: string): AuthorizationSource {
  const s = obj(v, path);
  const src: AuthorizationSource = {
    principals: strList(s, 'principals', path),
    notPrincipals: strList(s, 'notPrincipals', path),
    requestPrincipals: strList(s, 'requestPrincipals', path),
    notRequestPrincipals: strList(s, 'notRequestPrincipals', path),
    namespaces: strList(s, 'namespaces', path),
    notNamespaces: strList(s, 'notNamespaces', path),
    serviceAccounts: strList(s, 'serviceAccounts', path),
    notServiceAccounts: strList(s, 'notServiceAccounts', path),
    ipBlocks: ipBlocks(s, 'ipBlocks', path),
    notIpBlocks: ipBlocks(s, 'notIpBlocks', path),
    remoteIpBlocks: ipBlocks(s, 'remoteIpBlocks', path),
    notRemoteIpBlocks: ipBlocks(s, 'notRemoteIpBlocks', path),
  };
  // Istio's validation: serviceAccounts names an identity on its own and cannot be mixed with the other forms.
  if (
    src.serviceAccounts.length + src.notServiceAccounts.length > 0 &&
    src.principals.length + src.notPrincipals.length + src.namespaces.length + src.notNamespaces.length > 0
  ) {
    fail(path, 'cannot set serviceAccounts with namespaces or principals');
  }
  return src;
}

function operation(v: unknown, path: string): AuthorizationOperation {
  const o = obj(v, path);
  return {
    hosts: strList(o, 'hosts', path),
    notHosts: strList(o, 'notHosts', path),
    ports: portStrings(o, 'ports', path),
    notPorts: portStrings(o, 'notPorts', path),
    methods: strList(o, 'methods', path),
    notMethods: strList(o, 'notMethods', path),
    paths: strList(o, 'paths', path),
    notPaths: strList(o, 'notPaths', path),
  };
}

function condition(v: unknown, path: string): AuthorizationCondition {
  const o = obj(v, path);
  const key = reqStr(o, 'key', path);
  const checked = (k: 'values' | 'notValues'): readonly string[] =>
    IP_KEYS.has(key) ? ipBlocks(o, k, path) : key === 'destination.port' ? portStrings(o, k, path) : strList(o, k, path);
  const values = checked('values');
  const notValues = checked('notValues');
  if (values.length === 0 && notValues.length === 0) fail(path, `at least one of values or notValues must be set for key ${key}`);
  return { key, values, notValues };
}

/** A security.istio.io AuthorizationPolicy (v1 or v1beta1; same spec). */
export function authorizationPolicyRecord(input: unknown): RecordResult<AuthorizationPolicyRecord> {
  return convert<AuthorizationPolicyRecord>('AuthorizationPolicy', input, ({ namespace, name, o, meta }) => {
    const spec = optObj(o, 'spec', '');
    const selector = selectorOf(spec, 'spec');
    const refs = [
      ...(absent(spec.targetRef) ? [] : [targetRef(spec.targetRef, 'spec.targetRef')]),
      ...list(spec, 'targetRefs', 'spec').map((r, i) => targetRef(r, idx('spec.targetRefs', i))),
    ];
    if (selector !== undefined && refs.length > 0) fail('spec', 'selector and targetRef(s) are mutually exclusive');
    const action = oneOf(spec.action, 'spec.action', ACTIONS, 'ALLOW');
    const provider = absent(spec.provider) ? undefined : { name: str(obj(spec.provider, 'spec.provider'), 'name', 'spec.provider') };
    const rules = list(spec, 'rules', 'spec').map((r, i): AuthorizationRuleRecord => {
      const rp = idx('spec.rules', i);
      const ro = obj(r, rp);
      return {
        from: list(ro, 'from', rp).map((f, j) => {
          const fp = idx(at(rp, 'from'), j);
          return { source: source(obj(f, fp).source ?? {}, at(fp, 'source')) };
        }),
        to: list(ro, 'to', rp).map((t, j) => {
          const tp = idx(at(rp, 'to'), j);
          return { operation: operation(obj(t, tp).operation ?? {}, at(tp, 'operation')) };
        }),
        when: list(ro, 'when', rp).map((c, j) => condition(c, idx(at(rp, 'when'), j))),
      };
    });
    const annotations = stringMap(meta, 'annotations', 'metadata');
    const dryRun = annotations[DRY_RUN_ANNOTATION];
    const kept: Labels = dryRun === undefined ? {} : { [DRY_RUN_ANNOTATION]: dryRun };
    return {
      namespace,
      name,
      annotations: kept,
      selector,
      targetRefs: refs,
      action,
      provider,
      rules,
    };
  });
}

const MTLS_MODES: readonly MtlsMode[] = ['UNSET', 'DISABLE', 'PERMISSIVE', 'STRICT'];

function mtlsMode(v: unknown, path: string): MtlsMode {
  if (absent(v)) return 'UNSET';
  return oneOf(obj(v, path).mode, at(path, 'mode'), MTLS_MODES, 'UNSET');
}

/** A security.istio.io PeerAuthentication (v1 or v1beta1). */
export function peerAuthenticationRecord(input: unknown): RecordResult<PeerAuthenticationRecord> {
  return convert<PeerAuthenticationRecord>('PeerAuthentication', input, ({ namespace, name, o, meta }) => {
    const spec = optObj(o, 'spec', '');
    const selector = selectorOf(spec, 'spec');
    const plm = absent(spec.portLevelMtls) ? {} : obj(spec.portLevelMtls, 'spec.portLevelMtls');
    const portLevelMtls = Object.entries(plm)
      .map(([k, v]) => {
        const p = `spec.portLevelMtls[${JSON.stringify(k)}]`;
        if (!/^[0-9]{1,5}$/.test(k)) fail(p, `${show(k)} is not a port`);
        return { port: port(Number(k), p), mode: mtlsMode(v, p) };
      })
      .sort((a, b) => a.port - b.port);
    return {
      namespace,
      name,
      createdAt: timestamp(meta.creationTimestamp, 'metadata.creationTimestamp'),
      selector: selector === undefined || Object.keys(selector).length === 0 ? undefined : selector,
      mtlsMode: mtlsMode(spec.mtls, 'spec.mtls'),
      portLevelMtls,
    };
  });
}

/** Key of a namespaced record in ClusterState maps: "<namespace>/<name>". */
export const objectKey = (r: { readonly namespace: string; readonly name: string }): string => `${r.namespace}/${r.name}`;
