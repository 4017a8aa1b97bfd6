/** Address canonicalisation and CIDR containment, on which every index lookup and ipBlock match relies. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { canonicalIp, cidrContains, ipFamily, isLoopback, parseCidr } from '../../lib/net/ip.js';

describe('canonicalIp', () => {
  const cases: ReadonlyArray<[string, string | undefined]> = [
    ['10.0.0.1', '10.0.0.1'],
    ['::', '::'],
    ['0:0:0:0:0:0:0:1', '::1'],
    ['2001:0DB8::0001', '2001:db8::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['1:2:3:4:5:6:7::', '1:2:3:4:5:6:7:0'],
    ['::ffff:10.0.0.1', '10.0.0.1'],
    ['::ffff:a00:1', '10.0.0.1'],
    ['1.2.3.04', undefined],
    ['256.1.1.1', undefined],
    ['1.2.3', undefined],
    ['fe80::1%eth0', undefined],
    ['[::1]', undefined],
    ['web.default', undefined],
  ];
  for (const [input, expected] of cases) {
    it(`reads ${JSON.stringify(input)} as ${String(expected)}`, () => assert.equal(canonicalIp(input), expected));
  }

  it('tells families and loopback apart', () => {
    assert.deepEqual([ipFamily('10.0.0.1'), ipFamily('::ffff:10.0.0.1'), ipFamily('fd00::1'), ipFamily('x')], [4, 4, 6, undefined]);
    assert.deepEqual(
      [isLoopback('127.0.0.5'), isLoopback('::1'), isLoopback('::ffff:127.0.0.1'), isLoopback('10.0.0.1')],
      [true, true, true, false],
    );
  });
});

describe('parseCidr / cidrContains', () => {
  const cases: ReadonlyArray<[string, string, boolean]> = [
    ['10.0.0.0/8', '10.255.255.255', true],
    ['10.0.0.0/8', '11.0.0.0', false],
    ['10.0.0.1', '10.0.0.1', true],
    ['10.0.0.1', '10.0.0.2', false],
    ['10.0.0.0/31', '10.0.0.1', true],
    ['10.0.0.0/31', '10.0.0.2', false],
    ['0.0.0.0/0', '192.168.1.1', true],
    ['0.0.0.0/0', 'fd00::1', false],
    ['::/0', '10.0.0.1', false],
    ['10.0.0.0/8', '::ffff:10.1.2.3', true],
    ['::ffff:10.0.0.0/104', '10.1.2.3', true],
    ['::ffff:0:0/95', '10.1.2.3', false],
    ['fd00::/8', 'fd12::1', true],
    ['2001:db8::/65', '2001:db8::7fff:0:0:1', true],
    ['2001:db8::/65', '2001:db8:0:0:8000::1', false],
  ];
  for (const [block, ip, inside] of cases) {
    it(`${inside ? 'finds' : 'does not find'} ${ip} in ${block}`, () => {
      const c = parseCidr(block);
      assert.ok(c, block);
      assert.equal(cidrContains(c, ip), inside);
    });
  }

  it('reads a block in IPv4-mapped form given by the control plane as an IPv4 block', () => {
    assert.equal(cidrContains({ address: '::ffff:10.0.0.0', prefixLength: 104 }, '10.1.2.3'), true);
    assert.equal(cidrContains({ address: '::ffff:10.0.0.0', prefixLength: 104 }, '11.1.2.3'), false);
  });

  it('refuses prefixes longer than the address and leading zeros', () => {
    assert.deepEqual(['10.0.0.0/33', 'fd00::/129', '10.0.0.0/08', '10.0.0.0/', 'x/8'].map(parseCidr), [
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
    ]);
  });
});
