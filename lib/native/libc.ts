/**
 * libc bindings (through koffi) and the x86_64 Linux struct layouts the native layer needs. Nothing outside
 * `lib/native/` imports this file; the typed wrappers in netns.ts, tcp.ts and seqpacket.ts are the API.
 *
 * Every binding returns the raw C result; callers read `lastErrno()` right after a -1 and turn it into a
 * NativeError (errors.ts). koffi saves errno per call, so no JS work in between can clobber it.
 */
import { isIPv4, isIPv6 } from 'node:net';
import koffi from 'koffi';

if (process.platform !== 'linux' || (process.arch !== 'x64' && process.arch !== 'arm64')) {
  // The struct offsets below are the LP64 Linux layouts (x86_64; arm64 shares them).
  throw new Error(`lib/native supports Linux x64/arm64 only, not ${process.platform}/${process.arch}`);
}

const lib = koffi.load('libc.so.6');

/** Constants from the Linux UAPI / glibc headers (values for x86_64 and arm64). */
export const C = {
  // socket(2) domains and types
  AF_UNIX: 1,
  AF_INET: 2,
  AF_INET6: 10,
  SOCK_STREAM: 1,
  SOCK_SEQPACKET: 5,
  SOCK_NONBLOCK: 0o4000,
  SOCK_CLOEXEC: 0o2000000,
  // open(2)
  O_RDONLY: 0,
  O_CLOEXEC: 0o2000000,
  // setns(2)
  CLONE_NEWNET: 0x40000000,
  // ioctl_ns(2): NS_GET_NSTYPE = _IO(0xb7, 0x3)
  NS_GET_NSTYPE: 0xb703,
  // ioctl(2) FIONREAD (SIOCINQ)
  FIONREAD: 0x541b,
  // socket(7)
  SOL_SOCKET: 1,
  SO_REUSEADDR: 2,
  SO_REUSEPORT: 15,
  SO_MARK: 36,
  // ip(7)
  SOL_IP: 0,
  IP_FREEBIND: 15,
  IP_TRANSPARENT: 19,
  SO_ORIGINAL_DST: 80, // linux/netfilter_ipv4.h
  // ipv6(7)
  SOL_IPV6: 41,
  IPV6_V6ONLY: 26,
  IPV6_TRANSPARENT: 75,
  IPV6_FREEBIND: 78,
  IP6T_SO_ORIGINAL_DST: 80, // linux/netfilter_ipv6/ip6_tables.h
  // unix(7) / cmsg(3)
  SCM_RIGHTS: 1,
  // send(2) / recv(2) flags
  MSG_CTRUNC: 0x8,
  MSG_TRUNC: 0x20,
  MSG_DONTWAIT: 0x40,
  MSG_NOSIGNAL: 0x4000,
  MSG_CMSG_CLOEXEC: 0x40000000,
  // shutdown(2)
  SHUT_RDWR: 2,
  // poll(2)
  POLLIN: 0x1,
  POLLHUP: 0x10,
  POLLRDHUP: 0x2000,
} as const;

/** Pointers are BigInt addresses in koffi 3. */
export type Pointer = bigint;

type Fn<A extends unknown[], R> = (...args: A) => R;
// koffi's declarations type every binding as `(...args: any[]) => any`; the casts pin the real signatures.
function bind<A extends unknown[], R>(decl: string): Fn<A, R> {
  return lib.func(decl) as unknown as Fn<A, R>;
}

const intOut = koffi.out(koffi.pointer('int'));

export const libc = {
  socket: bind<[domain: number, type: number, protocol: number], number>('int socket(int, int, int)'),
  // socklen_t is uint32_t; sockaddrs and option values are Buffers, only used for the duration of the call.
  setsockopt: bind<[fd: number, level: number, name: number, value: Buffer, len: number], number>(
    'int setsockopt(int, int, int, const void *, uint32_t)',
  ),
  getsockopt: bind<[fd: number, level: number, name: number, value: Buffer, len: [number]], number>(
    'int getsockopt(int, int, int, _Out_ uint8_t *value, _Inout_ uint32_t *len)',
  ),
  bind: bind<[fd: number, addr: Buffer, len: number], number>('int bind(int, const void *, uint32_t)'),
  listen: bind<[fd: number, backlog: number], number>('int listen(int, int)'),
  connect: bind<[fd: number, addr: Buffer, len: number], number>('int connect(int, const void *, uint32_t)'),
  accept4: bind<[fd: number, addr: null, len: null, flags: number], number>('int accept4(int, void *, void *, int)'),
  getsockname: bind<[fd: number, addr: Buffer, len: [number]], number>('int getsockname(int, _Out_ uint8_t *addr, _Inout_ uint32_t *len)'),
  // msghdr lives in koffi-allocated native memory (see NativeBlock), so it is passed as a raw pointer.
  sendmsg: bind<[fd: number, msg: Pointer, flags: number], number>('intptr_t sendmsg(int, void *, int)'),
  recvmsg: bind<[fd: number, msg: Pointer, flags: number], number>('intptr_t recvmsg(int, void *, int)'),
  shutdown: bind<[fd: number, how: number], number>('int shutdown(int, int)'),
  close: bind<[fd: number], number>('int close(int)'),
  // open(2) is variadic (mode); calling it with no variadic arguments is the correct ABI for O_RDONLY.
  open: bind<[path: string, flags: number], number>('int open(const char *, int, ...)'),
  unlink: bind<[path: string], number>('int unlink(const char *)'),
  setns: bind<[fd: number, nstype: number], number>('int setns(int, int)'),
  // struct pollfd { int fd; short events; short revents; } -- 8 bytes each.
  poll: bind<[fds: Buffer, nfds: number, timeoutMs: number], number>('int poll(_Inout_ uint8_t *fds, uint64_t, int)'),
  inetPton: bind<[af: number, src: string, dst: Buffer], number>('int inet_pton(int, const char *, _Out_ uint8_t *dst)'),
};

/** struct mallinfo2 (glibc ≥ 2.33): every field a size_t. */
const MALLINFO2 = koffi.struct('mallinfo2', {
  arena: 'size_t',
  ordblks: 'size_t',
  smblks: 'size_t',
  hblks: 'size_t',
  hblkhd: 'size_t',
  usmblks: 'size_t',
  fsmblks: 'size_t',
  uordblks: 'size_t',
  fordblks: 'size_t',
  keepcost: 'size_t',
});

export interface MallInfo2 {
  /** Bytes obtained with sbrk / arena growth. */
  arena: number | bigint;
  /** Bytes in mmap()ed chunks (large allocations). */
  hblkhd: number | bigint;
  /** Bytes allocated and in use in the arenas. */
  uordblks: number | bigint;
  /** Bytes free in the arenas (held by the process, not returned to the kernel). */
  fordblks: number | bigint;
}

export const malloc = {
  mallinfo2: lib.func('mallinfo2', MALLINFO2, []) as unknown as () => MallInfo2,
  mallocTrim: bind<[pad: number], number>('int malloc_trim(size_t)'),
};

const ioctlVariadic = lib.func('int ioctl(int fd, unsigned long req, ...)') as unknown as (...args: unknown[]) => number;

/** ioctl(2) with no argument (e.g. NS_GET_NSTYPE). */
export function ioctlNoArg(fd: number, request: number): number {
  return ioctlVariadic(fd, request);
}

/** ioctl(2) with an `int *` out argument (e.g. FIONREAD); returns [result, value]. */
export function ioctlIntOut(fd: number, request: number): [number, number] {
  const out = [0];
  const r = ioctlVariadic(fd, request, intOut, out);
  return [r, out[0] ?? 0];
}

export function lastErrno(): number {
  return koffi.errno();
}

/** Native memory that does not move (unlike small Buffers, which V8 may keep on its heap), for structs with pointers. */
export class NativeBlock {
  readonly address: Pointer;
  readonly size: number;
  /** A Buffer view over the native memory; invalid after free(). */
  view: Buffer;
  #freed = false;

  constructor(size: number) {
    this.size = size;
    this.address = koffi.alloc('uint8', size) as Pointer;
    this.view = Buffer.from(koffi.view(this.address, size));
  }

  free(): void {
    if (this.#freed) return;
    this.#freed = true;
    this.view = Buffer.alloc(0);
    koffi.free(this.address);
  }
}

// ---- struct layouts (LP64 Linux) -------------------------------------------------------------------------------

/** struct msghdr: name@0, namelen@8, iov@16, iovlen@24, control@32, controllen@40, flags@48; 56 bytes. */
export const MSGHDR = { size: 56, name: 0, namelen: 8, iov: 16, iovlen: 24, control: 32, controllen: 40, flags: 48 } as const;
/** struct iovec: base@0, len@8; 16 bytes. */
export const IOVEC = { size: 16, base: 0, len: 8 } as const;
/** struct cmsghdr: len@0 (size_t), level@8, type@12, data@16 (CMSG_ALIGN(sizeof(cmsghdr)) = 16). */
export const CMSGHDR = { size: 16, len: 0, level: 8, type: 12 } as const;

/** CMSG_ALIGN: round up to sizeof(size_t), cmsg(3). */
export function cmsgAlign(len: number): number {
  return (len + 7) & ~7;
}
/** CMSG_SPACE: bytes one control message with `dataLen` payload bytes occupies in the control buffer. */
export function cmsgSpace(dataLen: number): number {
  return cmsgAlign(CMSGHDR.size) + cmsgAlign(dataLen);
}
/** CMSG_LEN: the value of cmsg_len for a `dataLen` payload. */
export function cmsgLen(dataLen: number): number {
  return cmsgAlign(CMSGHDR.size) + dataLen;
}

/** struct sockaddr_un: sun_family (u16) + sun_path[108]. */
export const SOCKADDR_UN_PATH_MAX = 108;

/**
 * Encodes a sockaddr_un. A leading '@' selects the Linux abstract namespace (unix(7)); those names are
 * scoped to the network namespace, filesystem paths are not.
 */
export function sockaddrUn(path: string): { addr: Buffer; len: number } {
  const abstract = path.startsWith('@');
  const name = Buffer.from(abstract ? path.slice(1) : path, 'utf8');
  const pathBytes = abstract ? 1 + name.length : name.length + 1; // leading NUL, or trailing NUL
  if (name.length === 0 || pathBytes > SOCKADDR_UN_PATH_MAX) {
    throw new RangeError(`unix socket path must be 1..${SOCKADDR_UN_PATH_MAX - 1} bytes: ${JSON.stringify(path)}`);
  }
  if (name.includes(0)) throw new RangeError(`unix socket path contains a NUL byte: ${JSON.stringify(path)}`);
  const addr = Buffer.alloc(2 + SOCKADDR_UN_PATH_MAX);
  addr.writeUInt16LE(C.AF_UNIX, 0);
  name.copy(addr, abstract ? 3 : 2);
  // Abstract names are exactly the given bytes (no trailing NUL); paths include their NUL.
  return { addr, len: 2 + pathBytes };
}

export type IpFamily = 4 | 6;

/**
 * Encodes sockaddr_in (16 bytes: family, port BE, addr, zero[8]) or sockaddr_in6 (28 bytes: family, port BE,
 * flowinfo, addr[16], scope_id). Link-local scope ids ("fe80::1%eth0") are not supported.
 */
export function sockaddrIn(address: string, port: number, family: IpFamily): Buffer {
  if (family === 4) {
    if (!isIPv4(address)) throw new RangeError(`not an IPv4 address: ${JSON.stringify(address)}`);
    const b = Buffer.alloc(16);
    b.writeUInt16LE(C.AF_INET, 0);
    b.writeUInt16BE(port, 2);
    for (const [i, octet] of address.split('.').entries()) b.writeUInt8(Number(octet), 4 + i);
    return b;
  }
  if (!isIPv6(address) || address.includes('%')) {
    throw new RangeError(`not an IPv6 address (without scope id): ${JSON.stringify(address)}`);
  }
  const b = Buffer.alloc(28);
  b.writeUInt16LE(C.AF_INET6, 0);
  b.writeUInt16BE(port, 2);
  const raw = Buffer.alloc(16);
  if (libc.inetPton(C.AF_INET6, address, raw) !== 1) throw new RangeError(`inet_pton rejected ${address}`);
  raw.copy(b, 8);
  return b;
}

export interface SocketAddress {
  address: string;
  port: number;
  family: IpFamily;
}

/** Decodes a sockaddr_in / sockaddr_in6 written by the kernel. */
export function decodeSockaddrIn(b: Buffer): SocketAddress {
  const family = b.readUInt16LE(0);
  const port = b.readUInt16BE(2);
  if (family === C.AF_INET) {
    return { address: `${b[4]}.${b[5]}.${b[6]}.${b[7]}`, port, family: 4 };
  }
  if (family === C.AF_INET6) {
    return { address: formatIPv6(b.subarray(8, 24)), port, family: 6 };
  }
  throw new RangeError(`unexpected address family ${family}`);
}

/** RFC 5952 text form (longest run of >=2 zero groups compressed; v4-mapped as ::ffff:a.b.c.d), as Node prints. */
export function formatIPv6(raw: Buffer): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(raw.readUInt16BE(i));
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `::ffff:${raw[12]}.${raw[13]}.${raw[14]}.${raw[15]}`;
  }
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (gs: number[]): string => gs.map((g) => g.toString(16)).join(':');
  if (bestStart < 0) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLen))}`;
}

// ---- libuv poll handles (koffi.node.poll) -----------------------------------------------------------------------

export interface PollEvents {
  readable: boolean;
  writable: boolean;
  disconnect: boolean;
}
export interface PollInterest {
  readable?: boolean;
  writable?: boolean;
  disconnect?: boolean;
}
/** A uv_poll_t on the Node event loop. Only one may exist per fd; close() it before closing the fd. */
export interface PollHandle {
  start(opts: PollInterest, callback: PollCallback): void;
  stop(): void;
  close(): void;
  ref(): void;
  unref(): void;
}
/** status is 0 or a negative libuv error (e.g. UV_EBADF). */
export type PollCallback = (status: number, events: PollEvents) => void;

/**
 * Starts a libuv poll watcher on `fd` (koffi's not yet documented `koffi.node.poll`, koffi >= 2.15). Its shipped
 * .d.ts declares the callback as `(events)`, but the native code calls it with `(status, events)`; this wrapper
 * has the real signature. uv_poll_init also switches the fd to O_NONBLOCK.
 */
export function startPoll(fd: number, opts: PollInterest, callback: PollCallback): PollHandle {
  const poll = koffi.node.poll as unknown as (fd: number, opts: PollInterest, cb: PollCallback) => PollHandle | null;
  const h = poll(fd, opts, callback);
  if (h === null) throw new Error(`koffi.node.poll(${fd}) failed`);
  return h;
}
