/**
 * A data-plane worker's pods: uid → the running proxy, the netns descriptor it runs in and that namespace's
 * identity. The one place that decides what an Add for a uid means (ztunnel src/inpod/statemanager.rs,
 * add_workload_inner):
 *
 *   uid not running                 → start a proxy in the namespace                       'started'
 *   running in the same namespace   → keep it untouched, close the new descriptor          'kept'
 *     (the node agent re-sends every pod in its snapshot after a reconnect: an agent restart must not touch
 *     live connections)
 *   running in another namespace    → stop the old proxy, start one in the new namespace   'replaced'
 *     (the pod's sandbox was re-created; the old namespace and its connections are gone)
 *
 * Descriptor ownership: add() owns `netnsFd` from the call on, whatever the outcome. It keeps it while the proxy
 * runs and closes it when the proxy is removed or replaced; it closes it at once when the Add is kept or the
 * proxy fails to start. remove() and removeAll() close the descriptors of the pods they remove. A close that fails
 * (NATIVE_CLOSE_FAILED) is a double close somewhere, and is thrown rather than hidden.
 *
 * Operations on one uid run one after the other (a per-uid queue), so an Add, a Del and a drain of the same pod
 * never interleave, whatever order the messages arrive in.
 */
import { closeFd, sameNetns } from '../../lib/native/index.js';
import type { PodAddOutcome, PodDump, PodInfo } from './protocol.js';

/** What the registry needs of a pod proxy (PodProxy's public surface). */
export interface RegisteredProxy {
  start(): Promise<void>;
  stop(deadlineMs: number): Promise<void>;
  dump(): PodDump;
}

export type ProxyFactory<P extends RegisteredProxy> = (pod: PodInfo, netnsFd: number) => P;

interface Entry<P> {
  readonly pod: PodInfo;
  readonly netnsFd: number;
  readonly proxy: P;
}

export class PodRegistry<P extends RegisteredProxy> {
  readonly #factory: ProxyFactory<P>;
  readonly #pods = new Map<string, Entry<P>>();
  readonly #queues = new Map<string, Promise<unknown>>();

  constructor(factory: ProxyFactory<P>) {
    this.#factory = factory;
  }

  get size(): number {
    return this.#pods.size;
  }

  uids(): string[] {
    return [...this.#pods.keys()];
  }

  proxies(): P[] {
    return [...this.#pods.values()].map((e) => e.proxy);
  }

  dump(): Record<string, PodDump> {
    const out: Record<string, PodDump> = {};
    for (const [uid, e] of this.#pods) out[uid] = e.proxy.dump();
    return out;
  }

  /** Starts, keeps or replaces the proxy of `pod.uid` (see the module comment). Owns `netnsFd` from the call on. */
  add(pod: PodInfo, netnsFd: number): Promise<PodAddOutcome> {
    return this.#serial(pod.uid, async () => {
      const running = this.#pods.get(pod.uid);
      if (running !== undefined && sameNetns(running.pod.netns, pod.netns)) {
        closeFd(netnsFd); // the agent's fresh copy of a namespace we already hold
        return 'kept';
      }
      // The old sandbox is gone with its namespace: nothing in it can be drained, so no deadline.
      if (running !== undefined) await this.#stop(pod.uid, running, 0);
      let proxy: P;
      try {
        proxy = this.#factory(pod, netnsFd);
      } catch (err) {
        closeFd(netnsFd);
        throw err;
      }
      // Registered before start() so that a dump shows the pod Pending while its listeners come up.
      this.#pods.set(pod.uid, { pod, netnsFd, proxy });
      try {
        await proxy.start();
      } catch (err) {
        this.#pods.delete(pod.uid);
        await proxy.stop(0).catch(() => undefined);
        closeFd(netnsFd);
        throw err;
      }
      return running === undefined ? 'started' : 'replaced';
    });
  }

  /** Stops the pod's proxy (live connections get `deadlineMs`) and closes its descriptor. False: not running. */
  remove(uid: string, deadlineMs: number): Promise<boolean> {
    return this.#serial(uid, async () => {
      const running = this.#pods.get(uid);
      if (running === undefined) return false;
      await this.#stop(uid, running, deadlineMs);
      return true;
    });
  }

  /** remove() of every pod, in parallel (drain). */
  async removeAll(deadlineMs: number): Promise<void> {
    await Promise.all(this.uids().map((uid) => this.remove(uid, deadlineMs)));
  }

  async #stop(uid: string, entry: Entry<P>, deadlineMs: number): Promise<void> {
    this.#pods.delete(uid);
    try {
      await entry.proxy.stop(deadlineMs);
    } finally {
      closeFd(entry.netnsFd);
    }
  }

  #serial<T>(uid: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#queues.get(uid) ?? Promise.resolve();
    const p = prev.then(fn, fn);
    const tail = p.catch(() => undefined);
    this.#queues.set(uid, tail);
    void tail.then(() => {
      if (this.#queues.get(uid) === tail) this.#queues.delete(uid);
    });
    return p;
  }
}
