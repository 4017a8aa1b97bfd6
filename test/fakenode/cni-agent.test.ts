/**
 * The node agent end to end on the real kernel: a real mesh-cni-agent (child process), the real mesh-cni plugin
 * invoked per the CNI spec for a network namespace, real iptables and policy routing inside it, and the real
 * ztunnel-side ZDS client (ztunnel/inpod/zds-client.ts) in this process with a recording handler.
 * Needs root (fails, never skips). Names are unique per run (cna-<pid>-<n>); everything is removed in `after`,
 * also on failure: namespaces, sockets, state file, child processes.
 */
import assert from 'node:assert/strict';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { closeFd, netnsInode, openNetns } from '../../lib/native/index.js';
import { ZdsClient, type InpodHandler } from '../../ztunnel/inpod/zds-client.js';
import { silentLogger } from '../support/log.js';

const DIST = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const PLUGIN = join(DIST, 'cni', 'plugin', 'main.js');
const AGENT = join(DIST, 'cni', 'agent', 'main.js');
const RUN = `cna-${process.pid}`;
const AMBIENT_NS = 'ambient-demo';

function sh(cmd: string, ...args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

async function waitFor(what: string, pred: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

type ZdsEvent =
  | { kind: 'add'; uid: string; name: string; namespace: string; inode: number; nacked: boolean }
  | { kind: 'keep' | 'del'; uid: string }
  | { kind: 'snapshotSent'; current: string[] }
  | { kind: 'connected' };

/** A ztunnel stand-in: records every request; NACKs the first Add of the uids in nackOnce. */
class RecordingHandler implements InpodHandler {
  readonly events: ZdsEvent[] = [];
  readonly nackOnce = new Set<string>();

  async addWorkload(uid: string, info: { name: string; namespace: string }, netnsFd: number): Promise<void> {
    const inode = netnsInode(netnsFd);
    closeFd(netnsFd); // ours from the call on (zds-client ownership rule)
    const nacked = this.nackOnce.delete(uid);
    this.events.push({ kind: 'add', uid, name: info.name, namespace: info.namespace, inode, nacked });
    if (nacked) throw new Error('simulated bind failure in the pod netns');
  }

  keepWorkload(uid: string): void {
    this.events.push({ kind: 'keep', uid });
  }

  async delWorkload(uid: string): Promise<void> {
    this.events.push({ kind: 'del', uid });
  }

  async snapshotSent(current: ReadonlySet<string>): Promise<void> {
    this.events.push({ kind: 'snapshotSent', current: [...current].sort() });
  }

  connected(): void {
    this.events.push({ kind: 'connected' });
  }

  since(n: number): ZdsEvent[] {
    return this.events.slice(n);
  }
}

interface Pod {
  netns: string;
  path: string;
  inode: number;
  namespace: string;
  name: string;
  uid: string;
  containerId: string;
}

const dir = mkdtempSync(join(tmpdir(), `${RUN}-`));
const eventSock = join(dir, 'pluginevent.sock');
const zdsSock = join(dir, 'ztunnel.sock');
const stateFile = join(dir, 'pods.json');
const netnses: string[] = [];
let agent: ChildProcess | undefined;
let agentLog = '';
let client: ZdsClient | undefined;
const handler = new RecordingHandler();

function makePod(n: number, namespace: string): Pod {
  const netns = `${RUN}-${n}`;
  sh('ip', 'netns', 'add', netns);
  netnses.push(netns);
  // The loopback CNI plugin's job in a real chain; table 100's `local ... dev lo` route needs lo up.
  sh('ip', 'netns', 'exec', netns, 'ip', 'link', 'set', 'lo', 'up');
  const path = `/run/netns/${netns}`;
  const fd = openNetns(path);
  const inode = netnsInode(fd);
  closeFd(fd);
  return { netns, path, inode, namespace, name: `web-${n}`, uid: `uid-${RUN}-${n}`, containerId: `sandbox-${RUN}-${n}` };
}

async function startAgent(): Promise<void> {
  const logStart = agentLog.length; // the log spans every agent run; look only at this one's lines
  const child = spawn(process.execPath, [AGENT], {
    env: {
      PATH: process.env.PATH ?? '',
      CNI_EVENT_ADDRESS: eventSock,
      ZTUNNEL_UDS_ADDRESS: zdsSock,
      AMBIENT_NAMESPACES: AMBIENT_NS,
      LOG_LEVEL: 'debug',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  agent = child;
  child.stdout?.setEncoding('utf8').on('data', (s: string) => (agentLog += s));
  child.stderr?.setEncoding('utf8').on('data', (s: string) => (agentLog += s));
  await waitFor('the agent to listen', () => agentLog.includes('mesh-cni-agent started', logStart) || child.exitCode !== null);
  assert.equal(child.exitCode, null, `the agent exited at start:\n${agentLog.slice(logStart)}`);
}

async function stopAgent(): Promise<void> {
  const child = agent;
  if (child === undefined || child.exitCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  await exited;
  agent = undefined;
}

interface PluginRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

const prevResultFor = (ip: string) => ({
  cniVersion: '1.0.0',
  interfaces: [{ name: 'eth0', sandbox: '' }],
  ips: [{ address: `${ip}/24`, interface: 0 }],
});

function plugin(command: 'ADD' | 'DEL', pod: Pod, ip = '10.77.0.9'): Promise<PluginRun> {
  const conf = { cniVersion: '1.0.0', name: 'fakenode', type: 'mesh-cni', cni_event_address: eventSock, prevResult: prevResultFor(ip) };
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [PLUGIN], {
      env: {
        PATH: process.env.PATH ?? '',
        CNI_COMMAND: command,
        CNI_CONTAINERID: pod.containerId,
        CNI_NETNS: pod.path,
        CNI_IFNAME: 'eth0',
        CNI_PATH: '/usr/lib/cni',
        CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${pod.namespace};K8S_POD_NAME=${pod.name};K8S_POD_INFRA_CONTAINER_ID=${pod.containerId};K8S_POD_UID=${pod.uid}`,
      },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(JSON.stringify(conf));
  });
}

/** What iptables-save shows in the pod, without comments and counters (comparable between runs). */
function podRules(pod: Pod): string {
  return sh('ip', 'netns', 'exec', pod.netns, 'iptables-save').split('\n')
    .filter((l) => !l.startsWith('#')).map((l) => l.replace(/\[\d+:\d+\]/, '')).join('\n');
}

function podIpRules(pod: Pod): string[] {
  return sh('ip', 'netns', 'exec', pod.netns, 'ip', '-4', 'rule', 'show').split('\n').filter((l) => /fwmark 0x111\/0xfff/.test(l));
}

function podTable100(pod: Pod): string {
  try {
    return sh('ip', 'netns', 'exec', pod.netns, 'ip', '-4', 'route', 'show', 'table', '100').trim();
  } catch (err) {
    // A namespace where table 100 was never used has no such table: nothing in it.
    if (/FIB table does not exist/.test(String((err as { stderr?: unknown }).stderr))) return '';
    throw err;
  }
}

const EXPECTED_RULES = [
  /^\*mangle$/m,
  /^:ISTIO_PRERT - $/m,
  /^-A PREROUTING -j ISTIO_PRERT$/m,
  /^-A ISTIO_PRERT -m mark --mark 0x539\/0xfff -j CONNMARK --set-xmark 0x111\/0xfff$/m,
  /^-A ISTIO_OUTPUT -m connmark --mark 0x111\/0xfff -j CONNMARK --restore-mark --nfmask 0xffffffff --ctmask 0xffffffff$/m,
  /^-A ISTIO_PRERT -s 169\.254\.7\.127\/32 -p tcp -m tcp -j ACCEPT$/m,
  /^-A ISTIO_OUTPUT -d 169\.254\.7\.127\/32 -p tcp -m tcp -j ACCEPT$/m,
  /^-A ISTIO_PRERT ! -d 127\.0\.0\.1\/32 -p tcp -m tcp ! --dport 15008 -m mark ! --mark 0x539\/0xfff -j REDIRECT --to-ports 15006$/m,
  /^-A ISTIO_OUTPUT -p tcp -m mark --mark 0x111\/0xfff -j ACCEPT$/m,
  /^-A ISTIO_OUTPUT ! -d 127\.0\.0\.1\/32 -o lo -j ACCEPT$/m,
  /^-A ISTIO_OUTPUT ! -d 127\.0\.0\.1\/32 -p tcp -m mark ! --mark 0x539\/0xfff -j REDIRECT --to-ports 15001$/m,
];

function assertRedirected(pod: Pod): void {
  const rules = podRules(pod);
  for (const re of EXPECTED_RULES) assert.match(rules, re);
  assert.doesNotMatch(rules, /15053|CT --zone/, 'DNS capture is off by default');
  assert.equal((rules.match(/^-A OUTPUT -j ISTIO_OUTPUT$/gm) ?? []).length, 2, 'one jump in mangle and one in nat');
  assert.equal(podIpRules(pod).length, 1, `ip rule: ${podIpRules(pod).join(' | ')}`);
  assert.match(podIpRules(pod)[0] ?? '', /^32764:\s+from all fwmark 0x111\/0xfff lookup 100/);
  assert.equal(podTable100(pod), 'local default dev lo scope host');
}

function assertClean(pod: Pod): void {
  assert.doesNotMatch(podRules(pod), /ISTIO_/);
  assert.deepEqual(podIpRules(pod), []);
  assert.equal(podTable100(pod), '');
}

function adds(events: ZdsEvent[]): Array<Extract<ZdsEvent, { kind: 'add' }>> {
  return events.filter((e): e is Extract<ZdsEvent, { kind: 'add' }> => e.kind === 'add');
}

function statePods(): string[] {
  return (JSON.parse(readFileSync(stateFile, 'utf8')) as { pods: Array<{ uid: string }> }).pods.map((p) => p.uid).sort();
}

describe('mesh-cni-agent with the mesh-cni plugin and a ZDS client, on real network namespaces', () => {
  let podA: Pod;
  let podOther: Pod;
  let podNack: Pod;

  before(async () => {
    assert.equal(process.getuid?.(), 0, 'this tier creates network namespaces and iptables rules: run it as root (sudo npm test)');
    podA = makePod(1, AMBIENT_NS);
    podOther = makePod(2, 'not-ambient');
    podNack = makePod(3, AMBIENT_NS);
    await startAgent();
    client = new ZdsClient({ path: zdsSock, handler, logger: silentLogger() }).start();
    await client.waitForSnapshot();
  });

  after(async () => {
    await client?.close();
    await stopAgent().catch(() => undefined);
    agent?.kill('SIGKILL');
    for (const ns of netnses) {
      try {
        sh('ip', 'netns', 'del', ns);
      } catch {
        // already gone
      }
    }
    rmSync(dir, { recursive: true, force: true });
  });

  test('the client connects, says hello and gets an empty snapshot', () => {
    assert.equal(client?.ready, true);
    assert.deepEqual(handler.events, [{ kind: 'connected' }, { kind: 'snapshotSent', current: [] }]);
  });

  test('ADD of an enrolled pod: rules in its netns, fwmark rule, table 100, AddWorkload with that netns', async () => {
    const mark = handler.events.length;
    const r = await plugin('ADD', podA, '10.77.0.1');
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}\n${agentLog}`);
    assert.deepEqual(JSON.parse(r.stdout), prevResultFor('10.77.0.1'), 'prevResult passed through');
    assertRedirected(podA);
    const got = adds(handler.since(mark));
    assert.equal(got.length, 1, JSON.stringify(handler.since(mark)));
    assert.deepEqual(got[0], { kind: 'add', uid: podA.uid, name: podA.name, namespace: AMBIENT_NS, inode: podA.inode, nacked: false });
    assert.deepEqual(statePods(), [podA.uid]);
  });

  test('ADD twice does not duplicate the rules (reconciled) nor the AddWorkload', async () => {
    const before = podRules(podA);
    const mark = handler.events.length;
    const r = await plugin('ADD', podA, '10.77.0.1');
    assert.equal(r.code, 0, r.stdout);
    assert.equal(podRules(podA), before);
    assertRedirected(podA);
    assert.deepEqual(handler.since(mark), []);
  });

  test('a pod in a namespace not in AMBIENT_NAMESPACES gets no rules and no AddWorkload', async () => {
    const mark = handler.events.length;
    const r = await plugin('ADD', podOther, '10.77.0.2');
    assert.equal(r.code, 0, r.stdout);
    assert.deepEqual(JSON.parse(r.stdout), prevResultFor('10.77.0.2'));
    assertClean(podOther);
    assert.deepEqual(handler.since(mark), []);
    assert.deepEqual(statePods(), [podA.uid]);
  });

  test('a NACK from ztunnel: the pod stays enrolled and the Add is retried', async () => {
    handler.nackOnce.add(podNack.uid);
    const mark = handler.events.length;
    const r = await plugin('ADD', podNack, '10.77.0.3');
    assert.equal(r.code, 0, `the pod still starts: ${r.stdout}`);
    assertRedirected(podNack);
    await waitFor('the retried AddWorkload', () => adds(handler.since(mark)).length >= 2, 10_000);
    const got = adds(handler.since(mark));
    assert.deepEqual(got.map((e) => [e.uid, e.inode, e.nacked]), [[podNack.uid, podNack.inode, true], [podNack.uid, podNack.inode, false]]);
    assert.deepEqual(statePods(), [podA.uid, podNack.uid].sort());
  });

  test('a restarted client gets a snapshot: Add for every pod, then SnapshotSent', async () => {
    await client?.close();
    const mark = handler.events.length;
    client = new ZdsClient({ path: zdsSock, handler, logger: silentLogger() }).start();
    await client.waitForSnapshot();
    const events = handler.since(mark);
    assert.deepEqual(events[0], { kind: 'connected' });
    const snapAdds = adds(events).map((e) => [e.uid, e.inode]).sort();
    assert.deepEqual(snapAdds, [[podA.uid, podA.inode], [podNack.uid, podNack.inode]].sort());
    assert.deepEqual(events.at(-1), { kind: 'snapshotSent', current: [podA.uid, podNack.uid].sort() });
    assert.equal(events.length, 4);
  });

  test('a restarted agent re-learns its pods from the state file and snapshots them; rules stay in place meanwhile', async () => {
    const connectionsBefore = client?.connections ?? 0;
    await stopAgent();
    assert.deepEqual(statePods(), [podA.uid, podNack.uid].sort(), 'the state file survives the agent');
    assertRedirected(podA);
    await waitFor('the client to notice', () => client?.connected === false);
    const mark = handler.events.length;
    await startAgent();
    await waitFor('a new connection and snapshot', () => (client?.connections ?? 0) > connectionsBefore && client?.ready === true);
    const events = handler.since(mark);
    assert.deepEqual(adds(events).map((e) => [e.uid, e.inode]).sort(), [[podA.uid, podA.inode], [podNack.uid, podNack.inode]].sort());
    assert.deepEqual(events.at(-1), { kind: 'snapshotSent', current: [podA.uid, podNack.uid].sort() });
  });

  test('DEL removes everything from the pod and sends DelWorkload; a second DEL is a no-op', async () => {
    const mark = handler.events.length;
    const r = await plugin('DEL', podA);
    assert.equal(r.code, 0, r.stdout);
    assert.equal(r.stdout, '');
    assertClean(podA);
    assert.deepEqual(handler.since(mark), [{ kind: 'del', uid: podA.uid }]);
    assert.deepEqual(statePods(), [podNack.uid]);
    const again = await plugin('DEL', podA);
    assert.equal(again.code, 0);
    assert.deepEqual(handler.since(mark), [{ kind: 'del', uid: podA.uid }]);
    assertRedirected(podNack);
  });

  test('DEL succeeds while the agent is down (pods stay deletable)', async () => {
    await stopAgent();
    const r = await plugin('DEL', podNack);
    assert.equal(r.code, 0, r.stdout);
    assert.equal(existsSync(eventSock), false, 'the stopped agent removed its socket');
    await startAgent();
    const r2 = await plugin('DEL', podNack);
    assert.equal(r2.code, 0);

    assertClean(podNack);
    assert.deepEqual(statePods(), []);
  });
});
