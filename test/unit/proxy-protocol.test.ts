/** PROXY protocol v2 (haproxy proxy-protocol.txt §2.2): the header ztunnel writes to a PROXY app tunnel. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeProxyV2, encodeProxyV2, PP2_TYPE_PEER_IDENTITY, PROXY_V2_SIGNATURE } from '../../lib/net/proxy-protocol.js';

const ID = Buffer.from('spiffe://a/ns/b/sa/c');

describe('PROXY v2 encoding', () => {
  test('writes the spec layout for TCP over IPv4 with a TLV, byte for byte', () => {
    const h = encodeProxyV2({ address: '10.0.0.1', port: 12345 }, { address: '10.96.0.10', port: 80 }, [[PP2_TYPE_PEER_IDENTITY, ID]]);
    const expected = Buffer.concat([
      PROXY_V2_SIGNATURE,
      Buffer.from([0x21, 0x11, 0x00, 12 + 3 + ID.length]),
      Buffer.from([10, 0, 0, 1, 10, 96, 0, 10, 0x30, 0x39, 0x00, 0x50]),
      Buffer.from([0xd0, 0x00, ID.length]),
      ID,
    ]);
    assert.deepEqual(h, expected);
  });

  test('writes TCP over IPv6, and maps an IPv4 side when the families differ', () => {
    const v6 = encodeProxyV2({ address: 'fd00::1', port: 1 }, { address: 'fd00::2', port: 2 });
    assert.equal(v6[13], 0x21);
    assert.equal(v6.readUInt16BE(14), 36);
    const mixed = decodeProxyV2(encodeProxyV2({ address: '10.0.0.1', port: 1 }, { address: 'fd00::2', port: 2 }));
    assert.equal(mixed.kind, 'header');
    if (mixed.kind === 'header') assert.deepEqual(mixed.header.source, { address: '10.0.0.1', port: 1 });
  });

  test('refuses what is not an address or a port', () => {
    assert.throws(() => encodeProxyV2({ address: 'host.example', port: 1 }, { address: '10.0.0.1', port: 1 }), RangeError);
    assert.throws(() => encodeProxyV2({ address: '10.0.0.1', port: 70000 }, { address: '10.0.0.1', port: 1 }), RangeError);
  });
});

describe('PROXY v2 decoding', () => {
  const header = encodeProxyV2({ address: '10.0.0.1', port: 12345 }, { address: '10.96.0.10', port: 80 }, [[PP2_TYPE_PEER_IDENTITY, ID]]);

  test('round-trips addresses, ports and TLVs, and says where the payload starts', () => {
    const r = decodeProxyV2(Buffer.concat([header, Buffer.from('payload')]));
    assert.equal(r.kind, 'header');
    if (r.kind !== 'header') return;
    assert.deepEqual(r.header.source, { address: '10.0.0.1', port: 12345 });
    assert.deepEqual(r.header.destination, { address: '10.96.0.10', port: 80 });
    assert.deepEqual(r.header.tlvs.get(PP2_TYPE_PEER_IDENTITY), ID);
    assert.equal(r.bytes, header.length);
  });

  const cases: Array<[string, Buffer, 'incomplete' | 'invalid']> = [
    ['a prefix of the header', header.subarray(0, 20), 'incomplete'],
    ['a prefix of the signature', header.subarray(0, 5), 'incomplete'],
    ['no signature (PROXY v1 text)', Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n'), 'invalid'],
    ['version 1 in the binary form', Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([0x11, 0x11, 0, 12]), Buffer.alloc(12)]), 'invalid'],
    ['UDP', Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([0x21, 0x12, 0, 12]), Buffer.alloc(12)]), 'invalid'],
    [
      'a length shorter than the addresses',
      Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([0x21, 0x11, 0, 4]), Buffer.alloc(4)]),
      'invalid',
    ],
    [
      'a TLV running past the header',
      Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([0x21, 0x11, 0, 15]), Buffer.alloc(12), Buffer.from([0xd0, 0x00, 0x09])]),
      'invalid',
    ],
  ];
  for (const [what, input, kind] of cases) {
    test(`answers ${kind} for ${what}`, () => assert.equal(decodeProxyV2(input).kind, kind));
  }
});
