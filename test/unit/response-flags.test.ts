/** Error codes → Istio response flags (ztunnel src/proxy/metrics.rs), one table keyed by code. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MeshError } from '../../lib/errors.js';
import { HboneError, HboneErrorCode } from '../../lib/hbone/errors.js';
import { IdentityError, IdentityErrorCode } from '../../lib/identity/errors.js';
import { NativeError, NativeErrorCode } from '../../lib/native/index.js';
import { ProxyError, ProxyErrorCode } from '../../ztunnel/proxy/errors.js';
import { isFailure, responseFlagOf } from '../../ztunnel/proxy/response-flags.js';
import { RouteRejectCode } from '../../ztunnel/proxy/route.js';

const cases: Array<[string, unknown, string]> = [
  ['a TLS handshake failure', new HboneError(HboneErrorCode.TLS_FAILED, 'x'), 'TLS_FAILURE'],
  ['a server with the wrong identity', new HboneError(HboneErrorCode.IDENTITY_MISMATCH, 'x'), 'TLS_FAILURE'],
  ['an HTTP/2 session failure', new HboneError(HboneErrorCode.SESSION_FAILED, 'x'), 'H2_HANDSHAKE_FAILURE'],
  ['a connect timeout to 15008', new HboneError(HboneErrorCode.CONNECT_TIMEOUT, 'x'), 'NETWORK_POLICY'],
  ['a refused connect to 15008', new HboneError(HboneErrorCode.CONNECT_FAILED, 'x'), 'CONNECT'],
  ['a 401 from the peer', new HboneError(HboneErrorCode.UNAUTHORIZED, 'x', { status: 401 }), 'DENY'],
  ['a 503 from the peer', new HboneError(HboneErrorCode.HTTP_STATUS, 'x', { status: 503 }), 'CONNECT'],
  ['a local policy denial', new ProxyError(ProxyErrorCode.POLICY_DENIED, 'x'), 'DENY'],
  ['a policy change', new ProxyError(ProxyErrorCode.POLICY_CHANGED, 'x'), 'DENY'],
  ['a drain', new ProxyError(ProxyErrorCode.DRAINED, 'x'), '-'],
  ['no certificate', new IdentityError(IdentityErrorCode.CERT_UNAVAILABLE, 'x'), 'IDENTITY_ERROR'],
  ['a route rejection', new ProxyError(RouteRejectCode.NO_HEALTHY_UPSTREAM, 'x'), 'CONNECT'],
  ['no original destination', new NativeError(NativeErrorCode.ORIGINAL_DST_FAILED, 'x'), 'CONNECT'],
  ['a plain Error', new Error('whatever the text says, e.g. NetworkPolicy'), 'CONNECT'],
  [
    'a listed code under an unlisted wrapper',
    new MeshError('SOMETHING_ELSE', 'x', { cause: new HboneError(HboneErrorCode.CONNECT_TIMEOUT, 'x') }),
    'NETWORK_POLICY',
  ],
];

for (const [what, err, flag] of cases) {
  test(`flags ${what} as ${flag}`, () => assert.equal(responseFlagOf(err), flag));
}

test('every flag but "-" counts as a failed connection', () => {
  assert.equal(isFailure('-'), false);
  for (const f of ['DENY', 'CONNECT', 'TLS_FAILURE', 'NETWORK_POLICY', 'IDENTITY_ERROR', 'H2_HANDSHAKE_FAILURE'] as const)
    assert.equal(isFailure(f), true);
});
