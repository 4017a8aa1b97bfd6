/**
 * Network namespaces: open a namespace file, and run a synchronous function with the current thread
 * switched into it (setns(2)). A socket keeps the namespace it was created in, so creating the fd inside
 * withNetns is how a process in the node's namespace listens or dials inside a pod's.
 */
import { fstatSync } from 'node:fs';
import { C, ioctlNoArg, lastErrno, libc } from './libc.js';
import { NativeError, NativeErrorCode, commonHint, errnoName, syscallError } from './errors.js';

/**
 * The fd of the namespace this thread was in when withNetns was first used, and the namespace we have
 * switched into (-1 = the original). Module state is per JS thread: a worker_thread has its own copy, which
 * matches setns(2) acting on the calling OS thread only.
 */
let originalFd = -1;
let currentFd = -1;

function originalNetnsFd(): number {
  if (originalFd < 0) {
    // thread-self, not self: setns is per thread and this may run in a worker thread.
    const fd = libc.open('/proc/thread-self/ns/net', C.O_RDONLY | C.O_CLOEXEC);
    if (fd < 0) {
      throw syscallError(
        NativeErrorCode.SETNS_FAILED,
        'remembering the original network namespace',
        'open(/proc/thread-self/ns/net)',
        'is /proc mounted (Linux >= 3.17)?',
      );
    }
    originalFd = fd;
  }
  return originalFd;
}

function setnsOrThrow(fd: number, what: string): void {
  if (libc.setns(fd, C.CLONE_NEWNET) !== 0) {
    throw syscallError(NativeErrorCode.SETNS_FAILED, what, `setns(${fd}, CLONE_NEWNET)`, (name) =>
      name === 'EINVAL'
        ? 'the fd is not a network namespace (open /var/run/netns/<name> or /proc/<pid>/ns/net)'
        : name === 'EBADF'
          ? 'the namespace fd is not open (closed too early, or never opened with openNetns)'
          : name === 'EPERM'
            ? 'setns into a network namespace needs CAP_SYS_ADMIN (run as root)'
            : commonHint(name) || 'check that the fd is an open network namespace file',
    );
  }
}

/**
 * Runs `fn` synchronously with the calling thread in the network namespace `netnsFd`, then always switches
 * back to the namespace it was in before (for nested calls: the enclosing call's namespace). `fn` must do
 * all its namespace-dependent work synchronously (socket(), bind(), ...): anything it defers — a Promise,
 * net.connect(), server.listen(port) — runs later, in the original namespace. A returned thenable is
 * therefore rejected with NATIVE_NETNS_ASYNC_CALLBACK. `netnsFd` must stay open for the whole call.
 */
export function withNetns<T>(netnsFd: number, fn: () => T): T {
  if (!Number.isInteger(netnsFd) || netnsFd < 0) {
    throw new NativeError(NativeErrorCode.INVALID_ARGUMENT, `withNetns: not a file descriptor: ${String(netnsFd)}`);
  }
  const orig = originalNetnsFd();
  const prev = currentFd;
  setnsOrThrow(netnsFd, `entering network namespace fd ${netnsFd}`);
  currentFd = netnsFd;
  let result: T;
  try {
    result = fn();
  } finally {
    restore(prev < 0 ? orig : prev, orig);
    currentFd = prev;
  }
  if (isThenable(result)) {
    result.then(undefined, () => undefined); // the caller gets our error instead; don't leave an unhandled rejection
    throw new NativeError(
      NativeErrorCode.NETNS_ASYNC_CALLBACK,
      'withNetns: the callback returned a Promise; only its synchronous part ran in the namespace. ' +
        'Create the socket fd synchronously inside withNetns and do the async work outside',
    );
  }
  return result;
}

/** Runs fn in `netnsFd` when given, else in the current namespace. */
export function inNetns<T>(netnsFd: number | undefined, fn: () => T): T {
  return netnsFd === undefined ? fn() : withNetns(netnsFd, fn);
}

function restore(target: number, orig: number): void {
  if (libc.setns(target, C.CLONE_NEWNET) === 0) return;
  const errno = lastErrno();
  // The enclosing namespace fd was closed under us: fall back to the original one rather than stay put.
  if (target !== orig && libc.setns(orig, C.CLONE_NEWNET) === 0) {
    currentFd = -1;
    throw new NativeError(
      NativeErrorCode.SETNS_FAILED,
      `withNetns: returning to the enclosing namespace fd ${target} failed: ${errnoName(errno)}; ` +
        "returned to the thread's original namespace instead. Keep namespace fds open while they are in use",
      {
        syscall: 'setns',
        errno,
      },
    );
  }
  // Still in the wrong namespace: every later socket of this thread would be created there.
  throw new NativeError(
    NativeErrorCode.SETNS_FAILED,
    `withNetns: returning to the original network namespace failed: ${errnoName(errno)}; ` +
      'this thread is stuck in the wrong namespace and the process should exit',
    { syscall: 'setns', errno },
  );
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return (typeof v === 'object' || typeof v === 'function') && v !== null && typeof (v as { then?: unknown }).then === 'function';
}

/**
 * Opens a network namespace file (/var/run/netns/<name>, /proc/<pid>/ns/net) O_RDONLY|O_CLOEXEC and checks
 * it is one (ioctl_ns(2) NS_GET_NSTYPE). The caller owns the fd: closeFd() it.
 */
export function openNetns(path: string): number {
  const fd = libc.open(path, C.O_RDONLY | C.O_CLOEXEC);
  if (fd < 0) {
    throw syscallError(NativeErrorCode.NETNS_OPEN_FAILED, `opening network namespace ${path}`, 'open', (name) =>
      name === 'ENOENT' ? 'no such namespace file: is the pod/namespace gone? (`ip netns list`, /proc/<pid>/ns/net)' : commonHint(name),
    );
  }
  const type = ioctlNoArg(fd, C.NS_GET_NSTYPE);
  if (type !== C.CLONE_NEWNET) {
    const errno = type < 0 ? lastErrno() : undefined;
    libc.close(fd);
    throw new NativeError(
      NativeErrorCode.NETNS_OPEN_FAILED,
      `${path} is not a network namespace (NS_GET_NSTYPE ${type < 0 ? `failed: ${errnoName(errno ?? 0)}` : `= 0x${type.toString(16)}`})`,
      { syscall: 'ioctl', ...(errno === undefined ? {} : { errno }) },
    );
  }
  return fd;
}

/**
 * Closes an fd this layer handed out and the caller still owns (not one given to net.Socket/Server, which
 * close their own). EINTR is ignored: on Linux the fd is released anyway.
 */
export function closeFd(fd: number): void {
  if (libc.close(fd) !== 0) {
    const errno = lastErrno();
    if (errnoName(errno) === 'EINTR') return;
    throw syscallError(NativeErrorCode.CLOSE_FAILED, `closing fd ${fd}`, 'close', 'a double close: check who owns this fd', errno);
  }
}

/**
 * A network namespace as fstat(2) of its nsfs file names it. Device and inode together identify a file on any
 * Linux system (an inode number is unique only within its filesystem); every namespace lives on the one nsfs
 * instance, so in practice the inode alone already tells namespaces apart, as Istio's ztunnel compares it
 * (src/inpod/netns.rs, statemanager.rs).
 */
export interface NetnsIdentity {
  readonly device: number;
  readonly inode: number;
}

/** The identity of the namespace open at `fd` (fstat(2); the fd stays open and owned by the caller). */
export function netnsIdentity(fd: number): NetnsIdentity {
  let st: ReturnType<typeof fstatSync>;
  try {
    st = fstatSync(fd);
  } catch (err) {
    const errno = Math.abs((err as NodeJS.ErrnoException).errno ?? 0);
    throw new NativeError(
      NativeErrorCode.NETNS_STAT_FAILED,
      `fstat of network namespace fd ${fd} failed: ${errnoName(errno)}; is the fd still open?`,
      {
        syscall: 'fstat',
        errno,
        cause: err,
      },
    );
  }
  return { device: st.dev, inode: st.ino };
}

/** Whether two identities name the same namespace. */
export function sameNetns(a: NetnsIdentity, b: NetnsIdentity): boolean {
  return a.device === b.device && a.inode === b.inode;
}

/** The namespace's inode number: equal inodes (on nsfs) mean the same namespace. */
export function netnsInode(fd: number): number {
  return netnsIdentity(fd).inode;
}

/** The inode of the namespace the calling thread is in now. */
export function currentNetnsInode(): number {
  const fd = libc.open('/proc/thread-self/ns/net', C.O_RDONLY | C.O_CLOEXEC);
  if (fd < 0) throw syscallError(NativeErrorCode.SETNS_FAILED, 'reading the current namespace', 'open', '');
  try {
    return fstatSync(fd).ino;
  } finally {
    libc.close(fd);
  }
}
