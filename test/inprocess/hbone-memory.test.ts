/**
 * What idle HBONE connections hold: memory per connection against IDLE_CONNECTION_MEMORY_BUDGET_BYTES (a ceiling on
 * memory, never on time), and the server closing connections that carry no stream for serverIdleSessionMs.
 * bench:idle measures the same thing in two processes and says where the memory goes.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect as h2connect } from 'node:http2';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { IDLE_CONNECTION_MEMORY_BUDGET_BYTES, hboneConfig } from '../../lib/hbone/config.js';
import { HbonePool } from '../../lib/hbone/pool.js';
import type { WorkloadCertificate } from '../../lib/identity/certificate.js';
import { mallocStats } from '../../lib/native/index.js';
import { startHboneServer } from '../../testbed/fixtures/hbone.js';
import { once, readAll, startEchoServer, type EchoServer } from '../../testbed/fixtures/net.js';
import { ids, issueCertificate, testCa } from '../../testbed/fixtures/pki.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

let clientCert: WorkloadCertificate;
let serverCert: WorkloadCertificate;
let echo: EchoServer;

before(async () => {
  const ca = await testCa();
  clientCert = await issueCertificate(ca, ids.client);
  serverCert = await issueCertificate(ca, ids.server);
  echo = await startEchoServer();
});

after(async () => {
  await echo.close();
});

async function settledMemory(): Promise<number> {
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((r) => setImmediate(r));
  }
  return mallocStats().inUseBytes + process.memoryUsage().heapUsed;
}

/** `count` pooled connections (one pool key each), each after one small tunnel round trip, left idle. */
async function openIdle(pool: HbonePool, port: number, count: number, from: number): Promise<void> {
  for (let done = 0; done < count; done += 50) {
    await Promise.all(
      Array.from({ length: Math.min(50, count - done) }, async (_, j) => {
        const i = from + done + j;
        const { stream } = await pool.connect({
          address: '127.0.0.1',
          port,
          expectedIdentities: [ids.server],
          authority: `127.0.0.1:${echo.port}`,
          certificate: clientCert,
          sourceIp: `10.9.${i >> 8}.${i & 255}`,
        });
        const back = readAll(stream);
        stream.end('ping');
        await back;
      }),
    );
  }
}

describe('memory of idle HBONE connections', () => {
  test('200 idle connections cost at most IDLE_CONNECTION_MEMORY_BUDGET_BYTES per end', async (t) => {
    const { server, port } = await startHboneServer(serverCert);
    const pool = new HbonePool();
    try {
      await openIdle(pool, port, 20, 0); // warm up: contexts, code, allocator arenas
      const before = await settledMemory();
      const n = 200;
      await openIdle(pool, port, n, 20);
      assert.equal(pool.stats().connections, n + 20);
      const perConnection = ((await settledMemory()) - before) / n;
      t.diagnostic(`${Math.round(perConnection / 1024)} KiB per connection, both ends`);
      // Both ends live in this process: a connection costs one client end and one server end here.
      assert.ok(
        perConnection <= 2 * IDLE_CONNECTION_MEMORY_BUDGET_BYTES,
        `${Math.round(perConnection / 1024)} KiB per connection (both ends), budget ${IDLE_CONNECTION_MEMORY_BUDGET_BYTES / 1024} KiB per end`,
      );
    } finally {
      pool.close();
      await server.close();
    }
  });

  test('the server closes a connection that carried no stream for serverIdleSessionMs, and keeps one with a live tunnel', async () => {
    const { server, port } = await startHboneServer(serverCert, { config: hboneConfig({ serverIdleSessionMs: 200 }) });
    const client = () =>
      h2connect(`https://127.0.0.1:${port}`, {
        key: clientCert.privateKeyPem,
        cert: clientCert.certChainPem.join(''),
        ca: [...clientCert.rootCertsPem],
        checkServerIdentity: () => undefined,
      });
    const busy = client();
    const tunnel = busy.request({ ':method': 'CONNECT', ':authority': `127.0.0.1:${echo.port}` });
    await once(tunnel, 'response');
    const idle = client();
    try {
      await once(idle, 'goaway', 5000);
      await new Promise((r) => setTimeout(r, 400)); // two more idle periods with the tunnel open
      const back = readAll(tunnel);
      tunnel.end('still here');
      assert.equal((await back).toString(), 'still here');
      assert.equal(busy.closed, false, 'a session with a stream was not closed');
      await once(busy, 'goaway', 5000); // and once its last stream is gone, it is idle too
    } finally {
      idle.destroy();
      busy.destroy();
      await server.close();
    }
  });
});
