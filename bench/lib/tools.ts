/** External programs the benchmarks drive: iperf3 (bulk TCP), wrk (max request rate) and nginx (HTTP target). */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync, mkdirSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export function requireProgram(name: string, debianPackage: string): Promise<void> {
  return run('sh', ['-c', `command -v ${name}`]).then(
    () => undefined,
    () => {
      throw new Error(`${name} is not installed; install the Debian package "${debianPackage}" (scripts/setup.sh does this)`);
    },
  );
}

export async function waitForPort(port: number, host = '127.0.0.1', timeoutMs = 5000): Promise<void> {
  const { connect } = await import('node:net');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ port, host }, () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on ${host}:${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Starts `iperf3 -s` on a port; returns the child to kill later. */
export async function startIperfServer(port: number, bind = '127.0.0.1'): Promise<ChildProcess> {
  const child = spawn('iperf3', ['-s', '-B', bind, '-p', String(port)], { stdio: 'ignore' });
  await waitForPort(port, bind);
  return child;
}

/** One iperf3 client run; returns received throughput in Gbit/s. */
export async function iperfClient(host: string, port: number, seconds: number, streams = 1): Promise<number> {
  const { stdout } = await run('iperf3', ['-c', host, '-p', String(port), '-t', String(seconds), '-P', String(streams), '-J'], {
    maxBuffer: 16 * 1024 * 1024,
    timeout: (seconds + 30) * 1000,
  });
  const j = JSON.parse(stdout) as { end?: { sum_received?: { bits_per_second?: number } }; error?: string };
  if (j.error) throw new Error(`iperf3: ${j.error}`);
  return (j.end?.sum_received?.bits_per_second ?? 0) / 1e9;
}

/** wrk closed-loop run: requests per second at `connections` keep-alive connections. */
export async function wrk(
  url: string,
  connections: number,
  seconds: number,
  threads = 2,
): Promise<{ rps: number; p50Ms: number; p99Ms: number }> {
  const { stdout } = await run('wrk', ['-t', String(threads), '-c', String(connections), '-d', `${seconds}s`, '--latency', url], {
    timeout: (seconds + 30) * 1000,
  });
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1] ?? 'NaN');
  const toMs = (v: string | undefined): number => {
    const m = /([\d.]+)(us|ms|s)/.exec(v ?? '');
    if (!m) return NaN;
    const n = Number(m[1]);
    return m[2] === 'us' ? n / 1000 : m[2] === 's' ? n * 1000 : n;
  };
  return { rps, p50Ms: toMs(/\s50%\s+(\S+)/.exec(stdout)?.[1]), p99Ms: toMs(/\s99%\s+(\S+)/.exec(stdout)?.[1]) };
}

/** nginx serving a 1 kB answer on /payload for any method (it reads and discards request bodies). */
export async function startNginx(port: number, bind = '127.0.0.1'): Promise<{ child: ChildProcess; stop: () => void }> {
  const dir = mkdtempSync(join(tmpdir(), 'mesh-bench-nginx-'));
  mkdirSync(join(dir, 'logs'));
  const conf = join(dir, 'nginx.conf');
  writeFileSync(
    conf,
    [
      'worker_processes 1;',
      'daemon off;',
      `pid ${dir}/nginx.pid;`,
      `error_log ${dir}/logs/error.log warn;`,
      'events { worker_connections 4096; }',
      'http {',
      '  access_log off;',
      `  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;`,
      '  keepalive_requests 1000000;',
      `  server { listen ${bind}:${port}; location /payload { client_body_buffer_size 16k; return 200 "${'x'.repeat(1024)}"; } }`,
      '}',
    ].join('\n'),
  );
  const child = spawn('nginx', ['-p', dir, '-c', conf], { stdio: 'ignore' });
  await waitForPort(port, bind);
  return {
    child,
    stop: () => {
      child.kill('SIGTERM');
      setTimeout(() => rmSync(dir, { recursive: true, force: true }), 500).unref();
    },
  };
}
