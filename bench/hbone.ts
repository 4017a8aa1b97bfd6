/**
 * `npm run bench:hbone`: what an HBONE client/server pair costs on loopback, against a direct connection in the
 * same run. Each proxy end runs in its own process, like two ztunnels.
 *   - bulk throughput: iperf3, one TCP stream, direct vs through the pair;
 *   - request rate: wrk, 16 keep-alive connections, closed loop (max rps);
 *   - latency: fixed 1000 rps, 16 connections, 1 kB request and response, p50/p90/p99 (Istio's method);
 *   - proxy peak RSS and CPU seconds;
 *   - calibration: iperf3 through a pair of plain Node TCP relays, and through a pair of Node mutual-TLS relays
 *     (no HTTP/2), to separate what Node's sockets and TLS cost from what HBONE adds.
 * Prints a table and writes bench/results/hbone.json. BENCH_SECONDS sets each run's length (default 10).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { issueCertificate, ids, testCa } from '../testbed/fixtures/pki.js';
import { runFixedRate, type LatencySummary } from './lib/load.js';
import { PeakRss, cpuSeconds } from './lib/proc.js';
import { printTable, writeResults, type Row } from './lib/report.js';
import { freePort, iperfClient, requireProgram, startIperfServer, startNginx, wrk } from './lib/tools.js';
import { loadBenchConfig } from './lib/config.js';
import { childEnv } from '../testbed/env.js';

const SECONDS = loadBenchConfig().seconds;
const here = dirname(fileURLToPath(import.meta.url));

async function startPairEnd(setup: object): Promise<{ child: ChildProcess; port: number }> {
  const child = fork(join(here, 'hbone-pair.js'), [], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: childEnv({ LOG_LEVEL: 'warn' }),
  });
  const port = await new Promise<number>((resolve, reject) => {
    child.once('message', (m: { port: number }) => resolve(m.port));
    child.once('exit', (code) => reject(new Error(`pair process exited with ${code}`)));
    child.send(setup);
  });
  return { child, port };
}

const mib = (b: number): number => Math.round((b / 2 ** 20) * 10) / 10;

async function main(): Promise<void> {
  await requireProgram('iperf3', 'iperf3');
  await requireProgram('wrk', 'wrk');
  await requireProgram('nginx', 'nginx-light');
  const ca = await testCa();
  const clientCert = await issueCertificate(ca, ids.client);
  const serverCert = await issueCertificate(ca, ids.server);

  const iperfPort = await freePort();
  const nginxPort = await freePort();
  const iperf = await startIperfServer(iperfPort);
  const nginx = await startNginx(nginxPort);
  const server = await startPairEnd({ role: 'server', certificate: serverCert });
  const clientFor = (target: string) =>
    startPairEnd({ role: 'client', certificate: clientCert, serverPort: server.port, serverIdentity: ids.server, target });
  const iperfEntry = await clientFor(`127.0.0.1:${iperfPort}`);
  const httpEntry = await clientFor(`127.0.0.1:${nginxPort}`);
  const proxies = (client: ChildProcess): number[] => [server.child.pid as number, client.pid as number];
  const tcpRelay2 = await startPairEnd({ role: 'tcp-relay', targetPort: iperfPort });
  const tcpRelay1 = await startPairEnd({ role: 'tcp-relay', targetPort: tcpRelay2.port });
  const tlsServer = await startPairEnd({ role: 'tls-server', certificate: serverCert, targetPort: iperfPort });
  const tlsClient = await startPairEnd({
    role: 'tls-client',
    certificate: clientCert,
    serverPort: tlsServer.port,
    serverIdentity: ids.server,
  });
  const calibration = [tcpRelay1, tcpRelay2, tlsServer, tlsClient];

  try {
    // Bulk throughput.
    const directGbps = await iperfClient('127.0.0.1', iperfPort, SECONDS);
    const rssBulk = new PeakRss(proxies(iperfEntry.child));
    const tunnelGbps = await iperfClient('127.0.0.1', iperfEntry.port, SECONDS);
    rssBulk.stop();
    const tcpRelayGbps = await iperfClient('127.0.0.1', tcpRelay1.port, SECONDS);
    const tlsRelayGbps = await iperfClient('127.0.0.1', tlsClient.port, SECONDS);

    // Max request rate.
    const wrkDirect = await wrk(`http://127.0.0.1:${nginxPort}/payload`, 16, SECONDS);
    const wrkTunnel = await wrk(`http://127.0.0.1:${httpEntry.port}/payload`, 16, SECONDS);

    // Latency at a fixed rate.
    const fixed = (port: number): Promise<LatencySummary> =>
      runFixedRate({
        url: `http://127.0.0.1:${port}/payload`,
        rps: 1000,
        connections: 16,
        durationMs: SECONDS * 1000,
        warmupMs: 2000,
        payloadBytes: 1024,
      });
    const latDirect = await fixed(nginxPort);
    const cpuBefore = proxies(httpEntry.child).map(cpuSeconds);
    const rssHttp = new PeakRss(proxies(httpEntry.child));
    const latTunnel = await fixed(httpEntry.port);
    rssHttp.stop();
    const cpuUsed = proxies(httpEntry.child).map((pid, i) => cpuSeconds(pid) - (cpuBefore[i] ?? 0));
    const vcpuPer1000 = cpuUsed.reduce((a, b) => a + b, 0) / (SECONDS + 2);

    const peak = (r: PeakRss): number => mib([...r.peak.values()].reduce((a, b) => a + b, 0));
    const rows: Row[] = [
      {
        measure: 'iperf3 1 stream',
        path: 'direct',
        'Gbit/s': directGbps,
        rps: '',
        'p50 ms': '',
        'p90 ms': '',
        'p99 ms': '',
        'proxies RSS MiB': '',
      },
      {
        measure: 'iperf3 1 stream',
        path: 'HBONE pair',
        'Gbit/s': tunnelGbps,
        rps: '',
        'p50 ms': '',
        'p90 ms': '',
        'p99 ms': '',
        'proxies RSS MiB': peak(rssBulk),
      },
      {
        measure: 'iperf3 1 stream',
        path: 'calib: Node TCP relay pair',
        'Gbit/s': tcpRelayGbps,
        rps: '',
        'p50 ms': '',
        'p90 ms': '',
        'p99 ms': '',
        'proxies RSS MiB': '',
      },
      {
        measure: 'iperf3 1 stream',
        path: 'calib: Node mTLS relay pair',
        'Gbit/s': tlsRelayGbps,
        rps: '',
        'p50 ms': '',
        'p90 ms': '',
        'p99 ms': '',
        'proxies RSS MiB': '',
      },
      {
        measure: 'wrk 16 conns (max rps)',
        path: 'direct',
        'Gbit/s': '',
        rps: Math.round(wrkDirect.rps),
        'p50 ms': wrkDirect.p50Ms,
        'p90 ms': '',
        'p99 ms': wrkDirect.p99Ms,
        'proxies RSS MiB': '',
      },
      {
        measure: 'wrk 16 conns (max rps)',
        path: 'HBONE pair',
        'Gbit/s': '',
        rps: Math.round(wrkTunnel.rps),
        'p50 ms': wrkTunnel.p50Ms,
        'p90 ms': '',
        'p99 ms': wrkTunnel.p99Ms,
        'proxies RSS MiB': '',
      },
      {
        measure: '1000 rps, 16 conns, 1 kB',
        path: 'direct',
        'Gbit/s': '',
        rps: Math.round(latDirect.achievedRps),
        'p50 ms': latDirect.p50Ms,
        'p90 ms': latDirect.p90Ms,
        'p99 ms': latDirect.p99Ms,
        'proxies RSS MiB': '',
      },
      {
        measure: '1000 rps, 16 conns, 1 kB',
        path: 'HBONE pair',
        'Gbit/s': '',
        rps: Math.round(latTunnel.achievedRps),
        'p50 ms': latTunnel.p50Ms,
        'p90 ms': latTunnel.p90Ms,
        'p99 ms': latTunnel.p99Ms,
        'proxies RSS MiB': peak(rssHttp),
      },
    ];
    printTable(`HBONE pair vs direct on loopback (${SECONDS} s per run)`, rows);
    const summary = {
      throughputRatio: tunnelGbps / directGbps,
      // What a pair of Node processes reaches on the same path with no HBONE: the ceiling for any Node proxy pair.
      calibration: { tcpRelayPairRatio: tcpRelayGbps / directGbps, tlsRelayPairRatio: tlsRelayGbps / directGbps },
      maxRpsRatio: wrkTunnel.rps / wrkDirect.rps,
      addedLatencyMs: {
        p50: latTunnel.p50Ms - latDirect.p50Ms,
        p90: latTunnel.p90Ms - latDirect.p90Ms,
        p99: latTunnel.p99Ms - latDirect.p99Ms,
      },
      proxiesVcpuAt1000Rps: vcpuPer1000,
      errors: { direct: latDirect.errors, tunnel: latTunnel.errors },
    };
    console.log(
      `\nthroughput ratio ${(summary.throughputRatio * 100).toFixed(1)}% of direct (goal >= 40%; a plain Node TCP relay pair reaches ` +
        `${(summary.calibration.tcpRelayPairRatio * 100).toFixed(1)}%, an mTLS relay pair ${(summary.calibration.tlsRelayPairRatio * 100).toFixed(1)}%); max rps ratio ${(summary.maxRpsRatio * 100).toFixed(1)}%; ` +
        `added latency p50 ${summary.addedLatencyMs.p50.toFixed(3)} ms, p90 ${summary.addedLatencyMs.p90.toFixed(3)} ms, p99 ${summary.addedLatencyMs.p99.toFixed(3)} ms; ` +
        `both proxies ${vcpuPer1000.toFixed(3)} vCPU at 1000 rps`,
    );
    const file = writeResults('hbone', { seconds: SECONDS, rows, summary, latency: { direct: latDirect, tunnel: latTunnel } });
    console.log(`results: ${file}`);
  } finally {
    for (const c of [server.child, iperfEntry.child, httpEntry.child, ...calibration.map((e) => e.child), iperf]) c.kill('SIGKILL');
    nginx.stop();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(`bench:hbone failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
