/**
 * SPIFFE identities of Kubernetes service accounts, in the one shape Istio uses:
 * `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`. Parsing is strict (exactly five path
 * segments with the literal `ns` and `sa`, no query, fragment, port or percent-encoding), as ztunnel's
 * `Identity::from_str` is: anything else is not an identity we can authorize.
 */
import { IdentityError, IdentityErrorCode } from './errors.js';

export const DEFAULT_TRUST_DOMAIN = 'cluster.local';
const SCHEME = 'spiffe://';

/** A workload identity. Immutable value; compare with `sameIdentity` or by `formatSpiffeId`. */
export interface Identity {
  readonly trustDomain: string;
  readonly namespace: string;
  readonly serviceAccount: string;
}

// SPIFFE ID spec §2.1: trust domain is lowercase letters, digits, '.', '-', '_'.
const TRUST_DOMAIN_RE = /^[a-z0-9._-]+$/;
// Path segments: SPIFFE allows [A-Za-z0-9._-]; Kubernetes names are a subset. '.' and '..' are forbidden.
const SEGMENT_RE = /^[A-Za-z0-9._-]+$/;
const MAX_ID_LENGTH = 2048; // SPIFFE ID spec §2.3

function badId(input: string, why: string): IdentityError {
  const shown = input.length > 120 ? `${input.slice(0, 120)}...` : input;
  return new IdentityError(
    IdentityErrorCode.BAD_SPIFFE_ID,
    `"${shown}" is not a SPIFFE identity of the form spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>: ${why}`,
  );
}

function checkSegment(input: string, segment: string, what: string): void {
  if (!SEGMENT_RE.test(segment) || segment === '.' || segment === '..') {
    throw badId(input, `${what} "${segment}" must be non-empty and use only letters, digits, '.', '-', '_'`);
  }
}

/** Parses a SPIFFE URI; throws IdentityError(IDENTITY_BAD_SPIFFE_ID) explaining what is wrong. */
export function parseSpiffeId(input: string): Identity {
  if (input.length > MAX_ID_LENGTH) throw badId(input, `longer than ${MAX_ID_LENGTH} bytes`);
  if (!input.startsWith(SCHEME)) throw badId(input, 'it must start with "spiffe://"');
  const rest = input.slice(SCHEME.length);
  const parts = rest.split('/');
  if (parts.length !== 5) throw badId(input, `expected 5 path segments after the scheme, found ${parts.length}`);
  const [trustDomain, ns, namespace, sa, serviceAccount] = parts as [string, string, string, string, string];
  if (!TRUST_DOMAIN_RE.test(trustDomain)) {
    throw badId(input, `trust domain "${trustDomain}" must be non-empty lowercase letters, digits, '.', '-', '_'`);
  }
  if (ns !== 'ns') throw badId(input, `second segment must be "ns", found "${ns}"`);
  if (sa !== 'sa') throw badId(input, `fourth segment must be "sa", found "${sa}"`);
  checkSegment(input, namespace, 'namespace');
  checkSegment(input, serviceAccount, 'service account');
  return Object.freeze({ trustDomain, namespace, serviceAccount });
}

/** Like parseSpiffeId but returns undefined instead of throwing. */
export function tryParseSpiffeId(input: string): Identity | undefined {
  try {
    return parseSpiffeId(input);
  } catch {
    return undefined;
  }
}

/** Builds and validates an identity from its parts. */
export function makeIdentity(namespace: string, serviceAccount: string, trustDomain: string = DEFAULT_TRUST_DOMAIN): Identity {
  return parseSpiffeId(`${SCHEME}${trustDomain}/ns/${namespace}/sa/${serviceAccount}`);
}

export function formatSpiffeId(id: Identity): string {
  return `${SCHEME}${id.trustDomain}/ns/${id.namespace}/sa/${id.serviceAccount}`;
}

/**
 * The identity as AuthorizationPolicy principals spell it: without the scheme,
 * e.g. "cluster.local/ns/default/sa/sleep" (Istio strips "spiffe://" before matching).
 */
export function principalOf(id: Identity): string {
  return `${id.trustDomain}/ns/${id.namespace}/sa/${id.serviceAccount}`;
}

export function sameIdentity(a: Identity, b: Identity): boolean {
  return a.trustDomain === b.trustDomain && a.namespace === b.namespace && a.serviceAccount === b.serviceAccount;
}
