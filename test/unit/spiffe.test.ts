import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { hasErrorCode } from '../../lib/errors.js';
import { IdentityErrorCode } from '../../lib/identity/errors.js';
import {
  DEFAULT_TRUST_DOMAIN,
  formatSpiffeId,
  makeIdentity,
  parseSpiffeId,
  principalOf,
  sameIdentity,
  tryParseSpiffeId,
} from '../../lib/identity/spiffe.js';

describe('SPIFFE identities', () => {
  const valid: ReadonlyArray<[string, string, string, string]> = [
    ['spiffe://cluster.local/ns/default/sa/sleep', 'cluster.local', 'default', 'sleep'],
    ['spiffe://example.org/ns/istio-system/sa/ztunnel', 'example.org', 'istio-system', 'ztunnel'],
    ['spiffe://td_1-x.corp/ns/a.b/sa/c-d_e.f', 'td_1-x.corp', 'a.b', 'c-d_e.f'],
    ['spiffe://cluster.local/ns/n/sa/default', 'cluster.local', 'n', 'default'],
  ];
  for (const [uri, td, ns, sa] of valid) {
    it(`accepts and round-trips ${uri}`, () => {
      const id = parseSpiffeId(uri);
      assert.deepEqual({ ...id }, { trustDomain: td, namespace: ns, serviceAccount: sa });
      assert.equal(formatSpiffeId(id), uri);
      assert.ok(Object.isFrozen(id));
    });
  }

  const invalid: ReadonlyArray<[string, string]> = [
    ['empty input', ''],
    ['wrong scheme', 'http://cluster.local/ns/a/sa/b'],
    ['upper-case scheme', 'SPIFFE://cluster.local/ns/a/sa/b'],
    ['scheme with one slash', 'spiffe:/cluster.local/ns/a/sa/b'],
    ['no scheme', 'cluster.local/ns/a/sa/b'],
    ['leading whitespace', ' spiffe://cluster.local/ns/a/sa/b'],
    ['trailing newline', 'spiffe://cluster.local/ns/a/sa/b\n'],
    ['extra segment', 'spiffe://cluster.local/ns/a/sa/b/c'],
    ['missing service account segments', 'spiffe://cluster.local/ns/a'],
    ['missing service account value', 'spiffe://cluster.local/ns/a/sa'],
    ['trailing slash', 'spiffe://cluster.local/ns/a/sa/b/'],
    ['empty trust domain', 'spiffe:///ns/a/sa/b'],
    ['empty namespace', 'spiffe://cluster.local/ns//sa/b'],
    ['empty service account', 'spiffe://cluster.local/ns/a/sa/'],
    ['"ns" misspelt', 'spiffe://cluster.local/namespace/a/sa/b'],
    ['"ns" in upper case', 'spiffe://cluster.local/NS/a/sa/b'],
    ['"sa" misspelt', 'spiffe://cluster.local/ns/a/serviceaccount/b'],
    ['"ns" and "sa" swapped', 'spiffe://cluster.local/sa/b/ns/a'],
    ['upper-case trust domain', 'spiffe://Cluster.Local/ns/a/sa/b'],
    ['port in trust domain', 'spiffe://cluster.local:443/ns/a/sa/b'],
    ['user info in trust domain', 'spiffe://me@cluster.local/ns/a/sa/b'],
    ['query', 'spiffe://cluster.local/ns/a/sa/b?x=1'],
    ['fragment', 'spiffe://cluster.local/ns/a/sa/b#f'],
    ['percent-encoding', 'spiffe://cluster.local/ns/a%2Fb/sa/c'],
    ['dot-dot segment', 'spiffe://cluster.local/ns/../sa/b'],
    ['dot segment', 'spiffe://cluster.local/ns/a/sa/.'],
    ['space in a segment', 'spiffe://cluster.local/ns/a b/sa/c'],
    ['over-long input', `spiffe://cluster.local/ns/${'a'.repeat(3000)}/sa/b`],
  ];
  for (const [why, uri] of invalid) {
    it(`rejects ${why}`, () => {
      assert.throws(
        () => parseSpiffeId(uri),
        (err: unknown) =>
          hasErrorCode(err, IdentityErrorCode.BAD_SPIFFE_ID) &&
          /spiffe:\/\/<trust-domain>\/ns\/<namespace>\/sa\/<service-account>/.test((err as Error).message),
      );
      assert.equal(tryParseSpiffeId(uri), undefined);
    });
  }

  it('quotes only the start of an over-long input in its error message', () => {
    assert.throws(
      () => parseSpiffeId(`spiffe://cluster.local/ns/${'a'.repeat(5000)}/sa/b`),
      (err: unknown) => (err as Error).message.length < 400,
    );
  });

  it('builds identities in the default trust domain and validates their parts', () => {
    const id = makeIdentity('default', 'sleep');
    assert.equal(id.trustDomain, DEFAULT_TRUST_DOMAIN);
    assert.equal(formatSpiffeId(id), 'spiffe://cluster.local/ns/default/sa/sleep');
    assert.equal(formatSpiffeId(makeIdentity('a', 'b', 'example.org')), 'spiffe://example.org/ns/a/sa/b');
    assert.throws(
      () => makeIdentity('a/b', 'c'),
      (err: unknown) => hasErrorCode(err, IdentityErrorCode.BAD_SPIFFE_ID),
    );
    assert.throws(
      () => makeIdentity('a', ''),
      (err: unknown) => hasErrorCode(err, IdentityErrorCode.BAD_SPIFFE_ID),
    );
  });

  it('spells principals as AuthorizationPolicy does, without the scheme', () => {
    assert.equal(principalOf(parseSpiffeId('spiffe://cluster.local/ns/default/sa/sleep')), 'cluster.local/ns/default/sa/sleep');
    assert.equal(principalOf(makeIdentity('x', 'y', 'td.example')), 'td.example/ns/x/sa/y');
  });

  it('compares identities by value', () => {
    assert.ok(sameIdentity(parseSpiffeId('spiffe://cluster.local/ns/a/sa/b'), makeIdentity('a', 'b')));
    assert.ok(!sameIdentity(makeIdentity('a', 'b'), makeIdentity('a', 'c')));
    assert.ok(!sameIdentity(makeIdentity('a', 'b'), makeIdentity('a', 'b', 'other.td')));
  });
});
