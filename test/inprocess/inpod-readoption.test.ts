/**
 * What ztunnel does with an AddWorkload for a pod it already runs, without root or threads: the data-plane
 * worker's pod registry with a recording proxy, and the whole inpod chain (the agent's ZdsServer → ZdsClient →
 * WorkloadManager → registry) over a real SOCK_SEQPACKET socket. The same namespace keeps the proxy (the agent's
 * snapshot after every reconnect repeats each Add); another namespace replaces it (the sandbox was re-created).
 *
 * Namespaces without root: this process's own. /proc/self/ns/net stands for the pod's netns; /proc/self/ns/uts,
 * another nsfs file with its own inode, stands for the namespace of a re-created sandbox (opened as a plain
 * file: openNetns() would rightly refuse it). Only identities are compared on this path, and the recording
 * proxy never setns()es into what it is given.
 *
 * Descriptors are counted exactly: fdsOn() counts this process's fds open on a namespace file, so a leaked or
 * lost descriptor shows as a wrong count.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, openSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { Registry } from 'prom-client';
import { ZdsServer, type ZdsSnapshotEntry } from '../../cni/agent/zds-server.js';
import { closeFd, netnsIdentity, openNetns, sameNetns } from '../../lib/native/index.js';
import { silentLogger } from '../../testbed/fixtures/log.js';
import { PodRegistry, type RegisteredProxy } from '../../ztunnel/dataplane/pod-registry.js';
import type { PodDump, PodInfo } from '../../ztunnel/dataplane/protocol.js';
import { WorkloadManager, type PodRunner } from '../../ztunnel/inpod/workload-manager.js';
import { ZdsClient } from '../../ztunnel/inpod/zds-client.js';
import { WorkloadStore } from '../../ztunnel/state/store.js';

const POD_NETNS = '/proc/self/ns/net';
const OTHER_NETNS = '/proc/self/ns/uts';

const dir = mkdtempSync(join(tmpdir(), 'inpod-readoption-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let socketCount = 0;
const socketPath = (): string => join(dir, `zds${++socketCount}.sock`);

/** This process's descriptors open on the namespace file at `path` (same device and inode). */
function fdsOn(path: string): number {
  const ns = statSync(path);
  let n = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const st = statSync(`/proc/self/fd/${fd}`);
      if (st.dev === ns.dev && st.ino === ns.ino) n++;
    } catch {
      // the directory's own fd, or one closed meanwhile
    }
  }
  return n;
}

async function waitFor(what: string, pred: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A pod proxy that records what happens to it; start() can be made to fail or to wait for a gate. */
class RecordingProxy implements RegisteredProxy {
  state: 'created' | 'up' | 'stopped' = 'created';
  stopDeadline: number | undefined;

  constructor(
    readonly pod: PodInfo,
    readonly netnsFd: number,
    readonly startGate: Promise<void> | undefined,
    readonly startError: string | undefined,
  ) {}

  async start(): Promise<void> {
    await this.startGate;
    if (this.startError !== undefined) throw new Error(this.startError);
    this.state = 'up';
  }

  async stop(deadlineMs: number): Promise<void> {
    this.state = 'stopped';
    this.stopDeadline = deadlineMs;
  }

  dump(): PodDump {
    return {
      state: this.state === 'up' ? 'Up' : 'Pending',
      info: { name: this.pod.name, namespace: this.pod.namespace, serviceAccount: this.pod.serviceAccount },
      connections: { inbound: [], outbound: [] },
    };
  }
}

class Proxies {
  readonly made: RecordingProxy[] = [];
  startError: string | undefined;
  startGate: Promise<void> | undefined;
  readonly registry = new PodRegistry((pod, fd) => {
    const p = new RecordingProxy(pod, fd, this.startGate, this.startError);
    this.made.push(p);
    return p;
  });
}

/** An fd on `path` and the PodInfo an Add with it carries (what WorkloadManager builds). */
function podAdd(uid: string, path: string): { pod: PodInfo; fd: number } {
  const fd = openSync(path, 'r');
  return { pod: { uid, name: `pod-${uid}`, namespace: 'ns', serviceAccount: 'sa', netns: netnsIdentity(fd) }, fd };
}

describe('netns identity', () => {
  test('two descriptors of one namespace have the same identity; another namespace file has another', () => {
    const a = openNetns(POD_NETNS);
    const b = openNetns(POD_NETNS);
    const other = openSync(OTHER_NETNS, 'r');
    try {
      assert.ok(sameNetns(netnsIdentity(a), netnsIdentity(b)));
      assert.ok(!sameNetns(netnsIdentity(a), netnsIdentity(other)));
      assert.ok(!sameNetns({ device: 1, inode: 7 }, { device: 2, inode: 7 }), 'the device counts too');
    } finally {
      for (const fd of [a, b, other]) closeFd(fd);
    }
    assert.throws(
      () => netnsIdentity(a),
      (e: unknown) => (e as { code?: unknown }).code === 'NATIVE_NETNS_STAT_FAILED',
    );
  });
});

describe('PodRegistry: keep or replace on an Add for a running pod', () => {
  test('an Add with the same netns keeps the running proxy and closes the new descriptor', async () => {
    const base = fdsOn(POD_NETNS);
    const p = new Proxies();
    const first = podAdd('a', POD_NETNS);
    assert.equal(await p.registry.add(first.pod, first.fd), 'started');
    const again = podAdd('a', POD_NETNS);
    assert.equal(fdsOn(POD_NETNS), base + 2);
    assert.equal(await p.registry.add(again.pod, again.fd), 'kept');
    assert.equal(p.made.length, 1, 'no second proxy');
    assert.equal(p.made[0]?.state, 'up', 'the running proxy is untouched');
    assert.equal(p.made[0]?.netnsFd, first.fd, 'it keeps its own descriptor');
    assert.equal(fdsOn(POD_NETNS), base + 1, 'the new descriptor was closed');
    assert.equal(await p.registry.remove('a', 500), true);
    assert.equal(p.made[0]?.stopDeadline, 500);
    assert.equal(fdsOn(POD_NETNS), base, 'remove closed the running descriptor');
  });

  test('an Add with another netns (sandbox re-created) stops the old proxy and starts one in the new namespace', async () => {
    const base = { pod: fdsOn(POD_NETNS), other: fdsOn(OTHER_NETNS) };
    const p = new Proxies();
    const first = podAdd('a', POD_NETNS);
    assert.equal(await p.registry.add(first.pod, first.fd), 'started');
    const moved = podAdd('a', OTHER_NETNS);
    assert.equal(await p.registry.add(moved.pod, moved.fd), 'replaced');
    assert.deepEqual(
      p.made.map((x) => [x.state, x.netnsFd]),
      [
        ['stopped', first.fd],
        ['up', moved.fd],
      ],
    );
    assert.equal(p.made[0]?.stopDeadline, 0, 'the old namespace is gone: nothing to drain');
    assert.equal(fdsOn(POD_NETNS), base.pod, 'the old descriptor was closed');
    assert.equal(fdsOn(OTHER_NETNS), base.other + 1, 'the new proxy holds the new descriptor');
    assert.deepEqual(p.registry.uids(), ['a']);
    await p.registry.removeAll(0);
    assert.equal(fdsOn(OTHER_NETNS), base.other);
  });

  test('a proxy that fails to start runs nowhere and its descriptor is closed; a later Add starts afresh', async () => {
    const base = fdsOn(POD_NETNS);
    const p = new Proxies();
    p.startError = 'bind 15008: address in use';
    const failed = podAdd('a', POD_NETNS);
    await assert.rejects(p.registry.add(failed.pod, failed.fd), /address in use/);
    assert.deepEqual(p.registry.uids(), []);
    assert.equal(p.made[0]?.state, 'stopped', 'what it had opened was released');
    assert.equal(fdsOn(POD_NETNS), base);
    p.startError = undefined;
    const retry = podAdd('a', POD_NETNS);
    assert.equal(await p.registry.add(retry.pod, retry.fd), 'started');
    assert.equal(await p.registry.remove('a', 0), true);
    assert.equal(await p.registry.remove('a', 0), false, 'removing an unknown pod is a no-op');
    assert.equal(fdsOn(POD_NETNS), base);
  });

  test('a Del sent while the Add of the same pod is still starting waits for it, then removes it', async () => {
    const base = fdsOn(POD_NETNS);
    const p = new Proxies();
    let open: () => void = () => undefined;
    p.startGate = new Promise((resolve) => {
      open = resolve;
    });
    const add = podAdd('a', POD_NETNS);
    const adding = p.registry.add(add.pod, add.fd);
    const removing = p.registry.remove('a', 0);
    await waitFor('the pod listed while its listeners come up', () => p.registry.dump().a?.state === 'Pending');
    open();
    assert.equal(await adding, 'started');
    assert.equal(await removing, true);
    assert.equal(p.made[0]?.state, 'stopped');
    assert.equal(fdsOn(POD_NETNS), base);
  });
});

describe('ZDS reconnects through the WorkloadManager (agent ZdsServer ↔ ZdsClient ↔ WorkloadManager ↔ registry)', () => {
  test('snapshots after agent restarts keep the proxy; a new netns replaces it; a snapshot without the pod removes it', async (t) => {
    const base = { pod: fdsOn(POD_NETNS), other: fdsOn(OTHER_NETNS) };
    const p = new Proxies();
    const runner: PodRunner = {
      addPod: (pod, fd) => p.registry.add(pod, fd),
      removePod: async (uid) => {
        await p.registry.remove(uid, 0);
      },
      pods: () => p.registry.uids(),
    };
    const metrics = new Registry();
    const manager = new WorkloadManager(
      runner,
      { prefetch: () => undefined },
      new WorkloadStore(),
      'cluster.local',
      metrics,
      silentLogger(),
    );
    const metric = async (name: string): Promise<number> => (await metrics.getSingleMetric(name)?.get())?.values[0]?.value ?? Number.NaN;
    const counters = async () => ({
      started: await metric('workload_manager_proxies_started_total'),
      stopped: await metric('workload_manager_proxies_stopped_total'),
      active: await metric('workload_manager_active_proxy_count'),
    });

    // The agent's pod cache: one pod, whose netns descriptor the agent holds (and keeps across ZDS connections).
    const path = socketPath();
    const agentFd = openNetns(POD_NETNS);
    const pods = new Map<string, ZdsSnapshotEntry>([
      ['a', { uid: 'a', info: { name: 'a', namespace: 'ns', serviceAccount: 'sa' }, netnsFd: agentFd }],
    ]);
    let agent: ZdsServer | undefined;
    const restartAgent = (): void => {
      agent?.close();
      agent = ZdsServer.listen({ path, logger: silentLogger(), pods: { uids: () => [...pods.keys()], entry: (uid) => pods.get(uid) } });
    };
    restartAgent();
    const client = new ZdsClient({ path, handler: manager, logger: silentLogger(), maxBackoffMs: 20 }).start();
    t.after(async () => {
      await client.close();
      agent?.close();
    });
    const snapshotOn = async (connection: number): Promise<void> =>
      waitFor(`the snapshot of connection ${connection}`, () => client.connections === connection && client.ready);

    await snapshotOn(1);
    assert.deepEqual(await counters(), { started: 1, stopped: 0, active: 1 });

    // Ten agent restarts in a row: each brings a snapshot repeating the Add with a fresh copy of the same netns.
    for (let i = 2; i <= 11; i++) {
      restartAgent();
      await snapshotOn(i);
    }
    assert.deepEqual(await counters(), { started: 1, stopped: 0, active: 1 }, 'the proxy was kept every time');
    assert.equal(p.made.length, 1);
    assert.equal(p.made[0]?.state, 'up');
    assert.equal(fdsOn(POD_NETNS), base.pod + 2, "the agent's descriptor and the proxy's, nothing more");

    // The sandbox was re-created: the agent now holds another namespace for the same uid.
    const agentOtherFd = openSync(OTHER_NETNS, 'r');
    pods.set('a', { uid: 'a', info: { name: 'a', namespace: 'ns', serviceAccount: 'sa' }, netnsFd: agentOtherFd });
    closeFd(agentFd);
    restartAgent();
    await snapshotOn(12);
    assert.deepEqual(await counters(), { started: 2, stopped: 1, active: 1 });
    assert.deepEqual(
      p.made.map((x) => x.state),
      ['stopped', 'up'],
    );
    assert.equal(fdsOn(POD_NETNS), base.pod, 'the old namespace is released everywhere');
    assert.equal(fdsOn(OTHER_NETNS), base.other + 2);

    // The pod went away while the agent was down: the next snapshot does not mention it.
    pods.clear();
    closeFd(agentOtherFd);
    restartAgent();
    await snapshotOn(13);
    assert.deepEqual(await counters(), { started: 2, stopped: 2, active: 0 });
    assert.equal(fdsOn(OTHER_NETNS), base.other);
  });
});
