import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseRequestTarget } from '../../lib/http/target.js';

describe('HTTP request target', () => {
  test('origin form: path and query, fragment dropped, never decoded', () => {
    const t = parseRequestTarget('/logging?level=debug#x');
    assert.equal(t?.path, '/logging');
    assert.equal(t?.query.get('level'), 'debug');
    assert.equal(parseRequestTarget('/healthz%2Fready')?.path, '/healthz%2Fready');
    assert.equal(parseRequestTarget('/a?b=%zz')?.query.get('b'), '%zz');
  });

  test('absolute form gives the URL path', () => {
    assert.equal(parseRequestTarget('http://10.0.0.1:15021/healthz/ready?x=1')?.path, '/healthz/ready');
    assert.equal(parseRequestTarget('HTTPS://h/metrics')?.path, '/metrics');
  });

  test('targets that used to throw from new URL() are paths or refused, never exceptions', () => {
    for (const t of ['//', '//:', '///', '//a:b@', '/..', '/%00', '/\u0000']) {
      assert.ok(parseRequestTarget(t)?.path.startsWith('/'), t);
    }
    for (const t of ['', '*', 'example.com:443', 'http://[', 'http://', 'ftp://x/y', 'javascript:alert(1)', ' /x', undefined]) {
      assert.equal(parseRequestTarget(t), undefined, String(t));
    }
  });
});
