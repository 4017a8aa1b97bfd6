/** lib/decode: field paths, the path-aware readers every edge decoder uses, and deepFreeze. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  DecodeError,
  deepFreeze,
  entry,
  field,
  item,
  nonEmptyString,
  optionalBool,
  optionalEnum,
  optionalList,
  optionalMap,
  optionalString,
  readCidr,
  readEnum,
  readInteger,
  readIp,
  readList,
  readMap,
  readPair,
  readPort,
  readTimestamp,
  requiredString,
  show,
  splitPair,
  stringList,
  stringMap,
} from '../../lib/decode/index.js';
import { hasErrorCode } from '../../lib/errors.js';

describe('field paths', () => {
  test('fields, list items and map entries read as a person writes them', () => {
    assert.equal(field('', 'spec'), 'spec');
    assert.equal(field('spec', 'rules'), 'spec.rules');
    assert.equal(field(item(field(item('spec.rules', 0), 'from'), 2), 'source'), 'spec.rules[0].from[2].source');
    assert.equal(entry('ports', '80'), 'ports[80]');
    assert.equal(entry('services', 'demo/echo'), 'services["demo/echo"]');
  });

  test('values are quoted by kind, long strings cut', () => {
    assert.equal(show(undefined), 'null');
    assert.equal(show(null), 'null');
    assert.equal(show('x'), '"x"');
    assert.equal(show('y'.repeat(100)), JSON.stringify(`${'y'.repeat(80)}...`));
    assert.equal(show([1]), 'a list');
    assert.equal(show({ a: 1 }), 'a map');
    assert.equal(show(new Date(0)), '1970-01-01T00:00:00.000Z');
    assert.equal(show(42), '42');
    assert.equal(show(true), 'true');
  });
});

/** What a reader returns, or the path and message of the DecodeError it throws. */
function attempt(read: () => unknown): { value: unknown } | { path: string; message: string } {
  try {
    return { value: read() };
  } catch (err) {
    assert.ok(err instanceof DecodeError, `not a DecodeError: ${String(err)}`);
    assert.ok(hasErrorCode(err, 'DECODE_INVALID_VALUE'));
    assert.ok(err.path === '' || err.message.startsWith(`${err.path}: `), err.message);
    assert.equal(err.message, err.path === '' ? err.problem : `${err.path}: ${err.problem}`);
    return { path: err.path, message: err.message };
  }
}

describe('readers', () => {
  const o = {
    name: 'web',
    empty: '',
    nothing: null,
    n: 7,
    yes: true,
    tags: ['a', 'b'],
    mixed: ['a', 1],
    labels: { app: 'web', '80': 'x' },
    badLabels: { app: 3 },
    spec: { x: 1 },
    when: '2026-01-02T03:04:05Z',
  };
  const cases: ReadonlyArray<[string, () => unknown, { value: unknown } | { path: string; message: string }]> = [
    ['a map', () => readMap(o.spec, 'spec'), { value: { x: 1 } }],
    ['a list is not a map', () => readMap(o.tags, 'spec'), { path: 'spec', message: 'spec: expected a map, found a list' }],
    ['a Date is not a map', () => readMap(new Date(0), 'm'), { path: 'm', message: 'm: expected a map, found 1970-01-01T00:00:00.000Z' }],
    ['known fields only', () => readMap({ a: 1, b: 2 }, 'w', ['a']), { path: 'w.b', message: 'w.b: unknown field; expected one of: a' }],
    ['unknown field at the root', () => readMap({ b: 1 }, '', ['a']), { path: 'b', message: 'b: unknown field; expected one of: a' }],
    ['optional map, absent', () => optionalMap(o, 'status', 'x'), { value: {} }],
    ['optional map, wrong type', () => optionalMap(o, 'name', 'x'), { path: 'x.name', message: 'x.name: expected a map, found "web"' }],
    ['required string', () => requiredString(o, 'name', 'm'), { value: 'web' }],
    ['required string may be empty', () => requiredString(o, 'empty', 'm'), { value: '' }],
    ['required string, absent', () => requiredString(o, 'uid', 'm'), { path: 'm.uid', message: 'm.uid: is required' }],
    ['required string, null', () => requiredString(o, 'nothing', 'm'), { path: 'm.nothing', message: 'm.nothing: is required' }],
    ['required string, a number', () => requiredString(o, 'n', 'm'), { path: 'm.n', message: 'm.n: expected a string, found 7' }],
    ['optional string, default', () => optionalString(o, 'uid', 'm', 'd'), { value: 'd' }],
    ['optional string, null is absent', () => optionalString(o, 'nothing', 'm'), { value: '' }],
    ['non-empty string', () => nonEmptyString(o, 'name', 'metadata'), { value: 'web' }],
    [
      'non-empty string, empty',
      () => nonEmptyString(o, 'empty', 'metadata'),
      { path: 'metadata.empty', message: 'metadata.empty: is required' },
    ],
    ['optional bool', () => optionalBool(o, 'yes', ''), { value: true }],
    ['optional bool, absent is false', () => optionalBool(o, 'no', ''), { value: false }],
    [
      'optional bool, a string',
      () => optionalBool(o, 'name', 's'),
      { path: 's.name', message: 's.name: expected true or false, found "web"' },
    ],
    ['optional list, absent', () => optionalList(o, 'none', ''), { value: [] }],
    ['optional list, a map', () => optionalList(o, 'spec', ''), { path: 'spec', message: 'spec: expected a list, found a map' }],
    [
      'list with element paths',
      () => readList([1, 'x'], 'ports', (x, p) => readPort(x, p)),
      { path: 'ports[1]', message: 'ports[1]: "x" is not a port (an integer 1..65535)' },
    ],
    ['string list', () => stringList(o, 'tags', 'spec'), { value: ['a', 'b'] }],
    [
      'string list, a number inside',
      () => stringList(o, 'mixed', 'spec'),
      { path: 'spec.mixed[1]', message: 'spec.mixed[1]: expected a string, found 1' },
    ],
    ['string map', () => stringMap(o, 'labels', 'metadata'), { value: { app: 'web', '80': 'x' } }],
    ['string map, absent', () => stringMap(o, 'annotations', 'metadata'), { value: {} }],
    [
      'string map, a number value',
      () => stringMap(o, 'badLabels', 'metadata'),
      { path: 'metadata.badLabels["app"]', message: 'metadata.badLabels["app"]: expected a string, found 3' },
    ],
    ['integer in range', () => readInteger(5, 'w', 0, 10, 'a weight'), { value: 5 }],
    [
      'integer out of range',
      () => readInteger(11, 'w', 0, 10, 'a weight'),
      { path: 'w', message: 'w: 11 is not a weight (an integer 0..10)' },
    ],
    [
      'integer, a fraction',
      () => readInteger(1.5, 'w', 0, 10, 'a weight'),
      { path: 'w', message: 'w: 1.5 is not a weight (an integer 0..10)' },
    ],
    ['port', () => readPort(15008, 'p'), { value: 15008 }],
    ['port 0 refused by default', () => readPort(0, 'p'), { path: 'p', message: 'p: 0 is not a port (an integer 1..65535)' }],
    ['port 0 where it means unset', () => readPort(0, 'p', 0), { value: 0 }],
    ['port above 65535', () => readPort(65536, 'p'), { path: 'p', message: 'p: 65536 is not a port (an integer 1..65535)' }],
    ['enum', () => readEnum('Deny', 'action', ['Allow', 'Deny']), { value: 'Deny' }],
    [
      'enum, wrong case',
      () => readEnum('deny', 'action', ['Allow', 'Deny']),
      { path: 'action', message: 'action: "deny" is not one of: Allow, Deny' },
    ],
    ['optional enum, default', () => optionalEnum(o, 'mode', 'spec', ['A', 'B'], 'A'), { value: 'A' }],
    [
      'optional enum, bad',
      () => optionalEnum(o, 'name', 'spec', ['A', 'B'], 'A'),
      { path: 'spec.name', message: 'spec.name: "web" is not one of: A, B' },
    ],
    ['IP, canonical', () => readIp('::ffff:10.0.0.1', 'ip'), { value: '10.0.0.1' }],
    ['IP, not one', () => readIp('10.0.0.256', 'ip'), { path: 'ip', message: 'ip: "10.0.0.256" is not an IP address' }],
    ['CIDR', () => readCidr('10.0.0.0/8', 'c'), { value: { address: '10.0.0.0', prefixLength: 8 } }],
    [
      'CIDR, too long a prefix',
      () => readCidr('10.0.0.0/33', 'c'),
      { path: 'c', message: 'c: "10.0.0.0/33" is not an IP address or CIDR block like "10.0.0.0/8"' },
    ],
    ['timestamp as RFC 3339', () => readTimestamp(o.when, 't'), { value: Date.parse('2026-01-02T03:04:05Z') }],
    ['timestamp as a Date', () => readTimestamp(new Date(5), 't'), { value: 5 }],
    ['timestamp absent', () => readTimestamp(undefined, 't'), { value: 0 }],
    ['timestamp, not one', () => readTimestamp('yesterday', 't'), { path: 't', message: 't: "yesterday" is not a timestamp' }],
    ['pair', () => readPair('demo/echo.svc', 'k', '<namespace>/<hostname>'), { value: ['demo', 'echo.svc'] }],
    [
      'pair, empty half',
      () => readPair('demo/', 'k', '<namespace>/<hostname>'),
      { path: 'k', message: 'k: "demo/" is not of the form "<namespace>/<hostname>"' },
    ],
  ];
  for (const [name, read, expected] of cases) {
    test(name, () => assert.deepEqual(attempt(read), expected));
  }

  test('splitPair splits at the first slash and refuses an empty half', () => {
    assert.deepEqual(splitPair('a/b/c'), ['a', 'b/c']);
    assert.equal(splitPair('/b'), undefined);
    assert.equal(splitPair('ab'), undefined);
  });
});

describe('deepFreeze', () => {
  test('freezes nested objects and arrays, and returns its argument', () => {
    const r = { a: { b: [1, { c: 2 }] } };
    assert.equal(deepFreeze(r), r);
    assert.ok(Object.isFrozen(r) && Object.isFrozen(r.a) && Object.isFrozen(r.a.b) && Object.isFrozen(r.a.b[1]));
    assert.throws(() => {
      (r.a.b as unknown[]).push(3);
    }, TypeError);
  });

  test('takes a frozen value as finished (memoized sub-records are not walked again) and survives cycles', () => {
    const shared = Object.freeze({ inner: { x: 1 } });
    deepFreeze({ one: shared, two: shared });
    assert.equal(Object.isFrozen(shared.inner), false, 'a frozen record is taken as finished');
    const cyclic: { self?: unknown } = {};
    cyclic.self = cyclic;
    deepFreeze(cyclic);
    assert.ok(Object.isFrozen(cyclic));
  });

  test('leaves primitives alone', () => {
    assert.equal(deepFreeze(3), 3);
    assert.equal(deepFreeze(null), null);
  });
});
