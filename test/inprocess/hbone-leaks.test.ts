import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { HbonePool } from '../../lib/hbone/pool.js';
import { hboneConfig } from '../../lib/hbone/config.js';
import { startHboneServer } from '../../testbed/fixtures/hbone.js';
import { ids, issueCertificate, testCa } from '../../testbed/fixtures/pki.js';
import { readAll, startEchoServer } from '../../testbed/fixtures/net.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

async function settle(): Promise<void> {
  for (let i = 0; i < 4; i++) {
    await new Promise((r) => setImmediate(r));
    gc();
  }
}

test('10 000 tunnels opened and closed leave no growth in open handles or heap', async (t) => {
  const ca = await testCa();
  const clientCert = await issueCertificate(ca, ids.client);
  const echo = await startEchoServer();
  const hbone = await startHboneServer(await issueCertificate(ca, ids.server));
  // Idle connections are released quickly so that both measurements see an empty pool.
  const pool = new HbonePool({ config: hboneConfig({ poolIdleReleaseMs: 50 }) });

  const runBatch = async (n: number, concurrency: number): Promise<void> => {
    for (let done = 0; done < n; done += concurrency) {
      await Promise.all(
        Array.from({ length: Math.min(concurrency, n - done) }, async () => {
          const { stream } = await pool.connect({
            address: '127.0.0.1',
            port: hbone.port,
            expectedIdentities: [ids.server],
            authority: `127.0.0.1:${echo.port}`,
            certificate: clientCert,
          });
          const reply = readAll(stream);
          stream.end('ping');
          assert.equal((await reply).toString(), 'ping');
        }),
      );
    }
    // Let the server side of the last tunnels finish closing.
    while (hbone.server.activeTunnels > 0 || echo.sockets.size > 0 || pool.stats().connections > 0 || hbone.server.sessionCount > 0) {
      await new Promise((r) => setTimeout(r, 10));
    }
  };

  await runBatch(1000, 100); // warm-up: pools, JIT, buffers
  await settle();
  const handlesBefore = process.getActiveResourcesInfo().length;
  const heapBefore = process.memoryUsage().heapUsed;

  await runBatch(10_000, 200);
  await settle();
  const handlesAfter = process.getActiveResourcesInfo().length;
  const heapAfter = process.memoryUsage().heapUsed;
  const growthKiB = Math.round((heapAfter - heapBefore) / 1024);
  t.diagnostic(
    `handles ${handlesBefore} -> ${handlesAfter}; heap ${Math.round(heapBefore / 1024)} KiB -> ${Math.round(heapAfter / 1024)} KiB (${growthKiB} KiB)`,
  );

  assert.ok(handlesAfter <= handlesBefore, `open handles grew: ${handlesBefore} -> ${handlesAfter}`);
  // 10 000 leaked tunnels would cost megabytes; allow only allocator noise.
  assert.ok(growthKiB < 1024, `heap grew by ${growthKiB} KiB over 10 000 tunnels`);
  assert.equal(pool.stats().streams, 0);

  pool.close();
  await hbone.server.close();
  await echo.close();
});
