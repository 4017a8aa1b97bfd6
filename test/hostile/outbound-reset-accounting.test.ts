/**
 * Connect-then-reset accounting on fake nodes.
 *
 * A client that resets its connection right after connecting to a mesh destination used to leave a tracked
 * outbound connection behind for good (in /config_dump, no access-log line), about once in 25-80 such connections.
 * The fix lives in the data path (ztunnel/proxy/); its own regression test runs in-process. This file attacks a
 * real ztunnel on a fake node the same way: every accepted connection must leave the tracker and end in exactly
 * one "connection complete" line, whatever the order of events.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { poll } from '../../localmesh/node-runtime.js';
import { APP_PORT, assertServes, dialInside, startHostileMesh, type HostileMesh } from './mesh-fixture.js';

let h: HostileMesh;

before(async () => {
  // info: the access log ("connection complete") is what this test counts.
  h = await startHostileMesh('hreset', { logLevel: 'info' });
});

after(async () => {
  if (h) await h.mesh.destroy();
});

/** Access-log lines of outbound connections from the client pod, in ztunnel's output from `offset` on. */
function outboundCompletions(offset: number): number {
  return h.mesh
    .ztunnelProcess(h.node1)
    .stdout.slice(offset)
    .split('\n')
    .filter((l) => l.includes('"connection complete"') && l.includes('"direction":"outbound"') && l.includes('"src.workload":"client"'))
    .length;
}

async function trackedOutbound(): Promise<number> {
  return ((await h.mesh.configDump(h.node1)).workloadState[h.client.uid]?.connections.outbound ?? []).length;
}

/**
 * Connects from inside the client pod (captured to ztunnel's 15001), sends a request, and resets `delayMs` after
 * the handshake: at once, or while ztunnel is still looking up the route, dialling HBONE or waiting for the
 * CONNECT answer. (Without the request the leak did not show on this machine; with it, a few in a thousand.)
 */
function connectThenReset(delayMs: number): Promise<void> {
  return new Promise((resolve) => {
    const s: Socket = dialInside(h.client, h.server.ip, APP_PORT);
    s.once('connect', () => {
      s.write(`GET / HTTP/1.1\r\nHost: ${h.server.ip}\r\n\r\n`);
      if (delayMs === 0) s.resetAndDestroy();
      else setTimeout(() => s.resetAndDestroy(), delayMs);
    });
    s.once('close', () => resolve());
  });
}

describe('outbound connections reset right after connecting', () => {
  test('each one leaves the tracker and ends in exactly one access-log line (was: about 1 in 25-80 leaked)', async () => {
    const n = 1000;
    const offset = h.mesh.ztunnelProcess(h.node1).stdout.length;
    // Delays from 0 to 9 ms cover every stage an outbound connection passes before its tunnel is up.
    for (let done = 0; done < n; done += 20) await Promise.all(Array.from({ length: 20 }, (_, i) => connectThenReset((done + i) % 10)));
    let tracked = -1;
    await poll(
      'no outbound connection of the client pod tracked any more',
      async () => {
        tracked = await trackedOutbound();
        return tracked === 0;
      },
      () => `${tracked} still tracked`,
    );
    await poll(
      `${n} "connection complete" lines`,
      async () => outboundCompletions(offset) >= n,
      () => `${outboundCompletions(offset)} of ${n}`,
    );
    assert.equal(outboundCompletions(offset), n, 'exactly one line per connection');
    await assertServes(h, 'connect-then-reset');
  });
});
