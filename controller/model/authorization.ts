/**
 * AuthorizationPolicy → istio.security.Authorization, the L4 policy ztunnel enforces, converted the way istiod
 * does it (pilot/pkg/serviceregistry/ambient/authorization.go `convertAuthorizationPolicy`/`handleRule`,
 * policies.go). Along with the resource comes the status message istiod
 * writes on the policy (reason UnsupportedValue), as data for the caller's status writer.
 *
 *  - targetRef(s): not sent (waypoint policy); no message.
 *  - AUDIT / CUSTOM: not sent; "ztunnel does not support the <ACTION> action".
 *  - dry-run annotation: dry_run = true (or, with dry-run support off, not sent and a message says so).
 *  - scope: WORKLOAD_SELECTOR with a selector; otherwise NAMESPACE, or GLOBAL in the root namespace.
 *  - each AP rule → one Rule: a Clause for `to` (one Match per operation: ports / notPorts), a Clause for `from`
 *    (one Match per source: ipBlocks, namespaces, serviceAccounts, principals and their negations), then one
 *    Clause per `when` (only source.ip, source.namespace, source.principal, destination.ip, destination.port are
 *    enforceable). Rules OR, clauses AND, matches OR.
 *  - HTTP-only attributes (hosts, methods, paths, requestPrincipals, remoteIpBlocks, other when keys): in an
 *    ALLOW policy the whole rule is dropped, so it never allows (more restrictive). In a DENY policy they are left
 *    out of their Match; a Match left empty never matches at ztunnel, so a DENY left with only such Matches has no
 *    effect, and the message says so.
 *  - strings: `*` → presence, `*x` → suffix, `x*` → prefix, else exact. Principals are sent without `spiffe://`
 *    (ztunnel strips it from the peer identity before matching), so a value written with it is stripped too.
 */
import { istio } from '../../lib/proto/index.js';
import { parseCidr, parseIp } from '../../lib/net/ip.js';
import type { AuthorizationCondition, AuthorizationPolicyRecord, AuthorizationRuleRecord } from '../kube/records.js';
import type { ModelOptions } from './options.js';

type IAuthorization = istio.security.Authorization.$Properties;
type IRule = istio.security.Rule.$Properties;
type IClause = istio.security.Clause.$Properties;
type IMatch = istio.security.Match.$Properties;
type IStringMatch = istio.security.StringMatch.$Properties;
type IAddress = istio.security.Address.$Properties;
type IServiceAccountMatch = istio.security.ServiceAccountMatch.$Properties;

export const DRY_RUN_ANNOTATION = 'istio.io/dry-run';

export interface AuthorizationConversion {
  /** The resource ztunnel gets, or undefined when the policy is not for ztunnel. */
  readonly authorization: IAuthorization | undefined;
  /** The message istiod writes on the policy's status (reason UnsupportedValue); empty when accepted as is. */
  readonly warnings: readonly string[];
}

/** WDS resource name of a policy and its key in Workload.authorization_policies. */
export const policyResourceName = (namespace: string, name: string): string => `${namespace}/${name}`;

const HTTP_RULE_FMT = (found: string, boilerplate: string): string =>
  `ztunnel does not support HTTP attributes (found: ${found}). In ambient mode you must use a waypoint proxy to enforce HTTP rules. ${boilerplate}`;
const DENY_NO_EFFECT =
  'After omitting unsupported HTTP attributes, this DENY policy has no enforceable rules at ztunnel and will have no effect. ' +
  'Deploy a waypoint proxy and use a targetRef to enforce this policy.';
const DENY_MIXED = 'DENY policy with HTTP attributes is enforced without the HTTP rules. This will be more restrictive than requested.';
const ALLOW_OMITTED = 'Within an ALLOW policy, rules matching HTTP attributes are omitted. This will be more restrictive than requested.';

/** The `when` keys ztunnel can evaluate. */
export const L4_WHEN_KEYS: ReadonlySet<string> = new Set([
  'source.ip',
  'source.namespace',
  'source.principal',
  'destination.ip',
  'destination.port',
]);

/** Go's strconv.ParseBool, which istiod uses for the dry-run annotation; anything else counts as false. */
function parseGoBool(v: string): boolean {
  return ['1', 't', 'T', 'TRUE', 'true', 'True'].includes(v);
}

export function isDryRun(policy: Pick<AuthorizationPolicyRecord, 'annotations'>): boolean {
  const v = policy.annotations[DRY_RUN_ANNOTATION];
  return v !== undefined && parseGoBool(v);
}

export function stringMatch(v: string): IStringMatch {
  if (v === '*') return { presence: {} };
  if (v.startsWith('*')) return { suffix: v.slice(1) };
  if (v.endsWith('*')) return { prefix: v.slice(0, -1) };
  return { exact: v };
}

const SPIFFE = 'spiffe://';
const principalMatch = (v: string): IStringMatch => stringMatch(v.startsWith(SPIFFE) ? v.slice(SPIFFE.length) : v);

/** IPs and CIDRs as raw bytes and prefix length; values that do not parse are skipped, as istiod does. */
function addresses(values: readonly string[]): IAddress[] {
  const out: IAddress[] = [];
  for (const v of values) {
    const c = v === '' ? undefined : parseCidr(v);
    const bytes = c === undefined ? undefined : parseIp(c.address);
    if (c !== undefined && bytes !== undefined) out.push({ address: bytes, length: c.prefixLength });
  }
  return out;
}

function ports(values: readonly string[]): number[] {
  const out: number[] = [];
  for (const v of values) {
    if (/^[0-9]+$/.test(v) && Number(v) <= 65535) out.push(Number(v));
  }
  return out;
}

/** "ns/sa", or a bare "sa" meaning the policy's own namespace. */
function serviceAccounts(values: readonly string[], policyNamespace: string): IServiceAccountMatch[] {
  return values.map((v) => {
    const slash = v.indexOf('/');
    return slash < 0
      ? { namespace: policyNamespace, serviceAccount: v }
      : { namespace: v.slice(0, slash), serviceAccount: v.slice(slash + 1) };
  });
}

/** Drops empty repeated fields so that equal policies encode equally and a Match reads as what it tests. */
function compact(m: IMatch): IMatch {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(m)) if (Array.isArray(v) && v.length > 0) out[k] = v;
  return out as IMatch;
}

function whenMatch(when: AuthorizationCondition): IMatch {
  const both = <T>(key: string, f: (v: readonly string[]) => T[]): { pos: T[]; neg: T[] } =>
    when.key === key ? { pos: f(when.values), neg: f(when.notValues) } : { pos: [], neg: [] };
  const ns = both('source.namespace', (v) => v.map(stringMatch));
  const pr = both('source.principal', (v) => v.map(principalMatch));
  const sip = both('source.ip', addresses);
  const dport = both('destination.port', ports);
  const dip = both('destination.ip', addresses);
  return compact({
    namespaces: ns.pos,
    notNamespaces: ns.neg,
    principals: pr.pos,
    notPrincipals: pr.neg,
    sourceIps: sip.pos,
    notSourceIps: sip.neg,
    destinationPorts: dport.pos,
    notDestinationPorts: dport.neg,
    destinationIps: dip.pos,
    notDestinationIps: dip.neg,
  });
}

interface ConvertedRule {
  /** undefined: the rule is dropped (an ALLOW rule with HTTP attributes). */
  readonly rule: IRule | undefined;
  readonly httpAttributes: readonly string[];
}

function convertRule(rule: AuthorizationRuleRecord, action: 'ALLOW' | 'DENY', policyNamespace: string): ConvertedRule {
  const http = new Set<string>();
  const note = (present: boolean, name: string): void => {
    if (present) http.add(name);
  };
  const toMatches = rule.to.map(({ operation: op }) => {
    note(op.hosts.length > 0, 'hosts');
    note(op.notHosts.length > 0, 'notHosts');
    note(op.methods.length > 0, 'methods');
    note(op.notMethods.length > 0, 'notMethods');
    note(op.paths.length > 0, 'paths');
    note(op.notPaths.length > 0, 'notPaths');
    return compact({ destinationPorts: ports(op.ports), notDestinationPorts: ports(op.notPorts) });
  });
  const fromMatches = rule.from.map(({ source: s }) => {
    note(s.remoteIpBlocks.length > 0, 'remoteIpBlocks');
    note(s.notRemoteIpBlocks.length > 0, 'notRemoteIpBlocks');
    note(s.requestPrincipals.length > 0, 'requestPrincipals');
    note(s.notRequestPrincipals.length > 0, 'notRequestPrincipals');
    return compact({
      sourceIps: addresses(s.ipBlocks),
      notSourceIps: addresses(s.notIpBlocks),
      namespaces: s.namespaces.map(stringMatch),
      notNamespaces: s.notNamespaces.map(stringMatch),
      serviceAccounts: serviceAccounts(s.serviceAccounts, policyNamespace),
      notServiceAccounts: serviceAccounts(s.notServiceAccounts, policyNamespace),
      principals: s.principals.map(principalMatch),
      notPrincipals: s.notPrincipals.map(principalMatch),
    });
  });
  const clauses: IClause[] = [];
  if (toMatches.length > 0) clauses.push({ matches: toMatches });
  if (fromMatches.length > 0) clauses.push({ matches: fromMatches });
  for (const when of rule.when) {
    note(!L4_WHEN_KEYS.has(when.key), when.key);
    clauses.push({ matches: [whenMatch(when)] });
  }
  const httpAttributes = [...http];
  // An ALLOW rule that needs HTTP to decide can never be proven at L4, so it never allows.
  if (action === 'ALLOW' && httpAttributes.length > 0) return { rule: undefined, httpAttributes };
  return { rule: { clauses }, httpAttributes };
}

const isEmptyMatch = (m: IMatch): boolean => Object.values(m).every((v) => !Array.isArray(v) || v.length === 0);

/**
 * Whether any Rule can fire at ztunnel: a Rule without clauses always does; otherwise every clause needs a
 * Match with something in it (ztunnel skips empty Matches).
 */
export function hasEffectiveRules(rules: readonly IRule[]): boolean {
  return rules.some((r) => (r.clauses ?? []).every((c) => (c.matches ?? []).some((m) => !isEmptyMatch(m))));
}

/**
 * Whether istiod sends the policy to ztunnel at all (the early exits of the conversion); only such selector
 * policies are listed in Workload.authorization_policies.
 */
export function isSentToZtunnel(policy: AuthorizationPolicyRecord, opts: Pick<ModelOptions, 'dryRunEnabled'>): boolean {
  if (!opts.dryRunEnabled && isDryRun(policy)) return false;
  return policy.targetRefs.length === 0 && (policy.action === 'ALLOW' || policy.action === 'DENY');
}

export function convertAuthorizationPolicy(
  policy: AuthorizationPolicyRecord,
  opts: Pick<ModelOptions, 'rootNamespace' | 'dryRunEnabled'>,
): AuthorizationConversion {
  const dryRun = isDryRun(policy);
  if (dryRun && !opts.dryRunEnabled) {
    return {
      authorization: undefined,
      warnings: [
        `found policy "${policy.namespace}/${policy.name}" using dry-run annotation, but support for ambient dry-run authorizationPolicies isn't enabled`,
      ],
    };
  }
  // targetRef(s) bind the policy to a waypoint (or gateway); ztunnel never enforces it.
  if (policy.targetRefs.length > 0) return { authorization: undefined, warnings: [] };
  if (policy.action !== 'ALLOW' && policy.action !== 'DENY') {
    return { authorization: undefined, warnings: [`ztunnel does not support the ${policy.action} action`] };
  }
  const scope =
    policy.selector !== undefined
      ? istio.security.Scope.WORKLOAD_SELECTOR
      : policy.namespace === opts.rootNamespace
        ? istio.security.Scope.GLOBAL
        : istio.security.Scope.NAMESPACE;
  const rules: IRule[] = [];
  const http = new Set<string>();
  for (const r of policy.rules) {
    const converted = convertRule(r, policy.action, policy.namespace);
    if (converted.rule !== undefined) rules.push(converted.rule);
    for (const a of converted.httpAttributes) http.add(a);
  }
  const authorization: IAuthorization = {
    name: policy.name,
    namespace: policy.namespace,
    scope,
    action: policy.action === 'DENY' ? istio.security.Action.DENY : istio.security.Action.ALLOW,
    rules,
    dryRun,
  };
  if (http.size === 0) return { authorization, warnings: [] };
  const boilerplate = policy.action === 'ALLOW' ? ALLOW_OMITTED : hasEffectiveRules(rules) ? DENY_MIXED : DENY_NO_EFFECT;
  return { authorization, warnings: [HTTP_RULE_FMT([...http].sort().join(', '), boilerplate)] };
}
