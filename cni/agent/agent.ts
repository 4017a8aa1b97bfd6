/**
 * The node agent's pod flow (Istio's istio-cni node agent, ambient mode; cni/pkg/nodeagent/net.go AddPodToMesh /
 * RemovePodFromMesh), driven by the plugin's CNI events and by the enrollment source (enrollment.ts):
 *
 *   ADD → ask the enrollment source. Enrolled: apply the in-pod rules inside its netns → keep the netns
 *     descriptor in the pod cache (persisted) → AddWorkload (with the pod's service account) to the newest
 *     ztunnel and wait for its ack → answer the plugin "enrolled". No ztunnel connected: the pod waits for the
 *     next snapshot; NACK: logged, the pod stays enrolled and "pending" and is retried with backoff (1 s doubling
 *     to 30 s). Either way the plugin is answered with success. (Istio's agent fails the CNI ADD in that case;
 *     this project's brief keeps the pod starting — its traffic is captured by the rules and waits for ztunnel,
 *     so nothing leaves the pod unproxied.) Not enrolled: the pod is remembered (uid, netns path and inode,
 *     sandbox id, IPs; persisted with enrolled=false, no descriptor kept) and the plugin told "not enrolled".
 *   ADD again for the same pod and namespace → rules reconciled (never duplicated), no second AddWorkload once
 *     acked. Same uid with another namespace (sandbox re-created) → the new namespace replaces the old.
 *   DEL → rules removed (the agent still holds the namespace) → DelWorkload to every ztunnel → descriptor closed
 *     → pod forgotten. Unknown pods and repeated DELs succeed. A DEL naming another sandbox (container id) than
 *     the known one is stale and ignored.
 *   The source reports a change → every known pod it may concern is re-decided (at start too, for changes made
 *     while the agent was down):
 *       newly enrolled     → reopen the netns by path (the recorded inode must match: a reused path is another
 *                            sandbox, and the pod is forgotten) → rules → AddWorkload, exactly as at ADD.
 *       no longer enrolled → rules removed → DelWorkload → descriptor closed; the pod stays known, not enrolled.
 *                            If the rules cannot be removed the pod stays enrolled (its traffic still reaches
 *                            ztunnel) and the change is retried with the NACK backoff.
 *     A pod not in the mesh whose netns path is gone is forgotten when re-decided: its sandbox is gone and its
 *     DEL went missing (the agent was down), and no DEL will come to clean it up.
 *
 * Restarts touch no pod. A ztunnel that connects or reconnects gets the snapshot and nothing more: the agent
 * already holds every enrolled pod's descriptor, so it runs no rule and reopens no namespace for it
 * (zds-server.ts), and ztunnel keeps each proxy whose namespace is unchanged. A restarted agent re-learns its
 * pods from the state file (pod-cache.ts), reopens each namespace by path and re-decides enrollment; rules run
 * again only for a pod whose enrollment changed while it was down.
 *
 * Operations on one pod are serialized (a per-uid queue) so that ADD, DEL, reconciles and retries never
 * interleave, and a descriptor is never closed while a send that uses it is queued. With an annotator (only
 * with the Kubernetes source) the pod is annotated ambient.istio.io/redirection=pending once its rules are in
 * place, =enabled when ztunnel acked, and the annotation is removed when it leaves the mesh.
 */
import { existsSync } from 'node:fs';
import { describeError } from '../../lib/errors.js';
import { netnsInode, openNetns, closeFd } from '../../lib/native/index.js';
import { componentLogger, type Logger } from '../../lib/telemetry/logger.js';
import { ZdsErrorCode } from '../../lib/zds/index.js';
import type { CniEventReply, CniPodEvent } from '../event.js';
import { CniEventServer, type CniEventHandler } from './cni-event-server.js';
import type { AgentConfig } from './config.js';
import {
  DEFAULT_SERVICE_ACCOUNT,
  StaticEnrollment,
  type EnrollmentChange,
  type EnrollmentDecision,
  type EnrollmentSource,
  type RedirectionAnnotator,
  type RedirectionState,
} from './enrollment.js';
import { CniAgentError, CniAgentErrorCode } from './errors.js';
import { applyInpodRules, removeInpodRules, type NetnsRulesOptions } from './netns-rules.js';
import { PodCache, type PodEntry } from './pod-cache.js';
import { ZdsServer } from './zds-server.js';

export { DEFAULT_SERVICE_ACCOUNT };

export interface NodeAgentOptions {
  config: AgentConfig;
  logger?: Logger;
  /**
   * Which pods are in the mesh; default StaticEnrollment(config). The agent starts it, listens to it and stops
   * it when the agent stops.
   */
  enrollment?: EnrollmentSource;
  /** Writes ambient.istio.io/redirection on pods; default none. */
  annotator?: RedirectionAnnotator;
  /** First retry delay for pods ztunnel NACKed, default 1000 ms, doubling to retryMaxMs (default 30 s). */
  retryInitialMs?: number;
  retryMaxMs?: number;
}

export class NodeAgent implements CniEventHandler {
  readonly config: AgentConfig;
  readonly pods: PodCache;
  readonly enrollment: EnrollmentSource;
  readonly #annotator: RedirectionAnnotator | undefined;
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
  #unsubscribe: (() => void) | undefined;
  /**
   * Bumped on every change the source reports. An ADD decides before its pod is in the cache, so the change
   * listener cannot see it: the ADD compares the counter and re-decides when it moved meanwhile.
   */
  #changeSeq = 0;
  /** Reconciles queued and not started yet, per pod: a burst of changes costs one reconcile. */
  readonly #reconcileQueued = new Map<string, Promise<void>>();
  /** Pods whose reconcile failed (source unreachable, rules failed): retried on the backoff timer. */
  readonly #reconcileFailed = new Set<string>();
  /** Last annotation asked for per pod and the chain that writes them in order, off the pod's queue. */
  readonly #annotations = new Map<string, { state: RedirectionState | undefined; chain: Promise<void> }>();

  static async start(opts: NodeAgentOptions): Promise<NodeAgent> {
    const agent = new NodeAgent(opts);
    try {
      await agent.#start();
    } catch (err) {
      await agent.stop().catch(() => undefined); // release whatever did start (sockets, informers)
      throw err;
    }
    return agent;
  }

  private constructor(opts: NodeAgentOptions) {
    this.config = opts.config;
    this.#log = opts.logger ?? componentLogger('cni-agent');
    this.pods = new PodCache(opts.config.stateFile, this.#log);
    this.enrollment = opts.enrollment ?? new StaticEnrollment(opts.config);
    this.#annotator = opts.annotator;
    this.#rules = {
      dnsCapture: opts.config.dnsCapture,
      probeSnatAddress: opts.config.probeSnatAddress,
      commandPath: opts.config.commandPath,
    };
    this.#retryInitial = opts.retryInitialMs ?? 1000;
    this.#retryMax = opts.retryMaxMs ?? 30_000;
    this.#retryDelay = this.#retryInitial;
  }

  async #start(): Promise<void> {
    const loaded = this.pods.load();
    if (loaded > 0) {
      this.#log.info(
        { pods: loaded, enrolled: this.pods.enrolledUids().length, stateFile: this.pods.stateFile },
        're-learned pods from the state file',
      );
    }
    // Subscribed before start() so that no change is lost; the reconcile below covers what happened before.
    this.#unsubscribe = this.enrollment.onChange((c) => this.#onEnrollmentChange(c));
    await this.enrollment.start();
    this.#zds = ZdsServer.listen({
      path: this.config.ztunnelUdsAddress,
      logger: this.#log.child({ zds: this.config.ztunnelUdsAddress }),
      pods: {
        uids: () => this.pods.enrolledUids(),
        entry: (uid) => {
          const p = this.pods.get(uid);
          // Unenrolled or deleted since the snapshot listed it: skipped, ztunnel drops it at SnapshotSent.
          return p === undefined || !p.enrolled ? undefined : { uid, info: workloadInfo(p), netnsFd: p.netnsFd };
        },
      },
      onSnapshotAck: (uid, error) => {
        const p = this.pods.get(uid);
        if (p === undefined || !p.enrolled) return;
        p.acked = error === '';
        if (p.acked) this.#annotate(p, 'enabled');
      },
      onSnapshotDone: () => this.#scheduleRetry(true),
    });
    this.#events = await CniEventServer.listen(this.config.cniEventAddress, this, this.#log);
    // Enrollment may have changed while the agent was down (labels, or AMBIENT_NAMESPACES between runs).
    await Promise.all(this.pods.uids().map((uid) => this.#queueReconcile(uid)));
    this.#log.info(
      {
        cniEventAddress: this.config.cniEventAddress,
        ztunnelUdsAddress: this.config.ztunnelUdsAddress,
        enrollment: this.enrollment.constructor.name,
        ambientNamespaces: [...this.config.ambientNamespaces],
        dnsCapture: this.config.dnsCapture,
      },
      'mesh-cni-agent started',
    );
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

  async #decide(namespace: string, name: string, uid: string): Promise<EnrollmentDecision> {
    try {
      return await this.enrollment.decide({ namespace, name, uid });
    } catch (err) {
      throw new CniAgentError(CniAgentErrorCode.ENROLLMENT_UNAVAILABLE, `cannot tell whether pod ${namespace}/${name} is in the mesh`, {
        cause: err,
      });
    }
  }

  async add(ev: CniPodEvent): Promise<CniEventReply> {
    if (this.#stopping) throw new CniAgentError(CniAgentErrorCode.STOPPING, 'the agent is stopping');
    const pod = `${ev.podNamespace}/${ev.podName}`;
    if (ev.podUid === '') {
      // Without a uid the pod cannot be remembered (nor told to ztunnel): answer from the decision alone.
      const decision = await this.#decide(ev.podNamespace, ev.podName, '');
      if (!decision.enrolled) {
        this.#log.debug({ pod, reason: decision.reason }, 'pod not enrolled');
        return { enrolled: false, message: `not enrolled: ${decision.reason}` };
      }
      throw new CniAgentError(
        CniAgentErrorCode.MISSING_UID,
        `pod ${pod} is enrolled but CNI_ARGS has no K8S_POD_UID; ztunnel identifies pods by uid`,
      );
    }
    return this.#withPod(ev.podUid, () => this.#add(ev, pod));
  }

  async #add(ev: CniPodEvent, pod: string): Promise<CniEventReply> {
    const seq = this.#changeSeq;
    const decision = await this.#decide(ev.podNamespace, ev.podName, ev.podUid);
    try {
      return decision.enrolled ? await this.#addEnrolled(ev, pod, decision) : await this.#addNotEnrolled(ev, pod, decision);
    } finally {
      // Queued behind this ADD on the pod's queue, so it sees the entry this ADD stored.
      if (this.#changeSeq !== seq) void this.#queueReconcile(ev.podUid);
    }
  }

  async #addNotEnrolled(ev: CniPodEvent, pod: string, decision: EnrollmentDecision): Promise<CniEventReply> {
    const log = this.#log.child({ pod, uid: ev.podUid });
    const existing = this.pods.get(ev.podUid);
    if (existing?.enrolled === true && !(await this.#takeOut(existing, log))) {
      throw new CniAgentError(CniAgentErrorCode.RULES_FAILED, `pod ${pod} is no longer enrolled but its redirection could not be removed`);
    }
    const entry = podEntryOf(ev, decision, existing, {
      netnsInode: peekInode(ev.netns, log),
      netnsFd: undefined,
      acked: false,
      enrolled: false,
    });
    this.pods.set(entry);
    log.debug({ reason: decision.reason, netns: ev.netns }, 'pod not enrolled; remembered in case that changes');
    return { enrolled: false, message: `not enrolled: ${decision.reason}` };
  }

  async #addEnrolled(ev: CniPodEvent, pod: string, decision: EnrollmentDecision): Promise<CniEventReply> {
    const log = this.#log.child({ pod, uid: ev.podUid });
    let fd: number;
    try {
      fd = openNetns(ev.netns);
    } catch (err) {
      throw new CniAgentError(CniAgentErrorCode.NETNS_UNAVAILABLE, `cannot open the netns of pod ${pod} at ${ev.netns}`, { cause: err });
    }
    const inode = netnsInode(fd);
    const existing = this.pods.get(ev.podUid);
    const sameNetns = existing?.enrolled === true && existing.netnsFd !== undefined && existing.netnsInode === inode;
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
    const entry = podEntryOf(ev, decision, existing, {
      netnsInode: inode,
      netnsFd: fd,
      acked: sameNetns && existing.acked,
      enrolled: true,
    });
    this.pods.set(entry); // persists; closes a replaced namespace's descriptor
    log.info({ netns: ev.netns, ips: entry.ips, serviceAccount: entry.serviceAccount }, 'in-pod redirection applied');
    this.#annotate(entry, entry.acked ? 'enabled' : 'pending');
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
        this.#annotate(entry, 'enabled');
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

  #onEnrollmentChange(changed: EnrollmentChange): void {
    if (this.#stopping) return;
    this.#changeSeq++;
    const concerned = this.pods
      .all()
      .filter((p) =>
        changed.pod !== undefined
          ? p.namespace === changed.pod.namespace && p.name === changed.pod.name
          : changed.namespace === undefined || p.namespace === changed.namespace,
      );
    if (concerned.length > 0) this.#log.debug({ changed, pods: concerned.length }, 'enrollment changed; re-deciding');
    for (const p of concerned) void this.#queueReconcile(p.uid);
  }

  /** Queues a reconcile of the pod on its queue, unless one is already waiting there. */
  #queueReconcile(uid: string): Promise<void> {
    const queued = this.#reconcileQueued.get(uid);
    if (queued !== undefined) return queued;
    if (this.#stopping) return Promise.resolve();
    const p = this.#withPod(uid, async () => {
      this.#reconcileQueued.delete(uid); // a change arriving from now on needs another pass
      await this.#reconcile(uid);
    }).catch((err: unknown) => {
      this.#log.error({ uid, err: describeError(err) }, 'reconciling a pod failed');
      this.#retryReconcile(uid);
    });
    this.#reconcileQueued.set(uid, p);
    return p;
  }

  async #reconcile(uid: string): Promise<void> {
    const entry = this.pods.get(uid);
    if (entry === undefined || this.#stopping) return;
    const log = this.#log.child({ pod: `${entry.namespace}/${entry.name}`, uid });
    if (!entry.enrolled && !existsSync(entry.netnsPath)) {
      // Its sandbox is gone and its DEL never reached us (agent down): nothing to undo, nothing to keep.
      log.info({ netns: entry.netnsPath }, 'forgetting a pod not in the mesh whose netns is gone');
      this.#forget(uid);
      return;
    }
    let decision: EnrollmentDecision;
    try {
      decision = await this.enrollment.decide({ namespace: entry.namespace, name: entry.name, uid });
    } catch (err) {
      log.warn({ err: describeError(err) }, "cannot re-decide the pod's enrollment; will retry");
      this.#retryReconcile(uid);
      return;
    }
    if (decision.enrolled === entry.enrolled) {
      this.#reconcileFailed.delete(uid);
      return;
    }
    log.info({ enrolled: decision.enrolled, reason: decision.reason }, 'enrollment changed');
    const done = decision.enrolled ? await this.#bringIn(entry, decision, log) : await this.#takeOut(entry, log);
    if (done) this.#reconcileFailed.delete(uid);
    else this.#retryReconcile(uid);
    // Taken out with its netns already gone (e.g. the pod object was deleted while the agent was down).
    if (done && !decision.enrolled && !existsSync(entry.netnsPath)) this.#forget(uid);
  }

  /** Enrolls a known pod outside of ADD. False: failed, retry later. */
  async #bringIn(entry: PodEntry, decision: EnrollmentDecision, log: Logger): Promise<boolean> {
    let fd: number;
    try {
      fd = openNetns(entry.netnsPath);
    } catch (err) {
      if (!existsSync(entry.netnsPath)) {
        // The sandbox is gone (its DEL never reached us); a new sandbox brings a new ADD.
        log.info({ netns: entry.netnsPath }, "the pod's netns is gone; forgetting the pod");
        this.#forget(entry.uid);
        return true;
      }
      log.warn({ netns: entry.netnsPath, err: describeError(err) }, "cannot open the pod's netns; will retry");
      return false;
    }
    const inode = netnsInode(fd);
    if (entry.netnsInode !== 0 && inode !== entry.netnsInode) {
      closeFd(fd);
      log.info({ netns: entry.netnsPath }, "the pod's netns path now names another namespace (sandbox gone); forgetting the pod");
      this.#forget(entry.uid);
      return true;
    }
    try {
      await applyInpodRules(fd, this.#rules);
    } catch (err) {
      closeFd(fd);
      log.error({ err: describeError(err) }, 'redirecting the pod failed; will retry');
      return false;
    }
    const next: PodEntry = {
      ...entry,
      serviceAccount: decision.serviceAccount ?? entry.serviceAccount,
      netnsInode: inode,
      netnsFd: fd,
      acked: false,
      enrolled: true,
    };
    this.pods.set(next);
    log.info({ netns: next.netnsPath, serviceAccount: next.serviceAccount }, 'in-pod redirection applied');
    this.#annotate(next, 'pending');
    await this.#deliver(next, log);
    return true;
  }

  /** Takes an enrolled pod out of the mesh but keeps it known. False: its rules are still there, retry later. */
  async #takeOut(entry: PodEntry, log: Logger): Promise<boolean> {
    if (entry.netnsFd !== undefined) {
      try {
        await removeInpodRules(entry.netnsFd, this.#rules);
      } catch (err) {
        // Without the DelWorkload the pod's captured traffic keeps reaching ztunnel: better than a black hole.
        log.error({ err: describeError(err) }, 'removing the in-pod rules failed; the pod stays in the mesh');
        return false;
      }
    }
    await this.#zds?.podDeleted(entry.uid);
    const next: PodEntry = { ...entry, netnsFd: undefined, acked: false, enrolled: false };
    this.pods.set(next); // closes the descriptor, after every queued send that used it
    log.info('pod taken out of the mesh: rules removed, DelWorkload sent');
    this.#annotate(next, undefined);
    return true;
  }

  #forget(uid: string): void {
    this.pods.delete(uid);
    this.#annotations.delete(uid);
    this.#reconcileFailed.delete(uid);
  }

  #retryReconcile(uid: string): void {
    if (this.#stopping || this.pods.get(uid) === undefined) return;
    this.#reconcileFailed.add(uid);
    this.#scheduleRetry(false);
  }

  /** Asks the annotator for `state` unless that is what it was last asked; in order per pod, never awaited. */
  #annotate(entry: PodEntry, state: RedirectionState | undefined): void {
    const annotator = this.#annotator;
    if (annotator === undefined) return;
    const last = this.#annotations.get(entry.uid);
    if (last !== undefined && last.state === state) return;
    const pod = { namespace: entry.namespace, name: entry.name };
    // Off the pod's queue: a slow API server must not hold up the CNI ADD (the annotation is informational).
    const chain = (last?.chain ?? Promise.resolve())
      .then(() => annotator.annotate(pod, state))
      .catch((err: unknown) => {
        this.#log.debug({ pod: `${pod.namespace}/${pod.name}`, err: describeError(err) }, 'annotating the pod failed');
      });
    this.#annotations.set(entry.uid, { state, chain });
  }

  #hasPendingWork(): boolean {
    return this.#reconcileFailed.size > 0 || this.pods.all().some((p) => p.enrolled && !p.acked && p.netnsFd !== undefined);
  }

  #scheduleRetry(reset: boolean): void {
    if (reset) this.#retryDelay = this.#retryInitial;
    if (this.#retryTimer !== undefined || this.#stopping) return;
    if (!this.#hasPendingWork()) {
      this.#retryDelay = this.#retryInitial;
      return;
    }
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      void this.#retryPending();
    }, this.#retryDelay);
  }

  async #retryPending(): Promise<void> {
    if (this.#stopping) return;
    this.#retryDelay = Math.min(this.#retryDelay * 2, this.#retryMax);
    const failed = [...this.#reconcileFailed];
    this.#reconcileFailed.clear(); // a reconcile that fails again puts its pod back and re-arms the timer
    const work: Array<Promise<unknown>> = failed.map((uid) => this.#queueReconcile(uid));
    if (this.#zds?.connected === true) {
      // otherwise the next snapshot covers the pending Adds
      const pending = this.pods.all().filter((p) => p.enrolled && !p.acked && p.netnsFd !== undefined);
      work.push(
        ...pending.map((p) =>
          this.#withPod(p.uid, async () => {
            const current = this.pods.get(p.uid);
            if (current === undefined || !current.enrolled || current.acked || current.netnsFd === undefined) return;
            await this.#deliver(current, this.#log.child({ pod: `${current.namespace}/${current.name}`, uid: current.uid, retry: true }));
          }),
        ),
      );
    }
    await Promise.all(work);
    if (!this.#hasPendingWork()) this.#retryDelay = this.#retryInitial;
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
        log.info({ containerId: ev.containerId, known: entry.containerId }, 'DEL for an older sandbox; ignored');
        return { enrolled: entry.enrolled, message: `DEL for sandbox ${ev.containerId} ignored: pod runs in ${entry.containerId}` };
      }
      if (!entry.enrolled) {
        this.#forget(entry.uid);
        log.debug('pod deleted; it was not in the mesh');
        return { enrolled: false, message: `pod ${pod} was not in the mesh; forgotten` };
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
      this.#forget(entry.uid); // closes the descriptor after every queued send that used it
      log.info('pod removed from the mesh');
      return { enrolled: false, message: `pod ${pod} removed from the mesh` };
    });
  }

  /**
   * SIGTERM: stop listening on both sockets, to the enrollment source, and close the ztunnel connections; leave
   * every pod's rules in place (traffic keeps flowing through ztunnel) and the state file, from which the next
   * agent re-learns the pods.
   */
  async stop(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    clearTimeout(this.#retryTimer);
    this.#unsubscribe?.();
    this.#zds?.close();
    await this.#events?.close();
    await Promise.allSettled([...this.#locks.values()]);
    try {
      await this.enrollment.stop();
    } catch (err) {
      this.#log.warn({ err: describeError(err) }, 'stopping the enrollment source failed');
    }
    this.pods.closeAll();
    this.#log.info('mesh-cni-agent stopped; pod rules left in place');
  }
}

function workloadInfo(p: PodEntry): { name: string; namespace: string; serviceAccount: string } {
  return { name: p.name, namespace: p.namespace, serviceAccount: p.serviceAccount };
}

/** The namespace's inode, to recognise it when the pod is enrolled later; 0 when it cannot be read now. */
function peekInode(path: string, log: Logger): number {
  try {
    const fd = openNetns(path);
    try {
      return netnsInode(fd);
    } finally {
      closeFd(fd);
    }
  } catch (err) {
    log.debug({ netns: path, err: describeError(err) }, 'cannot read the netns inode of a pod not enrolled');
    return 0;
  }
}

/** The entry for a pod from its CNI event; what the event leaves out (no IPs, no service account) is kept from before. */
function podEntryOf(
  ev: CniPodEvent,
  decision: EnrollmentDecision,
  existing: PodEntry | undefined,
  netns: Pick<PodEntry, 'netnsInode' | 'netnsFd' | 'acked' | 'enrolled'>,
): PodEntry {
  return {
    uid: ev.podUid,
    namespace: ev.podNamespace,
    name: ev.podName,
    serviceAccount: decision.serviceAccount ?? existing?.serviceAccount ?? DEFAULT_SERVICE_ACCOUNT,
    ips: ev.ips.length > 0 ? ev.ips : (existing?.ips ?? []),
    containerId: ev.containerId,
    netnsPath: ev.netns,
    ...netns,
  };
}
