/**
 * Joins two TCP sockets (passthrough, plaintext inbound): bytes both ways, FIN forwarded per direction
 * (half-close kept), an error or abort on one side resets the other.
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
    let open = 2;
    client.allowHalfOpen = true;
    upstream.allowHalfOpen = true;
    const onClose = (self: Socket, other: Socket) => () => {
      const clean = self.readableEnded && self.writableFinished;
      if (!clean && !other.destroyed) {
        reset = true;
        resetSocket(other);
      }
      if (--open === 0) resolve({ fromClient: client.bytesRead, toClient: client.bytesWritten, reset, error });
    };
    client.on('error', (e) => (error ??= e));
    upstream.on('error', (e) => (error ??= e));
    client.once('close', onClose(client, upstream));
    upstream.once('close', onClose(upstream, client));
    client.pipe(upstream);
    upstream.pipe(client);
  });
}
