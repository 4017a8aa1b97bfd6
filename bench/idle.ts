/**
 * `npm run bench:idle`: what an idle HBONE (mutual TLS + HTTP/2) connection costs in memory, on both ends. An HBONE
 * server process and a client (pool) process, each started with --expose-gc; the client opens N connections (one
 * pool key each, one tunnel round trip on each, then idle) and both are measured on a collected heap: before,
 * once the connections are open, and again after idling past PING rounds. Reported per connection (KiB): RSS, RSS
 * once the allocator gave back what it could (malloc_trim), native allocations in use (glibc mallinfo2: OpenSSL,
 * nghttp2, Node's C++ objects), the JS heap and external memory (Buffers), so the table shows where it goes; a
 * last reading after 256 KiB each way on every connection shows what a connection costs once its buffers were used.
 *
 * Knobs (bench/lib/config.ts): BENCH_CONNECTIONS, BENCH_IDLE_SECONDS, BENCH_IDLE_TRAFFIC_KIB, BENCH_IDLE_AFTER,
 * BENCH_IDLE_CONFIG. Prints a table, writes bench/results/idle.json.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_HBONE_CONFIG, type HboneConfig } from '../lib/hbone/config.js';
import { issueCertificate, ids, testCa } from '../testbed/fixtures/pki.js';
import type { MemoryReading } from './idle-peer.js';
import { childEnv } from '../testbed/env.js';
import { loadBenchConfig } from './lib/config.js';
import { printTable, writeResults, type Row } from './lib/report.js';

const knobs = loadBenchConfig().idle;
const CONNECTIONS = knobs.connections;
const IDLE_SECONDS = knobs.seconds;
/** One round trip of this much on every connection before the last reading: more than any buffer of the path. */
const TRAFFIC_BYTES = knobs.trafficBytes;
const OVERRIDES = knobs.hboneOverrides as Partial<HboneConfig>;
const here = dirname(fileURLToPath(import.meta.url));

interface Peer {
  readonly child: ChildProcess;
  request<T>(msg: object): Promise<T>;
}

async function startPeer(setup: object): Promise<{ peer: Peer; hello: Record<string, number | boolean> }> {
  const child = fork(join(here, 'idle-peer.js'), [], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    execArgv: ['--expose-gc'],
    env: childEnv({ LOG_LEVEL: 'warn' }),
  });
  const next = <T>(): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const onExit = (code: number | null): void => reject(new Error(`bench peer exited with ${code}`));
      child.once('exit', onExit);
      child.once('message', (m: T) => {
        child.off('exit', onExit);
        resolve(m);
      });
    });
  const hello = next<Record<string, number | boolean>>();
  child.send(setup);
  const peer: Peer = {
    child,
    request: <T>(msg: object) => {
      const reply = next<T>();
      child.send(msg);
      return reply;
    },
  };
  return { peer, hello: await hello };
}

const kib = (bytes: number): number => Math.round(bytes / 102.4) / 10;
const mib = (bytes: number): number => Math.round(bytes / (1024 * 102.4)) / 10;

function perConnection(side: string, phase: string, base: MemoryReading, now: MemoryReading): Row {
  const n = Math.max(1, now.connections);
  return {
    process: side,
    phase,
    connections: now.connections,
    'RSS MiB': mib(now.rss),
    'RSS KiB/conn': kib((now.rss - base.rss) / n),
    'RSS trimmed': kib((now.rssTrimmed - base.rssTrimmed) / n),
    'native in use': kib((now.mallocInUse - base.mallocInUse) / n),
    'JS heap': kib((now.heapUsed - base.heapUsed) / n),
    'external+ArrayBuffers': kib((now.external - base.external) / n),
  };
}

async function main(): Promise<void> {
  const ca = await testCa();
  const config = { ...OVERRIDES };
  const server = await startPeer({ role: 'server', certificate: await issueCertificate(ca, ids.server), config });
  const client = await startPeer({
    role: 'client',
    certificate: await issueCertificate(ca, ids.client),
    config,
    serverPort: server.hello.port,
    echoPort: server.hello.echoPort,
    serverIdentity: ids.server,
  });
  const read = (p: Peer): Promise<MemoryReading> => p.request<MemoryReading>({ op: 'measure' });
  try {
    const base = { server: await read(server.peer), client: await read(client.peer) };
    const opened = await client.peer.request<{ open: number }>({ op: 'open', count: CONNECTIONS });
    if (opened.open !== CONNECTIONS) throw new Error(`only ${opened.open} of ${CONNECTIONS} connections stayed open`);
    const rows: Row[] = [];
    const sample = async (phase: string): Promise<void> => {
      rows.push(perConnection('server', phase, base.server, await read(server.peer)));
      rows.push(perConnection('client', phase, base.client, await read(client.peer)));
    };
    await new Promise((r) => setTimeout(r, 1000));
    await sample('open');
    await new Promise((r) => setTimeout(r, IDLE_SECONDS * 1000));
    await sample(`idle ${IDLE_SECONDS} s`);
    // Traffic touches the pages of every connection's buffers: what a connection costs once it has been used.
    await client.peer.request({ op: 'traffic', bytes: TRAFFIC_BYTES });
    await sample(`after ${TRAFFIC_BYTES / 1024} KiB each way`);
    if (knobs.readAgain) {
      await new Promise((r) => setTimeout(r, IDLE_SECONDS * 1000));
      await sample(`then idle ${IDLE_SECONDS} s`);
    }
    const effective = { ...DEFAULT_HBONE_CONFIG, ...OVERRIDES };
    printTable(`bench:idle: ${CONNECTIONS} idle HBONE connections, memory per connection (after GC)`, rows);
    const file = writeResults('idle', {
      connections: CONNECTIONS,
      idleSeconds: IDLE_SECONDS,
      config: effective,
      baseline: { server: base.server, client: base.client },
      rows,
    });
    console.log(`\nwrote ${file}`);
  } finally {
    server.peer.child.kill('SIGTERM');
    client.peer.child.kill('SIGTERM');
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
