/**
 * The controller's 15012 server as the program builds it: settings loaded from the environment, turned into the
 * xDS server options by xdsServingOptions (what controller/app.ts passes to startXdsServer), the server started
 * from them. A setting that the program reads but the server does not honour fails here.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { loadControllerSettings } from '../../controller/config/settings.js';
import { xdsServingOptions } from '../../controller/config/xds-options.js';
import { allowAnyCaller } from '../../controller/xds/auth.js';
import { type RunningXdsServer, startXdsServer } from '../../controller/xds/server.js';
import { MemoryResourceSource } from '../../controller/xds/source.js';
import { TypeUrl } from '../../lib/proto/index.js';
import { FakeClock } from '../../testbed/fixtures/fake-clock.js';
import { silentLogger } from '../../testbed/fixtures/log.js';

/** A unary method on raw bytes: enough to see that a service added beside xDS answers on the same port. */
const ECHO: grpc.ServiceDefinition = {
  Echo: {
    path: '/test.Echo/Echo',
    requestStream: false,
    responseStream: false,
    requestSerialize: (b: Buffer) => b,
    requestDeserialize: (b: Buffer) => b,
    responseSerialize: (b: Buffer) => b,
    responseDeserialize: (b: Buffer) => b,
  },
};

async function startFrom(env: Record<string, string>, clock: FakeClock): Promise<RunningXdsServer> {
  const settings = loadControllerSettings([], env);
  return startXdsServer({
    ...xdsServingOptions(settings),
    transport: { kind: 'insecure' },
    source: new MemoryResourceSource([[TypeUrl.Address, []]]),
    authenticate: allowAnyCaller(),
    logger: silentLogger(),
    clock,
    addServices: (server) =>
      server.addService(ECHO, {
        Echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, done: grpc.sendUnaryData<Buffer>) => done(null, call.request),
      }),
  });
}

describe('the controller xDS server started from its settings', () => {
  const servers: RunningXdsServer[] = [];
  after(async () => {
    for (const s of servers) await s.close(0);
  });

  test('PILOT_DEBOUNCE_AFTER=1m30s starts, and a push waits 90 s of quiet', async () => {
    const clock = new FakeClock(0);
    const running = await startFrom({ PILOT_DEBOUNCE_AFTER: '1m30s', SECURE_GRPC_ADDR: '127.0.0.1:0', POD_NAME: 'controller-a' }, clock);
    servers.push(running);
    running.xds.push({ typeUrls: new Set([TypeUrl.Address]), reason: 'test' });
    await clock.advance(89_999);
    assert.equal(running.xds.pushes, 0, 'released before 90 s of quiet');
    await clock.advance(1);
    assert.equal(running.xds.pushes, 1);
  });

  test('listens where SECURE_GRPC_ADDR says, with the added services on the same port', async () => {
    const clock = new FakeClock(0);
    const running = await startFrom({ SECURE_GRPC_ADDR: '127.0.0.1:0' }, clock);
    servers.push(running);
    assert.ok(running.port > 0);
    const Client = grpc.makeGenericClientConstructor(ECHO, 'Echo');
    const client = new Client(`127.0.0.1:${running.port}`, grpc.credentials.createInsecure());
    try {
      const reply = await new Promise<Buffer>((resolve, reject) =>
        (client as unknown as { Echo: (b: Buffer, cb: (e: Error | null, r: Buffer) => void) => void }).Echo(Buffer.from('hi'), (e, r) =>
          e ? reject(e) : resolve(r),
        ),
      );
      assert.equal(reply.toString(), 'hi');
    } finally {
      client.close();
    }
  });
});
