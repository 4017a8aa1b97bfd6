/**
 * The native layer: everything Node has no API for, through koffi (FFI to libc.so.6, no compiler needed).
 * Other code imports only this file. Linux x86_64/arm64 only; most calls need CAP_NET_ADMIN (root).
 *
 * Network namespaces (setns(2)) — a socket stays in the namespace it was created in:
 *   openNetns(path): number                      O_RDONLY|O_CLOEXEC fd of /var/run/netns/x or /proc/<pid>/ns/net
 *   closeFd(fd): void
 *   netnsIdentity(fd): NetnsIdentity             { device, inode } by fstat(2); sameNetns(a, b) compares two
 *   netnsInode(fd): number                       equal inodes = same namespace
 *   currentNetnsInode(): number                  the calling thread's namespace
 *   withNetns<T>(netnsFd, fn: () => T): T        run fn synchronously in the namespace, always switch back
 *
 * TCP (ip(7), socket(7)); fds are non-blocking and close-on-exec:
 *   createTcpListenerFd(TcpListenerOptions): number   socket/setsockopt/bind/listen, then server.listen({ fd })
 *   createTcpSocketFd(TcpSocketOptions): number       unconnected socket with SO_MARK/IP_TRANSPARENT/IP_FREEBIND/bind
 *   wrapUnconnectedFd(fd): net.Socket                 wrap it; call .connect(port, ip) in the same tick
 *   dialFrom(DialOptions): net.Socket                 both in one: behaves like net.connect ('connect'/'error')
 *   getOriginalDst(socket | fd): SocketAddress        SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST (pre-REDIRECT dst)
 *   localAddress(socket | fd): SocketAddress          getsockname(2)
 *   socketFd(socket): number                          the fd behind a net.Socket
 *   setSocketMark(socket | fd, mark), getSocketMark(socket | fd): number
 *
 * SOCK_SEQPACKET Unix sockets with SCM_RIGHTS (unix(7), cmsg(3)):
 *   SeqpacketServer.listen(path, opts?): SeqpacketServer;  server.accept(): Promise<SeqpacketConnection>; close()
 *   SeqpacketConnection.connect(path, opts?): Promise<SeqpacketConnection>;  SeqpacketConnection.fromFd(fd)
 *   conn.send(data, fds?): Promise<void>;  conn.recv(): Promise<{ data, fds } | null>;  close(); for await (...)
 *   I/O never blocks the event loop: non-blocking fds watched by a libuv poll handle (see seqpacket.ts for
 *   why not koffi `.async` on the thread pool); no UV_THREADPOOL_SIZE change is needed.
 *
 * glibc's allocator, for diagnostics (bench:idle):
 *   mallocStats(): { inUseBytes, freeHeldBytes }     mallinfo2(3) over every arena
 *   mallocTrim(): void                               malloc_trim(3)
 *
 * Errors are NativeError (a MeshError) with a NativeErrorCode (NATIVE_SETNS_FAILED, NATIVE_LISTEN_FAILED, ...),
 * the failing syscall, errno and errno name, and a hint in the message.
 *
 * Pitfalls, checked on Node 20: `new net.Socket({ fd })` starts reading at once, so if the event loop turns
 * before .connect() the unconnected socket fails with ENOTCONN, is destroyed (our fd closed), and connect()
 * then silently makes a new socket in the current namespace without our options — use wrapUnconnectedFd or
 * dialFrom. net.connect() and server.listen(port, host) create their fd later (after a tick or a lookup),
 * so wrapping them in withNetns does not work: create the fd with this module.
 */
export {
  NativeError,
  NativeErrorCode,
  errnoName,
} from './errors.js';
export type { IpFamily, SocketAddress } from './libc.js';
export { closeFd, currentNetnsInode, netnsIdentity, netnsInode, openNetns, sameNetns, withNetns } from './netns.js';
export type { NetnsIdentity } from './netns.js';
export {
  createTcpListenerFd,
  createTcpSocketFd,
  dialFrom,
  getOriginalDst,
  getSocketMark,
  localAddress,
  setSocketMark,
  socketFd,
  wrapUnconnectedFd,
} from './tcp.js';
export type { DialOptions, TcpListenerOptions, TcpSocketOptions } from './tcp.js';
export { SeqpacketConnection, SeqpacketServer } from './seqpacket.js';
export { mallocStats, mallocTrim, type MallocStats } from './malloc.js';
export type {
  SeqpacketConnectOptions,
  SeqpacketMessage,
  SeqpacketOptions,
  SeqpacketServerOptions,
} from './seqpacket.js';
