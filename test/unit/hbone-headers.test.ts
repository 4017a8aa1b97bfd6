/** HBONE request metadata: the `forwarded` header's host= (RFC 7239 §4, §5.3), as the destination reads it. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildForwarded, parseForwardedHost } from '../../lib/hbone/headers.js';

const cases: Array<[string, string | undefined, string | undefined]> = [
  ['what our clients send', buildForwarded('10.0.0.1', 40000, 'echo.default.svc.cluster.local'), 'echo.default.svc.cluster.local'],
  ['an IPv6 client and a host', buildForwarded('fd00::1', 1, 'a.b'), 'a.b'],
  ['no host', buildForwarded('10.0.0.1', 1), undefined],
  ['a quoted host, parameter name in capitals', 'Host="a.b";for=x', 'a.b'],
  ['a quoted-pair inside the quotes', 'host="a\\"b"', 'a"b'],
  ['host only in a later forwarded-element', 'for=x, host=b', undefined],
  ['an empty host', 'host=', undefined],
  ['an unterminated quote', 'host="a.b', undefined],
  ['a value that is not a token', 'host=a b', undefined],
  ['no header', undefined, undefined],
  ['a header far too long', `host=${'a'.repeat(2000)}`, undefined],
  ['control characters', 'host=a\u0000b', undefined],
];

for (const [what, header, host] of cases) {
  test(`forwarded host: ${what}`, () => assert.equal(parseForwardedHost(header), host));
}
