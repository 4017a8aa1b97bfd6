/**
 * The native layer's errors: a NativeError is a MeshError whose code is one of NativeErrorCode and whose
 * message names the failing call, the errno name and text, and what to check next.
 */
import { getSystemErrorMap } from 'node:util';
import { MeshError } from '../errors.js';
import { lastErrno } from './libc.js';

export const NativeErrorCode = {
  /** setns(2) into (or back out of) a network namespace failed. */
  SETNS_FAILED: 'NATIVE_SETNS_FAILED',
  /** A network namespace file could not be opened or is not a network namespace. */
  NETNS_OPEN_FAILED: 'NATIVE_NETNS_OPEN_FAILED',
  /** fstat(2) of a network namespace descriptor failed (closed, or never a descriptor). */
  NETNS_STAT_FAILED: 'NATIVE_NETNS_STAT_FAILED',
  /** withNetns was given a function that returned a Promise (its async part would run in the wrong namespace). */
  NETNS_ASYNC_CALLBACK: 'NATIVE_NETNS_ASYNC_CALLBACK',
  /** socket(2) failed. */
  SOCKET_FAILED: 'NATIVE_SOCKET_FAILED',
  /** Creating a listening socket failed at any step; the step's own error is the cause. */
  LISTEN_FAILED: 'NATIVE_LISTEN_FAILED',
  /** bind(2) of an outbound socket failed (e.g. a foreign address without transparent/freebind). */
  BIND_FAILED: 'NATIVE_BIND_FAILED',
  /** setsockopt(2)/getsockopt(2) failed. */
  SOCKOPT_FAILED: 'NATIVE_SOCKOPT_FAILED',
  /** SO_ORIGINAL_DST found no conntrack entry or failed otherwise. */
  ORIGINAL_DST_FAILED: 'NATIVE_ORIGINAL_DST_FAILED',
  /** A SOCK_SEQPACKET message or its control data did not fit the receive buffers (MSG_TRUNC / MSG_CTRUNC). */
  SEQPACKET_TRUNCATED: 'NATIVE_SEQPACKET_TRUNCATED',
  /** A SOCK_SEQPACKET socket call failed. */
  SEQPACKET_FAILED: 'NATIVE_SEQPACKET_FAILED',
  /** The SOCK_SEQPACKET socket was closed locally while the operation was pending, or before it started. */
  SEQPACKET_CLOSED: 'NATIVE_SEQPACKET_CLOSED',
  /** close(2) reported a bad descriptor (a double close is a bug that can close someone else's fd). */
  CLOSE_FAILED: 'NATIVE_CLOSE_FAILED',
  /** An argument was rejected before any system call (bad address, port, fd). */
  INVALID_ARGUMENT: 'NATIVE_INVALID_ARGUMENT',
} as const;
export type NativeErrorCode = (typeof NativeErrorCode)[keyof typeof NativeErrorCode];

export class NativeError extends MeshError {
  declare readonly code: NativeErrorCode;
  /** The failing system call, e.g. "bind". */
  readonly syscall: string | undefined;
  /** The errno value (positive), when a system call failed. */
  readonly errno: number | undefined;
  /** The errno name, e.g. "EADDRINUSE". */
  readonly errnoName: string | undefined;

  constructor(code: NativeErrorCode, message: string, details: { syscall?: string; errno?: number; cause?: unknown } = {}) {
    super(code, message, details.cause === undefined ? undefined : { cause: details.cause });
    this.syscall = details.syscall;
    this.errno = details.errno;
    this.errnoName = details.errno === undefined ? undefined : errnoName(details.errno);
  }
}

let errorMap: Map<number, [string, string]> | undefined;

/** "EADDRINUSE" for 98; libuv's table (keyed by negative errno) is the one Node uses in its own errors. */
export function errnoName(errno: number): string {
  errorMap ??= getSystemErrorMap();
  return errorMap.get(-errno)?.[0] ?? `errno ${errno}`;
}

export function errnoText(errno: number): string {
  errorMap ??= getSystemErrorMap();
  return errorMap.get(-errno)?.[1] ?? 'unknown error';
}

/**
 * Builds the error for a failed system call right after it returned -1: reads errno, then formats
 * "<what>: <call> failed: EADDRINUSE (address already in use); <hint>". `hint` may depend on the errno name.
 */
export function syscallError(
  code: NativeErrorCode,
  what: string,
  syscall: string,
  hint: string | ((errnoName: string) => string),
  errno: number = lastErrno(),
): NativeError {
  const name = errnoName(errno);
  const h = typeof hint === 'function' ? hint(name) : hint;
  return new NativeError(code, `${what}: ${syscall} failed: ${name} (${errnoText(errno)})${h ? `; ${h}` : ''}`, {
    syscall,
    errno,
  });
}

/** Hints for errno values any socket call can meet. */
export function commonHint(name: string): string {
  switch (name) {
    case 'EPERM':
    case 'EACCES':
      return 'this needs CAP_NET_ADMIN (setns, SO_MARK, IP_TRANSPARENT) or CAP_NET_BIND_SERVICE (ports < 1024): run as root or grant the capability';
    case 'EMFILE':
    case 'ENFILE':
      return 'out of file descriptors: check `ulimit -n` and for descriptor leaks (ls /proc/<pid>/fd)';
    case 'EBADF':
    case 'ENOTSOCK':
      return 'the descriptor is closed or not a socket: check ownership (was it handed to a net.Socket/Server, which closes it?)';
    case 'EAFNOSUPPORT':
      return 'the address family is not available in this namespace/kernel (IPv6 disabled?)';
    default:
      return '';
  }
}
