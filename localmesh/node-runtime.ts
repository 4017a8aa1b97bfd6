/**
 * What runs on one fake node besides its pods: the node agent (`mesh-cni-agent`) and a ztunnel, both in the
 * node's network namespace, with their sockets in the node's state dir (many nodes share one filesystem).
 * Also the ways to look at that ztunnel: admin (15000), readiness (15021) and metrics (15020), reached from
 * inside the node's namespace. Shared by the local-config mesh and the Kubernetes mesh.
 */
import { mkdir } from 'node:fs/promises';
import { request } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FakeNode, NsProcess, Pod } from '../testbed/fakenode/index.js';
import { adminGet } from '../meshctl/admin-client.js';
import type { Authorization, Service, Workload } from '../ztunnel/state/model.js';

const distRoot = join(dirname(fileURLToPath(import.meta.url)), '..');
export const PROGRAMS = {
  ztunnel: join(distRoot, 'ztunnel', 'main.js'),
  agent: join(distRoot, 'cni', 'agent', 'main.js'),
  plugin: join(distRoot, 'cni', 'plugin', 'main.js'),
  controller: join(distRoot, 'controller', 'main.js'),
};

export const READY_TIMEOUT_MS = 20_000;

/** The parts of ztunnel's /config_dump the fixtures and tests read. */
export interface ConfigDumpView {
  readonly workloads: readonly Workload[];
  readonly services: readonly Service[];
  readonly policies: readonly Authorization[];
  readonly certificates: readonly { identity: string; state: string; rootCerts: readonly { pem: string }[] }[];
  readonly workloadState: Readonly<Record<string, { state: string; connections: { inbound: unknown[]; outbound: unknown[] } }>>;
  /** ztunnel's ZDS link to the node agent (absent when ztunnel runs without in-pod mode). */
  readonly inpod?: { readonly connected: boolean; readonly snapshotReceived: boolean; readonly connections: number };
}

/** Polls `check` until it is true; on timeout the error says what was awaited and, if given, what differs. */
export async function poll(
  what: string,
  check: () => Promise<boolean>,
  detail?: () => string,
  timeoutMs = READY_TIMEOUT_MS,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      if (await check()) return;
    } catch (err) {
      lastError = err;
      if (err instanceof Error && /exited/.test(err.message)) throw err;
    }
    if (Date.now() > deadline) {
      const extra = detail?.() || (lastError instanceof Error ? `last error: ${lastError.message}` : '');
      throw new Error(`timed out waiting for ${what}${extra ? ` (${extra})` : ''}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

export interface NodeRuntimeOptions {
  /** Extra environment of the agent (enrollment source) and of ztunnel (where its state and certificates come from). */
  readonly agentEnv: Readonly<Record<string, string>>;
  readonly ztunnelEnv: Readonly<Record<string, string>>;
  readonly logLevel: string;
}

export class NodeRuntime {
  readonly node: FakeNode;
  readonly eventSocket: string;
  readonly ztunnelSocket: string;
  /** The agent's pod cache (cni/agent/pod-cache.ts), beside its event socket. */
  readonly agentStateFile: string;
  readonly #opts: NodeRuntimeOptions;
  #agent: NsProcess | undefined;
  #ztunnel: NsProcess | undefined;

  constructor(node: FakeNode, opts: NodeRuntimeOptions) {
    this.node = node;
    this.#opts = opts;
    const dir = join(node.stateDir, 'mesh');
    this.eventSocket = join(dir, 'pluginevent.sock');
    this.ztunnelSocket = join(dir, 'ztunnel.sock');
    this.agentStateFile = join(dir, 'pods.json');
  }

  get ztunnel(): NsProcess {
    if (!this.#ztunnel) throw new Error(`no ztunnel on ${this.node.name}`);
    return this.#ztunnel;
  }

  get agent(): NsProcess {
    if (!this.#agent) throw new Error(`no node agent on ${this.node.name}`);
    return this.#agent;
  }

  /** The CNI plugin config that sends this node's pods to its agent. */
  meshCniPlugin(): { type: string; path: string; config: Record<string, string> } {
    return { type: 'mesh-cni', path: PROGRAMS.plugin, config: { cni_event_address: this.eventSocket } };
  }

  async start(): Promise<void> {
    await mkdir(dirname(this.eventSocket), { recursive: true });
    await this.startAgent();
    this.#ztunnel = this.#spawnZtunnel();
    await this.waitForReady();
  }

  /** Starts the node agent; resolves once its CNI event socket answers (a stale socket file does not count). */
  async startAgent(): Promise<void> {
    if (this.#agent?.running) throw new Error(`the node agent on ${this.node.name} is already running`);
    const agent = this.node.spawn(process.execPath, [PROGRAMS.agent], {
      env: {
        CNI_EVENT_ADDRESS: this.eventSocket,
        ZTUNNEL_UDS_ADDRESS: this.ztunnelSocket,
        NODE_NAME: this.node.name,
        LOG_LEVEL: this.#opts.logLevel,
        ...this.#opts.agentEnv,
      },
    });
    this.#agent = agent;
    await poll(`node agent on ${this.node.name} listening`, async () => {
      if (!agent.running) throw agent.exitedError(`mesh-cni-agent on ${this.node.name}`);
      return answersHttp(this.eventSocket);
    });
  }

  /** Stops the node agent: SIGTERM (it closes its sockets and leaves pod rules in place) or SIGKILL (a crash). */
  async stopAgent(how: 'kill' | 'stop' = 'stop'): Promise<void> {
    const agent = this.agent;
    if (how === 'kill') {
      agent.signal('SIGKILL');
      await agent.exited;
    } else {
      await agent.stop(10_000);
    }
  }

  /**
   * Restarts the node agent and waits until ztunnel has reconnected to the new one and applied its snapshot
   * (ztunnel's ZDS connection count moved on), so that what follows sees the restart completed.
   */
  async restartAgent(how: 'kill' | 'stop' = 'stop'): Promise<void> {
    const before = (await this.configDump()).inpod?.connections ?? 0;
    await this.stopAgent(how);
    await this.startAgent();
    await this.waitForZdsSnapshot(before);
  }

  /** Until ztunnel has made a ZDS connection after the first `connections` and received its snapshot. */
  async waitForZdsSnapshot(connections: number): Promise<ConfigDumpView> {
    return this.waitForDump(`a snapshot on ZDS connection > ${connections}`, (d) =>
      d.inpod === undefined
        ? 'ztunnel runs without in-pod mode'
        : d.inpod.connections > connections && d.inpod.snapshotReceived
          ? ''
          : `connections ${d.inpod.connections}, snapshot received ${d.inpod.snapshotReceived}`,
    );
  }

  /** Stops ztunnel (SIGTERM: drain, or SIGKILL: none) and starts a new one. */
  async restartZtunnel(how: 'kill' | 'stop' = 'stop'): Promise<void> {
    const z = this.ztunnel;
    if (how === 'kill') {
      z.signal('SIGKILL');
      await z.exited;
    } else {
      await z.stop(10_000);
    }
    this.#ztunnel = this.#spawnZtunnel();
    await this.waitForReady();
  }

  async stop(): Promise<void> {
    await Promise.all([this.#ztunnel?.stop(3_000).catch(() => undefined), this.#agent?.stop(3_000).catch(() => undefined)]);
  }

  admin(path: string, method = 'GET'): Promise<{ status: number; body: string }> {
    return adminGet({ host: '127.0.0.1', port: 15000, netns: this.node.netnsPath }, path, method);
  }

  async configDump(): Promise<ConfigDumpView> {
    const r = await this.admin('/config_dump');
    if (r.status !== 200) throw new Error(`config_dump on ${this.node.name}: ${r.status}`);
    return JSON.parse(r.body) as ConfigDumpView;
  }

  async metrics(): Promise<string> {
    return (await adminGet({ host: '127.0.0.1', port: 15020, netns: this.node.netnsPath }, '/metrics')).body;
  }

  readiness(): Promise<{ status: number; body: string }> {
    return adminGet({ host: '127.0.0.1', port: 15021, netns: this.node.netnsPath }, '/healthz/ready').catch((err: unknown) => ({
      status: 0,
      body: err instanceof Error ? err.message : String(err),
    }));
  }

  async waitForReady(): Promise<void> {
    let last = '';
    await poll(
      `ztunnel on ${this.node.name} ready`,
      async () => {
        if (this.#ztunnel && !this.#ztunnel.running) throw this.#ztunnel.exitedError(`ztunnel on ${this.node.name}`);
        const r = await this.readiness();
        last = r.body.trim();
        return r.status === 200;
      },
      () => last,
    );
  }

  /** Until this ztunnel runs the pod's proxy (state Up). */
  async waitForPodProxy(pod: Pod): Promise<void> {
    await poll(
      `pod ${pod.key} proxied by ztunnel on ${this.node.name}`,
      async () => (await this.configDump()).workloadState[pod.uid]?.state === 'Up',
    );
  }

  /** Until the config dump satisfies `check` (which returns '' when satisfied, else what differs). */
  async waitForDump(what: string, check: (d: ConfigDumpView) => string): Promise<ConfigDumpView> {
    let differs = '';
    let dump: ConfigDumpView | undefined;
    await poll(
      `ztunnel on ${this.node.name}: ${what}`,
      async () => {
        dump = await this.configDump();
        differs = check(dump);
        return differs === '';
      },
      () => differs,
    );
    return dump as ConfigDumpView;
  }

  #spawnZtunnel(): NsProcess {
    return this.node.spawn(process.execPath, [PROGRAMS.ztunnel], {
      env: {
        NODE_NAME: this.node.name,
        INSTANCE_IP: this.node.ip,
        POD_NAME: `ztunnel-${this.node.name}`,
        POD_NAMESPACE: 'istio-system',
        INPOD_UDS: this.ztunnelSocket,
        LOG_LEVEL: this.#opts.logLevel,
        ...this.#opts.ztunnelEnv,
      },
    });
  }
}

/** Whether an HTTP server answers on the Unix socket (any status: the agent is up and serving). */
function answersHttp(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ socketPath, path: '/', method: 'GET', timeout: 2_000 }, (res) => {
      res.resume();
      resolve(true);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}
