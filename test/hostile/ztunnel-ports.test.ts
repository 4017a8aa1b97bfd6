/**
 * ztunnel's HTTP ports under attack on a fake node: readiness 15021 and metrics 15020 (on every address, so any pod
 * of the node reaches them) from a pod outside the mesh, admin 15000 (localhost) from the node itself. Each attack
 * must get an HTTP refusal or a closed connection, never a crash; afterwards the node still serves.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { rawHttp, statusLine } from '../../testbed/fixtures/http-raw.js';
import type { NetworkNamespace } from '../../testbed/fakenode/index.js';
import { assertServes, dialInside, startHostileMesh, type HostileMesh } from './mesh-fixture.js';

let h: HostileMesh;

before(async () => {
  h = await startHostileMesh('hports');
});

after(async () => {
  if (h) await h.mesh.destroy();
});

interface Port {
  readonly name: string;
  readonly port: number;
  readonly path: string;
  /** Where the attacker stands and the address it dials. */
  readonly from: () => NetworkNamespace;
  readonly host: () => string;
}

const PORTS: readonly Port[] = [
  { name: 'readiness 15021', port: 15021, path: '/healthz/ready', from: () => h.outsider, host: () => h.node1.ip },
  { name: 'metrics 15020', port: 15020, path: '/metrics', from: () => h.outsider, host: () => h.node1.ip },
  { name: 'admin 15000', port: 15000, path: '/config_dump', from: () => h.node1, host: () => '127.0.0.1' },
];

function send(p: Port, bytes: string | Buffer): Promise<string> {
  return rawHttp({ socket: () => dialInside(p.from(), p.host(), p.port) }, bytes);
}

const BAD_TARGETS = ['//', '//:', '///x', '*', 'http://[', 'http://', 'example.com:443', '/%', 'ftp://x/y'];

for (const p of PORTS) {
  describe(`ztunnel ${p.name}`, () => {
    test('answers request targets that are not paths with 400 or 404 (one used to end the process)', async () => {
      for (const target of BAD_TARGETS) {
        const r = await send(p, `GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
        assert.ok([400, 404].includes(statusLine(r)), `${target}: ${JSON.stringify(r.slice(0, 80))}`);
      }
      await assertServes(h, `${p.name}: bad targets`);
    });

    test('refuses garbage, an oversized head, a bad header line and an oversized body', async () => {
      assert.equal(statusLine(await send(p, Buffer.alloc(512, 0xfe))), 400, 'garbage');
      assert.equal(statusLine(await send(p, `GET ${p.path} HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(20_000)}\r\n\r\n`)), 431, 'head');
      assert.equal(statusLine(await send(p, `GET ${p.path} HTTP/1.1\r\nHost: x\r\nNo Colon Here\r\n\r\n`)), 400, 'header line');
      assert.equal(statusLine(await send(p, `POST ${p.path} HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n`)), 413, 'body');
      assert.equal(statusLine(await send(p, `GET ${p.path} HTTP/9.9\r\nHost: x\r\n\r\n`)), 400, 'version');
      await assertServes(h, `${p.name}: malformed requests`);
    });

    test('survives a hundred pipelined bad requests on one connection and answers a good one afterwards', async () => {
      const burst = `GET // HTTP/1.1\r\nHost: x\r\n\r\nGET http://[ HTTP/1.1\r\nHost: x\r\n\r\n`.repeat(50);
      assert.ok([400, 404].includes(statusLine(await send(p, burst))));
      const ok = await send(p, `GET ${p.path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      assert.equal(statusLine(ok), 200, ok.slice(0, 200));
    });
  });
}

describe('ztunnel HTTP connection floods', () => {
  test('a flood of idle connections on 15021 is capped; metrics keep serving meanwhile, readiness once it ends', async () => {
    const held: Socket[] = [];
    try {
      for (let i = 0; i < 300; i++) {
        const s = dialInside(h.outsider, h.node1.ip, 15021);
        held.push(s);
        await new Promise<void>((resolve) => {
          s.once('connect', () => resolve());
          s.once('close', () => resolve());
        });
      }
      const metrics = await rawHttp(
        { socket: () => dialInside(h.outsider, h.node1.ip, 15020) },
        'GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
      );
      assert.equal(statusLine(metrics), 200, 'a flood of one port leaves the others alone');
      await h.mesh.ztunnelProcess(h.node1).waitForOutput(/HTTP_CONNECTION_LIMIT/, { timeoutMs: 5000 }); // logged with its code
    } finally {
      for (const s of held) s.destroy();
    }
    await assertServes(h, 'after the connection flood');
  });
});
