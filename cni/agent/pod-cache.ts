/**
 * The agent's pods: uid → namespace, name, IPs, netns path and the open netns descriptor handed to ztunnel.
 * Pods that are not in the mesh are kept too (`enrolled: false`, never a descriptor), so that when the enrollment
 * source changes its mind the agent still knows where their namespace is; they are never part of a ZDS snapshot.
 *
 * Descriptor ownership: the cache owns every `netnsFd` it holds. set() with a different descriptor for the same
 * uid closes the old one; delete() and closeAll() close them. ZDS sends a descriptor with SCM_RIGHTS, which gives
 * ztunnel its own copy, so closing ours never affects ztunnel.
 *
 * Persistence: the pods (without descriptors) are written to a small JSON state file after every change
 * (write to a temp file, then rename, so a crash never leaves half a file). A restarted agent loads it and
 * reopens each namespace by path, accepting it only when its inode is the one recorded: a path reused by a new
 * sandbox is a different namespace. An enrolled pod whose namespace is gone stays known without a descriptor and
 * is sent to ztunnel as KeepWorkload in the next snapshot (istio cni/pkg/nodeagent/ztunnelserver.go sendSnapshot).
 * Not-enrolled pods are not reopened (the agent opens their namespace if and when they are enrolled).
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { closeFd, netnsInode, openNetns } from '../../lib/native/index.js';
import { describeError } from '../../lib/errors.js';
import type { Logger } from '../../lib/telemetry/logger.js';

export interface PodEntry {
  uid: string;
  namespace: string;
  name: string;
  serviceAccount: string;
  ips: string[];
  containerId: string;
  netnsPath: string;
  /** Inode of the namespace (0 = unknown); checked when reopening by path. */
  netnsInode: number;
  /** In the mesh (rules applied, handed to ztunnel). False: known only, in case its enrollment changes. */
  enrolled: boolean;
  /** Open O_RDONLY|O_CLOEXEC descriptor, or undefined when the namespace could not be reopened. Not persisted. */
  netnsFd: number | undefined;
  /** Not persisted: whether the newest ztunnel has acknowledged the Add (false = pending, to be retried). */
  acked: boolean;
}

interface StateFileV1 {
  version: 1;
  pods: Array<Omit<PodEntry, 'netnsFd' | 'acked'>>;
}

export class PodCache {
  readonly stateFile: string;
  readonly #pods = new Map<string, PodEntry>();
  readonly #log: Logger;

  constructor(stateFile: string, log: Logger) {
    this.stateFile = stateFile;
    this.#log = log;
  }

  get size(): number {
    return this.#pods.size;
  }

  get(uid: string): PodEntry | undefined {
    return this.#pods.get(uid);
  }

  findByContainerId(containerId: string): PodEntry | undefined {
    if (containerId === '') return undefined;
    for (const p of this.#pods.values()) if (p.containerId === containerId) return p;
    return undefined;
  }

  uids(): string[] {
    return [...this.#pods.keys()];
  }

  /** The pods in the mesh (what ztunnel is told about). */
  enrolledUids(): string[] {
    return this.all()
      .filter((p) => p.enrolled)
      .map((p) => p.uid);
  }

  all(): PodEntry[] {
    return [...this.#pods.values()];
  }

  /** Stores the pod (replacing the entry of the same uid, closing its old descriptor if different) and persists. */
  set(entry: PodEntry): void {
    const old = this.#pods.get(entry.uid);
    if (old?.netnsFd !== undefined && old.netnsFd !== entry.netnsFd) safeClose(old.netnsFd);
    this.#pods.set(entry.uid, entry);
    this.persist();
  }

  /** Forgets the pod, closes its descriptor and persists. */
  delete(uid: string): void {
    const old = this.#pods.get(uid);
    if (old === undefined) return;
    if (old.netnsFd !== undefined) safeClose(old.netnsFd);
    this.#pods.delete(uid);
    this.persist();
  }

  /** Closes every descriptor (shutdown); the state file stays for the next start. */
  closeAll(): void {
    for (const p of this.#pods.values()) {
      if (p.netnsFd !== undefined) safeClose(p.netnsFd);
      p.netnsFd = undefined;
    }
  }

  persist(): void {
    const state: StateFileV1 = {
      version: 1,
      pods: this.all().map(({ netnsFd: _fd, acked: _acked, ...rest }) => rest),
    };
    mkdirSync(dirname(this.stateFile), { recursive: true });
    const tmp = `${this.stateFile}.tmp-${process.pid}`;
    writeFileSync(tmp, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
    renameSync(tmp, this.stateFile);
  }

  /** Loads the state file (missing = no pods) and reopens the namespaces. Returns how many pods were loaded. */
  load(): number {
    let text: string;
    try {
      text = readFileSync(this.stateFile, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
      throw err;
    }
    let state: StateFileV1;
    try {
      state = JSON.parse(text) as StateFileV1;
      if (state.version !== 1 || !Array.isArray(state.pods)) throw new Error('unknown state file version');
    } catch (err) {
      // A corrupt file must not keep the agent down: start empty (pods get re-added by their next CNI event).
      this.#log.error({ err: describeError(err), file: this.stateFile }, 'ignoring an unreadable pod state file');
      return 0;
    }
    for (const p of state.pods) {
      if (typeof p?.uid !== 'string' || typeof p.netnsPath !== 'string') continue;
      const entry: PodEntry = {
        uid: p.uid,
        namespace: String(p.namespace ?? ''),
        name: String(p.name ?? ''),
        serviceAccount: String(p.serviceAccount ?? 'default'),
        ips: Array.isArray(p.ips) ? p.ips.filter((ip): ip is string => typeof ip === 'string') : [],
        containerId: String(p.containerId ?? ''),
        netnsPath: p.netnsPath,
        netnsInode: Number(p.netnsInode ?? 0),
        // Absent in state files written before not-enrolled pods were kept: those held enrolled pods only.
        enrolled: p.enrolled !== false,
        netnsFd: p.enrolled === false ? undefined : reopen(p.netnsPath, Number(p.netnsInode ?? 0), this.#log),
        acked: false,
      };
      this.#pods.set(entry.uid, entry);
    }
    return this.#pods.size;
  }
}

function reopen(path: string, inode: number, log: Logger): number | undefined {
  let fd: number;
  try {
    fd = openNetns(path);
  } catch (err) {
    log.warn({ netns: path, err: describeError(err) }, 'pod netns is gone; the pod will be sent as KeepWorkload');
    return undefined;
  }
  if (netnsInode(fd) !== inode) {
    safeClose(fd);
    log.warn({ netns: path }, 'pod netns path now names another namespace; the pod will be sent as KeepWorkload');
    return undefined;
  }
  return fd;
}

function safeClose(fd: number): void {
  try {
    closeFd(fd);
  } catch {
    // double close: nothing more to do
  }
}
