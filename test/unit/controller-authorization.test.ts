/**
 * AuthorizationPolicy → istio.security.Authorization, the conversion table of istiod's ambient index
 * (istio pilot/pkg/serviceregistry/ambient/authorization.go, policies.go), including the status messages it writes.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { convertAuthorizationPolicy, hasEffectiveRules } from '../../controller/model/authorization.js';
import { modelOptions } from '../../controller/model/options.js';
import { makeIdentity } from '../../lib/identity/spiffe.js';
import { istio } from '../../lib/proto/index.js';
import { policyMatches } from '../../ztunnel/policy/rbac.js';
import { authorizationToModel } from '../../ztunnel/sources/wds-convert.js';
import { authz } from '../../testbed/fixtures/kube-fixtures.js';

type IAuthorization = istio.security.Authorization.$Properties;
type IMatch = istio.security.Match.$Properties;

const opts = modelOptions();
const S = istio.security.Scope;
const A = istio.security.Action;
const ALLOW_HTTP =
  'ztunnel does not support HTTP attributes (found: %s). In ambient mode you must use a waypoint proxy to enforce HTTP rules. ' +
  'Within an ALLOW policy, rules matching HTTP attributes are omitted. This will be more restrictive than requested.';
const DENY_MIXED =
  'ztunnel does not support HTTP attributes (found: %s). In ambient mode you must use a waypoint proxy to enforce HTTP rules. ' +
  'DENY policy with HTTP attributes is enforced without the HTTP rules. This will be more restrictive than requested.';
const DENY_NO_EFFECT =
  'ztunnel does not support HTTP attributes (found: %s). In ambient mode you must use a waypoint proxy to enforce HTTP rules. ' +
  'After omitting unsupported HTTP attributes, this DENY policy has no enforceable rules at ztunnel and will have no effect. ' +
  'Deploy a waypoint proxy and use a targetRef to enforce this policy.';
const msg = (fmt: string, found: string): string => fmt.replace('%s', found);

/** The expected resource: policy "p" in namespace "apps", NAMESPACE scope, ALLOW, not dry-run, unless overridden. */
const expected = (over: Partial<IAuthorization>): IAuthorization => ({
  name: 'p',
  namespace: 'apps',
  scope: S.NAMESPACE,
  action: A.ALLOW,
  rules: [],
  dryRun: false,
  ...over,
});
/** One rule whose clauses each hold the given matches. */
const rule = (...clauses: IMatch[][]): istio.security.Rule.$Properties => ({ clauses: clauses.map((matches) => ({ matches })) });
const v4 = (a: number, b: number, c: number, d: number): Uint8Array => Uint8Array.of(a, b, c, d);

interface Case {
  readonly name: string;
  readonly spec: Record<string, unknown>;
  readonly namespace?: string;
  readonly annotations?: Record<string, string>;
  readonly options?: Parameters<typeof modelOptions>[0];
  readonly want: IAuthorization | undefined;
  readonly warnings?: readonly string[];
}

const cases: readonly Case[] = [
  // --- scope and action ---
  {
    name: 'a selector gives WORKLOAD_SELECTOR scope',
    spec: { selector: { matchLabels: { app: 'web' } } },
    want: expected({ scope: S.WORKLOAD_SELECTOR }),
  },
  { name: 'no selector gives NAMESPACE scope', spec: {}, want: expected({}) },
  {
    name: 'no selector in the root namespace gives GLOBAL scope',
    spec: {},
    namespace: 'istio-system',
    want: expected({ namespace: 'istio-system', scope: S.GLOBAL }),
  },
  {
    name: 'a selector in the root namespace stays WORKLOAD_SELECTOR',
    spec: { selector: { matchLabels: { app: 'web' } } },
    namespace: 'istio-system',
    want: expected({ namespace: 'istio-system', scope: S.WORKLOAD_SELECTOR }),
  },
  { name: 'DENY is sent as DENY', spec: { action: 'DENY', rules: [{}] }, want: expected({ action: A.DENY, rules: [rule()] }) },
  {
    name: 'AUDIT is not sent',
    spec: { action: 'AUDIT', rules: [{}] },
    want: undefined,
    warnings: ['ztunnel does not support the AUDIT action'],
  },
  {
    name: 'CUSTOM is not sent',
    spec: { action: 'CUSTOM', provider: { name: 'ext-authz' }, rules: [{}] },
    want: undefined,
    warnings: ['ztunnel does not support the CUSTOM action'],
  },
  {
    name: 'a targetRef policy is for a waypoint, not ztunnel',
    spec: { targetRef: { kind: 'Gateway', group: 'gateway.networking.k8s.io', name: 'wp' } },
    want: undefined,
  },
  {
    name: 'a targetRefs policy is for a waypoint, not ztunnel',
    spec: { targetRefs: [{ kind: 'Service', group: '', name: 'web' }], rules: [{}] },
    want: undefined,
  },

  // --- empty forms ---
  { name: 'no rules is allow-nothing: an ALLOW without rules', spec: { rules: [] }, want: expected({ rules: [] }) },
  { name: 'an empty rule is allow-all: one rule without clauses', spec: { rules: [{}] }, want: expected({ rules: [rule()] }) },

  // --- from / to ---
  {
    name: 'principals become StringMatches without spiffe://',
    spec: { rules: [{ from: [{ source: { principals: ['cluster.local/ns/a/sa/b', 'spiffe://cluster.local/ns/c/sa/d'] } }] }] },
    want: expected({ rules: [rule([{ principals: [{ exact: 'cluster.local/ns/a/sa/b' }, { exact: 'cluster.local/ns/c/sa/d' }] }])] }),
  },
  {
    name: 'string matches: * is presence, *x suffix, x* prefix, else exact',
    spec: { rules: [{ from: [{ source: { namespaces: ['*', '*-prod', 'team-*', 'exact'], notNamespaces: ['kube-*'] } }] }] },
    want: expected({
      rules: [
        rule([
          {
            namespaces: [{ presence: {} }, { suffix: '-prod' }, { prefix: 'team-' }, { exact: 'exact' }],
            notNamespaces: [{ prefix: 'kube-' }],
          },
        ]),
      ],
    }),
  },
  {
    name: 'ipBlocks become addresses with prefix lengths (a bare IP is a host route)',
    spec: { rules: [{ from: [{ source: { ipBlocks: ['10.0.0.0/8', '192.168.1.7'], notIpBlocks: ['fd00::/64'] } }] }] },
    want: expected({
      rules: [
        rule([
          {
            sourceIps: [
              { address: v4(10, 0, 0, 0), length: 8 },
              { address: v4(192, 168, 1, 7), length: 32 },
            ],
            notSourceIps: [{ address: Uint8Array.of(0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), length: 64 }],
          },
        ]),
      ],
    }),
  },
  {
    name: 'serviceAccounts become ServiceAccountMatch; a bare name is in the policy namespace',
    spec: { rules: [{ from: [{ source: { serviceAccounts: ['other/sa1', 'sa2'], notServiceAccounts: ['x/y'] } }] }] },
    want: expected({
      rules: [
        rule([
          {
            serviceAccounts: [
              { namespace: 'other', serviceAccount: 'sa1' },
              { namespace: 'apps', serviceAccount: 'sa2' },
            ],
            notServiceAccounts: [{ namespace: 'x', serviceAccount: 'y' }],
          },
        ]),
      ],
    }),
  },
  {
    name: 'to ports become one clause, from sources another; entries of each are OR-ed matches',
    spec: {
      rules: [
        {
          to: [{ operation: { ports: ['80', '443'] } }, { operation: { notPorts: ['9090'] } }],
          from: [{ source: { namespaces: ['a'] } }, { source: { namespaces: ['b'] } }],
        },
      ],
    },
    want: expected({
      rules: [
        rule(
          [{ destinationPorts: [80, 443] }, { notDestinationPorts: [9090] }],
          [{ namespaces: [{ exact: 'a' }] }, { namespaces: [{ exact: 'b' }] }],
        ),
      ],
    }),
  },
  {
    name: 'each rule is its own Rule (rules are OR-ed)',
    spec: { rules: [{ from: [{ source: { namespaces: ['a'] } }] }, { to: [{ operation: { ports: ['8080'] } }] }] },
    want: expected({ rules: [rule([{ namespaces: [{ exact: 'a' }] }]), rule([{ destinationPorts: [8080] }])] }),
  },

  // --- when ---
  {
    name: 'each L4 when key becomes its own clause, values and notValues',
    spec: {
      rules: [
        {
          when: [
            { key: 'source.ip', values: ['10.1.0.0/16'] },
            { key: 'source.namespace', values: ['a'], notValues: ['b'] },
            { key: 'source.principal', values: ['spiffe://cluster.local/ns/a/sa/*'] },
            { key: 'destination.ip', notValues: ['10.2.0.1'] },
            { key: 'destination.port', values: ['8080'] },
          ],
        },
      ],
    },
    want: expected({
      rules: [
        rule(
          [{ sourceIps: [{ address: v4(10, 1, 0, 0), length: 16 }] }],
          [{ namespaces: [{ exact: 'a' }], notNamespaces: [{ exact: 'b' }] }],
          [{ principals: [{ prefix: 'cluster.local/ns/a/sa/' }] }],
          [{ notDestinationIps: [{ address: v4(10, 2, 0, 1), length: 32 }] }],
          [{ destinationPorts: [8080] }],
        ),
      ],
    }),
  },

  // --- HTTP attributes ---
  {
    name: 'ALLOW: a rule with HTTP methods is dropped entirely',
    spec: { rules: [{ from: [{ source: { namespaces: ['a'] } }], to: [{ operation: { methods: ['GET'] } }] }] },
    want: expected({ rules: [] }),
    warnings: [msg(ALLOW_HTTP, 'methods')],
  },
  {
    name: 'ALLOW: only the HTTP rule is dropped, the L4 rule stays',
    spec: { rules: [{ to: [{ operation: { paths: ['/admin'], hosts: ['x'] } }] }, { from: [{ source: { namespaces: ['a'] } }] }] },
    want: expected({ rules: [rule([{ namespaces: [{ exact: 'a' }] }])] }),
    warnings: [msg(ALLOW_HTTP, 'hosts, paths')],
  },
  {
    name: 'ALLOW: requestPrincipals and remoteIpBlocks are HTTP attributes',
    spec: { rules: [{ from: [{ source: { requestPrincipals: ['iss/sub'], remoteIpBlocks: ['1.2.3.4'] } }] }] },
    want: expected({ rules: [] }),
    warnings: [msg(ALLOW_HTTP, 'remoteIpBlocks, requestPrincipals')],
  },
  {
    name: 'ALLOW: a non-L4 when key drops the rule',
    spec: { rules: [{ when: [{ key: 'request.headers[x-token]', values: ['t'] }] }] },
    want: expected({ rules: [] }),
    warnings: [msg(ALLOW_HTTP, 'request.headers[x-token]')],
  },
  {
    name: 'DENY: HTTP parts are trimmed, the port is kept (more restrictive)',
    spec: { action: 'DENY', rules: [{ to: [{ operation: { ports: ['80'], methods: ['DELETE'] } }] }] },
    want: expected({ action: A.DENY, rules: [rule([{ destinationPorts: [80] }])] }),
    warnings: [msg(DENY_MIXED, 'methods')],
  },
  {
    name: 'DENY: L4 source kept next to a trimmed requestPrincipals',
    spec: { action: 'DENY', rules: [{ from: [{ source: { namespaces: ['evil'], requestPrincipals: ['*'] } }] }] },
    want: expected({ action: A.DENY, rules: [rule([{ namespaces: [{ exact: 'evil' }] }])] }),
    warnings: [msg(DENY_MIXED, 'requestPrincipals')],
  },
  {
    name: 'DENY: nothing left but HTTP has no effect (an empty match never matches)',
    spec: { action: 'DENY', rules: [{ to: [{ operation: { methods: ['POST'] } }] }] },
    want: expected({ action: A.DENY, rules: [rule([{}])] }),
    warnings: [msg(DENY_NO_EFFECT, 'methods')],
  },
  {
    name: 'DENY: a non-L4 when key leaves an empty clause, so the rule has no effect',
    spec: {
      action: 'DENY',
      rules: [{ from: [{ source: { namespaces: ['a'] } }], when: [{ key: 'request.auth.claims[iss]', values: ['x'] }] }],
    },
    want: expected({ action: A.DENY, rules: [rule([{ namespaces: [{ exact: 'a' }] }], [{}])] }),
    warnings: [msg(DENY_NO_EFFECT, 'request.auth.claims[iss]')],
  },

  // --- dry run ---
  {
    name: 'the dry-run annotation sets dry_run',
    spec: { rules: [{}] },
    annotations: { 'istio.io/dry-run': 'true' },
    want: expected({ rules: [rule()], dryRun: true }),
  },
  {
    name: 'dry-run "false" and unparsable values are not dry-run',
    spec: {},
    annotations: { 'istio.io/dry-run': 'yes' },
    want: expected({}),
  },
  {
    name: 'with dry-run support off, a dry-run policy is not sent and says why',
    spec: {},
    annotations: { 'istio.io/dry-run': 'True' },
    options: { dryRunEnabled: false },
    want: undefined,
    warnings: ['found policy "apps/p" using dry-run annotation, but support for ambient dry-run authorizationPolicies isn\'t enabled'],
  },
];

describe('AuthorizationPolicy conversion table', () => {
  for (const c of cases) {
    it(c.name, () => {
      const got = convertAuthorizationPolicy(authz(c.namespace ?? 'apps', 'p', c.spec, c.annotations), modelOptions(c.options));
      assert.deepEqual(got.authorization, c.want);
      assert.deepEqual(got.warnings, c.warnings ?? []);
      if (got.authorization !== undefined) {
        // What is sent survives the wire unchanged.
        const bytes = istio.security.Authorization.encode(got.authorization).finish();
        const back = istio.security.Authorization.toObject(istio.security.Authorization.decode(bytes), { defaults: false, bytes: String });
        const again = istio.security.Authorization.toObject(istio.security.Authorization.fromObject(got.authorization), {
          defaults: false,
          bytes: String,
        });
        assert.deepEqual(back, again);
      }
    });
  }

  it('has at least twenty cases', () => assert.ok(cases.length >= 20));
});

describe('converted policies as ztunnel enforces them', () => {
  const conn = (namespace: string, port: number) => ({
    sourceIdentity: makeIdentity(namespace, 'default'),
    sourceIp: '10.0.0.1',
    destinationIp: '10.0.1.1',
    destinationPort: port,
  });
  const enforced = (spec: Record<string, unknown>) => {
    const a = convertAuthorizationPolicy(authz('apps', 'p', spec), opts).authorization;
    assert.ok(a !== undefined);
    return authorizationToModel('apps/p', a);
  };

  it('a trimmed DENY denies all traffic to its port, whatever the method', () => {
    const p = enforced({ action: 'DENY', rules: [{ to: [{ operation: { ports: ['80'], methods: ['DELETE'] } }] }] });
    assert.equal(policyMatches(p, conn('a', 80)), true);
    assert.equal(policyMatches(p, conn('a', 81)), false);
  });

  it('a DENY with only HTTP attributes never matches', () => {
    const p = enforced({ action: 'DENY', rules: [{ to: [{ operation: { methods: ['POST'] } }] }] });
    assert.equal(policyMatches(p, conn('a', 80)), false);
    assert.equal(
      hasEffectiveRules(
        convertAuthorizationPolicy(authz('apps', 'p', { action: 'DENY', rules: [{ to: [{ operation: { methods: ['POST'] } }] }] }), opts)
          .authorization?.rules ?? [],
      ),
      false,
    );
  });

  it('an ALLOW whose rules were all HTTP allows nothing', () => {
    const p = enforced({ rules: [{ to: [{ operation: { methods: ['GET'] } }] }] });
    assert.equal(policyMatches(p, conn('a', 80)), false);
  });

  it('when clauses are AND-ed: namespace a and port 8080', () => {
    const p = enforced({
      rules: [
        {
          when: [
            { key: 'source.namespace', values: ['a'] },
            { key: 'destination.port', values: ['8080'] },
          ],
        },
      ],
    });
    assert.equal(policyMatches(p, conn('a', 8080)), true);
    assert.equal(policyMatches(p, conn('a', 80)), false);
    assert.equal(policyMatches(p, conn('b', 8080)), false);
  });
});
