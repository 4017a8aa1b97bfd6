/**
 * Node-agent and ztunnel restarts on two fake nodes, with live keep-alive connections through the mesh. The
 * defect this guards against: after an agent restart, its snapshot re-sends an AddWorkload for every pod, and
 * ztunnel used to tear each pod proxy down and start a new one, resetting every live connection. An Add for a
 * pod already running in the same netns must keep its proxy (ztunnel src/inpod/statemanager.rs).
 *
 * Layout:  node-1: client (default/sa client, in the mesh), outsider (legacy: not in the mesh)
 *          node-2: server (default/sa server, in the mesh), nginx on 8080
 * Live connections: client → server over HBONE (node-1 15001 → node-2 15008), and outsider → server in plaintext
 * (captured in the server's netns to node-2's 15006). Each is one TCP connection that keeps sending HTTP/1.1
 * requests and exits on any error or close, so a reset cannot hide behind a reconnect.
 *
 * Rules untouched: every mesh pod gets a marker rule appended to the agent's own chain (mangle ISTIO_PRERT). The
 * agent's rule run flushes its chains and rewrites them (cni/agent/iptables.ts inpodReconcile), so the marker
 * survives only if no rule was re-run, and the pod's iptables-save stays byte-for-byte the same (counters aside).
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { MeshCluster } from '../../localmesh/mesh-cluster.js';
import { poll } from '../../localmesh/node-runtime.js';
import { curl, startNginx, type FakeNode, type NsProcess, type Pod } from '../../testbed/fakenode/index.js';

const APP_PORT = 8080;
const MARKER = 'agent-restart-test-marker';

let mesh: MeshCluster;
let node1: FakeNode;
let node2: FakeNode;
let client: Pod;
let outsider: Pod;
let server: Pod;

/**
 * One keep-alive HTTP/1.1 connection from `from` to `to`: a request every 100 ms on the same socket, each
 * response counted by its body. Any error or close is printed and ends the process.
 */
class LiveConnection {
  readonly #proc: NsProcess;
  readonly #what: string;

  private constructor(proc: NsProcess, what: string) {
    this.#proc = proc;
    this.#what = what;
  }

  static async open(from: Pod, to: Pod, what: string): Promise<LiveConnection> {
    const body = `hello from ${to.namespace}/${to.name}\n`;
    const script = `
      const s = require('net').connect(${APP_PORT}, ${JSON.stringify(to.ip)});
      const body = ${JSON.stringify(body)};
      let buf = '', n = 0;
      const ask = () => s.write('GET / HTTP/1.1\\r\\nHost: ${to.name}\\r\\n\\r\\n');
      s.on('connect', () => { console.log('connected ' + s.localPort); ask(); });
      s.on('data', (d) => {
        buf += d.toString('latin1');
        for (let i; (i = buf.indexOf(body)) >= 0; ) {
          if (!buf.slice(0, i).startsWith('HTTP/1.1 200 ')) console.log('bad response ' + JSON.stringify(buf.slice(0, 40)));
          buf = buf.slice(i + body.length);
          console.log('response ' + ++n);
          setTimeout(ask, 100);
        }
      });
      s.on('error', (e) => console.log('error ' + e.code));
      s.on('close', () => { console.log('closed'); process.exit(1); });`;
    const live = new LiveConnection(from.spawn(process.execPath, ['-e', script]), what);
    await live.#proc.waitForOutput(/^response 3$/m, { stream: 'stdout' });
    return live;
  }

  get responses(): number {
    return Number(/response (\d+)\n(?![\s\S]*response)/.exec(this.#proc.stdout)?.[1] ?? 0);
  }

  /** Until `more` further responses came back on the same connection. */
  async exchanges(more: number): Promise<void> {
    const target = this.responses + more;
    await this.#proc
      .waitForOutput(new RegExp(`^response ${target}$`, 'm'), { stream: 'stdout', timeoutMs: 15_000 })
      .catch((err: unknown) => {
        throw new Error(`${this.#what}: no ${more} more responses: ${String(err)}\n${this.#proc.stdout.slice(-400)}`);
      });
  }

  /** Still the one connection it opened, never an error, a close or a bad response. */
  assertIntact(): void {
    const out = this.#proc.stdout;
    assert.equal(this.#proc.running, true, `${this.#what}: the client ended: ${out.slice(-400)}`);
    assert.doesNotMatch(out, /^(error|closed|bad response)/m, `${this.#what}: ${out.slice(-400)}`);
    assert.equal(out.match(/^connected /gm)?.length, 1, `${this.#what}: one connection`);
  }

  async close(): Promise<void> {
    await this.#proc.stop(1_000);
  }
}

/** The sample of an unlabelled metric (workload_manager_* are plain gauges and counters). */
function sample(metricsText: string, name: string): number {
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(metricsText);
  assert.ok(m, `metric ${name} missing`);
  return Number(m[1]);
}

interface ProxyCounters {
  readonly started: number;
  readonly stopped: number;
  readonly active: number;
  readonly pending: number;
}

async function proxyCounters(node: FakeNode): Promise<ProxyCounters> {
  const m = await mesh.metrics(node);
  return {
    started: sample(m, 'workload_manager_proxies_started_total'),
    stopped: sample(m, 'workload_manager_proxies_stopped_total'),
    active: sample(m, 'workload_manager_active_proxy_count'),
    pending: sample(m, 'workload_manager_pending_proxy_count'),
  };
}

/** How many of a process's descriptors are open on the pod's network namespace (same nsfs device and inode). */
function netnsFds(pid: number, pod: Pod): number {
  const ns = statSync(pod.netnsPath);
  let n = 0;
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      // stat follows the fd to the file it has open, whatever path it was opened by (the agent opens /run/netns/<pod>).
      const st = statSync(`/proc/${pid}/fd/${fd}`);
      if (st.dev === ns.dev && st.ino === ns.ino) n++;
    } catch {
      // closed while we looked (a socket of a finished connection)
    }
  }
  return n;
}

/** ztunnel and the agent each hold exactly one descriptor of every mesh pod's netns: nothing leaked, nothing lost. */
function assertOneFdPerPod(node: FakeNode, pods: readonly Pod[]): void {
  const runtime = mesh.runtime(node);
  for (const pod of pods) {
    assert.equal(netnsFds(runtime.ztunnel.pid, pod), 1, `ztunnel on ${node.name} holds one fd of ${pod.key}'s netns`);
    assert.equal(netnsFds(runtime.agent.pid, pod), 1, `the agent on ${node.name} holds one fd of ${pod.key}'s netns`);
  }
}

/** The pod's whole iptables state without counters (the REDIRECTed connections move them). */
async function podRules(pod: Pod): Promise<string> {
  const saved = await pod.execChecked('iptables-save', []);
  return saved
    .split('\n')
    .filter((l) => !l.startsWith('#'))
    .map((l) => l.replace(/ \[\d+:\d+\]$/, ''))
    .join('\n');
}

const rulesAtStart = new Map<string, string>();

async function assertRulesUntouched(pods: readonly Pod[]): Promise<void> {
  for (const pod of pods) {
    const now = await podRules(pod);
    assert.match(
      now,
      new RegExp(`-A ISTIO_PRERT -m comment --comment ${MARKER}`),
      `${pod.key}: the marker in ISTIO_PRERT is gone: rules were re-run`,
    );
    assert.equal(now, rulesAtStart.get(pod.uid), `${pod.key}: the in-pod rules changed`);
  }
}

/** The pod's in-mesh state on its node: Up, and its live connections as config_dump lists them. */
async function podConnections(
  node: FakeNode,
  pod: Pod,
  direction: 'inbound' | 'outbound',
): Promise<Array<{ src: string; originalDst: string; protocol: string }>> {
  const state = (await mesh.configDump(node)).workloadState[pod.uid];
  assert.equal(state?.state, 'Up', `${pod.key} proxied on ${node.name}`);
  return state.connections[direction] as Array<{ src: string; originalDst: string; protocol: string }>;
}

before(async () => {
  if (process.getuid?.() !== 0) throw new Error('the fake-node tier creates network namespaces and must run as root');
  mesh = await MeshCluster.start({ name: `rst${process.pid % 10000}`, nodes: 2, ambientNamespaces: ['default'] });
  node1 = mesh.node(1);
  node2 = mesh.node(2);
  [client, outsider, server] = await Promise.all([
    mesh.addPod(node1, { namespace: 'default', name: 'client', serviceAccount: 'client' }),
    mesh.addPod(node1, { namespace: 'legacy', name: 'outsider' }),
    mesh.addPod(node2, { namespace: 'default', name: 'server', serviceAccount: 'server' }),
  ]);
  await startNginx(server, { port: APP_PORT });
  for (const pod of [client, server]) {
    await pod.execChecked('iptables', ['-t', 'mangle', '-A', 'ISTIO_PRERT', '-m', 'comment', '--comment', MARKER]);
    rulesAtStart.set(pod.uid, await podRules(pod));
  }
});

after(async () => {
  if (mesh && !mesh.cluster.destroyed) await mesh.destroy();
});

describe('node agent restarts keep live connections', () => {
  for (const side of ['client', 'server'] as const) {
    test(`keeps live HBONE and plaintext-inbound connections when the ${side}-side node agent restarts (SIGTERM, then SIGKILL)`, async () => {
      const node = side === 'client' ? node1 : node2;
      const hbone = await LiveConnection.open(client, server, 'HBONE client -> server');
      const plain = await LiveConnection.open(outsider, server, 'plaintext outsider -> server');
      try {
        // Both really go through the mesh: the client's proxy tunnels one over HBONE, the server's takes the other on 15006.
        const outbound = await podConnections(node1, client, 'outbound');
        assert.ok(
          outbound.some((c) => c.protocol === 'HBONE' && c.originalDst.startsWith(`${server.ip}:`)),
          JSON.stringify(outbound),
        );
        const inbound = await podConnections(node2, server, 'inbound');
        assert.ok(
          inbound.some((c) => c.protocol === 'TCP' && c.src.startsWith(`${outsider.ip}:`)),
          JSON.stringify(inbound),
        );
        const counters = await proxyCounters(node);
        for (const how of ['stop', 'kill'] as const) {
          await mesh.restartAgent(node, how);
          await hbone.exchanges(5);
          await plain.exchanges(5);
          hbone.assertIntact();
          plain.assertIntact();
        }
        assert.deepEqual(await proxyCounters(node), counters, 'the snapshot kept every proxy: none started, none stopped');
        assertOneFdPerPod(node, side === 'client' ? [client] : [server]);
        await assertRulesUntouched([client, server]);
      } finally {
        await Promise.all([hbone.close(), plain.close()]);
      }
    });
  }

  test('a ztunnel restart re-adopts the pods from the agent snapshot and the agent runs no rule', async () => {
    const agentPid = mesh.runtime(node2).agent.pid;
    await mesh.restartZtunnel(node2, 'kill');
    await mesh.waitForPodProxy(node2, server);
    assert.equal(mesh.runtime(node2).agent.pid, agentPid, 'the same agent served the new ztunnel');
    assert.deepEqual(Object.keys((await mesh.configDump(node2)).workloadState), [server.uid]);
    const r = await curl(client, `http://${server.ip}:${APP_PORT}/`, { maxTimeSeconds: 5 });
    assert.equal(r.status, 200, `client -> server after the ztunnel restart: ${r.errorMessage ?? r.stderr}`);
    assertOneFdPerPod(node2, [server]);
    await assertRulesUntouched([client, server]);
  });

  test('an agent restart while a pod is being added: the add completes, the pod works, one proxy and one fd', async () => {
    const runtime = mesh.runtime(node1);
    const ztunnel = runtime.ztunnel;
    const counters = await proxyCounters(node1);
    const connections = (await runtime.configDump()).inpod?.connections ?? 0;
    let paused: () => void = () => undefined;
    const isPaused = new Promise<void>((resolve) => {
      paused = resolve;
    });
    // ztunnel is paused once the pod's workload is published, so the agent's AddWorkload stays unanswered.
    const adding = mesh.addPod(node1, {
      namespace: 'default',
      name: 'late',
      beforeSandbox: () => {
        ztunnel.signal('SIGSTOP');
        paused();
      },
    });
    try {
      await isPaused;
      // The agent has applied the rules and recorded the pod, and is waiting for ztunnel's ack: restart it now.
      await poll('the agent to record the pod being added', async () => {
        const pods = (JSON.parse(readFileSync(runtime.agentStateFile, 'utf8')) as { pods: { name: string; enrolled: boolean }[] }).pods;
        return pods.some((p) => p.name === 'late' && p.enrolled);
      });
      await runtime.stopAgent('stop');
      await runtime.startAgent();
    } finally {
      ztunnel.signal('SIGCONT');
    }
    const late = await adding; // the CNI ADD succeeded and ztunnel runs the pod's proxy
    try {
      await runtime.waitForZdsSnapshot(connections);
      const after = await proxyCounters(node1);
      assert.equal(after.started, counters.started + 1, 'one proxy started for the pod, whichever Add reached ztunnel first');
      assert.equal(after.stopped, counters.stopped, 'no proxy stopped');
      assert.equal(after.active, 2, 'client and late');
      assert.equal(after.pending, 0);
      const listeners = (await late.execChecked('ss', ['-Hltn'])).split('\n');
      for (const port of [15001, 15006, 15008]) {
        assert.equal(
          listeners.filter((l) => l.trim().split(/\s+/)[3]?.endsWith(`:${port}`)).length,
          1,
          `one listener on ${port} in the pod`,
        );
      }
      assertOneFdPerPod(node1, [client, late]);
      const out = await curl(late, `http://${server.ip}:${APP_PORT}/`, { maxTimeSeconds: 5 });
      assert.equal(out.status, 200, `late -> server: ${out.errorMessage ?? out.stderr}`);
      await startNginx(late, { port: APP_PORT });
      const inbound = await curl(client, `http://${late.ip}:${APP_PORT}/`, { maxTimeSeconds: 5 });
      assert.equal(inbound.status, 200, `client -> late: ${inbound.errorMessage ?? inbound.stderr}`);
    } finally {
      await mesh.deletePod(late);
    }
  });

  test('a storm of 10 agent restarts on both nodes (SIGKILL and SIGTERM) keeps live connections and a consistent ztunnel', async () => {
    const hbone = await LiveConnection.open(client, server, 'HBONE client -> server');
    const plain = await LiveConnection.open(outsider, server, 'plaintext outsider -> server');
    try {
      const nodes = [
        { node: node1, pods: [client] },
        { node: node2, pods: [server] },
      ];
      const before = await Promise.all(
        nodes.map(async ({ node }) => ({ counters: await proxyCounters(node), dump: await mesh.configDump(node) })),
      );
      for (let i = 0; i < 10; i++) {
        await mesh.restartAgent(i % 2 === 0 ? node1 : node2, i % 4 < 2 ? 'kill' : 'stop');
        hbone.assertIntact();
        plain.assertIntact();
      }
      await hbone.exchanges(5);
      await plain.exchanges(5);
      hbone.assertIntact();
      plain.assertIntact();
      for (const [i, { node, pods }] of nodes.entries()) {
        const was = before[i];
        assert.ok(was);
        const counters = await proxyCounters(node);
        assert.deepEqual(counters, { ...was.counters, active: pods.length, pending: 0 }, `${node.name}: no proxy started or stopped`);
        const dump = await mesh.configDump(node);
        assert.deepEqual(Object.keys(dump.workloadState).sort(), pods.map((p) => p.uid).sort(), `${node.name}: the pods proxied`);
        for (const pod of pods) assert.equal(dump.workloadState[pod.uid]?.state, 'Up');
        assert.deepEqual(
          dump.inpod,
          { ...was.dump.inpod, connected: true, snapshotReceived: true, connections: (was.dump.inpod?.connections ?? 0) + 5 },
          `${node.name}: one ZDS connection per agent restart`,
        );
        assertOneFdPerPod(node, pods);
      }
      await assertRulesUntouched([client, server]);
    } finally {
      await Promise.all([hbone.close(), plain.close()]);
    }
  });
});
