/**
 * The controller's Kubernetes edge: Namespaces, Pods, Services, EndpointSlices, Nodes and Istio's
 * AuthorizationPolicy / PeerAuthentication become small readonly records holding only what the model uses.
 * Input is either a `@kubernetes/client-node` object (dates as `Date`) or plain JSON of the same shape (dates as
 * RFC 3339 strings); both are read structurally, because an informer hands us whatever the API server sent.
 *
 * A malformed object is never an exception: every converter returns `{ ok: false, rejection }` naming the field
 * path and what is wrong, so the caller can skip the object, log it and write a status condition.
 * Fields that Kubernetes defaults at admission (Service port protocol, targetPort, EndpointSlice readiness) are
 * defaulted here the same way, so plain test JSON and server output produce the same record.
 */
import {
  absent,
  DecodeError,
  deepFreeze,
  fail,
  field,
  isMap,
  item,
  nonEmptyString,
  optionalBool,
  optionalEnum,
  optionalList,
  optionalMap,
  optionalString,
  readCidr,
  readEnum,
  readIp,
  readMap,
  readPort,
  readTimestamp,
  show,
  stringList,
  stringMap,
  type Obj,
} from '../../lib/decode/index.js';

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

// --- reading ---------------------------------------------------------------------------------------------------

// Readers (lib/decode) throw a DecodeError with the field path; `convert` turns it into a rejection, so nothing
// thrown by a converter reaches the watch loop.

const PROTOCOLS: readonly PortProtocol[] = ['TCP', 'UDP', 'SCTP'];
const protocolOf = (o: Obj, path: string): PortProtocol => optionalEnum(o, 'protocol', path, PROTOCOLS, 'TCP');

interface Meta {
  readonly namespace: string;
  readonly name: string;
  readonly o: Obj;
  readonly meta: Obj;
}

/**
 * Runs a converter; a DecodeError becomes a rejection. The namespace/name are read leniently first so that even
 * an object with broken metadata is reported under whatever name it has.
 */
function convert<T>(kind: KubeKind, input: unknown, body: (m: Meta) => T, namespaced = true): RecordResult<T> {
  const meta = isMap(input) && isMap(input.metadata) ? input.metadata : undefined;
  const namespace = meta !== undefined && typeof meta.namespace === 'string' ? meta.namespace : '';
  const name = meta !== undefined && typeof meta.name === 'string' ? meta.name : '';
  try {
    const o = readMap(input, '');
    const m = readMap(o.metadata, 'metadata');
    nonEmptyString(m, 'name', 'metadata');
    if (namespaced) nonEmptyString(m, 'namespace', 'metadata');
    return { ok: true, record: deepFreeze(body({ namespace, name, o, meta: m })) };
  } catch (err) {
    if (!(err instanceof DecodeError)) {
      // A bug in a converter, not bad input: still reported, never thrown at the watch loop.
      return reject(kind, namespace, name, '', `could not be read: ${err instanceof Error ? err.message : String(err)}`);
    }
    return reject(kind, namespace, name, err.path, err.message);
  }
}

function reject<T>(kind: KubeKind, namespace: string, name: string, path: string, reason: string): RecordResult<T> {
  return { ok: false, rejection: Object.freeze({ code: KubeRecordErrorCode.INVALID_OBJECT, kind, namespace, name, path, reason }) };
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
    const cp = item(path, i);
    const co = readMap(c, cp);
    if (onlyRestartAlways && optionalString(co, 'restartPolicy', cp) !== 'Always') return;
    optionalList(co, 'ports', cp).forEach((p, j) => {
      const pp = item(field(cp, 'ports'), j);
      const po = readMap(p, pp);
      out.push({
        name: optionalString(po, 'name', pp),
        containerPort: readPort(po.containerPort, field(pp, 'containerPort')),
        protocol: protocolOf(po, pp),
      });
    });
  });
  return out;
}

const POD_PHASES: readonly PodPhase[] = ['Pending', 'Running', 'Succeeded', 'Failed', 'Unknown'];

/** A v1 Pod (V1Pod or its JSON). */
export function podRecord(input: unknown): RecordResult<PodRecord> {
  return convert<PodRecord>('Pod', input, ({ namespace, name, o, meta }) => {
    const spec = optionalMap(o, 'spec', '');
    const status = optionalMap(o, 'status', '');
    const owners = optionalList(meta, 'ownerReferences', 'metadata');
    let controller: OwnerRef | undefined;
    owners.forEach((r, i) => {
      const p = item('metadata.ownerReferences', i);
      const ro = readMap(r, p);
      if (controller === undefined && optionalBool(ro, 'controller', p)) {
        controller = {
          apiVersion: optionalString(ro, 'apiVersion', p),
          kind: nonEmptyString(ro, 'kind', p),
          name: nonEmptyString(ro, 'name', p),
        };
      }
    });
    // status.podIPs is authoritative; status.podIP alone is what older API servers (and some tests) write.
    let ips = optionalList(status, 'podIPs', 'status').map((x, i) =>
      readIp(readMap(x, item('status.podIPs', i)).ip, field(item('status.podIPs', i), 'ip')),
    );
    if (ips.length === 0 && optionalString(status, 'podIP', 'status') !== '') ips = [readIp(status.podIP, 'status.podIP')];
    const conditions = optionalList(status, 'conditions', 'status');
    const ready = conditions.some((c, i) => {
      const co = readMap(c, item('status.conditions', i));
      return co.type === 'Ready' && co.status === 'True';
    });
    return {
      namespace,
      name,
      uid: optionalString(meta, 'uid', 'metadata'),
      generateName: optionalString(meta, 'generateName', 'metadata'),
      controller,
      labels: stringMap(meta, 'labels', 'metadata'),
      annotations: stringMap(meta, 'annotations', 'metadata'),
      serviceAccount: optionalString(spec, 'serviceAccountName', 'spec'),
      nodeName: optionalString(spec, 'nodeName', 'spec'),
      podIPs: [...new Set(ips)],
      hostNetwork: optionalBool(spec, 'hostNetwork', 'spec'),
      phase: optionalEnum(status, 'phase', 'status', POD_PHASES, ''),
      ready,
      deleting: readTimestamp(meta.deletionTimestamp, 'metadata.deletionTimestamp') !== 0,
      containerPorts: [
        ...containerPorts(optionalList(spec, 'containers', 'spec'), 'spec.containers', false),
        ...containerPorts(optionalList(spec, 'initContainers', 'spec'), 'spec.initContainers', true),
      ],
    };
  });
}

const SERVICE_TYPES: readonly ServiceType[] = ['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName'];

/** A v1 Service (V1Service or its JSON). */
export function serviceRecord(input: unknown): RecordResult<ServiceRecord> {
  return convert<ServiceRecord>('Service', input, ({ namespace, name, o, meta }) => {
    const spec = optionalMap(o, 'spec', '');
    const type = optionalEnum(spec, 'type', 'spec', SERVICE_TYPES, 'ClusterIP');
    let cips = stringList(spec, 'clusterIPs', 'spec').map((c, i) => (c === 'None' ? c : readIp(c, item('spec.clusterIPs', i))));
    const single = optionalString(spec, 'clusterIP', 'spec');
    if (cips.length === 0 && single !== '') cips = [single === 'None' ? single : readIp(single, 'spec.clusterIP')];
    const ports = optionalList(spec, 'ports', 'spec').map((p, i): ServicePortRecord => {
      const pp = item('spec.ports', i);
      const po = readMap(p, pp);
      const servicePort = readPort(po.port, field(pp, 'port'));
      const tp = po.targetPort;
      let targetPort: number | string;
      if (absent(tp) || tp === 0 || tp === '') targetPort = servicePort;
      else if (typeof tp === 'number') targetPort = readPort(tp, field(pp, 'targetPort'));
      else if (typeof tp === 'string') {
        // IntOrString: a JSON string of digits is still a number ("8080"), as the API server's unmarshalling does.
        targetPort = /^[0-9]+$/.test(tp) ? readPort(Number(tp), field(pp, 'targetPort')) : tp;
      } else fail(field(pp, 'targetPort'), `expected a port number or a port name, found ${show(tp)}`);
      const appProtocol = optionalString(po, 'appProtocol', pp);
      return {
        name: optionalString(po, 'name', pp),
        port: servicePort,
        targetPort,
        protocol: protocolOf(po, pp),
        appProtocol: appProtocol === '' ? undefined : appProtocol,
      };
    });
    const selector = stringMap(spec, 'selector', 'spec');
    const itp = spec.internalTrafficPolicy;
    const td = optionalString(spec, 'trafficDistribution', 'spec');
    return {
      namespace,
      name,
      type,
      clusterIPs: cips,
      ports,
      selector: Object.keys(selector).length === 0 ? undefined : selector,
      labels: stringMap(meta, 'labels', 'metadata'),
      annotations: stringMap(meta, 'annotations', 'metadata'),
      ipFamilies: optionalList(spec, 'ipFamilies', 'spec').map((f, i) =>
        readEnum(f, item('spec.ipFamilies', i), ['IPv4', 'IPv6'] as const),
      ),
      internalTrafficPolicy: absent(itp) ? undefined : readEnum(itp, 'spec.internalTrafficPolicy', ['Cluster', 'Local'] as const),
      trafficDistribution: td === '' ? undefined : td,
      publishNotReadyAddresses: optionalBool(spec, 'publishNotReadyAddresses', 'spec'),
    };
  });
}

const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

/** A discovery.k8s.io/v1 EndpointSlice (V1EndpointSlice or its JSON). */
export function endpointSliceRecord(input: unknown): RecordResult<EndpointSliceRecord> {
  return convert<EndpointSliceRecord>('EndpointSlice', input, ({ namespace, name, o, meta }) => {
    const labels = stringMap(meta, 'labels', 'metadata');
    if (absent(o.addressType)) fail('addressType', 'is required (IPv4, IPv6 or FQDN)');
    const addressType = readEnum(o.addressType, 'addressType', ['IPv4', 'IPv6', 'FQDN'] as const);
    const ports = optionalList(o, 'ports', '').map((p, i): EndpointSlicePortRecord => {
      const pp = item('ports', i);
      const po = readMap(p, pp);
      return {
        name: optionalString(po, 'name', pp),
        port: absent(po.port) ? undefined : readPort(po.port, field(pp, 'port')),
        protocol: protocolOf(po, pp),
      };
    });
    const endpoints = optionalList(o, 'endpoints', '').map((e, i): EndpointRecord => {
      const ep = item('endpoints', i);
      const eo = readMap(e, ep);
      const addresses = stringList(eo, 'addresses', ep);
      // FQDN slices hold hostnames; only IP slices are checked as addresses.
      const checked = addressType === 'FQDN' ? addresses : addresses.map((a, j) => readIp(a, item(field(ep, 'addresses'), j)));
      const cond = optionalMap(eo, 'conditions', ep);
      const ready = absent(cond.ready) ? true : optionalBool(cond, 'ready', field(ep, 'conditions'));
      let targetRef: PodRef | undefined;
      if (!absent(eo.targetRef)) {
        const tp = field(ep, 'targetRef');
        const to = readMap(eo.targetRef, tp);
        if (optionalString(to, 'kind', tp) === 'Pod') {
          // A targetRef without a namespace refers to the slice's own namespace.
          targetRef = {
            namespace: optionalString(to, 'namespace', tp, namespace) || namespace,
            name: nonEmptyString(to, 'name', tp),
            uid: optionalString(to, 'uid', tp),
          };
        }
      }
      return { addresses: checked, ready, targetRef, nodeName: optionalString(eo, 'nodeName', ep) };
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
  return stringMap(readMap(spec.selector, field(path, 'selector')), 'matchLabels', field(path, 'selector'));
}

function targetRef(v: unknown, path: string): PolicyTargetRef {
  const o = readMap(v, path);
  const ns = optionalString(o, 'namespace', path);
  return {
    group: optionalString(o, 'group', path),
    kind: nonEmptyString(o, 'kind', path),
    name: nonEmptyString(o, 'name', path),
    namespace: ns === '' ? undefined : ns,
  };
}

function ipBlocks(o: Obj, key: string, path: string): readonly string[] {
  // Checked, but kept as written: the model converts them (and an address without a prefix stays one).
  const values = stringList(o, key, path);
  for (const [i, v] of values.entries()) readCidr(v, item(field(path, key), i));
  return values;
}

function portStrings(o: Obj, key: string, path: string): readonly string[] {
  const values = stringList(o, key, path);
  values.forEach((v, i) => {
    if (!/^[0-9]{1,5}$/.test(v) || Number(v) < 1 || Number(v) > 65535)
      fail(item(field(path, key), i), `${show(v)} is not a port (1..65535)`);
  });
  return values;
}

function source(v: unknown, path: string): AuthorizationSource {
  const s = readMap(v, path);
  const src: AuthorizationSource = {
    principals: stringList(s, 'principals', path),
    notPrincipals: stringList(s, 'notPrincipals', path),
    requestPrincipals: stringList(s, 'requestPrincipals', path),
    notRequestPrincipals: stringList(s, 'notRequestPrincipals', path),
    namespaces: stringList(s, 'namespaces', path),
    notNamespaces: stringList(s, 'notNamespaces', path),
    serviceAccounts: stringList(s, 'serviceAccounts', path),
    notServiceAccounts: stringList(s, 'notServiceAccounts', path),
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
  const o = readMap(v, path);
  return {
    hosts: stringList(o, 'hosts', path),
    notHosts: stringList(o, 'notHosts', path),
    ports: portStrings(o, 'ports', path),
    notPorts: portStrings(o, 'notPorts', path),
    methods: stringList(o, 'methods', path),
    notMethods: stringList(o, 'notMethods', path),
    paths: stringList(o, 'paths', path),
    notPaths: stringList(o, 'notPaths', path),
  };
}

function condition(v: unknown, path: string): AuthorizationCondition {
  const o = readMap(v, path);
  const key = nonEmptyString(o, 'key', path);
  const checked = (k: 'values' | 'notValues'): readonly string[] =>
    IP_KEYS.has(key) ? ipBlocks(o, k, path) : key === 'destination.port' ? portStrings(o, k, path) : stringList(o, k, path);
  const values = checked('values');
  const notValues = checked('notValues');
  if (values.length === 0 && notValues.length === 0) fail(path, `at least one of values or notValues must be set for key ${key}`);
  return { key, values, notValues };
}

/** A security.istio.io AuthorizationPolicy (v1 or v1beta1; same spec). */
export function authorizationPolicyRecord(input: unknown): RecordResult<AuthorizationPolicyRecord> {
  return convert<AuthorizationPolicyRecord>('AuthorizationPolicy', input, ({ namespace, name, o, meta }) => {
    const spec = optionalMap(o, 'spec', '');
    const selector = selectorOf(spec, 'spec');
    const refs = [
      ...(absent(spec.targetRef) ? [] : [targetRef(spec.targetRef, 'spec.targetRef')]),
      ...optionalList(spec, 'targetRefs', 'spec').map((r, i) => targetRef(r, item('spec.targetRefs', i))),
    ];
    if (selector !== undefined && refs.length > 0) fail('spec', 'selector and targetRef(s) are mutually exclusive');
    const action = optionalEnum(spec, 'action', 'spec', ACTIONS, 'ALLOW');
    const provider = absent(spec.provider)
      ? undefined
      : { name: optionalString(readMap(spec.provider, 'spec.provider'), 'name', 'spec.provider') };
    const rules = optionalList(spec, 'rules', 'spec').map((r, i): AuthorizationRuleRecord => {
      const rp = item('spec.rules', i);
      const ro = readMap(r, rp);
      return {
        from: optionalList(ro, 'from', rp).map((f, j) => {
          const fp = item(field(rp, 'from'), j);
          return { source: source(readMap(f, fp).source ?? {}, field(fp, 'source')) };
        }),
        to: optionalList(ro, 'to', rp).map((t, j) => {
          const tp = item(field(rp, 'to'), j);
          return { operation: operation(readMap(t, tp).operation ?? {}, field(tp, 'operation')) };
        }),
        when: optionalList(ro, 'when', rp).map((c, j) => condition(c, item(field(rp, 'when'), j))),
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
  return optionalEnum(readMap(v, path), 'mode', path, MTLS_MODES, 'UNSET');
}

/** A security.istio.io PeerAuthentication (v1 or v1beta1). */
export function peerAuthenticationRecord(input: unknown): RecordResult<PeerAuthenticationRecord> {
  return convert<PeerAuthenticationRecord>('PeerAuthentication', input, ({ namespace, name, o, meta }) => {
    const spec = optionalMap(o, 'spec', '');
    const selector = selectorOf(spec, 'spec');
    const plm = absent(spec.portLevelMtls) ? {} : readMap(spec.portLevelMtls, 'spec.portLevelMtls');
    const portLevelMtls = Object.entries(plm)
      .map(([k, v]) => {
        const p = `spec.portLevelMtls[${JSON.stringify(k)}]`;
        if (!/^[0-9]{1,5}$/.test(k)) fail(p, `${show(k)} is not a port`);
        return { port: readPort(Number(k), p), mode: mtlsMode(v, p) };
      })
      .sort((a, b) => a.port - b.port);
    return {
      namespace,
      name,
      createdAt: readTimestamp(meta.creationTimestamp, 'metadata.creationTimestamp'),
      selector: selector === undefined || Object.keys(selector).length === 0 ? undefined : selector,
      mtlsMode: mtlsMode(spec.mtls, 'spec.mtls'),
      portLevelMtls,
    };
  });
}

/** Key of a namespaced record in ClusterState maps: "<namespace>/<name>". */
export const objectKey = (r: { readonly namespace: string; readonly name: string }): string => `${r.namespace}/${r.name}`;
