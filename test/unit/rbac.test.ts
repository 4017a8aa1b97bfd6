/** L4 authorization with Istio/ztunnel semantics (ztunnel src/rbac.rs; istio api security/v1beta1/authorization_policy.proto). */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { makeIdentity, type Identity } from '../../lib/identity/spiffe.js';
import { authorize, NOT_ALLOWED_REASON, policyMatches, type ConnectionAttributes } from '../../ztunnel/policy/rbac.js';
import type { Authorization, Cidr, RbacMatch, StringMatch } from '../../ztunnel/state/model.js';
import { match, policy } from '../../testbed/fixtures/mesh-state.js';

const sleep = makeIdentity('default', 'sleep');
const foreignTd = makeIdentity('default', 'sleep', 'other.td');
const intruder = makeIdentity('evil', 'bad');

const conn = (over: Partial<ConnectionAttributes> = {}): ConnectionAttributes => ({
  sourceIdentity: sleep,
  sourceIp: '10.0.0.1',
  destinationIp: '10.0.1.1',
  destinationPort: 8080,
  ...over,
});
const plaintext = (over: Partial<ConnectionAttributes> = {}): ConnectionAttributes => conn({ sourceIdentity: undefined, ...over });
const from = (id: Identity): ConnectionAttributes => conn({ sourceIdentity: id });

const exact = (value: string): StringMatch => ({ kind: 'exact', value });
const prefix = (value: string): StringMatch => ({ kind: 'prefix', value });
const suffix = (value: string): StringMatch => ({ kind: 'suffix', value });
const presence: StringMatch = { kind: 'presence' };
const cidr = (s: string): Cidr => {
  const [address = '', len] = s.split('/');
  return { address, prefixLength: len === undefined ? (address.includes(':') ? 128 : 32) : Number(len) };
};

/** One ALLOW / DENY policy with a single rule of one clause holding `m`. */
const allow = (name: string, m: Partial<RbacMatch>, over: Partial<Authorization> = {}): Authorization =>
  policy({ name, action: 'Allow', rules: [[[match(m)]]], ...over });
const deny = (name: string, m: Partial<RbacMatch>, over: Partial<Authorization> = {}): Authorization =>
  policy({ name, action: 'Deny', rules: [[[match(m)]]], ...over });

/** STRICT PeerAuthentication as istiod sends it (istio_converted_static_strict). */
const strict = policy({
  name: 'istio_converted_static_strict',
  namespace: 'istio-system',
  scope: 'WorkloadSelector',
  action: 'Deny',
  rules: [[[match({ notPrincipals: [presence] })]]],
});

type Expect = 'allow' | { readonly deniedBy: string | undefined };
const DENIED_NO_ALLOW: Expect = { deniedBy: undefined };
const deniedBy = (key: string): Expect => ({ deniedBy: key });

const cases: ReadonlyArray<[string, readonly Authorization[], ConnectionAttributes, Expect]> = [
  ['allows everything when no policy applies', [], conn(), 'allow'],
  [
    'denies everything under an ALLOW policy with no rules (allow-nothing)',
    [policy({ name: 'nothing', rules: [] })],
    conn(),
    DENIED_NO_ALLOW,
  ],
  ['allows everything under an ALLOW rule with no clauses (allow-all)', [policy({ name: 'all', rules: [[]] })], conn(), 'allow'],
  ['treats a clause with no matches as matching', [policy({ name: 'all', rules: [[[]]] })], conn(), 'allow'],
  ['never matches an all-empty match', [policy({ name: 'empty', rules: [[[match({})]]] })], conn(), DENIED_NO_ALLOW],
  ['never applies a DENY policy with no rules', [policy({ name: 'd', action: 'Deny', rules: [] })], conn(), 'allow'],
  [
    'denies when a DENY policy matches, naming it',
    [deny('no-sleep', { principals: [exact('cluster.local/ns/default/sa/sleep')] })],
    conn(),
    deniedBy('default/no-sleep'),
  ],
  [
    'lets DENY win over a matching ALLOW',
    [allow('all-sleep', { namespaces: [exact('default')] }), deny('no-8080', { destinationPorts: [8080] })],
    conn(),
    deniedBy('default/no-8080'),
  ],
  ['allows when DENY does not match and there is no ALLOW', [deny('no-9999', { destinationPorts: [9999] })], conn(), 'allow'],
  ['allows by exact principal', [allow('p', { principals: [exact('cluster.local/ns/default/sa/sleep')] })], conn(), 'allow'],
  [
    'denies when the principal does not match',
    [allow('p', { principals: [exact('cluster.local/ns/default/sa/other')] })],
    conn(),
    DENIED_NO_ALLOW,
  ],
  [
    'matches principals without the spiffe:// scheme',
    [allow('p', { principals: [exact('spiffe://cluster.local/ns/default/sa/sleep')] })],
    conn(),
    DENIED_NO_ALLOW,
  ],
  ['allows by principal prefix', [allow('p', { principals: [prefix('cluster.local/ns/default/')] })], conn(), 'allow'],
  ['allows by principal suffix', [allow('p', { principals: [suffix('/sa/sleep')] })], conn(), 'allow'],
  ['allows any authenticated peer by principal presence', [allow('p', { principals: [presence] })], conn(), 'allow'],
  ['denies a plaintext peer under principal presence', [allow('p', { principals: [presence] })], plaintext(), DENIED_NO_ALLOW],
  [
    'denies a plaintext peer under STRICT (notPrincipals presence)',
    [strict],
    plaintext(),
    deniedBy('istio-system/istio_converted_static_strict'),
  ],
  ['allows an mTLS peer under STRICT', [strict], conn(), 'allow'],
  ['allows by namespace', [allow('ns', { namespaces: [exact('default')] })], conn(), 'allow'],
  ['denies a peer from another namespace', [allow('ns', { namespaces: [exact('default')] })], from(intruder), DENIED_NO_ALLOW],
  ['denies a plaintext peer under a namespace ALLOW', [allow('ns', { namespaces: [exact('default')] })], plaintext(), DENIED_NO_ALLOW],
  [
    'denies a peer from an excluded namespace (notNamespaces)',
    [allow('ns', { notNamespaces: [exact('evil')] })],
    from(intruder),
    DENIED_NO_ALLOW,
  ],
  ['allows a peer outside the excluded namespaces', [allow('ns', { notNamespaces: [exact('evil')] })], conn(), 'allow'],
  [
    'allows by service account, whatever the trust domain',
    [allow('sa', { serviceAccounts: [{ namespace: 'default', serviceAccount: 'sleep' }] })],
    from(foreignTd),
    'allow',
  ],
  [
    'denies a different service account',
    [allow('sa', { serviceAccounts: [{ namespace: 'default', serviceAccount: 'web' }] })],
    conn(),
    DENIED_NO_ALLOW,
  ],
  [
    'denies an excluded service account (notServiceAccounts)',
    [allow('sa', { notServiceAccounts: [{ namespace: 'default', serviceAccount: 'sleep' }] })],
    conn(),
    DENIED_NO_ALLOW,
  ],
  [
    'denies a plaintext peer under a service account ALLOW',
    [allow('sa', { serviceAccounts: [{ namespace: 'default', serviceAccount: 'sleep' }] })],
    plaintext(),
    DENIED_NO_ALLOW,
  ],
  ['allows by destination port', [allow('port', { destinationPorts: [8080] })], conn(), 'allow'],
  ['denies another destination port', [allow('port', { destinationPorts: [8080] })], conn({ destinationPort: 9090 }), DENIED_NO_ALLOW],
  [
    'denies the excluded port of an ALLOW with notDestinationPorts',
    [allow('deny-9999', { notDestinationPorts: [9999] })],
    conn({ destinationPort: 9999 }),
    DENIED_NO_ALLOW,
  ],
  ['allows other ports of an ALLOW with notDestinationPorts', [allow('deny-9999', { notDestinationPorts: [9999] })], conn(), 'allow'],
  ['allows a source inside an ipBlock', [allow('ip', { sourceIps: [cidr('10.0.0.0/8')] })], conn(), 'allow'],
  [
    'denies a source outside the ipBlocks',
    [allow('ip', { sourceIps: [cidr('10.0.0.0/8')] })],
    conn({ sourceIp: '192.168.1.1' }),
    DENIED_NO_ALLOW,
  ],
  [
    'matches a bare-address source block exactly',
    [allow('ip', { sourceIps: [cidr('10.0.0.1')] })],
    conn({ sourceIp: '10.0.0.2' }),
    DENIED_NO_ALLOW,
  ],
  [
    'denies a source in notSourceIps',
    [deny('block', { sourceIps: [cidr('0.0.0.0/0')], notSourceIps: [cidr('10.0.0.0/24')] })],
    conn({ sourceIp: '10.0.1.7' }),
    deniedBy('default/block'),
  ],
  [
    'spares a source in the notSourceIps exception',
    [deny('block', { sourceIps: [cidr('0.0.0.0/0')], notSourceIps: [cidr('10.0.0.0/24')] })],
    conn(),
    'allow',
  ],
  ['allows by destination ip', [allow('dip', { destinationIps: [cidr('10.0.1.0/24')] })], conn(), 'allow'],
  ['denies a destination in notDestinationIps', [allow('dip', { notDestinationIps: [cidr('10.0.1.1')] })], conn(), DENIED_NO_ALLOW],
  [
    'allows an IPv6 source inside an IPv6 block',
    [allow('v6', { sourceIps: [cidr('fd00::/8')] })],
    conn({ sourceIp: 'fd00::1:2' }),
    'allow',
  ],
  [
    'denies an IPv6 source outside the IPv6 block',
    [allow('v6', { sourceIps: [cidr('fd00::/8')] })],
    conn({ sourceIp: '2001:db8::1' }),
    DENIED_NO_ALLOW,
  ],
  [
    'compares an IPv4-mapped source as IPv4',
    [allow('v4', { sourceIps: [cidr('10.0.0.0/8')] })],
    conn({ sourceIp: '::ffff:10.0.0.1' }),
    'allow',
  ],
  [
    'never matches an IPv4 block against an IPv6 address',
    [allow('v4', { sourceIps: [cidr('0.0.0.0/0')] })],
    conn({ sourceIp: 'fd00::1' }),
    DENIED_NO_ALLOW,
  ],
  [
    'requires every field of a match (AND)',
    [allow('and', { namespaces: [exact('default')], destinationPorts: [80] })],
    conn(),
    DENIED_NO_ALLOW,
  ],
  ['accepts any value of a field (OR)', [allow('or', { destinationPorts: [80, 8080] })], conn(), 'allow'],
  [
    'accepts any match of a clause (OR)',
    [policy({ name: 'm', rules: [[[match({ namespaces: [exact('x')] }), match({ destinationPorts: [8080] })]]] })],
    conn(),
    'allow',
  ],
  [
    'requires every clause of a rule (AND)',
    [policy({ name: 'c', rules: [[[match({ namespaces: [exact('default')] })], [match({ destinationPorts: [80] })]]] })],
    conn(),
    DENIED_NO_ALLOW,
  ],
  [
    'accepts any rule of a policy (OR)',
    [policy({ name: 'r', rules: [[[match({ destinationPorts: [80] })]], [[match({ destinationPorts: [8080] })]]] })],
    conn(),
    'allow',
  ],
  [
    'allows when any of several ALLOW policies matches',
    [allow('a', { destinationPorts: [80] }), allow('b', { namespaces: [exact('default')] })],
    conn(),
    'allow',
  ],
  ['does not deny on a matching dry-run DENY', [deny('dry', { destinationPorts: [8080] }, { dryRun: true })], conn(), 'allow'],
  ['does not count a dry-run ALLOW as an ALLOW policy', [allow('dry', { destinationPorts: [80] }, { dryRun: true })], conn(), 'allow'],
  [
    'ignores a dry-run ALLOW next to an enforced one',
    [allow('dry', { destinationPorts: [8080] }, { dryRun: true }), allow('real', { destinationPorts: [80] })],
    conn(),
    DENIED_NO_ALLOW,
  ],
  ['matches an empty prefix only with an identity', [allow('p', { principals: [prefix('')] })], plaintext(), DENIED_NO_ALLOW],
];

describe('authorize', () => {
  for (const [name, policies, attributes, expected] of cases) {
    it(name, () => {
      const d = authorize(policies, attributes);
      if (expected === 'allow') {
        assert.equal(d.allowed, true, d.allowed ? '' : d.reason);
      } else {
        assert.equal(d.allowed, false, 'expected a denial');
        if (d.allowed) return;
        assert.equal(d.policy, expected.deniedBy);
        assert.equal(d.reason, expected.deniedBy === undefined ? NOT_ALLOWED_REASON : `explicitly denied by: ${expected.deniedBy}`);
      }
    });
  }

  it('reports matching dry-run DENY policies on an allowed connection', () => {
    const d = authorize(
      [deny('dry-a', { destinationPorts: [8080] }, { dryRun: true }), deny('dry-b', { destinationPorts: [80] }, { dryRun: true })],
      conn(),
    );
    assert.deepEqual(d, { allowed: true, dryRunDenials: ['default/dry-a'] });
  });

  it('leaves dryRunDenials out when no dry-run policy matched', () => {
    assert.deepEqual(authorize([], conn()), { allowed: true });
  });
});

describe('policyMatches', () => {
  it('matches regardless of action', () => {
    assert.equal(policyMatches(deny('d', { destinationPorts: [8080] }), conn()), true);
    assert.equal(policyMatches(allow('a', { destinationPorts: [8080] }), conn({ destinationPort: 1 })), false);
  });
});
