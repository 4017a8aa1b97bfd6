/**
 * TCP sockets made through libc so that they can be created inside another network namespace and carry
 * options Node has no API for (SO_MARK, IP_TRANSPARENT, IP_FREEBIND), plus SO_ORIGINAL_DST. The fds are
 * handed to Node: `server.listen({ fd })` for listeners, wrapUnconnectedFd()/dialFrom() for outbound sockets.
 */
import net, { isIP } from 'node:net';
import { C, type IpFamily, type SocketAddress, decodeSockaddrIn, libc, sockaddrIn } from './libc.js';
import { NativeError, NativeErrorCode, commonHint, syscallError } from './errors.js';
import { inNetns } from './netns.js';

export interface TcpListenerOptions {
  /** Create the socket in this network namespace (an fd from openNetns); default: the current one. */
  netnsFd?: number;
  /** IP literal to bind ('0.0.0.0', '::', '127.0.0.1', ...). */
  address: string;
  /** 0 = kernel-chosen (read it back with server.address() after listen({ fd })). */
  port: number;
  /** Default: from `address`. */
  family?: IpFamily;
  /** SO_MARK on the listener (accepted sockets inherit it). */
  mark?: number;
  /** IP_TRANSPARENT / IPV6_TRANSPARENT: accept connections to non-local addresses (TPROXY). */
  transparent?: boolean;
  /** SO_REUSEADDR, default true (as Node sets for its listeners). */
  reuseAddr?: boolean;
  /** SO_REUSEPORT, default false. */
  reusePort?: boolean;
  /** IPV6_V6ONLY for IPv6 listeners; default: the kernel's (net.ipv6.bindv6only, normally dual-stack). */
  ipv6Only?: boolean;
  /** listen(2) backlog, default 511 (Node's). */
  backlog?: number;
}

export interface TcpSocketOptions {
  /** Create the socket in this network namespace; default: the current one. */
  netnsFd?: number;
  /** Default: the family of bindAddress, else 4. */
  family?: IpFamily;
  /** SO_MARK: lets the namespace's iptables/routing recognise this proxy's own traffic (Istio: 0x539). */
  mark?: number;
  /** IP_TRANSPARENT / IPV6_TRANSPARENT: allows binding a foreign address (original-source preservation). */
  transparent?: boolean;
  /** IP_FREEBIND / IPV6_FREEBIND: allows binding an address not (yet) configured. */
  freebind?: boolean;
  /** Bind before connecting (e.g. the client pod's IP with transparent). */
  bindAddress?: string;
  /** Local port for bindAddress; default 0 (kernel-chosen). */
  bindPort?: number;
}

export interface DialOptions extends TcpSocketOptions {
  /** Destination IP literal (no DNS: a lookup would run later, outside the namespace). */
  host: string;
  port: number;
}

function invalid(msg: string): NativeError {
  return new NativeError(NativeErrorCode.INVALID_ARGUMENT, msg);
}

function checkPort(port: number, what: string): void {
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw invalid(`${what}: port must be 0..65535, got ${port}`);
}

function checkMark(mark: number): void {
  if (!Number.isInteger(mark) || mark < 0 || mark > 0xffffffff) throw invalid(`SO_MARK must be a uint32, got ${mark}`);
}

function familyOf(address: string, family: IpFamily | undefined, what: string): IpFamily {
  const detected = isIP(address);
  if (detected === 0) throw invalid(`${what}: not an IP literal: ${JSON.stringify(address)}`);
  if (family !== undefined && family !== detected) {
    throw invalid(`${what}: ${address} is IPv${detected} but family ${family} was requested`);
  }
  return detected as IpFamily;
}

function int32(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32LE(value | 0, 0);
  return b;
}

function uint32(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(value >>> 0, 0);
  return b;
}

function setOpt(fd: number, level: number, name: number, value: Buffer, what: string, optName: string): void {
  if (libc.setsockopt(fd, level, name, value, value.length) !== 0) {
    throw syscallError(
      NativeErrorCode.SOCKOPT_FAILED,
      what,
      `setsockopt(${optName})`,
      (n) => commonHint(n) || (n === 'ENOPROTOOPT' ? 'the kernel lacks this option' : ''),
    );
  }
}

function newTcpSocket(family: IpFamily, what: string): number {
  // Non-blocking from the start: libuv requires it and the fd must never block the event loop.
  const fd = libc.socket(family === 4 ? C.AF_INET : C.AF_INET6, C.SOCK_STREAM | C.SOCK_NONBLOCK | C.SOCK_CLOEXEC, 0);
  if (fd < 0) throw syscallError(NativeErrorCode.SOCKET_FAILED, what, 'socket', commonHint);
  return fd;
}

interface CommonOpts {
  mark?: number | undefined;
  transparent?: boolean | undefined;
  freebind?: boolean | undefined;
}

function applyCommon(fd: number, family: IpFamily, o: CommonOpts, what: string): void {
  if (o.mark !== undefined) setOpt(fd, C.SOL_SOCKET, C.SO_MARK, uint32(o.mark), what, 'SO_MARK');
  // On an IPv6 socket the IPV6_ variants set the same per-socket bit, covering v4-mapped traffic too (ipv6(7)).
  if (o.transparent) {
    if (family === 4) setOpt(fd, C.SOL_IP, C.IP_TRANSPARENT, int32(1), what, 'IP_TRANSPARENT');
    else setOpt(fd, C.SOL_IPV6, C.IPV6_TRANSPARENT, int32(1), what, 'IPV6_TRANSPARENT');
  }
  if (o.freebind) {
    if (family === 4) setOpt(fd, C.SOL_IP, C.IP_FREEBIND, int32(1), what, 'IP_FREEBIND');
    else setOpt(fd, C.SOL_IPV6, C.IPV6_FREEBIND, int32(1), what, 'IPV6_FREEBIND');
  }
}

function nsSuffix(netnsFd: number | undefined): string {
  return netnsFd === undefined ? '' : ` in netns fd ${netnsFd}`;
}

function listenHint(name: string, o: TcpListenerOptions): string {
  switch (name) {
    case 'EADDRINUSE':
      return (
        `another socket in that namespace holds ${o.address}:${o.port} (check \`ss -ltnp\` inside it; ` +
        'reusePort only helps when every holder set SO_REUSEPORT)'
      );
    case 'EADDRNOTAVAIL':
      return `${o.address} is not an address of that namespace (check \`ip addr\` inside it), or set transparent`;
    default:
      return commonHint(name);
  }
}

/**
 * A listening TCP socket fd (non-blocking, close-on-exec), created inside `netnsFd` when given. Hand it to
 * Node with `server.listen({ fd })` (net, tls or http2 server), which then owns and closes it. Any failure
 * closes the fd and throws NATIVE_LISTEN_FAILED naming the failed step; that step's error is the cause.
 */
export function createTcpListenerFd(opts: TcpListenerOptions): number {
  const family = familyOf(opts.address, opts.family, 'createTcpListenerFd');
  checkPort(opts.port, 'createTcpListenerFd');
  if (opts.mark !== undefined) checkMark(opts.mark);
  const backlog = opts.backlog ?? 511;
  const what = `listening on ${family === 6 ? `[${opts.address}]` : opts.address}:${opts.port}${nsSuffix(opts.netnsFd)}`;
  let fd = -1;
  try {
    // Only socket() needs the namespace; the fd keeps it for every later call.
    fd = inNetns(opts.netnsFd, () => newTcpSocket(family, what));
    if (opts.reuseAddr ?? true) setOpt(fd, C.SOL_SOCKET, C.SO_REUSEADDR, int32(1), what, 'SO_REUSEADDR');
    if (opts.reusePort) setOpt(fd, C.SOL_SOCKET, C.SO_REUSEPORT, int32(1), what, 'SO_REUSEPORT');
    if (family === 6 && opts.ipv6Only !== undefined) {
      setOpt(fd, C.SOL_IPV6, C.IPV6_V6ONLY, int32(opts.ipv6Only ? 1 : 0), what, 'IPV6_V6ONLY');
    }
    applyCommon(fd, family, opts, what);
    const addr = sockaddrIn(opts.address, opts.port, family);
    if (libc.bind(fd, addr, addr.length) !== 0) {
      throw syscallError(NativeErrorCode.LISTEN_FAILED, what, 'bind', (n) => listenHint(n, opts));
    }
    if (libc.listen(fd, backlog) !== 0) {
      throw syscallError(NativeErrorCode.LISTEN_FAILED, what, 'listen', (n) => listenHint(n, opts));
    }
    return fd;
  } catch (err) {
    if (fd >= 0) libc.close(fd);
    if (err instanceof NativeError && err.code === NativeErrorCode.LISTEN_FAILED) throw err;
    const cause = err instanceof NativeError ? err : undefined;
    const errno = cause?.errno;
    throw new NativeError(NativeErrorCode.LISTEN_FAILED, `${what}: ${err instanceof Error ? err.message : String(err)}`, {
      cause: err,
      ...(cause?.syscall === undefined ? {} : { syscall: cause.syscall }),
      ...(errno === undefined ? {} : { errno }),
    });
  }
}

/**
 * An unconnected, non-blocking TCP socket fd created inside `netnsFd` with the given options, bound when
 * bindAddress is set. Connect it with wrapUnconnectedFd(fd).connect(port, ip) (or use dialFrom). The caller
 * owns the fd until it is wrapped. Errors: NATIVE_SOCKET_FAILED, NATIVE_SOCKOPT_FAILED, NATIVE_BIND_FAILED.
 */
export function createTcpSocketFd(opts: TcpSocketOptions = {}): number {
  const family = opts.bindAddress === undefined ? (opts.family ?? 4) : familyOf(opts.bindAddress, opts.family, 'createTcpSocketFd');
  if (opts.mark !== undefined) checkMark(opts.mark);
  if (opts.bindPort !== undefined) checkPort(opts.bindPort, 'createTcpSocketFd');
  const what = `outbound socket${opts.bindAddress === undefined ? '' : ` bound to ${opts.bindAddress}`}${nsSuffix(opts.netnsFd)}`;
  const fd = inNetns(opts.netnsFd, () => newTcpSocket(family, what));
  try {
    applyCommon(fd, family, opts, what);
    if (opts.bindAddress !== undefined) {
      const addr = sockaddrIn(opts.bindAddress, opts.bindPort ?? 0, family);
      if (libc.bind(fd, addr, addr.length) !== 0) {
        throw syscallError(NativeErrorCode.BIND_FAILED, what, 'bind', (n) =>
          n === 'EADDRNOTAVAIL'
            ? `${opts.bindAddress} is not local in that namespace: set transparent (with CAP_NET_ADMIN and a route ` +
              'for the replies, e.g. Istio\'s fwmark 0x111 -> table 100 "local 0.0.0.0/0 dev lo") or freebind'
            : n === 'EADDRINUSE'
              ? `port ${opts.bindPort ?? 0} on ${opts.bindAddress} is taken`
              : commonHint(n),
        );
      }
    }
    return fd;
  } catch (err) {
    libc.close(fd);
    throw err;
  }
}

/**
 * Wraps an unconnected fd from createTcpSocketFd in a net.Socket that the caller must connect() in the same
 * tick, with an IP literal. Node's Socket({ fd }) normally starts reading at once; on an unconnected socket
 * the next event-loop turn then fails with ENOTCONN, destroys the socket (closing our fd) and a later
 * connect() silently opens a NEW socket in the current namespace without our options. `manualStart`
 * (an internal option Node's child_process uses) defers reading until 'connect'.
 */
export function wrapUnconnectedFd(fd: number): net.Socket {
  const opts: net.SocketConstructorOpts & { manualStart: boolean } = { fd, manualStart: true };
  return new net.Socket(opts);
}

/**
 * Like net.connect({ host, port }), but from a socket made by createTcpSocketFd(opts): created in
 * opts.netnsFd, marked, optionally bound to a (foreign) source address. Emits 'connect' / 'error' as
 * net.connect does. Socket creation errors (NativeError) are thrown synchronously.
 */
export function dialFrom(opts: DialOptions): net.Socket {
  const hostFamily = familyOf(opts.host, undefined, 'dialFrom');
  checkPort(opts.port, 'dialFrom');
  const family =
    opts.family ?? (opts.bindAddress === undefined ? hostFamily : familyOf(opts.bindAddress, undefined, 'dialFrom bindAddress'));
  if (family !== hostFamily) throw invalid(`dialFrom: destination ${opts.host} is IPv${hostFamily}, socket is IPv${family}`);
  const fd = createTcpSocketFd({ ...opts, family });
  let socket: net.Socket;
  try {
    socket = wrapUnconnectedFd(fd);
  } catch (err) {
    libc.close(fd);
    throw err;
  }
  return socket.connect({ host: opts.host, port: opts.port });
}

/** The fd behind a connected net.Socket (libuv handle), e.g. for getOriginalDst or setSocketMark. */
export function socketFd(socket: net.Socket): number {
  const handle = (socket as unknown as { _handle?: { fd?: unknown } | null })._handle;
  const fd = handle?.fd;
  if (typeof fd !== 'number' || fd < 0) {
    throw invalid('socketFd: the socket has no open file descriptor (destroyed, not yet connected, or not a TCP/pipe socket)');
  }
  return fd;
}

function fdOf(socket: net.Socket | number): number {
  return typeof socket === 'number' ? socket : socketFd(socket);
}

/** getsockname(2) as an IP address. */
export function localAddress(socket: net.Socket | number): SocketAddress {
  const fd = fdOf(socket);
  const buf = Buffer.alloc(28);
  const len: [number] = [buf.length];
  if (libc.getsockname(fd, buf, len) !== 0) {
    throw syscallError(NativeErrorCode.SOCKOPT_FAILED, `fd ${fd}`, 'getsockname', commonHint);
  }
  return decodeSockaddrIn(buf);
}

/**
 * The destination a connection had before iptables REDIRECT/DNAT rewrote it, from conntrack
 * (SO_ORIGINAL_DST, or IP6T_SO_ORIGINAL_DST on IPv6). For an IPv6 socket carrying a v4-mapped peer the
 * conntrack entry is IPv4, so SOL_IP is asked; the result then is a plain IPv4 address.
 */
export function getOriginalDst(socket: net.Socket | number): SocketAddress {
  const fd = fdOf(socket);
  const local = localAddress(fd);
  const v4 = local.family === 4 || local.address.startsWith('::ffff:');
  const buf = Buffer.alloc(v4 ? 16 : 28);
  const len: [number] = [buf.length];
  const r = v4
    ? libc.getsockopt(fd, C.SOL_IP, C.SO_ORIGINAL_DST, buf, len)
    : libc.getsockopt(fd, C.SOL_IPV6, C.IP6T_SO_ORIGINAL_DST, buf, len);
  if (r !== 0) {
    throw syscallError(
      NativeErrorCode.ORIGINAL_DST_FAILED,
      `original destination of fd ${fd} (local ${local.address}:${local.port})`,
      v4 ? 'getsockopt(SOL_IP, SO_ORIGINAL_DST)' : 'getsockopt(SOL_IPV6, IP6T_SO_ORIGINAL_DST)',
      (n) =>
        n === 'ENOENT'
          ? 'no conntrack entry with a rewritten destination: the connection was not REDIRECTed/DNATed (check the nat rules in the namespace)'
          : n === 'ENOPROTOOPT'
            ? 'nf_conntrack for this address family is not loaded'
            : commonHint(n),
    );
  }
  return decodeSockaddrIn(buf);
}

/** setsockopt(SO_MARK): marks every later packet of the socket (routing and iptables `-m mark`). */
export function setSocketMark(socket: net.Socket | number, mark: number): void {
  checkMark(mark);
  const fd = fdOf(socket);
  setOpt(fd, C.SOL_SOCKET, C.SO_MARK, uint32(mark), `fd ${fd}`, 'SO_MARK');
}

/** getsockopt(SO_MARK). */
export function getSocketMark(socket: net.Socket | number): number {
  const fd = fdOf(socket);
  const buf = Buffer.alloc(4);
  const len: [number] = [4];
  if (libc.getsockopt(fd, C.SOL_SOCKET, C.SO_MARK, buf, len) !== 0) {
    throw syscallError(NativeErrorCode.SOCKOPT_FAILED, `fd ${fd}`, 'getsockopt(SO_MARK)', commonHint);
  }
  return buf.readUInt32LE(0);
}
