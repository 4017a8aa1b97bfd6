/**
 * One end of `bench:idle`, run as its own process (started with --expose-gc so that a reading is taken on a
 * collected heap):
 *  - role "server": an HBONE server on loopback (lib/hbone/server.ts) and a TCP echo target in the same process;
 *  - role "client": an HBONE pool (lib/hbone/pool.ts) that opens one connection per pool key and leaves it idle.
 * Driven over IPC by bench/idle.ts: { op: 'measure' } answers a MemoryReading; { op: 'open', count } (client) opens
 * `count` more idle connections, each after one small tunnel round trip; { op: 'traffic', bytes } sends one round
 * trip of `bytes` over every open connection; both answer how many connections are open.
 */
import { createServer, type AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { getHeapStatistics } from 'node:v8';
import { hboneConfig, type HboneConfig } from '../lib/hbone/config.js';
import { HbonePool } from '../lib/hbone/pool.js';
import { mallocStats, mallocTrim } from '../lib/native/index.js';
import { HboneServer } from '../lib/hbone/server.js';
import { dialUpstream } from '../lib/hbone/upstream.js';
import type { WorkloadCertificate } from '../lib/identity/certificate.js';
import type { Identity } from '../lib/identity/spiffe.js';

export interface MemoryReading {
  readonly rss: number;
  readonly heapUsed: number;
  readonly external: number;
  readonly arrayBuffers: number;
  /** Memory V8 allocated with malloc outside the JS heap (v8.getHeapStatistics().malloced_memory). */
  readonly malloced: number;
  /** Native allocations in use (glibc mallinfo2): OpenSSL, nghttp2, Node's C++ objects, libuv. */
  readonly mallocInUse: number;
  /** RSS once the allocator returned what it could (malloc_trim): RSS minus freed memory it was keeping. */
  readonly rssTrimmed: number;
  readonly connections: number;
}

type Setup =
  | { role: 'server'; certificate: WorkloadCertificate; config: Partial<HboneConfig> }
  | {
      role: 'client';
      certificate: WorkloadCertificate;
      config: Partial<HboneConfig>;
      serverPort: number;
      serverIdentity: Identity;
      echoPort: number;
    };

type Op = { op: 'measure' } | { op: 'open'; count: number } | { op: 'traffic'; bytes: number };

const gc = (globalThis as { gc?: () => void }).gc;

function* chunks(payload: Buffer, size: number): Generator<Buffer> {
  for (let off = 0; off < payload.length; off += size) yield payload.subarray(off, off + size);
}

function revive(cert: WorkloadCertificate): WorkloadCertificate {
  return { ...cert, notBefore: new Date(cert.notBefore), notAfter: new Date(cert.notAfter) };
}

async function measure(connections: number): Promise<MemoryReading> {
  // Two collections, a turn of the event loop between them, so that weak callbacks and finalizers have run.
  gc?.();
  await new Promise((r) => setImmediate(r));
  gc?.();
  const m = process.memoryUsage();
  const inUse = mallocStats().inUseBytes;
  mallocTrim();
  return {
    rss: m.rss,
    heapUsed: m.heapUsed,
    external: m.external,
    arrayBuffers: m.arrayBuffers,
    malloced: getHeapStatistics().malloced_memory,
    mallocInUse: inUse,
    rssTrimmed: process.memoryUsage().rss,
    connections,
  };
}

async function serve(setup: Extract<Setup, { role: 'server' }>): Promise<void> {
  const echo = createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => {});
    s.pipe(s);
  });
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  const server = new HboneServer({
    certificate: revive(setup.certificate),
    config: hboneConfig(setup.config),
    handler: async (req, signal) => {
      if (req.target.kind !== 'address') return { status: 400, code: 'BENCH', reason: 'address only' };
      return { status: 200, upstream: await dialUpstream(req.target.address, req.target.port, { signal, timeoutMs: 5000 }) };
    },
  });
  const addr = await server.listen({ port: 0, host: '127.0.0.1' });
  process.on('message', (m: Op) => {
    if (m.op === 'measure') void measure(server.sessionCount).then((r) => process.send?.(r));
  });
  process.send?.({ port: addr.port, echoPort: (echo.address() as AddressInfo).port });
}

function client(setup: Extract<Setup, { role: 'client' }>): void {
  const certificate = revive(setup.certificate);
  const pool = new HbonePool({ config: hboneConfig(setup.config) });
  let opened = 0;
  /** One tunnel round trip of `payload` on connection `i` (the source IP is part of the pool key), then idle. */
  const roundTrip = async (i: number, payload: Buffer): Promise<void> => {
    const { stream } = await pool.connect({
      address: '127.0.0.1',
      port: setup.serverPort,
      expectedIdentities: [setup.serverIdentity],
      authority: `127.0.0.1:${setup.echoPort}`,
      certificate,
      sourceIp: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
    });
    await new Promise<void>((resolve, reject) => {
      stream.on('data', () => {});
      stream.once('end', resolve);
      stream.once('error', reject);
      // Written as ztunnel's splice writes what it reads from a socket: 64 KiB reads, honouring back-pressure.
      Readable.from(chunks(payload, 64 * 1024)).pipe(stream);
    });
  };
  const inBatches = async (count: number, each: (i: number) => Promise<void>): Promise<void> => {
    // 100 at a time, as a busy node would open them, not all 2 000 handshakes at once.
    for (let done = 0; done < count; ) {
      const batch = Math.min(100, count - done);
      await Promise.all(Array.from({ length: batch }, (_, j) => each(done + j)));
      done += batch;
    }
  };
  process.on('message', async (m: Op) => {
    if (m.op === 'measure') {
      process.send?.(await measure(pool.stats().connections));
      return;
    }
    if (m.op === 'open') {
      await inBatches(m.count, (i) => roundTrip(opened + i, Buffer.from('ping')));
      opened += m.count;
    } else {
      const payload = Buffer.alloc(m.bytes, 7);
      await inBatches(opened, (i) => roundTrip(i, payload));
    }
    process.send?.({ open: pool.stats().connections });
  });
  process.send?.({ ready: true });
}

process.once('message', (setup: Setup) => {
  if (setup.role === 'server') void serve(setup);
  else client(setup);
});
process.on('SIGTERM', () => process.exit(0));
