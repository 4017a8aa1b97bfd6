/**
 * L4 authorization as ztunnel enforces it (src/rbac.rs `Authorization::matches`, src/state.rs `assert_rbac`),
 * which follows Istio's AuthorizationPolicy order (istio api security/v1beta1/authorization_policy.proto):
 *   dry-run DENY: only reported → any DENY matches: deny → no ALLOW: allow → any ALLOW matches: allow → deny.
 * Pure: the caller gathers the policies (WorkloadStore.policiesForWorkload) and the connection's attributes.
 */
import { principalOf, type Identity } from '../../lib/identity/spiffe.js';
import { cidrContains, parseIp, type IpBytes } from '../../lib/net/ip.js';
import { policyKey, type Authorization, type Cidr, type RbacMatch, type StringMatch } from '../state/model.js';

export interface ConnectionAttributes {
  /** The peer's mTLS identity; undefined for plaintext (15006) connections. */
  readonly sourceIdentity: Identity | undefined;
  readonly sourceIp: string;
  /** The destination pod IP (not a VIP). */
  readonly destinationIp: string;
  /** The resolved target port (after service port → target port translation), never 15008. */
  readonly destinationPort: number;
}

export type AuthzDecision =
  | { readonly allowed: true; readonly dryRunDenials?: string[] }
  | { readonly allowed: false; readonly policy: string | undefined; readonly reason: string };

/** ztunnel's rejection texts (proxy::AuthorizationRejectionError), so logs read the same. */
export const NOT_ALLOWED_REASON = 'allow policies exist, but none allowed';
export const explicitlyDeniedReason = (key: string): string => `explicitly denied by: ${key}`;

/** Attributes resolved once per evaluation rather than once per match. */
interface Peer {
  readonly identity: Identity | undefined;
  /** Principal as policies spell it: the SPIFFE ID without "spiffe://". */
  readonly principal: string | undefined;
  readonly sourceIp: IpBytes | undefined;
  readonly destinationIp: IpBytes | undefined;
  readonly destinationPort: number;
}

function stringMatches(m: StringMatch, value: string): boolean {
  switch (m.kind) {
    case 'exact':
      return value === m.value;
    case 'prefix':
      return value.startsWith(m.value);
    case 'suffix':
      return value.endsWith(m.value);
    case 'presence':
      return value !== '';
  }
}

/**
 * One field type of a Match: some positive value must match (if any are given) and no negative value may.
 * With no identity every identity predicate is false, so `notPrincipals: [presence]` matches a plaintext
 * peer: that is how PeerAuthentication STRICT (istio_converted_static_strict) denies it.
 */
function fieldMatches<T>(positive: readonly T[], negative: readonly T[], pred: (v: T) => boolean): boolean {
  if (positive.length > 0 && !positive.some(pred)) return false;
  return !negative.some(pred);
}

const isEmptyMatch = (m: RbacMatch): boolean =>
  m.namespaces.length === 0 &&
  m.notNamespaces.length === 0 &&
  m.serviceAccounts.length === 0 &&
  m.notServiceAccounts.length === 0 &&
  m.principals.length === 0 &&
  m.notPrincipals.length === 0 &&
  m.sourceIps.length === 0 &&
  m.notSourceIps.length === 0 &&
  m.destinationIps.length === 0 &&
  m.notDestinationIps.length === 0 &&
  m.destinationPorts.length === 0 &&
  m.notDestinationPorts.length === 0;

function matchMatches(m: RbacMatch, peer: Peer): boolean {
  const id = peer.identity;
  const ip =
    (addr: IpBytes | undefined) =>
    (c: Cidr): boolean =>
      addr !== undefined && cidrContains(c, addr);
  return (
    fieldMatches(m.destinationIps, m.notDestinationIps, ip(peer.destinationIp)) &&
    fieldMatches(m.sourceIps, m.notSourceIps, ip(peer.sourceIp)) &&
    fieldMatches(m.destinationPorts, m.notDestinationPorts, (p) => p === peer.destinationPort) &&
    // Service accounts compare namespace and name only; the trust domain is not part of the match.
    fieldMatches(
      m.serviceAccounts,
      m.notServiceAccounts,
      (sa) => id !== undefined && sa.namespace === id.namespace && sa.serviceAccount === id.serviceAccount,
    ) &&
    fieldMatches(m.principals, m.notPrincipals, (s) => peer.principal !== undefined && stringMatches(s, peer.principal)) &&
    fieldMatches(m.namespaces, m.notNamespaces, (s) => id !== undefined && stringMatches(s, id.namespace))
  );
}

function matchesPeer(policy: Authorization, peer: Peer): boolean {
  // rules OR; clauses AND; matches OR. An empty clause list matches; an all-empty match never does.
  return policy.rules.some((rule) =>
    rule.every((clause) => clause.length === 0 || clause.some((m) => !isEmptyMatch(m) && matchMatches(m, peer))),
  );
}

function peerOf(conn: ConnectionAttributes): Peer {
  return {
    identity: conn.sourceIdentity,
    principal: conn.sourceIdentity ? principalOf(conn.sourceIdentity) : undefined,
    // parseIp unwraps IPv4-mapped addresses, so ::ffff:10.0.0.1 is matched by 10.0.0.0/8.
    sourceIp: parseIp(conn.sourceIp),
    destinationIp: parseIp(conn.destinationIp),
    destinationPort: conn.destinationPort,
  };
}

/** Whether `policy`'s rules match the connection (regardless of its action). A policy with no rules never does. */
export function policyMatches(policy: Authorization, conn: ConnectionAttributes): boolean {
  return matchesPeer(policy, peerOf(conn));
}

export function authorize(policies: readonly Authorization[], conn: ConnectionAttributes): AuthzDecision {
  const peer = peerOf(conn);
  const dryRunDenials: string[] = [];
  for (const p of policies) {
    if (p.action === 'Deny' && p.dryRun && matchesPeer(p, peer)) dryRunDenials.push(policyKey(p));
  }
  for (const p of policies) {
    if (p.action === 'Deny' && !p.dryRun && matchesPeer(p, peer)) {
      const key = policyKey(p);
      return { allowed: false, policy: key, reason: explicitlyDeniedReason(key) };
    }
  }
  const allows = policies.filter((p) => p.action === 'Allow' && !p.dryRun);
  const allowed = allows.length === 0 || allows.some((p) => matchesPeer(p, peer));
  if (!allowed) return { allowed: false, policy: undefined, reason: NOT_ALLOWED_REASON };
  return dryRunDenials.length > 0 ? { allowed: true, dryRunDenials } : { allowed: true };
}
