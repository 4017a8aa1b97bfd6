/**
 * The node agent's pod flow (Istio's istio-cni node agent, ambient mode; cni/pkg/nodeagent/net.go AddPodToMesh /
 * RemovePodFromMesh), driven by the plugin's CNI events:
 *
 *   ADD of an enrolled pod → apply the in-pod rules inside its netns → keep the netns descriptor in the pod
 *     cache (persisted) → AddWorkload to the newest ztunnel and wait for its ack → answer the plugin "enrolled".
 *     No ztunnel connected: the pod waits for the next snapshot; NACK: logged, the pod stays enrolled and
 *     "pending" and is retried with backoff (1 s doubling to 30 s). Either way the plugin is answered with
 *     success. (Istio's agent fails the CNI ADD in that case; this project's brief keeps the pod starting — its
 *     traffic is captured by the rules and waits for ztunnel, so nothing leaves the pod unproxied.)
 *   ADD again for the same pod and namespace → rules reconciled (never duplicated), no second AddWorkload once
 *     acked. Same uid with another namespace (sandbox re-created) → the new namespace replaces the old.
 *   DEL → rules removed (the agent still holds the namespace) → DelWorkload to every ztunnel → descriptor closed
 *     → pod forgotten. Unknown pods and repeated DELs succeed. A DEL naming another sandbox (container id) than
 *     the enrolled one is stale and ignored.
 *
 * Operations on one pod are serialized (a per-uid queue) so that ADD, DEL and retries never interleave, and a
 * descriptor is never closed while a send that uses it is queued.
 */
import { describeError } from '../../lib/errors.js';
import { netnsInode, openNetns, closeFd } from '../../lib/native/index.js';
import { componentLogger, type Logger } from '../../lib/telemetry/logger.js';
import { ZdsErrorCode } from '../../lib/zds/index.js';
import type { CniEventReply, CniPodEvent } from '../event.js';
import { CniEventServer, type CniEventHandler } from './cni-event-server.js';
import { enrollment, type AgentConfig } from './config.js';
import { CniAgentError, CniAgentErrorCode } from './errors.js';
import { applyInpodRules, removeInpodRules, type NetnsRulesOptions } from './netns-rules.js';
import { PodCache, type PodEntry } from './pod-cache.js';
import { ZdsServer } from './zds-server.js';

/** Service account sent in WorkloadInfo until the Kubernetes watch (issue #4) gives spec.serviceAccountName. */
export const DEFAULT_SERVICE_ACCOUNT = 'default';

export interface NodeAgentOptions {
  config: AgentConfig;
  logger?: Logger;
  /** First retry delay for pods ztunnel NACKed, default 1000 ms, doubling to retryMaxMs (default 30 s). */
  retryInitialMs?: number;
  retryMaxMs?: number;
}

export class NodeAgent implements CniEventHandler {
  readonly config: AgentConfig;
  readonly pods: PodCache;
  readonly #log: Logger;
  readonly #rules: NetnsRulesOptions;
  readonly #locks = new Map<string, Promise<unknown>>();
  readonly #retryInitial: number;
  readonly #retryMax: number;
  #retryDelay: number;
  #retryTimer: NodeJS.Timeout | undefined;
  #zds: ZdsServer | undefined;
  #events: CniEventServer | undefined;
  #stopping = false;

  static async start(opts: NodeAgentOptions): Promise<NodeAgent> {
    const agent = new NodeAgent(opts);
    await agent.#start();
    return agent;
  }

  private constructor(opts: NodeAgentOptions) {
    this.config = opts.config;
    this.#log = opts.logger ?? componentLogger('cni-agent');
    this.pods = new PodCache(opts.config.stateFile, this.#log);
    this.#rules = { dnsCapture: opts.config.dnsCapture, probeSnatAddress: opts.config.probeSnatAddress };
    this.#retryInitial = opts.retryInitialMs ?? 1000;
    this.#retryMax = opts.retryMaxMs ?? 30_000;
    this.#retryDelay = this.#retryInitial;
  }

  async #start(): Promise<void> {
    const loaded = this.pods.load();
    if (loaded > 0) this.#log.info({ pods: loaded, stateFile: this.pods.stateFile }, 're-learned pods from the state file');
    this.#zds = ZdsServer.listen({
      path: this.config.ztunnelUdsAddress,
      logger: this.#log.child({ zds: this.config.ztunnelUdsAddress }),
      pods: {
        uids: () => this.pods.uids(),
        entry: (uid) => {
          const p = this.pods.get(uid);
          return p === undefined ? undefined : { uid, info: workloadInfo(p), netnsFd: p.netnsFd };
        },
      },
      onSnapshotAck: (uid, error) => {
        const p = this.pods.get(uid);
        if (p !== undefined) p.acked = error === '';
      },
      onSnapshotDone: () => this.#scheduleRetry(true),
    });
    this.#events = await CniEventServer.listen(this.config.cniEventAddress, this, this.#log);
    this.#log.info({
      cniEventAddress: this.config.cniEventAddress,
      ztunnelUdsAddress: this.config.ztunnelUdsAddress,
      ambientNamespaces: [...this.config.ambientNamespaces],
      dnsCapture: this.config.dnsCapture,
    }, 'mesh-cni-agent started');
  }

  /** Runs fn after every earlier operation on the same pod. */
  #withPod<T>(uid: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#locks.get(uid) ?? Promise.resolve();
    const p = prev.then(fn, fn);
    const tail = p.catch(() => undefined);
    this.#locks.set(uid, tail);
    void tail.then(() => {
      if (this.#locks.get(uid) === tail) this.#locks.delete(uid);
    });
    return p;
  }

  async add(ev: CniPodEvent): Promise<CniEventReply> {
    if (this.#stopping) throw new CniAgentError(CniAgentErrorCode.STOPPING, 'the agent is stopping');
    const pod = `${ev.podNamespace}/${ev.podName}`;
    const decision = enrollment(this.config, ev.podNamespace, ev.podName);
    if (!decision.enrolled) {
      this.#log.debug({ pod, reason: decision.reason }, 'pod not enrolled');
      return { enrolled: false, message: `not enrolled: ${decision.reason}` };
    }
    if (ev.podUid === '') {
      throw new CniAgentError(CniAgentErrorCode.MISSING_UID,
        `pod ${pod} is enrolled but CNI_ARGS has no K8S_POD_UID; ztunnel identifies pods by uid`);
    }
    return this.#withPod(ev.podUid, () => this.#add(ev, pod));
  }

  async #add(ev: CniPodEvent, pod: string): Promise<CniEventReply> {
    const log = this.#log.child({ pod, uid: ev.podUid });
    let fd: number;
    try {
      fd = openNetns(ev.netns);
    } catch (err) {
      throw new CniAgentError(CniAgentErrorCode.NETNS_UNAVAILABLE, `cannot open the netns of pod ${pod} at ${ev.netns}`, { cause: err });
    }
    const inode = netnsInode(fd);
    const existing = this.pods.get(ev.podUid);
    const sameNetns = existing?.netnsFd !== undefined && existing.netnsInode === inode;
    if (sameNetns) {
      closeFd(fd); // keep the descriptor we already hold (ztunnel got that one)
      fd = existing.netnsFd as number;
    }
    try {
      await applyInpodRules(fd, this.#rules);
    } catch (err) {
      if (!sameNetns) closeFd(fd);
      throw new CniAgentError(CniAgentErrorCode.RULES_FAILED, `redirecting pod ${pod} failed`, { cause: err });
    }
    const entry: PodEntry = {
      uid: ev.podUid,
      namespace: ev.podNamespace,
      name: ev.podName,
      serviceAccount: existing?.serviceAccount ?? DEFAULT_SERVICE_ACCOUNT,
      ips: ev.ips.length > 0 ? ev.ips : existing?.ips ?? [],
      containerId: ev.containerId,
      netnsPath: ev.netns,
      netnsInode: inode,
      netnsFd: fd,
      acked: sameNetns && existing.acked,
    };
    this.pods.set(entry); // persists; closes a replaced namespace's descriptor
    log.info({ netns: ev.netns, ips: entry.ips }, 'in-pod redirection applied');
    if (entry.acked) return { enrolled: true, message: `pod ${pod} already in the mesh; rules reconciled` };
    const outcome = await this.#deliver(entry, log);
    return { enrolled: true, message: `pod ${pod} enrolled; ${outcome}` };
  }

  /** Sends AddWorkload for the pod; records whether ztunnel acked. Never throws: returns a description. */
  async #deliver(entry: PodEntry, log: Logger): Promise<string> {
    const zds = this.#zds;
    if (zds === undefined || entry.netnsFd === undefined) return 'not delivered';
    try {
      const error = await zds.podAdded(entry.uid, workloadInfo(entry), entry.netnsFd);
      if (error === '') {
        entry.acked = true;
        log.info('ztunnel acked AddWorkload');
        return 'ztunnel acked';
      }
      entry.acked = false;
      log.warn({ error }, 'ztunnel NACKed AddWorkload; the pod stays enrolled and is retried');
      this.#scheduleRetry(false);
      return `ztunnel NACKed (${error}); will retry`;
    } catch (err) {
      entry.acked = false;
      if ((err as { code?: unknown }).code === ZdsErrorCode.NOT_CONNECTED) {
        log.info('no ztunnel connected; the pod goes out with the next snapshot');
        return 'no ztunnel connected yet; queued for its snapshot';
      }
      log.warn({ err: describeError(err) }, 'AddWorkload not delivered; will retry');
      this.#scheduleRetry(false);
      return `not delivered (${describeError(err)}); will retry`;
    }
  }

  #scheduleRetry(reset: boolean): void {
    if (reset) this.#retryDelay = this.#retryInitial;
    if (this.#retryTimer !== undefined || this.#stopping) return;
    if (!this.pods.all().some((p) => !p.acked && p.netnsFd !== undefined)) {
      this.#retryDelay = this.#retryInitial;
      return;
    }
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      void this.#retryPending();
    }, this.#retryDelay);
  }

  async #retryPending(): Promise<void> {
    if (this.#stopping || this.#zds?.connected !== true) return; // the next snapshot covers them
    const pending = this.pods.all().filter((p) => !p.acked && p.netnsFd !== undefined);
    this.#retryDelay = Math.min(this.#retryDelay * 2, this.#retryMax);
    await Promise.all(pending.map((p) => this.#withPod(p.uid, async () => {
      const current = this.pods.get(p.uid);
      if (current === undefined || current.acked || current.netnsFd === undefined) return;
      await this.#deliver(current, this.#log.child({ pod: `${current.namespace}/${current.name}`, uid: current.uid, retry: true }));
    })));
    if (!this.pods.all().some((p) => !p.acked && p.netnsFd !== undefined)) this.#retryDelay = this.#retryInitial;
  }

  async del(ev: CniPodEvent): Promise<CniEventReply> {
    const found = (ev.podUid !== '' ? this.pods.get(ev.podUid) : undefined) ?? this.pods.findByContainerId(ev.containerId);
    if (found === undefined) return { enrolled: false, message: 'pod not in the mesh; nothing to do' };
    return this.#withPod(found.uid, async () => {
      const entry = this.pods.get(found.uid);
      if (entry === undefined) return { enrolled: false, message: 'pod already removed' };
      const pod = `${entry.namespace}/${entry.name}`;
      const log = this.#log.child({ pod, uid: entry.uid });
      if (ev.containerId !== '' && entry.containerId !== '' && ev.containerId !== entry.containerId) {
        log.info({ containerId: ev.containerId, enrolled: entry.containerId }, 'DEL for an older sandbox; ignored');
        return { enrolled: true, message: `DEL for sandbox ${ev.containerId} ignored: pod runs in ${entry.containerId}` };
      }
      if (entry.netnsFd !== undefined) {
        try {
          await removeInpodRules(entry.netnsFd, this.#rules);
        } catch (err) {
          // The namespace is about to disappear anyway; the pod must stay deletable.
          log.warn({ err: describeError(err) }, 'removing the in-pod rules failed');
        }
      }
      await this.#zds?.podDeleted(entry.uid);
      this.pods.delete(entry.uid); // closes the descriptor after every queued send that used it
      log.info('pod removed from the mesh');
      return { enrolled: false, message: `pod ${pod} removed from the mesh` };
    });
  }

  /**
   * SIGTERM: stop listening on both sockets and close the ztunnel connections; leave every pod's rules in place
   * (traffic keeps flowing through ztunnel) and the state file, from which the next agent re-learns the pods.
   */
  async stop(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    clearTimeout(this.#retryTimer);
    this.#zds?.close();
    await this.#events?.close();
    await Promise.allSettled([...this.#locks.values()]);
    this.pods.closeAll();
    this.#log.info('mesh-cni-agent stopped; pod rules left in place');
  }
}

function workloadInfo(p: PodEntry): { name: string; namespace: string; serviceAccount: string } {
  return { name: p.name, namespace: p.namespace, serviceAccount: p.serviceAccount };
}
