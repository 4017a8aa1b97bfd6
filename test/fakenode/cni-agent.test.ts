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
import { NodeAgent } from '../../cni/agent/agent.js';
import { loadAgentConfig } from '../../cni/agent/config.js';
import {
  DATAPLANE_MODE_LABEL,
  REDIRECTION_ANNOTATION,
  type EnrollmentDecision,
  type EnrollmentListener,
  type EnrollmentPodRef,
  type EnrollmentSource,
} from '../../cni/agent/enrollment.js';
import { KubeRedirectionAnnotator, KubernetesEnrollment } from '../../cni/agent/kube-enrollment.js';
import { closeFd, netnsInode, openNetns } from '../../lib/native/index.js';
import { ZdsClient, type InpodHandler, type InpodWorkloadInfo } from '../../ztunnel/inpod/zds-client.js';
import { FakeApiServer, kubeConfigFor } from '../../testbed/fixtures/fake-kube-api.js';
import { silentLogger } from '../../testbed/fixtures/log.js';
import { testbedEnv } from '../../testbed/env.js';

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
  | { kind: 'add'; uid: string; name: string; namespace: string; serviceAccount: string; inode: number; nacked: boolean }
  | { kind: 'keep' | 'del'; uid: string }
  | { kind: 'snapshotSent'; current: string[] }
  | { kind: 'connected' };

/** A ztunnel stand-in: records every request; NACKs the first Add of the uids in nackOnce. */
class RecordingHandler implements InpodHandler {
  readonly events: ZdsEvent[] = [];
  readonly nackOnce = new Set<string>();

  async addWorkload(uid: string, info: InpodWorkloadInfo, netnsFd: number): Promise<void> {
    const inode = netnsInode(netnsFd);
    closeFd(netnsFd); // ours from the call on (zds-client ownership rule)
    const nacked = this.nackOnce.delete(uid);
    this.events.push({ kind: 'add', uid, name: info.name, namespace: info.namespace, serviceAccount: info.serviceAccount, inode, nacked });
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
      PATH: testbedEnv().path,
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

function plugin(command: 'ADD' | 'DEL', pod: Pod, ip = '10.77.0.9', socket = eventSock): Promise<PluginRun> {
  const conf = { cniVersion: '1.0.0', name: 'fakenode', type: 'mesh-cni', cni_event_address: socket, prevResult: prevResultFor(ip) };
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [PLUGIN], {
      env: {
        PATH: testbedEnv().path,
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
  return sh('ip', 'netns', 'exec', pod.netns, 'iptables-save')
    .split('\n')
    .filter((l) => !l.startsWith('#'))
    .map((l) => l.replace(/\[\d+:\d+\]/, ''))
    .join('\n');
}

function podIpRules(pod: Pod): string[] {
  return sh('ip', 'netns', 'exec', pod.netns, 'ip', '-4', 'rule', 'show')
    .split('\n')
    .filter((l) => /fwmark 0x111\/0xfff/.test(l));
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

interface StateEntry {
  uid: string;
  enrolled: boolean;
  serviceAccount: string;
  netnsPath: string;
  netnsInode: number;
  containerId: string;
}

function stateEntries(file = stateFile): StateEntry[] {
  return (JSON.parse(readFileSync(file, 'utf8')) as { pods: StateEntry[] }).pods;
}

/** The enrolled pods in the state file (pods known but not enrolled are kept there too, enrolled=false). */
function statePods(file = stateFile): string[] {
  return stateEntries(file)
    .filter((p) => p.enrolled)
    .map((p) => p.uid)
    .sort();
}

function stateEntry(uid: string, file: string): StateEntry | undefined {
  return stateEntries(file).find((p) => p.uid === uid);
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
    assert.deepEqual(got[0], {
      kind: 'add',
      uid: podA.uid,
      name: podA.name,
      namespace: AMBIENT_NS,
      serviceAccount: 'default',
      inode: podA.inode,
      nacked: false,
    });
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
    assert.equal(stateEntry(podOther.uid, stateFile)?.enrolled, false, 'known, not enrolled');
  });

  test('a NACK from ztunnel: the pod stays enrolled and the Add is retried', async () => {
    handler.nackOnce.add(podNack.uid);
    const mark = handler.events.length;
    const r = await plugin('ADD', podNack, '10.77.0.3');
    assert.equal(r.code, 0, `the pod still starts: ${r.stdout}`);
    assertRedirected(podNack);
    await waitFor('the retried AddWorkload', () => adds(handler.since(mark)).length >= 2, 10_000);
    const got = adds(handler.since(mark));
    assert.deepEqual(
      got.map((e) => [e.uid, e.inode, e.nacked]),
      [
        [podNack.uid, podNack.inode, true],
        [podNack.uid, podNack.inode, false],
      ],
    );
    assert.deepEqual(statePods(), [podA.uid, podNack.uid].sort());
  });

  test('a restarted client gets a snapshot: Add for every pod, then SnapshotSent', async () => {
    await client?.close();
    const mark = handler.events.length;
    client = new ZdsClient({ path: zdsSock, handler, logger: silentLogger() }).start();
    await client.waitForSnapshot();
    const events = handler.since(mark);
    assert.deepEqual(events[0], { kind: 'connected' });
    const snapAdds = adds(events)
      .map((e) => [e.uid, e.inode])
      .sort();
    assert.deepEqual(
      snapAdds,
      [
        [podA.uid, podA.inode],
        [podNack.uid, podNack.inode],
      ].sort(),
    );
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
    assert.deepEqual(
      adds(events)
        .map((e) => [e.uid, e.inode])
        .sort(),
      [
        [podA.uid, podA.inode],
        [podNack.uid, podNack.inode],
      ].sort(),
    );
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

/** An enrollment source the test flips at runtime; reports each flip as a change of that pod. */
class FlipEnrollment implements EnrollmentSource {
  /** "namespace/name" → service account, for the enrolled pods. */
  readonly #enrolled = new Map<string, string>();
  readonly #listeners = new Set<EnrollmentListener>();
  starts = 0;
  stops = 0;
  /** Decisions taken and held back (see hold()). */
  held = 0;
  #gate: Promise<void> | undefined;

  async decide(pod: EnrollmentPodRef): Promise<EnrollmentDecision> {
    const sa = this.#enrolled.get(`${pod.namespace}/${pod.name}`);
    const decision: EnrollmentDecision =
      sa === undefined
        ? { enrolled: false, reason: 'the test source says no', serviceAccount: undefined }
        : { enrolled: true, reason: 'the test source says yes', serviceAccount: sa };
    if (this.#gate !== undefined) {
      this.held++;
      await this.#gate; // answers what was true before any flip made meanwhile: a slow API lookup
    }
    return decision;
  }

  /** Until the returned function is called, decisions are taken at once but answered late. */
  hold(): () => void {
    let release: () => void = () => undefined;
    this.#gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    return () => {
      this.#gate = undefined;
      release();
    };
  }

  onChange(listener: EnrollmentListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  start(): Promise<void> {
    this.starts++;
    return Promise.resolve();
  }

  stop(): Promise<void> {
    this.stops++;
    return Promise.resolve();
  }

  /** Enrolls the pod with `serviceAccount`, or unenrolls it (undefined), and reports the change. */
  flip(pod: Pod, serviceAccount: string | undefined): void {
    const key = `${pod.namespace}/${pod.name}`;
    if (serviceAccount === undefined) this.#enrolled.delete(key);
    else this.#enrolled.set(key, serviceAccount);
    for (const l of this.#listeners) l({ pod: { namespace: pod.namespace, name: pod.name } });
  }
}

describe('node agent following an enrollment source that changes its mind (in-process agent, real netns and ZDS)', () => {
  const source = new FlipEnrollment();
  const zh = new RecordingHandler();
  let flipDir = '';
  let sock = '';
  let state = '';
  let nodeAgent: NodeAgent | undefined;
  let zc: ZdsClient | undefined;
  let podX: Pod;
  let podY: Pod;
  let podZ: Pod;
  let podW: Pod;

  const startNodeAgent = async (): Promise<NodeAgent> => {
    const config = loadAgentConfig({ CNI_EVENT_ADDRESS: sock, ZTUNNEL_UDS_ADDRESS: join(flipDir, 'ztunnel.sock') });
    nodeAgent = await NodeAgent.start({ config, logger: silentLogger(), enrollment: source, retryInitialMs: 100 });
    return nodeAgent;
  };

  before(async () => {
    assert.equal(process.getuid?.(), 0, 'this tier creates network namespaces and iptables rules: run it as root (sudo npm test)');
    flipDir = mkdtempSync(join(tmpdir(), `${RUN}-flip-`));
    sock = join(flipDir, 'pluginevent.sock');
    state = join(flipDir, 'pods.json');
    podX = makePod(11, 'flip-demo');
    podY = makePod(12, 'flip-demo');
    podZ = makePod(13, 'flip-other');
    podW = makePod(14, 'flip-demo');
    await startNodeAgent();
    assert.equal(source.starts, 1, 'the agent starts its source');
    zc = new ZdsClient({ path: join(flipDir, 'ztunnel.sock'), handler: zh, logger: silentLogger() }).start();
    await zc.waitForSnapshot();
  });

  after(async () => {
    await zc?.close();
    await nodeAgent?.stop().catch(() => undefined);
    for (const ns of netnses) {
      try {
        sh('ip', 'netns', 'del', ns);
      } catch {
        // already gone
      }
    }
    if (flipDir !== '') rmSync(flipDir, { recursive: true, force: true });
  });

  test('a pod added while not enrolled gets no rules and no AddWorkload, but is remembered with its netns', async () => {
    const mark = zh.events.length;
    const r = await plugin('ADD', podX, '10.78.0.1', sock);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    assertClean(podX);
    assert.deepEqual(zh.since(mark), []);
    const e = stateEntry(podX.uid, state);
    assert.deepEqual(e && [e.enrolled, e.netnsPath, e.netnsInode, e.containerId], [false, podX.path, podX.inode, podX.containerId]);
    assert.equal(nodeAgent?.pods.get(podX.uid)?.netnsFd, undefined, 'no descriptor held for a pod not in the mesh');
  });

  test('flipped to enrolled: rules in its netns and AddWorkload with its service account', async () => {
    const mark = zh.events.length;
    source.flip(podX, 'reviews-sa');
    await waitFor('the AddWorkload', () => adds(zh.since(mark)).length >= 1);
    assertRedirected(podX);
    assert.deepEqual(zh.since(mark), [
      {
        kind: 'add',
        uid: podX.uid,
        name: podX.name,
        namespace: 'flip-demo',
        serviceAccount: 'reviews-sa',
        inode: podX.inode,
        nacked: false,
      },
    ]);
    assert.deepEqual([stateEntry(podX.uid, state)?.enrolled, stateEntry(podX.uid, state)?.serviceAccount], [true, 'reviews-sa']);
  });

  test('flipped back: rules removed and DelWorkload; the pod stays known, not enrolled', async () => {
    const mark = zh.events.length;
    source.flip(podX, undefined);
    await waitFor('the DelWorkload', () => zh.since(mark).length >= 1);
    assert.deepEqual(zh.since(mark), [{ kind: 'del', uid: podX.uid }]);
    await waitFor('the state file', () => stateEntry(podX.uid, state)?.enrolled === false);
    assertClean(podX);
    assert.equal(nodeAgent?.pods.get(podX.uid)?.netnsFd, undefined, 'the descriptor is closed');
  });

  test("a pod enrolled at ADD gets the source's service account in WorkloadInfo", async () => {
    source.flip(podZ, 'ratings-sa'); // before its ADD: nothing known to reconcile yet
    const mark = zh.events.length;
    const r = await plugin('ADD', podZ, '10.78.0.3', sock);
    assert.equal(r.code, 0, r.stdout);
    assertRedirected(podZ);
    assert.deepEqual(
      adds(zh.since(mark)).map((e) => [e.uid, e.serviceAccount, e.inode]),
      [[podZ.uid, 'ratings-sa', podZ.inode]],
    );
  });

  test('a restarted agent keeps the not-enrolled pod known, leaves it out of the snapshot, and can still enroll it', async () => {
    const connectionsBefore = zc?.connections ?? 0;
    await nodeAgent?.stop();
    assert.equal(source.stops, 1, 'the agent stops its source');
    assert.deepEqual(
      stateEntries(state)
        .map((p) => [p.uid, p.enrolled])
        .sort(),
      [
        [podX.uid, false],
        [podZ.uid, true],
      ].sort(),
    );
    await waitFor('the client to notice', () => zc?.connected === false);
    const mark = zh.events.length;
    const restarted = await startNodeAgent();
    assert.equal(restarted.pods.get(podX.uid)?.enrolled, false);
    await waitFor('a new connection and snapshot', () => (zc?.connections ?? 0) > connectionsBefore && zc?.ready === true);
    assert.deepEqual(zh.since(mark), [
      { kind: 'connected' },
      {
        kind: 'add',
        uid: podZ.uid,
        name: podZ.name,
        namespace: 'flip-other',
        serviceAccount: 'ratings-sa',
        inode: podZ.inode,
        nacked: false,
      },
      { kind: 'snapshotSent', current: [podZ.uid] },
    ]);
    assertClean(podX);

    const mark2 = zh.events.length;
    source.flip(podX, 'reviews-sa');
    await waitFor('the AddWorkload after the restart', () => adds(zh.since(mark2)).length >= 1);
    assertRedirected(podX);
    assert.deepEqual(
      adds(zh.since(mark2)).map((e) => [e.uid, e.serviceAccount, e.inode]),
      [[podX.uid, 'reviews-sa', podX.inode]],
    );
    source.flip(podX, undefined);
    await waitFor('the DelWorkload after the restart', () => zh.since(mark2).some((e) => e.kind === 'del'));
    await waitFor('the state file', () => stateEntry(podX.uid, state)?.enrolled === false);
    assertClean(podX);
  });

  test('a not-enrolled pod whose netns path now names another namespace is forgotten, not enrolled', async () => {
    const r = await plugin('ADD', podY, '10.78.0.2', sock);
    assert.equal(r.code, 0, r.stdout);
    assert.equal(stateEntry(podY.uid, state)?.netnsInode, podY.inode);
    // The sandbox is gone (its DEL never arrived) and a new one got the same path.
    sh('ip', 'netns', 'del', podY.netns);
    sh('ip', 'netns', 'add', podY.netns);
    const mark = zh.events.length;
    source.flip(podY, 'reviews-sa');
    await waitFor('the pod to be forgotten', () => nodeAgent?.pods.get(podY.uid) === undefined);
    assert.equal(stateEntry(podY.uid, state), undefined);
    assertClean(podY);
    assert.deepEqual(zh.since(mark), []);
  });

  test('a change reported while an ADD is still deciding is not lost', async () => {
    const release = source.hold();
    const mark = zh.events.length;
    const added = plugin('ADD', podW, '10.78.0.4', sock);
    await waitFor('the ADD to be deciding', () => source.held > 0);
    source.flip(podW, 'late-sa'); // the agent does not know podW yet: only the ADD can notice
    release();
    const r = await added;
    assert.equal(r.code, 0, r.stdout);
    await waitFor('the AddWorkload', () => adds(zh.since(mark)).length >= 1);
    assertRedirected(podW);
    assert.deepEqual(
      adds(zh.since(mark)).map((e) => [e.uid, e.serviceAccount]),
      [[podW.uid, 'late-sa']],
    );
    const d = await plugin('DEL', podW, undefined, sock);
    assert.equal(d.code, 0, d.stdout);
    assertClean(podW);
  });

  test('DEL forgets a not-enrolled pod without telling ztunnel; an enrolled one is removed as before', async () => {
    const mark = zh.events.length;
    const r = await plugin('DEL', podX, undefined, sock);
    assert.equal(r.code, 0, r.stdout);
    assert.equal(stateEntry(podX.uid, state), undefined);
    assert.deepEqual(zh.since(mark), []);
    const r2 = await plugin('DEL', podZ, undefined, sock);
    assert.equal(r2.code, 0, r2.stdout);
    assert.deepEqual(zh.since(mark), [{ kind: 'del', uid: podZ.uid }]);
    assertClean(podZ);
    assert.deepEqual(stateEntries(state), []);
  });
});

describe('node agent with the Kubernetes source and annotator, against a fake API server (real netns and ZDS)', () => {
  const api = new FakeApiServer();
  const zh = new RecordingHandler();
  let kdir = '';
  let nodeAgent: NodeAgent | undefined;
  let zc: ZdsClient | undefined;
  let podK: Pod;

  /** The redirection annotation values the agent patched, in order (null = removed). */
  const annotations = (): Array<string | null> =>
    api.patches.map(
      (p) => (p.body as { metadata: { annotations: Record<string, string | null> } }).metadata.annotations[REDIRECTION_ANNOTATION] ?? null,
    );

  const setPodLabels = (labels: Record<string, string>): void => {
    api.setPod({
      metadata: { name: podK.name, namespace: podK.namespace, uid: podK.uid, labels },
      spec: { nodeName: 'node-k', serviceAccountName: 'web-sa', containers: [{ name: 'app' }] },
    });
  };

  before(async () => {
    assert.equal(process.getuid?.(), 0, 'this tier creates network namespaces and iptables rules: run it as root (sudo npm test)');
    kdir = mkdtempSync(join(tmpdir(), `${RUN}-kube-`));
    podK = makePod(21, 'kdemo');
    const url = await api.listen();
    api.setNamespace({ metadata: { name: 'kdemo', labels: {} } });
    setPodLabels({ app: 'web' });
    const kubeConfig = kubeConfigFor(url);
    const config = loadAgentConfig({ CNI_EVENT_ADDRESS: join(kdir, 'pluginevent.sock'), ZTUNNEL_UDS_ADDRESS: join(kdir, 'ztunnel.sock') });
    nodeAgent = await NodeAgent.start({
      config,
      logger: silentLogger(),
      enrollment: new KubernetesEnrollment({ kubeConfig, nodeName: 'node-k', logger: silentLogger() }),
      annotator: new KubeRedirectionAnnotator(kubeConfig, silentLogger()),
    });
    zc = new ZdsClient({ path: join(kdir, 'ztunnel.sock'), handler: zh, logger: silentLogger() }).start();
    await zc.waitForSnapshot();
  });

  after(async () => {
    await zc?.close();
    await nodeAgent?.stop().catch(() => undefined);
    await api.close();
    try {
      sh('ip', 'netns', 'del', podK.netns);
    } catch {
      // already gone
    }
    if (kdir !== '') rmSync(kdir, { recursive: true, force: true });
  });

  test('a pod in an unlabelled namespace is not enrolled nor annotated', async () => {
    const mark = zh.events.length;
    const r = await plugin('ADD', podK, '10.79.0.1', join(kdir, 'pluginevent.sock'));
    assert.equal(r.code, 0, r.stdout);
    assertClean(podK);
    assert.deepEqual(zh.since(mark), []);
    assert.deepEqual(annotations(), []);
  });

  test('labelling the namespace ambient enrolls it with spec.serviceAccountName; annotated pending, then enabled', async () => {
    const mark = zh.events.length;
    api.setNamespace({ metadata: { name: 'kdemo', labels: { [DATAPLANE_MODE_LABEL]: 'ambient' } } });
    await waitFor('the AddWorkload', () => adds(zh.since(mark)).length >= 1);
    assertRedirected(podK);
    assert.deepEqual(
      adds(zh.since(mark)).map((e) => [e.uid, e.namespace, e.serviceAccount, e.inode]),
      [[podK.uid, 'kdemo', 'web-sa', podK.inode]],
    );
    await waitFor('both annotations', () => annotations().length >= 2);
    assert.deepEqual(annotations(), ['pending', 'enabled']);
  });

  test('the pod label istio.io/dataplane-mode=none takes it out: rules removed, DelWorkload, annotation removed', async () => {
    const mark = zh.events.length;
    setPodLabels({ app: 'web', [DATAPLANE_MODE_LABEL]: 'none' });
    await waitFor('the DelWorkload', () => zh.since(mark).length >= 1);
    assert.deepEqual(zh.since(mark), [{ kind: 'del', uid: podK.uid }]);
    assertClean(podK);
    await waitFor('the annotation removal', () => annotations().length >= 3);
    assert.deepEqual(annotations(), ['pending', 'enabled', null]);
    assert.equal(nodeAgent?.pods.get(podK.uid)?.enrolled, false);
  });

  test('removing the opt-out enrolls it again; deleting the pod object takes it out; CNI DEL forgets it', async () => {
    const mark = zh.events.length;
    setPodLabels({ app: 'web' });
    await waitFor('the AddWorkload', () => adds(zh.since(mark)).length >= 1);
    assertRedirected(podK);
    api.deletePod(podK.namespace, podK.name);
    await waitFor('the DelWorkload', () => zh.since(mark).some((e) => e.kind === 'del'));
    assertClean(podK);
    assert.equal(nodeAgent?.pods.get(podK.uid)?.enrolled, false);
    const r = await plugin('DEL', podK, undefined, join(kdir, 'pluginevent.sock'));
    assert.equal(r.code, 0, r.stdout);
    assert.equal(nodeAgent?.pods.get(podK.uid), undefined);
  });
});
