/**
 * AF_UNIX SOCK_SEQPACKET sockets with SCM_RIGHTS descriptor passing (unix(7), cmsg(3)); Node has neither.
 *
 * Design: every socket is non-blocking and watched by a libuv poll handle on the Node event loop
 * (koffi.node.poll = uv_poll_t, epoll underneath). recvmsg/sendmsg/accept4 are called synchronously with
 * MSG_DONTWAIT only when the poll reported readiness, so nothing ever blocks the event loop and no thread
 * is parked per pending call (unlike koffi's `.async` calls, which would hold one libuv thread-pool thread
 * per pending recv/accept, starve fs/dns/crypto with the default UV_THREADPOOL_SIZE of 4, and could only
 * be interrupted by shutdown(2)). The poll watcher is active only while an operation is pending, so an
 * idle socket does not keep the process alive; a pending recv/accept/send does (unless unref()).
 * Limits: koffi's poll API is marked "not yet documented, might change" (pinned koffi version); one poll
 * handle per fd, so the fd must not be watched by anything else; each receive copies out of a native
 * buffer of `bufferSize` bytes allocated per connection.
 */
import { lstatSync, statSync, chmodSync } from 'node:fs';
import {
  C,
  CMSGHDR,
  IOVEC,
  MSGHDR,
  NativeBlock,
  type PollHandle,
  cmsgAlign,
  cmsgLen,
  cmsgSpace,
  ioctlIntOut,
  lastErrno,
  libc,
  sockaddrUn,
  startPoll,
} from './libc.js';
import { NativeError, NativeErrorCode, commonHint, errnoName, syscallError } from './errors.js';

/** A received message: its bytes and the descriptors that came with it (new fds, close-on-exec, owned by the receiver). */
export interface SeqpacketMessage {
  data: Buffer;
  fds: number[];
}

export interface SeqpacketOptions {
  /** Largest message recv() accepts; longer ones fail with NATIVE_SEQPACKET_TRUNCATED. Default 64 KiB. */
  bufferSize?: number;
  /** Most descriptors one message may carry (sizes the control buffer). Default 16; 4..253 (SCM_MAX_FD). */
  maxFds?: number;
}

export interface SeqpacketServerOptions {
  /** listen(2) backlog, default 128. */
  backlog?: number;
  /** chmod the socket file after bind (e.g. 0o600); filesystem paths only. */
  mode?: number;
  /** Options for accepted connections. */
  connection?: SeqpacketOptions;
}

export interface SeqpacketConnectOptions extends SeqpacketOptions {
  /** How long to retry while the listener's backlog is full (EAGAIN). Default 5000 ms. */
  timeoutMs?: number;
}

const SCM_MAX_FD = 253; // linux/scm.h
const DEFAULT_BUFFER = 64 * 1024;

function checkOptions(opts: SeqpacketOptions): { bufferSize: number; maxFds: number } {
  const bufferSize = opts.bufferSize ?? DEFAULT_BUFFER;
  const maxFds = opts.maxFds ?? 16;
  if (!Number.isInteger(bufferSize) || bufferSize < 1 || bufferSize > 64 * 1024 * 1024) {
    throw new NativeError(NativeErrorCode.INVALID_ARGUMENT, `seqpacket bufferSize must be 1..64 MiB, got ${bufferSize}`);
  }
  if (!Number.isInteger(maxFds) || maxFds < 4 || maxFds > SCM_MAX_FD) {
    throw new NativeError(NativeErrorCode.INVALID_ARGUMENT, `seqpacket maxFds must be 4..${SCM_MAX_FD}, got ${maxFds}`);
  }
  return { bufferSize, maxFds };
}

/** One uv_poll_t for an fd, armed only for the directions some pending operation waits on. */
class FdPoller {
  readonly #fd: number;
  readonly #onEvent: (status: number) => void;
  #handle: PollHandle | null = null;
  #read = false;
  #write = false;
  #refed = true;

  constructor(fd: number, onEvent: (status: number) => void) {
    this.#fd = fd;
    this.#onEvent = onEvent;
  }

  want(read: boolean, write: boolean): void {
    if (read === this.#read && write === this.#write) return;
    this.#read = read;
    this.#write = write;
    if (!read && !write) {
      this.#handle?.stop(); // an inactive handle does not keep the event loop alive
      return;
    }
    const opts = { readable: read, writable: write };
    const cb = (status: number): void => {
      // libuv stops the watcher itself after an error; forget the armed state so want() re-arms it.
      if (status < 0) this.#read = this.#write = false;
      this.#onEvent(status);
    };
    if (this.#handle === null) {
      this.#handle = startPoll(this.#fd, opts, cb);
      if (!this.#refed) this.#handle.unref();
    } else {
      this.#handle.start(opts, cb);
    }
  }

  ref(): void {
    this.#refed = true;
    this.#handle?.ref();
  }

  unref(): void {
    this.#refed = false;
    this.#handle?.unref();
  }

  /** Must run before close(fd): uv_close removes the fd from epoll synchronously. */
  close(): void {
    this.#handle?.close();
    this.#handle = null;
    this.#read = this.#write = false;
  }
}

function closedError(what: string): NativeError {
  return new NativeError(NativeErrorCode.SEQPACKET_CLOSED, `${what}: the socket was closed locally`);
}

function seqpacketHint(name: string): string {
  switch (name) {
    case 'ENOENT':
      return 'no socket file at that path: is the server running and the path (and its mount) right?';
    case 'ECONNREFUSED':
      return 'the path exists but nothing listens on it (a stale socket file from a dead server?)';
    case 'EPIPE':
    case 'ECONNRESET':
      return 'the peer closed the connection';
    case 'EMSGSIZE':
      return 'the message exceeds the socket send buffer (SO_SNDBUF, net.core.wmem_*)';
    case 'EPROTOTYPE':
      return 'the socket at that path is not SOCK_SEQPACKET';
    case 'ETOOMANYREFS':
      return 'too many descriptors in flight (RLIMIT_NOFILE of the sender)';
    default:
      return commonHint(name);
  }
}

function toNativeArgError(err: unknown): unknown {
  return err instanceof RangeError ? new NativeError(NativeErrorCode.INVALID_ARGUMENT, err.message) : err;
}

function newSeqpacketSocket(what: string): number {
  const fd = libc.socket(C.AF_UNIX, C.SOCK_SEQPACKET | C.SOCK_NONBLOCK | C.SOCK_CLOEXEC, 0);
  if (fd < 0) throw syscallError(NativeErrorCode.SOCKET_FAILED, what, 'socket(AF_UNIX, SOCK_SEQPACKET)', commonHint);
  return fd;
}

interface Deferred<T> {
  resolve: (v: T) => void;
  reject: (e: unknown) => void;
}

interface PendingSend extends Deferred<void> {
  data: Uint8Array;
  fds: number[];
}

type RecvResult = { kind: 'again' } | { kind: 'eof' } | { kind: 'message'; message: SeqpacketMessage } | { kind: 'error'; error: unknown };

/**
 * A connected SOCK_SEQPACKET socket: every send() is one message, every recv() returns exactly one
 * message (boundaries preserved). Concurrent calls are queued in order. close() is immediate (like
 * destroy()): pending recv() calls resolve null, pending send() calls reject NATIVE_SEQPACKET_CLOSED.
 */
export class SeqpacketConnection implements AsyncIterable<SeqpacketMessage> {
  readonly #fd: number;
  readonly #bufferSize: number;
  readonly #controlSize: number;
  readonly #poller: FdPoller;
  #recvBlock: NativeBlock | null = null;
  #sendBlock: NativeBlock | null = null;
  #recvWaiters: Deferred<SeqpacketMessage | null>[] = [];
  #sendQueue: PendingSend[] = [];
  #closed = false;
  #eof = false;

  /** Connects to a listening SOCK_SEQPACKET socket at `path` ('@name' = abstract namespace). */
  static async connect(path: string, opts: SeqpacketConnectOptions = {}): Promise<SeqpacketConnection> {
    let addr: { addr: Buffer; len: number };
    try {
      addr = sockaddrUn(path);
    } catch (err) {
      throw toNativeArgError(err);
    }
    checkOptions(opts);
    const what = `connecting to seqpacket socket ${path}`;
    const fd = newSeqpacketSocket(what);
    const deadline = Date.now() + (opts.timeoutMs ?? 5000);
    let delay = 5;
    for (;;) {
      if (libc.connect(fd, addr.addr, addr.len) === 0) break;
      const errno = lastErrno();
      const name = errnoName(errno);
      if (name === 'EINTR') continue;
      // A non-blocking AF_UNIX connect fails with EAGAIN while the listener's backlog is full (unix(7)).
      if (name === 'EAGAIN' && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 200);
        continue;
      }
      libc.close(fd);
      throw syscallError(NativeErrorCode.SEQPACKET_FAILED, what, 'connect', seqpacketHint, errno);
    }
    return new SeqpacketConnection(fd, opts);
  }

  /**
   * Adopts a connected SOCK_SEQPACKET fd (e.g. from accept or socketpair); the connection owns it from now
   * on and switches it to non-blocking.
   */
  static fromFd(fd: number, opts: SeqpacketOptions = {}): SeqpacketConnection {
    return new SeqpacketConnection(fd, opts);
  }

  private constructor(fd: number, opts: SeqpacketOptions) {
    const { bufferSize, maxFds } = checkOptions(opts);
    this.#fd = fd;
    this.#bufferSize = bufferSize;
    this.#controlSize = cmsgSpace(4 * maxFds);
    this.#poller = new FdPoller(fd, (status) => this.#onPoll(status));
  }

  /** The socket's fd (still owned by this object). */
  get fd(): number {
    return this.#fd;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Sends `data` as one message, with `fds` attached as SCM_RIGHTS (the kernel duplicates them into the
   * receiver at send time; the caller keeps and still owns its own). Resolves once the kernel took the message.
   */
  send(data: Uint8Array, fds: readonly number[] = []): Promise<void> {
    if (this.#closed) return Promise.reject(closedError('seqpacket send'));
    if (fds.length > SCM_MAX_FD || !fds.every((fd) => Number.isInteger(fd) && fd >= 0)) {
      return Promise.reject(
        new NativeError(NativeErrorCode.INVALID_ARGUMENT, `seqpacket send: fds must be at most ${SCM_MAX_FD} non-negative integers`),
      );
    }
    return new Promise<void>((resolve, reject) => {
      this.#sendQueue.push({ data, fds: [...fds], resolve, reject });
      this.#pump();
    });
  }

  /**
   * The next message, or null at end of stream (the peer closed or shut down, or this side closed).
   * A zero-length message without descriptors is returned as an empty Buffer unless the peer has already
   * hung up with nothing else queued; then it is indistinguishable from EOF (both read as 0 bytes) and
   * null is returned.
   */
  recv(): Promise<SeqpacketMessage | null> {
    if (this.#closed || this.#eof) return Promise.resolve(null);
    return new Promise<SeqpacketMessage | null>((resolve, reject) => {
      this.#recvWaiters.push({ resolve, reject });
      this.#pump();
    });
  }

  async *[Symbol.asyncIterator](): AsyncIterator<SeqpacketMessage> {
    for (let m = await this.recv(); m !== null; m = await this.recv()) yield m;
  }

  /** Keep / stop keeping the process alive while an operation is pending. */
  ref(): this {
    this.#poller.ref();
    return this;
  }

  unref(): this {
    this.#poller.unref();
    return this;
  }

  /**
   * Closes the socket now. Pending recv() resolve null, pending send() reject NATIVE_SEQPACKET_CLOSED.
   * Descriptors already received belong to the caller and stay open.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#poller.close();
    libc.close(this.#fd);
    this.#recvBlock?.free();
    this.#sendBlock?.free();
    this.#recvBlock = this.#sendBlock = null;
    for (const w of this.#recvWaiters.splice(0)) w.resolve(null);
    for (const s of this.#sendQueue.splice(0)) s.reject(closedError('seqpacket send'));
  }

  #onPoll(status: number): void {
    try {
      this.#pump();
      if (status < 0 && !this.#closed) {
        // The watcher failed (libuv status, e.g. UV_EBADF) and the calls themselves had nothing to report.
        const err = new NativeError(NativeErrorCode.SEQPACKET_FAILED, `seqpacket fd ${this.#fd}: poll failed with libuv status ${status}`);
        for (const w of this.#recvWaiters.splice(0)) w.reject(err);
        for (const s of this.#sendQueue.splice(0)) s.reject(err);
        this.#poller.want(false, false);
      }
    } catch (err) {
      // Never let an exception escape into the poll callback (it would be an uncaught exception).
      for (const w of this.#recvWaiters.splice(0)) w.reject(err);
      for (const s of this.#sendQueue.splice(0)) s.reject(err);
    }
  }

  #pump(): void {
    if (this.#closed) return;
    let wantRead = false;
    let wantWrite = false;
    while (this.#recvWaiters.length > 0) {
      const r = this.#tryRecv();
      if (r.kind === 'again') {
        wantRead = true;
        break;
      }
      if (r.kind === 'eof') {
        this.#eof = true;
        for (const w of this.#recvWaiters.splice(0)) w.resolve(null);
        break;
      }
      const waiter = this.#recvWaiters.shift();
      if (r.kind === 'message') waiter?.resolve(r.message);
      else waiter?.reject(r.error);
    }
    while (this.#sendQueue.length > 0) {
      const front = this.#sendQueue[0];
      if (front === undefined) break;
      const r = this.#trySend(front);
      if (r === 'again') {
        wantWrite = true;
        break;
      }
      this.#sendQueue.shift();
      if (r === 'sent') front.resolve();
      else front.reject(r);
    }
    if (!this.#closed) this.#poller.want(wantRead, wantWrite);
  }

  #tryRecv(): RecvResult {
    // Layout of the receive block: msghdr | iovec | control buffer | data buffer (all 8-byte aligned).
    const ctrlOff = MSGHDR.size + IOVEC.size;
    const dataOff = ctrlOff + this.#controlSize;
    this.#recvBlock ??= new NativeBlock(dataOff + this.#bufferSize);
    const block = this.#recvBlock;
    const v = block.view;
    const base = block.address;
    v.fill(0, 0, ctrlOff);
    v.writeBigUInt64LE(base + BigInt(MSGHDR.size), MSGHDR.iov);
    v.writeBigUInt64LE(1n, MSGHDR.iovlen);
    v.writeBigUInt64LE(base + BigInt(ctrlOff), MSGHDR.control);
    v.writeBigUInt64LE(BigInt(this.#controlSize), MSGHDR.controllen);
    v.writeBigUInt64LE(base + BigInt(dataOff), MSGHDR.size + IOVEC.base);
    v.writeBigUInt64LE(BigInt(this.#bufferSize), MSGHDR.size + IOVEC.len);
    // MSG_TRUNC as an input flag makes the call return the real message length (for the error text).
    const flagsIn = C.MSG_DONTWAIT | C.MSG_CMSG_CLOEXEC | C.MSG_TRUNC;
    let n: number;
    for (;;) {
      n = libc.recvmsg(this.#fd, base, flagsIn);
      if (n >= 0) break;
      const errno = lastErrno();
      const name = errnoName(errno);
      if (name === 'EINTR') continue;
      if (name === 'EAGAIN') return { kind: 'again' };
      return {
        kind: 'error',
        error: syscallError(NativeErrorCode.SEQPACKET_FAILED, `seqpacket fd ${this.#fd}`, 'recvmsg', seqpacketHint, errno),
      };
    }
    const flags = v.readInt32LE(MSGHDR.flags);
    const fds = parseRights(v, ctrlOff, Number(v.readBigUInt64LE(MSGHDR.controllen)));
    if ((flags & (C.MSG_TRUNC | C.MSG_CTRUNC)) !== 0) {
      for (const fd of fds) libc.close(fd); // the message is gone; don't leak what did arrive
      const parts: string[] = [];
      if (flags & C.MSG_TRUNC) parts.push(`a ${n}-byte message exceeds the ${this.#bufferSize}-byte receive buffer (bufferSize option)`);
      if (flags & C.MSG_CTRUNC)
        parts.push(`its descriptors exceed the control buffer (maxFds option); ${fds.length} arrived and were closed`);
      return {
        kind: 'error',
        error: new NativeError(
          NativeErrorCode.SEQPACKET_TRUNCATED,
          `seqpacket fd ${this.#fd}: ${parts.join('; ')}; the message was discarded`,
          { syscall: 'recvmsg' },
        ),
      };
    }
    if (n === 0 && fds.length === 0 && this.#atEof()) return { kind: 'eof' };
    const data = Buffer.allocUnsafe(n);
    v.copy(data, 0, dataOff, dataOff + n);
    return { kind: 'message', message: { data, fds } };
  }

  /** After a 0-byte read: EOF iff the peer hung up (POLLRDHUP/POLLHUP) and nothing more is queued. */
  #atEof(): boolean {
    const pfd = Buffer.alloc(8);
    pfd.writeInt32LE(this.#fd, 0);
    pfd.writeInt16LE(C.POLLIN | C.POLLRDHUP, 4);
    if (libc.poll(pfd, 1, 0) < 0) return true;
    const revents = pfd.readInt16LE(6);
    if ((revents & (C.POLLRDHUP | C.POLLHUP)) === 0) return false;
    const [r, queued] = ioctlIntOut(this.#fd, C.FIONREAD);
    return r < 0 || queued === 0;
  }

  #trySend(item: PendingSend): 'sent' | 'again' | NativeError {
    const ctrlOff = MSGHDR.size + IOVEC.size;
    const ctrlSpace = item.fds.length > 0 ? cmsgSpace(4 * item.fds.length) : 0;
    const dataOff = ctrlOff + ctrlSpace;
    const need = dataOff + item.data.length;
    if (this.#sendBlock === null || this.#sendBlock.size < need) {
      this.#sendBlock?.free();
      this.#sendBlock = new NativeBlock(Math.max(need, 4096));
    }
    const block = this.#sendBlock;
    const v = block.view;
    const base = block.address;
    v.fill(0, 0, dataOff);
    v.writeBigUInt64LE(base + BigInt(MSGHDR.size), MSGHDR.iov);
    v.writeBigUInt64LE(1n, MSGHDR.iovlen);
    if (ctrlSpace > 0) {
      v.writeBigUInt64LE(base + BigInt(ctrlOff), MSGHDR.control);
      v.writeBigUInt64LE(BigInt(ctrlSpace), MSGHDR.controllen);
      v.writeBigUInt64LE(BigInt(cmsgLen(4 * item.fds.length)), ctrlOff + CMSGHDR.len);
      v.writeInt32LE(C.SOL_SOCKET, ctrlOff + CMSGHDR.level);
      v.writeInt32LE(C.SCM_RIGHTS, ctrlOff + CMSGHDR.type);
      for (const [i, fd] of item.fds.entries()) v.writeInt32LE(fd, ctrlOff + cmsgAlign(CMSGHDR.size) + 4 * i);
    }
    v.writeBigUInt64LE(base + BigInt(dataOff), MSGHDR.size + IOVEC.base);
    v.writeBigUInt64LE(BigInt(item.data.length), MSGHDR.size + IOVEC.len);
    v.set(item.data, dataOff);
    for (;;) {
      // MSG_NOSIGNAL: a closed peer gives EPIPE instead of SIGPIPE.
      if (libc.sendmsg(this.#fd, base, C.MSG_DONTWAIT | C.MSG_NOSIGNAL) >= 0) return 'sent';
      const errno = lastErrno();
      const name = errnoName(errno);
      if (name === 'EINTR') continue;
      if (name === 'EAGAIN') return 'again';
      return syscallError(
        NativeErrorCode.SEQPACKET_FAILED,
        `seqpacket fd ${this.#fd}: sending ${item.data.length} bytes${item.fds.length > 0 ? ` and ${item.fds.length} fds` : ''}`,
        'sendmsg',
        seqpacketHint,
        errno,
      );
    }
  }
}

/** Walks the control buffer (CMSG_FIRSTHDR/CMSG_NXTHDR) and collects SCM_RIGHTS descriptors. */
function parseRights(v: Buffer, ctrlOff: number, controllen: number): number[] {
  const fds: number[] = [];
  let off = 0;
  while (off + CMSGHDR.size <= controllen) {
    const len = Number(v.readBigUInt64LE(ctrlOff + off + CMSGHDR.len));
    if (len < CMSGHDR.size || off + len > controllen) break;
    const level = v.readInt32LE(ctrlOff + off + CMSGHDR.level);
    const type = v.readInt32LE(ctrlOff + off + CMSGHDR.type);
    if (level === C.SOL_SOCKET && type === C.SCM_RIGHTS) {
      const dataStart = ctrlOff + off + cmsgAlign(CMSGHDR.size);
      const count = Math.floor((len - cmsgAlign(CMSGHDR.size)) / 4);
      for (let i = 0; i < count; i++) fds.push(v.readInt32LE(dataStart + 4 * i));
    }
    off += cmsgAlign(len);
  }
  return fds;
}

/**
 * A listening SOCK_SEQPACKET socket. listen() removes a stale socket file at `path` first (never a
 * non-socket file) and close() removes the file it created.
 */
export class SeqpacketServer {
  readonly path: string;
  readonly #fd: number;
  readonly #poller: FdPoller;
  readonly #connOpts: SeqpacketOptions;
  readonly #inode: number | undefined;
  #waiters: Deferred<SeqpacketConnection>[] = [];
  #closed = false;

  static listen(path: string, opts: SeqpacketServerOptions = {}): SeqpacketServer {
    let addr: { addr: Buffer; len: number };
    try {
      addr = sockaddrUn(path);
    } catch (err) {
      throw toNativeArgError(err);
    }
    checkOptions(opts.connection ?? {});
    const what = `listening on seqpacket socket ${path}`;
    const abstract = path.startsWith('@');
    if (!abstract) {
      let st: ReturnType<typeof lstatSync> | undefined;
      try {
        st = lstatSync(path);
      } catch {
        st = undefined;
      }
      if (st !== undefined) {
        if (!st.isSocket()) {
          throw new NativeError(NativeErrorCode.INVALID_ARGUMENT, `${what}: ${path} exists and is not a socket; refusing to remove it`);
        }
        // A socket file left by an earlier process would make bind fail with EADDRINUSE.
        if (libc.unlink(path) !== 0) {
          throw syscallError(NativeErrorCode.SEQPACKET_FAILED, what, 'unlink (stale socket)', commonHint);
        }
      }
    }
    const fd = newSeqpacketSocket(what);
    try {
      if (libc.bind(fd, addr.addr, addr.len) !== 0) {
        throw syscallError(NativeErrorCode.SEQPACKET_FAILED, what, 'bind', (n) =>
          n === 'ENOENT' ? 'the directory does not exist' : n === 'EADDRINUSE' ? 'another socket holds this name' : commonHint(n),
        );
      }
      if (!abstract && opts.mode !== undefined) chmodSync(path, opts.mode);
      if (libc.listen(fd, opts.backlog ?? 128) !== 0) {
        throw syscallError(NativeErrorCode.SEQPACKET_FAILED, what, 'listen', commonHint);
      }
      return new SeqpacketServer(path, fd, opts.connection ?? {}, abstract ? undefined : statSync(path).ino);
    } catch (err) {
      libc.close(fd);
      throw err;
    }
  }

  private constructor(path: string, fd: number, connOpts: SeqpacketOptions, inode: number | undefined) {
    this.path = path;
    this.#fd = fd;
    this.#connOpts = connOpts;
    this.#inode = inode;
    this.#poller = new FdPoller(fd, () => {
      try {
        this.#pump();
      } catch (err) {
        for (const w of this.#waiters.splice(0)) w.reject(err); // never throw into the poll callback
      }
    });
  }

  get fd(): number {
    return this.#fd;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** The next incoming connection. Rejects NATIVE_SEQPACKET_CLOSED when the server is (or gets) closed. */
  accept(): Promise<SeqpacketConnection> {
    if (this.#closed) return Promise.reject(closedError(`seqpacket accept on ${this.path}`));
    return new Promise<SeqpacketConnection>((resolve, reject) => {
      this.#waiters.push({ resolve, reject });
      this.#pump();
    });
  }

  ref(): this {
    this.#poller.ref();
    return this;
  }

  unref(): this {
    this.#poller.unref();
    return this;
  }

  /** Stops listening: pending accept() reject NATIVE_SEQPACKET_CLOSED; accepted connections stay open. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#poller.close();
    libc.close(this.#fd);
    if (this.#inode !== undefined) {
      try {
        // Only our own file: a successor may already have replaced it.
        if (statSync(this.path).ino === this.#inode) libc.unlink(this.path);
      } catch {
        // already gone
      }
    }
    for (const w of this.#waiters.splice(0)) w.reject(closedError(`seqpacket accept on ${this.path}`));
  }

  #pump(): void {
    if (this.#closed) return;
    while (this.#waiters.length > 0) {
      const fd = libc.accept4(this.#fd, null, null, C.SOCK_NONBLOCK | C.SOCK_CLOEXEC);
      if (fd < 0) {
        const errno = lastErrno();
        const name = errnoName(errno);
        if (name === 'EINTR' || name === 'ECONNABORTED') continue;
        if (name === 'EAGAIN') {
          this.#poller.want(true, false);
          return;
        }
        this.#waiters
          .shift()
          ?.reject(syscallError(NativeErrorCode.SEQPACKET_FAILED, `accepting on ${this.path}`, 'accept4', commonHint, errno));
        continue;
      }
      this.#waiters.shift()?.resolve(SeqpacketConnection.fromFd(fd, this.#connOpts));
    }
    this.#poller.want(false, false);
  }
}
