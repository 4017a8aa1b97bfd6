/**
 * lib/http, the server every HTTP/1.1 listener of the project uses, against what a hostile client sends: bad
 * targets, garbage, oversized heads and bodies, slow clients, connection floods, and handlers that throw. After
 * each, the server must still answer a real request.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MeshError } from '../../lib/errors.js';
import { HttpError, HttpErrorCode } from '../../lib/http/errors.js';
import { HttpService, methods } from '../../lib/http/server.js';
import { captureLogger, type CapturedLogger } from '../../testbed/fixtures/log.js';
import { rawHttp, statusLine } from '../../testbed/fixtures/http-raw.js';

let log: CapturedLogger;
let svc: HttpService;
const rejected: string[] = [];

before(async () => {
  log = captureLogger('debug');
  svc = await HttpService.listen({
    name: 'test',
    listen: { host: '127.0.0.1', port: 0 },
    logger: log.logger,
    limits: { maxBodyBytes: 1024, maxHeaderBytes: 2048, headersTimeoutMs: 300, requestTimeoutMs: 600, timeoutCheckIntervalMs: 100 },
    onReject: (code) => rejected.push(code),
    statusOf: (err) => (err instanceof MeshError && err.code === 'TEST_BUSY' ? 503 : undefined),
    routes: {
      '/ok': () => ({ status: 200, body: 'ok\n' }),
      '/echo': methods({ POST: async (req) => ({ status: 200, body: await req.body() }) }),
      '/throws': () => {
        throw new TypeError('Invalid URL');
      },
      '/rejects': async () => Promise.reject(new Error('boom')),
      '/rejects-non-error': () => Promise.reject('a string'),
      '/busy': () => {
        throw new MeshError('TEST_BUSY', 'come back later');
      },
      '/teapot': () => {
        throw new HttpError(418, 'TEST_TEAPOT', 'short and stout');
      },
      '/bad-header': () => ({ status: 200, body: 'x', headers: { 'x-bad': 'a\r\nb' } }),
    },
  });
});

after(async () => {
  await svc.close();
});

async function assertStillServes(): Promise<void> {
  const r = await rawHttp({ port: svc.port }, 'GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  assert.equal(statusLine(r), 200, `the server no longer serves: ${r}`);
}

function codesLogged(): unknown[] {
  return log.lines.filter((l) => l.msg === 'HTTP request refused').map((l) => l.code);
}

describe('lib/http refuses hostile requests and keeps serving', () => {
  for (const target of ['//', '//:', '*', 'http://[', 'example.com:443']) {
    test(`answers the target ${JSON.stringify(target)} with 400 or 404, never an exception`, async () => {
      const r = await rawHttp({ port: svc.port }, `GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      assert.ok([400, 404].includes(statusLine(r)), r);
      await assertStillServes();
    });
  }

  test('a handler that throws synchronously, rejects, or rejects with a non-error gets 500 with HTTP_HANDLER_FAILED logged', async () => {
    const before = log.lines.length;
    for (const path of ['/throws', '/rejects', '/rejects-non-error']) {
      const hooked = rejected.length;
      const r = await rawHttp({ port: svc.port }, `GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      assert.equal(statusLine(r), 500, path);
      assert.doesNotMatch(r, /Invalid URL|boom/, 'the cause stays in the log, not in the answer');
      assert.deepEqual(rejected.slice(hooked), [HttpErrorCode.HANDLER_FAILED], path);
    }
    const line = log.lines.slice(before).find((l) => l.code === HttpErrorCode.HANDLER_FAILED);
    assert.match(String(line?.reason), /Invalid URL/, 'the cause is logged');
    assert.equal(line?.level, 50, 'at error level');
    await assertStillServes();
  });

  test('HttpError and component codes mapped by statusOf answer their own status with the message', async () => {
    const teapot = await rawHttp({ port: svc.port }, 'GET /teapot HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.equal(statusLine(teapot), 418);
    assert.match(teapot, /short and stout \(TEST_TEAPOT\)/);
    const busy = await rawHttp({ port: svc.port }, 'GET /busy HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.equal(statusLine(busy), 503);
    const get = await rawHttp({ port: svc.port }, 'GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.equal(statusLine(get), 405);
    assert.match(get, /use POST/);
  });

  test('garbage, an oversized head and a bad header line are refused by the parser with 400 / 431', async () => {
    assert.equal(statusLine(await rawHttp({ port: svc.port }, Buffer.alloc(300, 0xff))), 400);
    assert.equal(statusLine(await rawHttp({ port: svc.port }, `GET /ok HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(4096)}\r\n\r\n`)), 431);
    assert.equal(statusLine(await rawHttp({ port: svc.port }, 'GET /ok HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n')), 400);
    assert.ok(codesLogged().includes(HttpErrorCode.HEADERS_TOO_LARGE));
    await assertStillServes();
  });

  test('bodies over the budget are refused whether declared (Content-Length) or streamed (chunked)', async () => {
    const declared = await rawHttp({ port: svc.port }, 'POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n');
    assert.equal(statusLine(declared), 413);
    const chunk = 'a'.repeat(800);
    const streamed = await rawHttp(
      { port: svc.port },
      `POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n320\r\n${chunk}\r\n320\r\n${chunk}\r\n0\r\n\r\n`,
    );
    assert.equal(statusLine(streamed), 413);
    const small = await rawHttp(
      { port: svc.port },
      'POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello',
    );
    assert.equal(statusLine(small), 200);
    assert.match(small, /hello$/);
  });

  test('a client that never finishes its request head gets 408 and is disconnected', async () => {
    const r = await rawHttp({ port: svc.port }, 'GET /ok HTTP/1.1\r\nHost: x\r\n', { waitMs: 5000 });
    assert.equal(statusLine(r), 408, r);
    assert.ok(codesLogged().includes(HttpErrorCode.REQUEST_TIMEOUT));
  });

  test('a reply that cannot be written closes that connection only', async () => {
    const r = await rawHttp({ port: svc.port }, 'GET /bad-header HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.equal(r, '');
    await assertStillServes();
  });

  test('a flood of bad requests leaves a throttled trace: one line per code per second, with the count left out', async () => {
    const flood = captureLogger('debug');
    const seen: string[] = [];
    const s = await HttpService.listen({
      name: 'flood',
      listen: { host: '127.0.0.1', port: 0 },
      logger: flood.logger,
      onReject: (code) => seen.push(code),
      routes: {},
    });
    try {
      const bad = (): Promise<string> => rawHttp({ port: s.port }, 'GET * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      await Promise.all(Array.from({ length: 50 }, bad));
      const lines = (): Array<Record<string, unknown>> => flood.lines.filter((l) => l.code === HttpErrorCode.BAD_TARGET);
      assert.ok(lines().length >= 1 && lines().length <= 3, `${lines().length} lines`);
      assert.equal(seen.filter((c) => c === HttpErrorCode.BAD_TARGET).length, 50, 'every refusal reaches the hook');
      await new Promise((r) => setTimeout(r, 1100));
      await bad();
      const next = lines().at(-1);
      assert.ok(typeof next?.suppressed === 'number' && next.suppressed > 0, 'the next line counts what was left out');
    } finally {
      await s.close();
    }
  });
});

describe('lib/http bounds connections', () => {
  test('drops connections past maxConnections with HTTP_CONNECTION_LIMIT and serves again once they close', async () => {
    const small = captureLogger('debug');
    const s = await HttpService.listen({
      name: 'small',
      listen: { host: '127.0.0.1', port: 0 },
      logger: small.logger,
      limits: { maxConnections: 2 },
      routes: { '/ok': () => ({ status: 200, body: 'ok\n' }) },
    });
    const held: Socket[] = [];
    try {
      for (let i = 0; i < 2; i++) {
        const c = connect(s.port, '127.0.0.1');
        await new Promise((r) => c.once('connect', r));
        held.push(c);
      }
      const refused = await rawHttp({ port: s.port }, 'GET /ok HTTP/1.1\r\nHost: x\r\n\r\n');
      assert.equal(refused, '', 'the third connection is closed without an answer');
      assert.ok(small.lines.some((l) => l.code === HttpErrorCode.CONNECTION_LIMIT));
      for (const c of held) c.destroy();
      await new Promise((r) => setTimeout(r, 50));
      const ok = await rawHttp({ port: s.port }, 'GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      assert.equal(statusLine(ok), 200);
    } finally {
      for (const c of held) c.destroy();
      await s.close();
    }
  });

  test('a port in use is a typed HTTP_LISTEN_FAILED, not an unhandled error', async () => {
    await assert.rejects(
      HttpService.listen({ name: 'dup', listen: { host: '127.0.0.1', port: svc.port }, logger: log.logger, routes: {} }),
      (e: unknown) => e instanceof HttpError && e.code === HttpErrorCode.LISTEN_FAILED,
    );
  });
});

describe('lib/http on a Unix socket', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'http-uds-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('replaces a stale socket, applies the mode, and serves over it', async () => {
    const path = join(dir, 'sub', 'event.sock');
    const stale = createServer();
    const { mkdirSync } = await import('node:fs');
    mkdirSync(join(dir, 'sub'));
    await new Promise<void>((r) => stale.listen(path, r));
    // Leave the file behind as a dead process would: close the handle without unlinking.
    (stale as unknown as { _handle: { close(): void } | null })._handle?.close();
    const s = await HttpService.listen({
      name: 'uds',
      listen: { path, mode: 0o600 },
      logger: log.logger,
      routes: { '/ok': () => ({ status: 200, body: 'ok\n' }) },
    });
    try {
      assert.equal(statSync(path).mode & 0o777, 0o600);
      assert.equal(statusLine(await rawHttp({ path }, 'GET * HTTP/1.1\r\nHost: x\r\n\r\n')), 400);
      assert.equal(statusLine(await rawHttp({ path }, 'GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')), 200);
    } finally {
      await s.close();
    }
  });
});
