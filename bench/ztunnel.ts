/**
 * `npm run bench:ztunnel`: the L4 mesh on fake nodes, measured Istio's way, against no mesh in the same run.
 * Two nodes; a client pod on node 1 and a server pod (nginx, iperf3) on node 2, once in the mesh (through
 * both ztunnels over HBONE) and once outside it (plain routing over the same link).
 *   - latency: fixed 1000 rps, 16 keep-alive HTTP/1.1 connections, 1 kB responses, p50/p90/p99
 *   - throughput: iperf3, one stream
 *   - new connections per second: wrk with `Connection: close`, 16 connections
 *   - ztunnels: peak RSS, and CPU seconds per 1000 requests during the fixed-rate run
 * Prints a table and writes bench/results/ztunnel.json. BENCH_SECONDS sets each run's length (default 10).
 * Needs root.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startNginx, type Pod } from '../testbed/fakenode/index.js';
import { MeshCluster } from '../localmesh/mesh-cluster.js';
import type { LatencySummary } from './lib/load.js';
import { PeakRss, cpuSeconds } from './lib/proc.js';
import { printTable, writeResults, type Row } from './lib/report.js';
import { loadBenchConfig } from './lib/config.js';

const SECONDS = loadBenchConfig().seconds;
const here = dirname(fileURLToPath(import.meta.url));
const mib = (b: number): number => Math.round((b / 2 ** 20) * 10) / 10;

async function fixedRate(client: Pod, url: string): Promise<LatencySummary> {
  const opts = { url, rps: 1000, connections: 16, durationMs: SECONDS * 1000, warmupMs: 2000, payloadBytes: 0 };
  const r = await client.exec(process.execPath, [join(here, 'load-runner.js'), JSON.stringify(opts)], { timeoutMs: (SECONDS + 30) * 1000 });
  if (r.code !== 0) throw new Error(`load generator failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as LatencySummary;
}

async function iperf(client: Pod, server: Pod): Promise<number> {
  const r = await client.exec('iperf3', ['-c', server.ip, '-t', String(SECONDS), '-J'], { timeoutMs: (SECONDS + 30) * 1000 });
  const j = JSON.parse(r.stdout) as { end?: { sum_received?: { bits_per_second?: number } }; error?: string };
  if (j.error) throw new Error(`iperf3: ${j.error}`);
  return (j.end?.sum_received?.bits_per_second ?? 0) / 1e9;
}

async function newConnectionsPerSecond(client: Pod, url: string): Promise<number> {
  const r = await client.exec('wrk', ['-t', '2', '-c', '16', '-d', `${SECONDS}s`, '-H', 'Connection: close', url], {
    timeoutMs: (SECONDS + 30) * 1000,
  });
  return Number(/Requests\/sec:\s+([\d.]+)/.exec(r.stdout)?.[1] ?? 'NaN');
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('run as root: the benchmark builds fake nodes (network namespaces)');
  const mesh = await MeshCluster.start({ name: 'bench', nodes: 2, ambientNamespaces: ['mesh'] });
  try {
    const [n1, n2] = [mesh.node(1), mesh.node(2)];
    const [meshClient, meshServer, plainClient, plainServer] = await Promise.all([
      mesh.addPod(n1, { namespace: 'mesh', name: 'client' }),
      mesh.addPod(n2, { namespace: 'mesh', name: 'server' }),
      mesh.addPod(n1, { namespace: 'nomesh', name: 'client' }),
      mesh.addPod(n2, { namespace: 'nomesh', name: 'server' }),
    ]);
    const body = 'x'.repeat(1024);
    for (const s of [meshServer, plainServer]) {
      await startNginx(s, { port: 8080, body });
      s.spawn('iperf3', ['-s', '-p', '5201']);
    }
    await new Promise((r) => setTimeout(r, 500));
    const ztunnels = mesh.cluster.nodes.map((n) => mesh.ztunnelProcess(n).pid);
    const url = (s: Pod): string => `http://${s.ip}:8080/`;

    const plainLat = await fixedRate(plainClient, url(plainServer));
    const rss = new PeakRss(ztunnels);
    const cpu0 = ztunnels.map(cpuSeconds);
    const meshLat = await fixedRate(meshClient, url(meshServer));
    rss.stop();
    const rssAt1000 = ztunnels.map((p) => rss.peak.get(p) ?? 0);
    const rssAll = new PeakRss(ztunnels);
    const cpuPer1000 = ztunnels.map((pid, i) => (cpuSeconds(pid) - (cpu0[i] ?? 0)) / ((meshLat.requests + 2000) / 1000));
    const plainGbps = await iperf(plainClient, plainServer);
    const meshGbps = await iperf(meshClient, meshServer);
    const plainCps = await newConnectionsPerSecond(plainClient, url(plainServer));
    const meshCps = await newConnectionsPerSecond(meshClient, url(meshServer));
    rssAll.stop();

    const rows: Row[] = [
      {
        measure: 'p50 ms @1000 rps, 16 conns, 1 kB',
        'no mesh': plainLat.p50Ms,
        'ztunnel→ztunnel': meshLat.p50Ms,
        'added / ratio': `+${(meshLat.p50Ms - plainLat.p50Ms).toFixed(3)} ms`,
      },
      {
        measure: 'p90 ms',
        'no mesh': plainLat.p90Ms,
        'ztunnel→ztunnel': meshLat.p90Ms,
        'added / ratio': `+${(meshLat.p90Ms - plainLat.p90Ms).toFixed(3)} ms`,
      },
      {
        measure: 'p99 ms',
        'no mesh': plainLat.p99Ms,
        'ztunnel→ztunnel': meshLat.p99Ms,
        'added / ratio': `+${(meshLat.p99Ms - plainLat.p99Ms).toFixed(3)} ms`,
      },
      {
        measure: 'achieved rps (errors)',
        'no mesh': `${Math.round(plainLat.achievedRps)} (${plainLat.errors})`,
        'ztunnel→ztunnel': `${Math.round(meshLat.achievedRps)} (${meshLat.errors})`,
        'added / ratio': '',
      },
      {
        measure: 'iperf3 Gbit/s, 1 stream',
        'no mesh': plainGbps,
        'ztunnel→ztunnel': meshGbps,
        'added / ratio': `${((meshGbps / plainGbps) * 100).toFixed(1)} %`,
      },
      {
        measure: 'new connections/s (wrk, Connection: close)',
        'no mesh': Math.round(plainCps),
        'ztunnel→ztunnel': Math.round(meshCps),
        'added / ratio': `${((meshCps / plainCps) * 100).toFixed(1)} %`,
      },
      {
        measure: 'ztunnel RSS MiB at 1000 rps (node-1, node-2)',
        'no mesh': '',
        'ztunnel→ztunnel': rssAt1000.map(mib).join(', '),
        'added / ratio': '',
      },
      {
        measure: 'ztunnel peak RSS MiB incl. iperf3 (node-1, node-2)',
        'no mesh': '',
        'ztunnel→ztunnel': ztunnels.map((p) => mib(Math.max(rssAll.peak.get(p) ?? 0, rss.peak.get(p) ?? 0))).join(', '),
        'added / ratio': '',
      },
      {
        measure: 'ztunnel CPU s per 1000 requests (node-1, node-2)',
        'no mesh': '',
        'ztunnel→ztunnel': cpuPer1000.map((c) => c.toFixed(3)).join(', '),
        'added / ratio': '',
      },
    ];
    printTable(`ztunnel on fake nodes vs no mesh (${SECONDS} s per run)`, rows);
    const file = writeResults('ztunnel', {
      seconds: SECONDS,
      rows,
      latency: { noMesh: plainLat, mesh: meshLat },
      throughputGbps: { noMesh: plainGbps, mesh: meshGbps },
      newConnectionsPerSecond: { noMesh: plainCps, mesh: meshCps },
      ztunnel: {
        rssBytesAt1000Rps: rssAt1000,
        peakRssBytes: ztunnels.map((p) => Math.max(rssAll.peak.get(p) ?? 0, rss.peak.get(p) ?? 0)),
        cpuSecondsPer1000Requests: cpuPer1000,
      },
    });
    console.log(`results: ${file}`);
  } finally {
    await mesh.destroy();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(`bench:ztunnel failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
