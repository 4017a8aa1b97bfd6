/**
 * The mesh-cni plugin as a container runtime runs it (CNI spec 1.0.0): the compiled program as a child process
 * with CNI_* env and the network configuration on stdin; a tiny HTTP server on a Unix socket plays the node agent.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { testbedEnv } from '../../testbed/env.js';

const PLUGIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'cni', 'plugin', 'main.js');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

function runPlugin(env: Record<string, string>, stdin: string): Promise<Run> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [PLUGIN], {
      env: { PATH: testbedEnv().path, ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr, ms: Date.now() - started }));
    child.stdin.end(stdin);
  });
}

interface Received {
  url: string;
  body: Record<string, unknown>;
}

/** An agent stand-in: records each event and answers with `answer(url)`. */
async function fakeAgent(path: string, answer: (r: Received) => { status: number; body: unknown }) {
  const received: Received[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const r = { url: req.url ?? '', body: JSON.parse(Buffer.concat(chunks).toString()) as Record<string, unknown> };
      received.push(r);
      const a = answer(r);
      res.writeHead(a.status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(a.body));
    });
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return { received, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

const dir = mkdtempSync(join(tmpdir(), 'cni-plugin-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const PREV_RESULT = {
  cniVersion: '1.0.0',
  interfaces: [{ name: 'eth0', mac: '0a:58:0a:f4:00:07', sandbox: '/var/run/netns/cni-1' }],
  ips: [
    { address: '10.244.0.7/24', gateway: '10.244.0.1', interface: 0 },
    { address: 'fd00::7/64', interface: 0 },
  ],
  routes: [{ dst: '0.0.0.0/0' }],
  dns: { nameservers: ['10.96.0.10'] },
};

function conf(extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ cniVersion: '1.0.0', name: 'k8s-pod-network', type: 'mesh-cni', ...extra });
}

const baseEnv = {
  CNI_CONTAINERID: 'c0ffee',
  CNI_NETNS: '/var/run/netns/cni-1',
  CNI_IFNAME: 'eth0',
  CNI_PATH: '/opt/cni/bin',
  CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=demo;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=c0ffee;K8S_POD_UID=1234-abcd',
};

describe('mesh-cni plugin', () => {
  const sock = join(dir, 'agent.sock');
  let agent: Awaited<ReturnType<typeof fakeAgent>>;
  let nextAnswer: { status: number; body: unknown } = { status: 200, body: { enrolled: true, message: 'ok' } };
  before(async () => {
    agent = await fakeAgent(sock, () => nextAnswer);
  });
  after(() => agent.close());

  test('VERSION prints the supported versions in the requested version', async () => {
    const r = await runPlugin({ CNI_COMMAND: 'VERSION' }, JSON.stringify({ cniVersion: '0.4.0' }));
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { cniVersion: '0.4.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0'] });
    const noStdin = await runPlugin({ CNI_COMMAND: 'VERSION' }, '');
    assert.equal(JSON.parse(noStdin.stdout).cniVersion, '1.0.0');
  });

  test('ADD passes prevResult through unchanged and sends the pod (CNI_ARGS, netns, IPs) to the agent', async () => {
    nextAnswer = { status: 200, body: { enrolled: true, message: 'enrolled' } };
    const before = agent.received.length;
    const r = await runPlugin({ ...baseEnv, CNI_COMMAND: 'ADD' }, conf({ prevResult: PREV_RESULT, cni_event_address: sock }));
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), PREV_RESULT);
    const ev = agent.received[before];
    assert.equal(ev?.url, '/cmdadd');
    assert.deepEqual(ev?.body, {
      command: 'ADD',
      containerId: 'c0ffee',
      netns: '/var/run/netns/cni-1',
      ifName: 'eth0',
      podNamespace: 'demo',
      podName: 'web-0',
      podUid: '1234-abcd',
      ips: ['10.244.0.7', 'fd00::7'],
    });
  });

  test('CNI_ARGS: order, unknown keys and a missing uid; no namespace/name = not a pod, passed through without the agent', async () => {
    const before = agent.received.length;
    const r = await runPlugin(
      { ...baseEnv, CNI_COMMAND: 'ADD', CNI_ARGS: 'K8S_POD_NAME=a=b;FOO=;K8S_POD_NAMESPACE=ns2' },
      conf({ prevResult: PREV_RESULT, cni_event_address: sock }),
    );
    assert.equal(r.code, 0, r.stdout);
    const ev = agent.received[before]?.body;
    assert.deepEqual([ev?.podNamespace, ev?.podName, ev?.podUid], ['ns2', 'a=b', '']);
    const plain = await runPlugin(
      { ...baseEnv, CNI_COMMAND: 'ADD', CNI_ARGS: 'IgnoreUnknown=1' },
      conf({ prevResult: PREV_RESULT, cni_event_address: join(dir, 'nobody.sock') }),
    );
    assert.equal(plain.code, 0, plain.stdout);
    assert.deepEqual(JSON.parse(plain.stdout), PREV_RESULT);
    assert.equal(agent.received.length, before + 1, 'the agent heard only the pod');
  });

  test('errors are CNI error JSON on stdout with a non-zero exit', async () => {
    const cases: Array<[string, Record<string, string>, string, number, RegExp]> = [
      ['bad JSON', { ...baseEnv, CNI_COMMAND: 'ADD' }, '{nope', 6, /decode/],
      ['missing type', { ...baseEnv, CNI_COMMAND: 'ADD' }, JSON.stringify({ cniVersion: '1.0.0', name: 'n' }), 7, /"type"/],
      ['old version', { ...baseEnv, CNI_COMMAND: 'ADD' }, conf({ cniVersion: '0.2.0' }), 1, /incompatible CNI version 0\.2\.0/],
      ['missing CNI_NETNS', { ...baseEnv, CNI_NETNS: '', CNI_COMMAND: 'ADD' }, conf(), 4, /CNI_NETNS/],
      ['malformed CNI_ARGS', { ...baseEnv, CNI_ARGS: 'K8S_POD_NAME', CNI_COMMAND: 'ADD' }, conf(), 4, /CNI_ARGS/],
      ['unknown command', { ...baseEnv, CNI_COMMAND: 'FROB' }, conf(), 4, /unknown CNI_COMMAND FROB/],
      ['agent unreachable', { ...baseEnv, CNI_COMMAND: 'ADD' }, conf({ cni_event_address: join(dir, 'absent.sock') }), 11, /not reachable/],
    ];
    for (const [name, env, stdin, code, msg] of cases) {
      const r = await runPlugin(env, stdin);
      assert.notEqual(r.code, 0, name);
      const err = JSON.parse(r.stdout) as Record<string, unknown>;
      assert.deepEqual(Object.keys(err).sort(), ['cniVersion', 'code', 'details', 'msg'], name);
      assert.equal(err.code, code, `${name}: ${r.stdout}`);
      assert.match(String(err.msg), msg, name);
    }
  });

  test("ADD fails with the agent's reason when it refuses the pod", async () => {
    nextAnswer = { status: 500, body: { code: 'CNI_AGENT_RULES_FAILED', error: 'iptables-restore exploded' } };
    const r = await runPlugin({ ...baseEnv, CNI_COMMAND: 'ADD' }, conf({ prevResult: PREV_RESULT, cni_event_address: sock }));
    assert.equal(r.code, 1);
    const err = JSON.parse(r.stdout) as { code: number; msg: string; details: string };
    assert.equal(err.code, 100);
    assert.match(err.msg, /refused pod demo\/web-0/);
    assert.match(err.details, /CNI_AGENT_RULES_FAILED: iptables-restore exploded/);
    nextAnswer = { status: 200, body: { enrolled: true, message: 'ok' } };
  });

  test('DEL succeeds with no output when the agent is unreachable, and is delivered when it is there', async () => {
    const gone = await runPlugin({ ...baseEnv, CNI_COMMAND: 'DEL', CNI_NETNS: '' }, conf({ cni_event_address: join(dir, 'absent.sock') }));
    assert.equal(gone.code, 0, gone.stdout);
    assert.equal(gone.stdout, '');
    assert.match(gone.stderr, /DEL not delivered/);
    const broken = await runPlugin({ ...baseEnv, CNI_COMMAND: 'DEL' }, '{broken');
    assert.equal(broken.code, 0, 'even a broken config never blocks a pod deletion');
    const before = agent.received.length;
    const ok = await runPlugin({ ...baseEnv, CNI_COMMAND: 'DEL' }, conf({ cni_event_address: sock }));
    assert.equal(ok.code, 0);
    assert.equal(ok.stdout, '');
    assert.equal(agent.received[before]?.url, '/cmddel');
    assert.equal(agent.received[before]?.body.podUid, '1234-abcd');
  });

  test('CHECK succeeds without output', async () => {
    const r = await runPlugin({ ...baseEnv, CNI_COMMAND: 'CHECK' }, conf({ prevResult: PREV_RESULT }));
    assert.equal(r.code, 0, r.stdout);
    assert.equal(r.stdout, '');
  });
});
