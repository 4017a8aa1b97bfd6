/**
 * The `ztunnel` program as a process: configuration from the environment, the local config file and its
 * reloads, and the admin (15000), readiness (15021) and metrics (15020) endpoints. No pods here (those need
 * network namespaces: test/fakenode/mesh.test.ts), so it runs without root.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile, rename } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../bench/lib/tools.js';
import { childEnv } from '../../testbed/env.js';
import { rawHttp, statusLine } from '../../testbed/fixtures/http-raw.js';

const ZTUNNEL = join(process.cwd(), 'dist', 'ztunnel', 'main.js');

const CONFIG = `
trustDomain: cluster.local
workloads:
- uid: Kubernetes//Pod/default/sleep
  name: sleep
  namespace: default
  serviceAccount: sleep
  workloadIps: ["10.244.1.5"]
  protocol: HBONE
  node: node-1
  services:
    "default/echo.default.svc.cluster.local":
      80: 8080
- uid: Kubernetes//Pod/default/echo
  name: echo
  namespace: default
  workloadIps: ["10.244.2.7"]
  protocol: HBONE
  node: node-2
services:
- name: echo
  namespace: default
  hostname: echo.default.svc.cluster.local
  vips: ["/10.96.0.10"]
  ports:
    80: 8080
policies:
- name: deny-legacy
  namespace: default
  scope: Namespace
  action: Deny
  rules:
  - - - namespaces:
          - Exact: legacy
`;

interface Running {
  child: ChildProcess;
  output: () => string;
  admin: number;
  ready: number;
  stats: number;
}

function http(port: number, path: string, method = 'GET'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function until<T>(what: string, f: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const v = await f();
      if (v !== undefined) return v;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function startZtunnel(env: Record<string, string>): Promise<Running> {
  const [admin, ready, stats] = [await freePort(), await freePort(), await freePort()];
  let out = '';
  const child = spawn(process.execPath, [ZTUNNEL], {
    env: childEnv({
      LOG_LEVEL: 'info',
      FAKE_CA: 'true',
      XDS_ADDRESS: '',
      ZTUNNEL_ADMIN_ADDRESS: `127.0.0.1:${admin}`,
      ZTUNNEL_READINESS_ADDRESS: `127.0.0.1:${ready}`,
      ZTUNNEL_STATS_ADDRESS: `127.0.0.1:${stats}`,
      ...env,
    }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (out += c.toString()));
  return { child, output: () => out, admin, ready, stats };
}

function exitOf(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) resolve(child.exitCode);
    else child.once('exit', (code) => resolve(code));
  });
}

let dir: string;
let configPath: string;
let z: Running;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ztunnel-program-'));
  configPath = join(dir, 'local.yaml');
  await writeFile(configPath, CONFIG);
  z = await startZtunnel({ LOCAL_XDS_PATH: configPath, INPOD_ENABLED: 'false' });
  await until('admin up', async () => ((await http(z.admin, '/config_dump')).status === 200 ? true : undefined));
});

after(async () => {
  z.child.kill('SIGKILL');
  await rm(dir, { recursive: true, force: true });
});

describe('ztunnel admin', () => {
  test('serves /config_dump with the local config as workloads, services and policies', async () => {
    const dump = JSON.parse((await http(z.admin, '/config_dump')).body) as {
      workloads: { uid: string; serviceAccount: string; protocol: string }[];
      services: { hostname: string; vips: { address: string }[] }[];
      policies: { name: string; action: string; scope: string }[];
      config: { localXdsPath: string; packetMark: number };
      version: { version: string };
      certificates: unknown[];
      workloadState: object;
    };
    assert.deepEqual(
      dump.workloads.map((w) => w.uid),
      ['Kubernetes//Pod/default/echo', 'Kubernetes//Pod/default/sleep'],
    );
    assert.equal(dump.workloads[0]?.serviceAccount, 'default', 'service account defaults to "default"');
    assert.equal(dump.services[0]?.vips[0]?.address, '10.96.0.10');
    assert.deepEqual(
      dump.policies.map((p) => [p.name, p.action, p.scope]),
      [['deny-legacy', 'Deny', 'Namespace']],
    );
    assert.equal(dump.config.localXdsPath, configPath);
    assert.equal(dump.config.packetMark, 1337);
    assert.deepEqual(dump.workloadState, {});
  });

  test('is ready on 15021 once the config is loaded (no node agent in this mode)', async () => {
    const r = await http(z.ready, '/healthz/ready');
    assert.equal(r.status, 200, r.body);
  });

  test('serves Prometheus metrics on /metrics and /stats/prometheus', async () => {
    for (const path of ['/metrics', '/stats/prometheus']) {
      const r = await http(z.stats, path);
      assert.equal(r.status, 200);
      assert.match(r.body, /istio_build\{component="ztunnel",tag="[^"]+"\} 1/);
      assert.match(r.body, /# TYPE istio_tcp_connections_opened_total counter/);
    }
  });

  test('changes the log level with POST /logging and refuses other methods and unknown levels', async () => {
    assert.equal((await http(z.admin, '/logging', 'GET')).status, 405);
    assert.equal((await http(z.admin, '/logging?level=verbose', 'POST')).status, 400);
    const set = await http(z.admin, '/logging?level=debug', 'POST');
    assert.equal(set.status, 200);
    assert.match(set.body, /current log level is debug/);
    assert.match((await http(z.admin, '/logging', 'POST')).body, /current log level is debug/);
    await http(z.admin, '/logging?level=info', 'POST');
  });

  test('answers 404 for unknown paths', async () => {
    assert.equal((await http(z.admin, '/nope')).status, 404);
  });

  test('answers a request target that is not a path with 400 on every port and keeps running (was: process exit)', async () => {
    for (const port of [z.admin, z.ready, z.stats]) {
      for (const target of ['//', '*', 'http://[']) {
        const r = await rawHttp({ port }, `GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
        assert.ok([400, 404].includes(statusLine(r)), `${port} ${target}: ${r}`);
      }
    }
    assert.equal(z.child.exitCode, null, 'still running');
    assert.equal((await http(z.ready, '/healthz/ready')).status, 200);
    await until('the refusal logged with its code', async () => (/HTTP_BAD_TARGET/.test(z.output()) ? true : undefined));
  });
});

describe('ztunnel local config', () => {
  test('reloads the file when it changes', async () => {
    const next = CONFIG.replace('name: deny-legacy', 'name: deny-legacy-v2');
    await writeFile(`${configPath}.tmp`, next);
    await rename(`${configPath}.tmp`, configPath);
    await until('reloaded', async () => {
      const dump = JSON.parse((await http(z.admin, '/config_dump')).body) as { policies: { name: string }[] };
      return dump.policies[0]?.name === 'deny-legacy-v2' ? true : undefined;
    });
  });

  test('keeps the last good config when the file turns invalid, and says why', async () => {
    const before = (await http(z.admin, '/config_dump')).body;
    await writeFile(configPath, CONFIG.replace('"10.244.2.7"', '"10.244.2.700"'));
    await until('reload failure logged', async () => (/CONFIG_INVALID_LOCAL_CONFIG/.test(z.output()) ? true : undefined));
    assert.match(z.output(), /workloads\[1\]\.workloadIps\[0\]/);
    const after = JSON.parse((await http(z.admin, '/config_dump')).body) as { workloads: unknown[] };
    assert.deepEqual(after.workloads, (JSON.parse(before) as { workloads: unknown[] }).workloads);
    assert.equal(z.child.exitCode, null, 'still running');
  });
});

describe('ztunnel local config directory', () => {
  test('survives its config directory being removed, and reloads the file once the directory is back', async () => {
    const own = await mkdtemp(join(tmpdir(), 'ztunnel-confdir-'));
    const sub = join(own, 'conf');
    const { mkdir } = await import('node:fs/promises');
    await mkdir(sub);
    const file = join(sub, 'local.yaml');
    await writeFile(file, CONFIG);
    const r = await startZtunnel({ LOCAL_XDS_PATH: file, INPOD_ENABLED: 'false' });
    try {
      await until('admin up', async () => ((await http(r.admin, '/config_dump')).status === 200 ? true : undefined));
      await rm(sub, { recursive: true, force: true });
      await until('the lost watch is logged', async () => (/cannot watch the local config directory/.test(r.output()) ? true : undefined));
      // The removal of the file itself triggers one reload, which fails; only the renewed watch can see what follows.
      await until('the reload of the removed file failed', async () => (/ENOENT/.test(r.output()) ? true : undefined));
      await mkdir(sub);
      await writeFile(file, CONFIG.replace('name: deny-legacy', 'name: deny-after-restore'));
      await until('reloaded from the restored directory', async () => {
        const dump = JSON.parse((await http(r.admin, '/config_dump')).body) as { policies: { name: string }[] };
        return dump.policies[0]?.name === 'deny-after-restore' ? true : undefined;
      });
      assert.equal(r.child.exitCode, null, 'still running');
    } finally {
      r.child.kill('SIGKILL');
      await rm(own, { recursive: true, force: true });
    }
  });
});

describe('ztunnel process', () => {
  test('is not ready while the node agent has not sent its snapshot', async () => {
    const ok = join(dir, 'ok.yaml');
    await writeFile(ok, CONFIG);
    const r = await startZtunnel({ LOCAL_XDS_PATH: ok, INPOD_UDS: join(dir, 'nobody.sock') });
    try {
      const res = await until('readiness answers', async () => await http(r.ready, '/healthz/ready'));
      assert.equal(res.status, 503);
      assert.match(res.body, /no snapshot from the node agent/);
    } finally {
      r.child.kill('SIGKILL');
    }
  });

  test('POST /quitquitquit drains and exits 0', async () => {
    const fresh = join(dir, 'quit.yaml');
    await writeFile(fresh, CONFIG);
    const r = await startZtunnel({ LOCAL_XDS_PATH: fresh, INPOD_ENABLED: 'false' });
    await until('admin up', async () => ((await http(r.admin, '/config_dump')).status === 200 ? true : undefined));
    assert.equal((await http(r.admin, '/quitquitquit', 'GET')).status, 405);
    const res = await http(r.admin, '/quitquitquit', 'POST');
    assert.equal(res.body, 'shutdown now\n');
    assert.equal(await exitOf(r.child), 0);
  });

  test('refuses to start without a source of workloads, with a clear message', async () => {
    const r = await startZtunnel({ LOCAL_XDS_PATH: '' });
    assert.equal(await exitOf(r.child), 1);
    assert.match(r.output(), /set LOCAL_XDS_PATH .* or XDS_ADDRESS/);
  });

  test('refuses to start with an invalid local config, naming the field', async () => {
    const bad = join(dir, 'bad.yaml');
    await writeFile(bad, 'workloads:\n- name: x\n  namespace: default\n  workloadIps: ["not-an-ip"]\n  surprise: 1\n');
    const r = await startZtunnel({ LOCAL_XDS_PATH: bad, INPOD_ENABLED: 'false' });
    assert.equal(await exitOf(r.child), 1);
    assert.match(r.output(), /CONFIG_INVALID_LOCAL_CONFIG|workloads\[0\]/);
  });

  test('refuses malformed environment values', async () => {
    const r = await startZtunnel({ LOCAL_XDS_PATH: configPath, PACKET_MARK: 'lots' });
    assert.equal(await exitOf(r.child), 1);
    assert.match(r.output(), /CONFIG_BAD_ENV.*PACKET_MARK=.*lots.*must be an integer/);
  });
});
