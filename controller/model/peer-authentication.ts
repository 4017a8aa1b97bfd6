/**
 * PeerAuthentication in ambient (istio architecture/ambient/peer-authentication.md; pilot/pkg/serviceregistry/ambient
 * authorization.go `convertedSelectorPeerAuthentications`, `convertPeerAuthentication`, policies.go). ztunnel
 * never sees PeerAuthentication; it sees DENY policies:
 *
 *  - `istio-system/istio_converted_static_strict` (root namespace): DENY, WORKLOAD_SELECTOR, one Match
 *    `not_principals: [presence]` — deny connections without an mTLS identity. Sent iff any PeerAuthentication
 *    exists; listed in Workload.authorization_policies of every workload whose effective mode is STRICT.
 *  - `<ns>/converted_peer_authentication_<name>` for a workload-selector policy (outside the root namespace) with
 *    portLevelMtls: the port exceptions, with the inherited STRICT merged in so that the static policy can be left
 *    off the workload (a DENY cannot be excepted by another policy: any matching DENY denies).
 *
 * Effective mode: workload policy > namespace policy > mesh policy (selector-less, root namespace); UNSET
 * inherits; DISABLE counts as not STRICT (HBONE is always mTLS, so it cannot turn mTLS off). Among several
 * policies of one level the oldest wins (then the name, for a stable order).
 */
import { istio } from '../../lib/proto/index.js';
import type { Labels, MtlsMode, PeerAuthenticationRecord } from '../kube/records.js';
import { policyResourceName } from './authorization.js';
import { selects } from './selectors.js';

type IAuthorization = istio.security.Authorization.$Properties;
type IClause = istio.security.Clause.$Properties;
type IRule = istio.security.Rule.$Properties;

/** '_' is illegal in Kubernetes names, so these can never collide with a user's policy. */
export const STATIC_STRICT_POLICY_NAME = 'istio_converted_static_strict';
export const CONVERTED_PEER_AUTHENTICATION_PREFIX = 'converted_peer_authentication_';

export const convertedPeerAuthenticationName = (name: string): string => `${CONVERTED_PEER_AUTHENTICATION_PREFIX}${name}`;

const noIdentity = (): IClause => ({ matches: [{ notPrincipals: [{ presence: {} }] }] });

/** The static STRICT policy, sent iff at least one PeerAuthentication exists. */
export function staticStrictPolicy(rootNamespace: string): IAuthorization {
  return {
    name: STATIC_STRICT_POLICY_NAME,
    namespace: rootNamespace,
    scope: istio.security.Scope.WORKLOAD_SELECTOR,
    action: istio.security.Action.DENY,
    rules: [{ clauses: [noIdentity()] }],
  };
}

const strict = (p: PeerAuthenticationRecord | undefined): boolean => p?.mtlsMode === 'STRICT';
const unset = (p: PeerAuthenticationRecord | undefined): boolean => p === undefined || p.mtlsMode === 'UNSET';
const notStrictMode = (m: MtlsMode): boolean => m === 'PERMISSIVE' || m === 'DISABLE';

function older(a: PeerAuthenticationRecord, b: PeerAuthenticationRecord): boolean {
  return a.createdAt !== b.createdAt ? a.createdAt < b.createdAt : a.name < b.name;
}

/** The oldest of some policies (Istio's conflict rule). */
export function oldest(policies: Iterable<PeerAuthenticationRecord>): PeerAuthenticationRecord | undefined {
  let best: PeerAuthenticationRecord | undefined;
  for (const p of policies) if (best === undefined || older(p, best)) best = p;
  return best;
}

/** The selector-less policy governing a namespace (the mesh policy when `namespace` is the root namespace). */
export function namespacePolicy(candidates: Iterable<PeerAuthenticationRecord>, namespace: string): PeerAuthenticationRecord | undefined {
  const inNs: PeerAuthenticationRecord[] = [];
  for (const p of candidates) if (p.namespace === namespace && p.selector === undefined) inNs.push(p);
  return oldest(inNs);
}

export interface WorkloadPeerAuthentication {
  /** Whether plaintext is refused on every port (the static STRICT policy applies as is). */
  readonly mode: 'STRICT' | 'PERMISSIVE';
  /** Keys for Workload.authorization_policies: the static policy and/or a converted port-level policy. */
  readonly policyKeys: readonly string[];
}

/**
 * The PeerAuthentication outcome for one workload. `candidates` may hold any policies; those that can apply are
 * picked here: selector-less or selecting ones of the workload's namespace, and selector-less ones of the root
 * namespace (mesh-wide). Selector policies in the root namespace are ignored, as in Istio.
 */
export function workloadPeerAuthentication(
  labels: Labels,
  namespace: string,
  candidates: Iterable<PeerAuthenticationRecord>,
  rootNamespace: string,
): WorkloadPeerAuthentication {
  const mesh: PeerAuthenticationRecord[] = [];
  const ns: PeerAuthenticationRecord[] = [];
  const workload: PeerAuthenticationRecord[] = [];
  for (const p of candidates) {
    if (p.selector === undefined) {
      if (p.namespace === rootNamespace) mesh.push(p);
      else if (p.namespace === namespace) ns.push(p);
    } else if (p.namespace === namespace && p.namespace !== rootNamespace && selects(p.selector, labels)) {
      workload.push(p);
    }
  }
  const meshCfg = oldest(mesh);
  const nsCfg = oldest(ns);
  const wlCfg = oldest(workload);

  let isStrict = strict(meshCfg);
  if (nsCfg !== undefined && !unset(nsCfg)) isStrict = strict(nsCfg);
  let portPolicy: string | undefined;
  if (wlCfg !== undefined) {
    if (strict(wlCfg)) isStrict = true;
    if (notStrictMode(wlCfg.mtlsMode)) isStrict = false;
    if (wlCfg.portLevelMtls.length > 0) {
      const key = policyResourceName(wlCfg.namespace, convertedPeerAuthenticationName(wlCfg.name));
      const anyPort = (pred: (m: MtlsMode) => boolean): boolean => wlCfg.portLevelMtls.some((p) => pred(p.mode));
      if (wlCfg.mtlsMode === 'STRICT') {
        // Port exceptions live in the converted policy, which also carries the STRICT default.
        if (anyPort(notStrictMode)) {
          portPolicy = key;
          isStrict = false;
        }
      } else if (notStrictMode(wlCfg.mtlsMode)) {
        if (anyPort((m) => m === 'STRICT')) portPolicy = key;
      } else if (isStrict) {
        // UNSET under a STRICT namespace/mesh: exceptions need the merged policy instead of the static one.
        if (anyPort((m) => m === 'PERMISSIVE')) {
          portPolicy = key;
          isStrict = false;
        }
      } else {
        // UNSET under a permissive parent: unspecified ports stay permissive; STRICT ports need the policy.
        isStrict = false;
        if (anyPort((m) => m === 'STRICT')) portPolicy = key;
      }
    }
  }
  const keys = new Set<string>();
  if (isStrict) keys.add(policyResourceName(rootNamespace, STATIC_STRICT_POLICY_NAME));
  if (portPolicy !== undefined) keys.add(portPolicy);
  return { mode: isStrict ? 'STRICT' : 'PERMISSIVE', policyKeys: [...keys].sort() };
}

/**
 * The converted policy for a workload-selector PeerAuthentication with portLevelMtls, given the selector-less
 * policies of its namespace (`nsPolicy`) and of the root namespace (`rootPolicy`); undefined when nothing needs
 * converting (root namespace, no selector, no port-level settings, or nothing that differs from the parent).
 */
export function convertPeerAuthentication(
  pa: PeerAuthenticationRecord,
  nsPolicy: PeerAuthenticationRecord | undefined,
  rootPolicy: PeerAuthenticationRecord | undefined,
  rootNamespace: string,
): IAuthorization | undefined {
  if (pa.namespace === rootNamespace || pa.selector === undefined || pa.portLevelMtls.length === 0) return undefined;
  const mode = pa.mtlsMode;
  const rulesClauses: IClause[] = [];
  const groups: IRule[] = [];
  if (mode === 'STRICT') rulesClauses.push(noIdentity());

  let foundNonStrictPort = false;
  for (const { port, mode: portMode } of pa.portLevelMtls) {
    if (portMode === 'STRICT') {
      // Already enforced by the parent: the workload is STRICT, or it inherits STRICT from namespace or mesh.
      const parentStrict =
        mode === 'STRICT' || (mode === 'UNSET' && strict(nsPolicy)) || ((nsPolicy === undefined || unset(nsPolicy)) && strict(rootPolicy));
      if (parentStrict) continue;
      // Rules are OR-ed: one per STRICT port, denying plaintext to that port.
      groups.push({ clauses: [{ matches: [{ notPrincipals: [{ presence: {} }], destinationPorts: [port] }] }] });
    } else if (notStrictMode(portMode)) {
      if (notStrictMode(mode)) continue;
      if (
        mode === 'UNSET' &&
        ((nsPolicy !== undefined && !strict(nsPolicy)) ||
          (nsPolicy === undefined && rootPolicy !== undefined && !strict(rootPolicy)) ||
          (nsPolicy === undefined && rootPolicy === undefined))
      ) {
        continue;
      }
      foundNonStrictPort = true;
      // Clauses are AND-ed: the deny fires only off the excepted ports.
      rulesClauses.push({ matches: [{ notDestinationPorts: [port] }] });
    }
  }
  // STRICT with only STRICT ports is plain STRICT: the static policy covers it.
  if (mode === 'STRICT' && !foundNonStrictPort) return undefined;
  if (rulesClauses.length === 0 && groups.length === 0) return undefined;
  const mergeStrict = (strict(rootPolicy) && (nsPolicy === undefined || unset(nsPolicy) || strict(nsPolicy))) || strict(nsPolicy);
  if (mergeStrict && foundNonStrictPort) rulesClauses.push(noIdentity());
  if (rulesClauses.length > 0) groups.push({ clauses: rulesClauses });
  return {
    name: convertedPeerAuthenticationName(pa.name),
    namespace: pa.namespace,
    scope: istio.security.Scope.WORKLOAD_SELECTOR,
    action: istio.security.Action.DENY,
    rules: groups,
  };
}
