/**
 * Joins two TCP sockets (passthrough, plaintext inbound): bytes both ways, FIN forwarded per direction
 * (half-close kept), an error or abort on one side resets the other. Either socket may already be closed when
 * this is called (its 'close' in the past); that is checked, not waited for.
 */
import type { Socket } from 'node:net';
import { resetSocket } from '../../lib/hbone/tunnel.js';

export interface CopyResult {
  /** Bytes read from the client and written upstream. */
  readonly fromClient: number;
  /** Bytes read from upstream and written to the client. */
  readonly toClient: number;
  readonly reset: boolean;
  readonly error: Error | undefined;
}

export function copyBidirectional(client: Socket, upstream: Socket): Promise<CopyResult> {
  return new Promise((resolve) => {
    let error: Error | undefined;
    let reset = false;
    const done = new Set<Socket>();
    client.allowHalfOpen = true;
    upstream.allowHalfOpen = true;
    const onClose = (self: Socket, other: Socket) => (): void => {
      if (done.has(self)) return;
      done.add(self);
      const clean = self.readableEnded && self.writableFinished;
      if (!clean && !other.destroyed) {
        reset = true;
        resetSocket(other);
      }
      if (done.size === 2) resolve({ fromClient: client.bytesRead, toClient: client.bytesWritten, reset, error });
    };
    const clientClosed = onClose(client, upstream);
    const upstreamClosed = onClose(upstream, client);
    client.on('error', (e) => (error ??= e));
    upstream.on('error', (e) => (error ??= e));
    client.once('close', clientClosed);
    upstream.once('close', upstreamClosed);
    if (client.destroyed || upstream.destroyed) {
      if (client.destroyed) clientClosed();
      if (upstream.destroyed) upstreamClosed();
      return;
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
}
