/**
 * ZDS codec (lib/zds): exact bytes of the messages (field numbers from zds.proto), and the validation both ends
 * rely on: Add carries exactly one fd and a workload_info, everything else none, empty/unknown payloads fail.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { hasErrorCode } from '../../lib/errors.js';
import {
  ZDS_MAX_MESSAGE_BYTES,
  decodeAck,
  decodeHello,
  decodeRequest,
  encodeAck,
  encodeHello,
  encodeRequest,
} from '../../lib/zds/index.js';
import { istio } from '../../lib/proto/index.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const info = { name: 'n', namespace: 'ns', serviceAccount: 'sa' };
const code =
  (c: string) =>
  (e: unknown): boolean =>
    hasErrorCode(e, c);

describe('ZDS codec', () => {
  test('bytes on the wire: hello V1, Add(1){uid=1, info=2{1,2,3}}, Keep(5), Del(2){uid=2}, SnapshotSent(3), Ack(1)', () => {
    assert.equal(hex(encodeHello()), '0801');
    assert.equal(hex(encodeRequest({ kind: 'add', uid: 'u', info })), '0a100a0175120b0a016e12026e731a027361');
    assert.equal(hex(encodeRequest({ kind: 'keep', uid: 'u' })), '2a030a0175');
    assert.equal(hex(encodeRequest({ kind: 'del', uid: 'u' })), '12031201' + '75');
    assert.equal(hex(encodeRequest({ kind: 'snapshotSent' })), '1a00');
    assert.equal(hex(encodeAck()), '0a00');
    assert.equal(hex(encodeAck('x')), '0a030a0178');
  });

  test('requests round-trip; an Add hands back its one fd', () => {
    assert.deepEqual(decodeRequest(encodeRequest({ kind: 'add', uid: 'u', info }), [7]), { kind: 'add', uid: 'u', info, netnsFd: 7 });
    assert.deepEqual(decodeRequest(encodeRequest({ kind: 'keep', uid: 'k' }), []), { kind: 'keep', uid: 'k' });
    assert.deepEqual(decodeRequest(encodeRequest({ kind: 'del', uid: 'd' }), []), { kind: 'del', uid: 'd' });
    assert.deepEqual(decodeRequest(encodeRequest({ kind: 'snapshotSent' }), []), { kind: 'snapshotSent' });
    assert.equal(decodeHello(encodeHello(), []), 1);
    assert.equal(decodeAck(encodeAck('boom'), []), 'boom');
  });

  test('fd rules: Add needs exactly one, others none', () => {
    const add = encodeRequest({ kind: 'add', uid: 'u', info });
    assert.throws(() => decodeRequest(add, []), code('ZDS_MISSING_FD'));
    assert.throws(() => decodeRequest(add, [3, 4]), code('ZDS_UNEXPECTED_FD'));
    assert.throws(() => decodeRequest(encodeRequest({ kind: 'del', uid: 'u' }), [3]), code('ZDS_UNEXPECTED_FD'));
    assert.throws(() => decodeRequest(encodeRequest({ kind: 'snapshotSent' }), [3]), code('ZDS_UNEXPECTED_FD'));
    assert.throws(() => decodeHello(encodeHello(), [3]), code('ZDS_UNEXPECTED_FD'));
    assert.throws(() => decodeAck(encodeAck(), [3]), code('ZDS_UNEXPECTED_FD'));
  });

  test('bad messages: no workload_info, no uid, empty, unknown payload, garbage, hello without version', () => {
    const noInfo = istio.workload.zds.WorkloadRequest.encode({ add: { uid: 'u' } }).finish();
    assert.throws(() => decodeRequest(noInfo, [3]), code('ZDS_MISSING_WORKLOAD_INFO'));
    const noUid = istio.workload.zds.WorkloadRequest.encode({ del: {} }).finish();
    assert.throws(() => decodeRequest(noUid, []), code('ZDS_MISSING_UID'));
    assert.throws(() => decodeRequest(new Uint8Array(), []), code('ZDS_EMPTY_MESSAGE'));
    assert.throws(() => decodeRequest(Uint8Array.from([0x32, 0x00]), []), code('ZDS_UNKNOWN_MESSAGE'), 'field 6: a newer payload');
    assert.throws(() => decodeRequest(Uint8Array.from([0x0a, 0x05, 0x01]), []), code('ZDS_DECODE_FAILED'));
    assert.throws(() => decodeHello(new Uint8Array(), []), code('ZDS_BAD_VERSION'));
    assert.throws(() => decodeAck(new Uint8Array(), []), code('ZDS_EMPTY_MESSAGE'));
    assert.throws(() => encodeRequest({ kind: 'del', uid: '' }), code('ZDS_MISSING_UID'));
  });

  test("size: requests larger than ztunnel's 1024-byte read buffer are refused; long NACK texts are shortened", () => {
    assert.throws(() => encodeRequest({ kind: 'add', uid: 'u'.repeat(ZDS_MAX_MESSAGE_BYTES), info }), code('ZDS_MESSAGE_TOO_LARGE'));
    assert.ok(encodeAck('e'.repeat(5000)).length <= ZDS_MAX_MESSAGE_BYTES);
  });
});
