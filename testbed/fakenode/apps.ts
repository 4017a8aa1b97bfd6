/**
 * Real applications for pods: nginx as the server, curl as the client, and a small Node echo server that
 * reports the peer address it saw. Each runs as its own process in the pod's namespace (never in this
 * process), so what they see is what the kernel in that namespace delivered.
 */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FakeNodeError, FakeNodeErrorCode } from './errors.js';
import { requireTool } from './exec.js';
import type { NetworkNamespace, NsProcess } from './process.js';

/** Anything with a namespace and, optionally, an identity to name in responses (a Pod, a FakeNode). */
type Runner = NetworkNamespace & { readonly namespace?: string; readonly name?: string };

export interface WaitForListenOptions {
  /** Default 10 s. */
  readonly timeoutMs?: number;
  /** Fail at once if this process exits while waiting (the server that should be listening). */
  readonly process?: NsProcess;
}

/** Resolves once a TCP socket listens on `port` inside the namespace (per `ss -ltn`). */
export async function waitForListen(ns: NetworkNamespace, port: number, opts: WaitForListenOptions = {}): Promise<void> {
  const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
  const suffix = `:${port}`;
  for (;;) {
    const r = await ns.exec('ss', ['-Hltn']);
    const listening = r.stdout.split('\n').some((line) => line.trim().split(/\s+/)[3]?.endsWith(suffix) === true);
    if (listening) return;
    if (opts.process !== undefined && !opts.process.running) throw opts.process.exitedError(`before listening on port ${port}`);
    if (Date.now() > deadline) {
      throw new FakeNodeError(
        FakeNodeErrorCode.TIMEOUT,
        `nothing listens on TCP port ${port} in ${ns.netnsName} after ${opts.timeoutMs ?? 10_000} ms`,
      );
    }
    await new Promise((r2) => setTimeout(r2, 25));
  }
}

export interface NginxOptions {
  readonly port: number;
  /** The response body for every path except /whoami. Default: "hello from <namespace>/<name>\n". */
  readonly body?: string;
  /** Default 10 s. */
  readonly startTimeoutMs?: number;
}

/** One access-log line (nginx writes it when the request completes). */
export interface NginxAccessEntry {
  readonly remoteAddr: string;
  readonly remotePort: number;
  readonly serverAddr: string;
  readonly serverPort: number;
  readonly request: string;
  readonly status: number;
  readonly bytesSent: number;
  readonly userAgent: string;
}

export interface NginxServer {
  readonly process: NsProcess;
  readonly port: number;
  readonly body: string;
  /** nginx's prefix directory (config, logs, temp files). */
  readonly prefixDir: string;
  /** Requests served so far, oldest first. */
  accessLog(): Promise<NginxAccessEntry[]>;
  stop(): Promise<void>;
}

/** JSON-escaped access log, one object per line. */
const LOG_FORMAT = `'{"remote_addr":"$remote_addr","remote_port":"$remote_port","server_addr":"$server_addr",'
    '"server_port":"$server_port","request":"$request","status":"$status","bytes_sent":"$bytes_sent",'
    '"user_agent":"$http_user_agent"}'`;

function nginxConfig(dir: string, port: number, servedBy: string): string {
  return `# Written by testbed/fakenode/apps.ts. Everything lives under the prefix directory: the packaged defaults
# (/var/lib/nginx, /var/log/nginx, /run/nginx.pid) are not used, so several instances can run at once.
user root;
worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log info;
events { worker_connections 1024; }
http {
  default_type text/plain;
  log_format fakenode escape=json ${LOG_FORMAT};
  access_log ${dir}/access.log fakenode;
  client_body_temp_path ${dir}/tmp/body;
  proxy_temp_path ${dir}/tmp/proxy;
  fastcgi_temp_path ${dir}/tmp/fastcgi;
  uwsgi_temp_path ${dir}/tmp/uwsgi;
  scgi_temp_path ${dir}/tmp/scgi;
  server {
    listen ${port};
    root ${dir}/html;
    # What the server saw, on every response: a test reads the client's source address here.
    add_header X-Client-Addr $remote_addr always;
    add_header X-Client-Port $remote_port always;
    add_header X-Server-Addr $server_addr always;
    add_header X-Served-By ${servedBy} always;
    location = /whoami {
      default_type application/json;
      return 200 '{"remote_addr":"$remote_addr","remote_port":$remote_port,"server_addr":"$server_addr","server_port":$server_port,"host":"$host","uri":"$request_uri"}\\n';
    }
    location / {
      try_files /body =404;
    }
  }
}
`;
}

/** Starts a real nginx in the pod on `port`, serving a known body; resolves once it listens. */
export async function startNginx(pod: Runner, opts: NginxOptions): Promise<NginxServer> {
  requireTool('nginx', 'nginx-light');
  const who = pod.namespace !== undefined && pod.name !== undefined ? `${pod.namespace}/${pod.name}` : pod.netnsName;
  const body = opts.body ?? `hello from ${who}\n`;
  const dir = join(pod.workDir, `nginx-${opts.port}`);
  await mkdir(join(dir, 'html'), { recursive: true });
  await mkdir(join(dir, 'tmp'), { recursive: true });
  await writeFile(join(dir, 'html', 'body'), body);
  await writeFile(join(dir, 'nginx.conf'), nginxConfig(dir, opts.port, who.replace(/[^A-Za-z0-9./_-]/g, '_')));
  // -e: the error log before the config is read (nginx-light's compiled-in default is stderr, which is fine too).
  const proc = pod.spawn('nginx', ['-p', `${dir}/`, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')]);
  try {
    await waitForListen(pod, opts.port, { process: proc, timeoutMs: opts.startTimeoutMs });
  } catch (e) {
    await proc.stop(500);
    const log = await readFile(join(dir, 'error.log'), 'utf8').catch(() => '');
    throw new FakeNodeError(
      FakeNodeErrorCode.PROCESS_EXITED,
      `nginx did not start on port ${opts.port} in ${pod.netnsName}: ${log.slice(-600)}`,
      { cause: e },
    );
  }
  return {
    process: proc,
    port: opts.port,
    body,
    prefixDir: dir,
    async accessLog(): Promise<NginxAccessEntry[]> {
      const text = await readFile(join(dir, 'access.log'), 'utf8').catch(() => '');
      return text
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => {
          const o = JSON.parse(l) as Record<string, string>;
          return {
            remoteAddr: o.remote_addr ?? '',
            remotePort: Number(o.remote_port),
            serverAddr: o.server_addr ?? '',
            serverPort: Number(o.server_port),
            request: o.request ?? '',
            status: Number(o.status),
            bytesSent: Number(o.bytes_sent),
            userAgent: o.user_agent ?? '',
          };
        });
    },
    async stop(): Promise<void> {
      // SIGQUIT would be a graceful shutdown; SIGTERM is nginx's fast shutdown, which is what tests want.
      await proc.stop();
    },
  };
}

export interface EchoConnection {
  readonly peer: { readonly address: string; readonly port: number };
  readonly local: { readonly address: string; readonly port: number };
}

export interface EchoServer {
  readonly process: NsProcess;
  readonly port: number;
  /** Connections accepted so far, as the server saw them. */
  connections(): EchoConnection[];
  stop(): Promise<void>;
}

export interface EchoServerOptions {
  /** Address to listen on; default 0.0.0.0. */
  readonly host?: string;
  /** Send the connection line to each client before echoing; default true. */
  readonly greeting?: boolean;
  readonly startTimeoutMs?: number;
}

const ECHO_SCRIPT = fileURLToPath(new URL('./echo-server.js', import.meta.url));

/**
 * Starts the echo server (echo-server.ts) in the pod. Each client first gets one JSON line naming the peer
 * address and port the server saw (unless greeting is false), then its bytes echoed back.
 */
export async function startEchoServer(pod: Runner, port: number, opts: EchoServerOptions = {}): Promise<EchoServer> {
  const args = [ECHO_SCRIPT, '--port', String(port), '--host', opts.host ?? '0.0.0.0'];
  if (opts.greeting === false) args.push('--no-greeting');
  const proc = pod.spawn(process.execPath, args);
  try {
    await proc.waitForOutput(/"event":"listening"/, { stream: 'stdout', timeoutMs: opts.startTimeoutMs ?? 10_000 });
  } catch (e) {
    await proc.stop(500);
    throw e;
  }
  return {
    process: proc,
    port,
    connections(): EchoConnection[] {
      return proc.stdout
        .split('\n')
        .filter((l) => l.includes('"event":"connection"'))
        .map((l) => {
          const o = JSON.parse(l) as EchoConnection;
          return { peer: o.peer, local: o.local };
        });
    },
    async stop(): Promise<void> {
      await proc.stop();
    },
  };
}

export interface CurlOptions {
  /** curl --max-time; default 10 s. */
  readonly maxTimeSeconds?: number;
  readonly connectTimeoutSeconds?: number;
  readonly method?: string;
  readonly headers?: Readonly<Record<string, string>>;
  /** Request body (--data-binary). */
  readonly data?: string;
  /** More curl arguments, e.g. ['--http2-prior-knowledge'] or ['--resolve', 'a:80:10.0.0.1']. */
  readonly extraArgs?: readonly string[];
}

export interface CurlResult {
  /** curl's exit code: 0 ok, 7 could not connect, 28 timed out, 52 empty reply, 56 receive failure... */
  readonly exitCode: number;
  /** The HTTP status; 0 when there was no response. */
  readonly status: number;
  readonly body: string;
  /** Response headers of the final response, names lowercased. */
  readonly headers: Readonly<Record<string, string>>;
  /** Total time, from curl's own measurement. */
  readonly timeSeconds: number;
  readonly remoteIp: string | undefined;
  readonly localIp: string | undefined;
  readonly localPort: number | undefined;
  /** curl's error message when exitCode is not 0. */
  readonly errorMessage: string | undefined;
  readonly stderr: string;
}

let curlCounter = 0;

function parseHeaders(raw: string): Record<string, string> {
  // With redirects or 100-continue there are several header blocks; the last one is the final response's.
  const blocks = raw.split(/\r?\n\r?\n/).filter((b) => b.trim() !== '');
  const last = blocks[blocks.length - 1] ?? '';
  const headers: Record<string, string> = {};
  for (const line of last.split(/\r?\n/).slice(1)) {
    const i = line.indexOf(':');
    if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  return headers;
}

/** Runs the real curl in the pod and returns the response and curl's own measurements. Never throws on HTTP or network errors. */
export async function curl(pod: Runner, url: string, opts: CurlOptions = {}): Promise<CurlResult> {
  requireTool('curl', 'curl');
  const maxTime = opts.maxTimeSeconds ?? 10;
  const dir = join(pod.workDir, `curl-${process.pid}-${++curlCounter}`);
  await mkdir(dir, { recursive: true });
  const args = ['-sS', '--max-time', String(maxTime), '-o', join(dir, 'body'), '-D', join(dir, 'headers'), '-w', '%{json}'];
  if (opts.connectTimeoutSeconds !== undefined) args.push('--connect-timeout', String(opts.connectTimeoutSeconds));
  if (opts.method !== undefined) args.push('-X', opts.method);
  for (const [k, v] of Object.entries(opts.headers ?? {})) args.push('-H', `${k}: ${v}`);
  if (opts.data !== undefined) args.push('--data-binary', opts.data);
  args.push(...(opts.extraArgs ?? []), url);
  try {
    const r = await pod.exec('curl', args, { timeoutMs: (maxTime + 5) * 1000 });
    let info: Record<string, unknown> = {};
    try {
      info = JSON.parse(r.stdout) as Record<string, unknown>;
    } catch {
      // curl printed no write-out (killed, or bad arguments); the exit code and stderr tell why
    }
    const body = await readFile(join(dir, 'body'), 'utf8').catch(() => '');
    const headers = parseHeaders(await readFile(join(dir, 'headers'), 'utf8').catch(() => ''));
    const str = (k: string): string | undefined => (typeof info[k] === 'string' && info[k] !== '' ? info[k] : undefined);
    return {
      exitCode: r.code,
      status: typeof info.http_code === 'number' ? info.http_code : 0,
      body,
      headers,
      timeSeconds: typeof info.time_total === 'number' ? info.time_total : 0,
      remoteIp: str('remote_ip'),
      localIp: str('local_ip'),
      localPort: typeof info.local_port === 'number' && info.local_port > 0 ? info.local_port : undefined,
      errorMessage: r.code === 0 ? undefined : (str('errormsg') ?? r.stderr.trim()),
      stderr: r.stderr,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export interface TcpRequestOptions {
  /** Bytes to send before half-closing; default none. */
  readonly send?: string;
  /** Give up after this long; default 10 s. */
  readonly timeoutMs?: number;
}

export interface TcpRequestResult {
  /** True when the connection was made and the peer closed it cleanly. */
  readonly ok: boolean;
  /** Everything received until the peer closed. */
  readonly received: string;
  /** The client's own address and port (to find the connection in a server's or a capture's view). */
  readonly localAddress: string | undefined;
  readonly localPort: number | undefined;
  /** The socket error code (ECONNREFUSED, ECONNRESET, ETIMEDOUT...) when not ok. */
  readonly error: string | undefined;
}

/** The client run by tcpRequest: a Node one-off in the pod, printing one JSON line. */
const TCP_CLIENT = `
const net = require('node:net');
const [host, port, send, timeoutMs] = process.argv.slice(1);
const chunks = [];
let local = {};
const done = (error) => {
  process.stdout.write(JSON.stringify({ ok: error === undefined, received: Buffer.concat(chunks).toString('base64'), ...local, error }));
  process.exit(0);
};
const s = net.connect({ host, port: Number(port), allowHalfOpen: true }, () => {
  local = { localAddress: s.localAddress, localPort: s.localPort };
  s.end(Buffer.from(send, 'base64'));
});
s.on('data', (c) => chunks.push(c));
s.on('end', () => done(undefined));
s.on('error', (e) => done(e.code || e.message));
setTimeout(() => done('ETIMEDOUT'), Number(timeoutMs)).unref();
`;

/**
 * Opens a plain TCP connection from the pod, sends `send`, half-closes, and collects the reply until the
 * peer closes (an echo server, a raw protocol through a mesh). Never throws on network errors.
 */
export async function tcpRequest(pod: Runner, host: string, port: number, opts: TcpRequestOptions = {}): Promise<TcpRequestResult> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const r = await pod.exec(
    process.execPath,
    ['-e', TCP_CLIENT, host, String(port), Buffer.from(opts.send ?? '').toString('base64'), String(timeoutMs)],
    { timeoutMs: timeoutMs + 5_000 },
  );
  try {
    const o = JSON.parse(r.stdout) as { ok: boolean; received: string; localAddress?: string; localPort?: number; error?: string };
    return {
      ok: o.ok,
      received: Buffer.from(o.received, 'base64').toString('utf8'),
      localAddress: o.localAddress,
      localPort: o.localPort,
      error: o.error,
    };
  } catch {
    return {
      ok: false,
      received: '',
      localAddress: undefined,
      localPort: undefined,
      error: `client failed (exit ${r.code}): ${r.stderr.trim().slice(-300)}`,
    };
  }
}
