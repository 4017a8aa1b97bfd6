/**
 * Connecting a tunnel to its destination: the last step of an inbound HBONE handler. Failure or timeout
 * becomes a 503 at the caller; the socket is created by a factory so that ztunnel can make it inside a pod's
 * network namespace, marked and bound to the client's IP.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { HboneError, HboneErrorCode } from './errors.js';
import { formatAuthority } from './authority.js';

export type UpstreamSocketFactory = (host: string, port: number) => Socket;

const defaultFactory: UpstreamSocketFactory = (host, port) => netConnect({ host, port, allowHalfOpen: true, noDelay: true });

export function dialUpstream(
  host: string,
  port: number,
  opts: { readonly signal?: AbortSignal; readonly timeoutMs: number; readonly socketFactory?: UpstreamSocketFactory },
): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = (opts.socketFactory ?? defaultFactory)(host, port);
    const cleanup = (): void => {
      clearTimeout(timer);
      socket.off('connect', onConnect);
      socket.off('error', onError);
      opts.signal?.removeEventListener('abort', onAbort);
    };
    const fail = (err: HboneError): void => {
      cleanup();
      socket.destroy();
      reject(err);
    };
    const onConnect = (): void => {
      cleanup();
      resolve(socket);
    };
    const onError = (err: Error): void =>
      fail(
        new HboneError(HboneErrorCode.UPSTREAM_FAILED, `cannot connect to ${formatAuthority(host, port)}: ${err.message}`, { cause: err }),
      );
    const onAbort = (): void => fail(new HboneError(HboneErrorCode.UPSTREAM_FAILED, 'client went away before the upstream connected'));
    const timer = setTimeout(
      () =>
        fail(
          new HboneError(HboneErrorCode.UPSTREAM_FAILED, `connect to ${formatAuthority(host, port)} timed out after ${opts.timeoutMs} ms`),
        ),
      opts.timeoutMs,
    );
    socket.once('connect', onConnect);
    socket.once('error', onError);
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    if (opts.signal?.aborted) onAbort();
  });
}
