/** lib/config/env.ts: the syntax of every program's environment variables, one table per type. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  EnvError,
  EnvReader,
  parseBool,
  parseDurationMs,
  parseInteger,
  parseList,
  parseListenAddress,
  parseSize,
} from '../../lib/config/env.js';
import { hasErrorCode } from '../../lib/errors.js';

/** The value, or the message of the EnvError (CONFIG_BAD_ENV, naming the variable X). */
function outcome(parse: () => unknown): unknown {
  try {
    return parse();
  } catch (err) {
    assert.ok(err instanceof EnvError, String(err));
    assert.ok(hasErrorCode(err, 'CONFIG_BAD_ENV'));
    assert.equal(err.variable, 'X');
    return err.message;
  }
}

function table<T>(name: string, parse: (text: string) => T, rows: ReadonlyArray<readonly [string, T | RegExp]>): void {
  describe(name, () => {
    for (const [text, expected] of rows) {
      test(`${JSON.stringify(text)} → ${expected instanceof RegExp ? 'refused' : JSON.stringify(expected)}`, () => {
        const got = outcome(() => parse(text));
        if (expected instanceof RegExp) assert.match(String(got), expected);
        else assert.deepEqual(got, expected);
      });
    }
  });
}

table('durations: Go syntax as Istio writes them, a bare number is seconds', (t) => parseDurationMs('X', t), [
  ['100ms', 100],
  ['10s', 10_000],
  ['1m30s', 90_000],
  ['24h', 86_400_000],
  ['1h2m3s4ms', 3_723_004],
  ['1.5s', 1_500],
  ['.5s', 500],
  ['500us', 0.5],
  ['500µs', 0.5],
  ['2000000ns', 2],
  ['0', 0],
  ['0s', 0],
  ['30', 30_000],
  ['2.5', 2_500],
  [' 5s ', 5_000],
  ['', /^X="" is not a duration; write it like 500ms, 10s, 1m30s or 24h$/],
  ['fast', /X="fast" is not a duration/],
  ['10x', /not a duration/],
  ['1m30', /not a duration/],
  ['-5s', /not a duration/],
  ['1 m', /not a duration/],
  ['s', /not a duration/],
  ['1d', /not a duration/],
]);

table('booleans', (t) => parseBool('X', t), [
  ['true', true],
  ['TRUE', true],
  ['1', true],
  ['yes', true],
  ['on', true],
  ['false', false],
  ['False', false],
  ['0', false],
  ['no', false],
  ['off', false],
  ['maybe', /^X="maybe" is not a boolean \(true or false\)$/],
  ['', /not a boolean/],
]);

table('integers in [1, 0xffffffff]', (t) => parseInteger('X', t, 1, 0xffffffff), [
  ['1337', 1337],
  ['0x539', 0x539],
  ['0XFF', 255],
  ['4294967295', 0xffffffff],
  ['0', /^X="0" must be an integer in \[1, 4294967295\]$/],
  ['4294967296', /must be an integer/],
  ['lots', /must be an integer/],
  ['1.5', /must be an integer/],
  ['1e3', /must be an integer/],
  ['', /must be an integer/],
]);

table('sizes', (t) => parseSize('X', t), [
  ['4194304', 4_194_304],
  ['4096Ki', 4_194_304],
  ['4Mi', 4_194_304],
  ['1Gi', 2 ** 30],
  ['4MB', /^X="4MB" is not a size like 4194304, 4096Ki or 4Mi$/],
  ['-1', /not a size/],
  ['1.5Mi', /not a size/],
]);

table('listen addresses (default host 0.0.0.0)', (t) => parseListenAddress('X', t, '0.0.0.0'), [
  ['15012', { host: '0.0.0.0', port: 15012 }],
  [':15012', { host: '0.0.0.0', port: 15012 }],
  ['127.0.0.1:15000', { host: '127.0.0.1', port: 15000 }],
  ['localhost:0', { host: 'localhost', port: 0 }],
  ['[::1]:15000', { host: '::1', port: 15000 }],
  ['[::]:8080', { host: '::', port: 8080 }],
  ['host:70000', /^X="host:70000" must be <port>, :<port> or <host>:<port>$/],
  ['host', /must be <port>/],
  ['host:', /must be <port>/],
  ['', /must be <port>/],
]);

table('lists', (t) => parseList(t), [
  ['a,b', ['a', 'b']],
  [' a , b ,, ', ['a', 'b']],
  ['', []],
  ['istio-system/ztunnel', ['istio-system/ztunnel']],
]);

describe('EnvReader', () => {
  const env = new EnvReader({
    SET: ' value ',
    BLANK: '  ',
    EMPTY: '',
    FLAG: 'yes',
    MARK: '0x539',
    DEBOUNCE: '1m30s',
    WINDOW: '4Mi',
    ADDR: ':9090',
    SANS: 'a, b',
    MODE: 'Kubernetes',
  });

  test('unset and blank variables take the default; values are trimmed', () => {
    assert.equal(env.string('SET', 'd'), 'value');
    assert.equal(env.string('BLANK', 'd'), 'd');
    assert.equal(env.string('EMPTY', 'd'), 'd');
    assert.equal(env.string('UNSET', 'd'), 'd');
    assert.equal(env.optional('BLANK'), undefined);
    assert.equal(env.bool('UNSET', true), true);
    assert.equal(env.integer('EMPTY', 7), 7);
    assert.equal(env.durationMs('BLANK', 100), 100);
  });

  test('a variable set to "" is defined, and an empty list is the empty list', () => {
    assert.equal(env.defined('EMPTY'), true);
    assert.equal(env.defined('UNSET'), false);
    assert.equal(env.raw('SET'), ' value ');
    assert.deepEqual(env.list('EMPTY', ['default']), []);
    assert.deepEqual(env.list('UNSET', ['default']), ['default']);
    assert.deepEqual(env.list('SANS', []), ['a', 'b']);
  });

  test('typed values', () => {
    assert.equal(env.bool('FLAG', false), true);
    assert.equal(env.integer('MARK', 1, 1, 0xffffffff), 1337);
    assert.equal(env.durationMs('DEBOUNCE', 100), 90_000);
    assert.equal(env.size('WINDOW', 1), 4 * 2 ** 20);
    assert.deepEqual(env.address('ADDR', { host: '127.0.0.1', port: 1 }), { host: '127.0.0.1', port: 9090 });
    assert.equal(env.oneOf('MODE', ['kubernetes', 'static'] as const, 'static'), 'kubernetes');
    assert.equal(env.oneOf('UNSET', ['kubernetes', 'static'] as const, 'static'), 'static');
  });

  test('a value that does not parse names the variable and what it should be', () => {
    assert.throws(() => env.integer('SET', 1), { code: 'CONFIG_BAD_ENV', variable: 'SET', message: /SET="value" must be an integer/ });
    assert.throws(() => env.oneOf('SET', ['a', 'b'] as const, 'a'), {
      code: 'CONFIG_BAD_ENV',
      message: 'SET="value" must be one of: a, b',
    });
  });
});
