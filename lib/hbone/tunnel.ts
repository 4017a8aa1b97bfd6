/**
 * Joins a TCP socket and an HBONE stream into one tunnel (RFC 9113 §8.5, CONNECT):
 * - TCP FIN → DATA with END_STREAM, and END_STREAM → TCP FIN, each direction on its own (half-close kept);
 * - a TCP error or abort → RST_STREAM(CONNECT_ERROR); a RST_STREAM with an error code → TCP RST.
 * A RST_STREAM(NO_ERROR) on the read side counts as EOF, as in ztunnel.
 */
import type { Socket } from 'node:net';
import { constants, type Http2Stream } from 'node:http2';

export interface TunnelResult {
  /** Bytes read from the TCP side and sent into the stream. */
  readonly bytesFromSocket: number;
  /** Bytes received from the stream and written to the TCP side. */
  readonly bytesToSocket: number;
  /** True when either side ended by reset rather than by FIN/END_STREAM. */
  readonly reset: boolean;
  readonly error: Error | undefined;
}

/**
 * Aborts a TCP socket with RST when that is still possible. libuv refuses an RST on a socket whose write side
 * is already shutting down (uv_tcp_close_reset → EINVAL) and Node 20 then leaks the handle, which keeps the
 * event loop spinning; such a socket has sent its FIN already, so a plain close is all that is left.
 */
export function resetSocket(socket: Socket): void {
  if (socket.destroyed) return;
  if (socket.writableEnded) socket.destroy();
  else socket.resetAndDestroy();
}

export function spliceTunnel(socket: Socket, stream: Http2Stream): Promise<TunnelResult> {
  return new Promise((resolve) => {
    let error: Error | undefined;
    let reset = false;
    let socketClosed = socket.destroyed;
    let streamClosed = stream.closed || stream.destroyed;
    // Half-close must survive: a FIN from one side must not end our writes towards it.
    socket.allowHalfOpen = true;

    const finish = (): void => {
      if (!socketClosed || !streamClosed) return;
      resolve({ bytesFromSocket: socket.bytesRead, bytesToSocket: socket.bytesWritten, reset, error });
    };

    socket.on('error', (err) => {
      error ??= err;
    });
    stream.on('error', (err) => {
      error ??= err;
    });

    socket.on('close', () => {
      socketClosed = true;
      const clean = socket.readableEnded && socket.writableFinished;
      if (!clean && !stream.closed && !stream.destroyed) {
        reset = true;
        stream.close(constants.NGHTTP2_CONNECT_ERROR);
      }
      finish();
    });

    stream.on('close', () => {
      streamClosed = true;
      const rst = stream.rstCode ?? constants.NGHTTP2_NO_ERROR;
      if (!socket.destroyed) {
        if (rst !== constants.NGHTTP2_NO_ERROR) {
          reset = true;
          resetSocket(socket);
        } else {
          // RST_STREAM(NO_ERROR), or a stream that closed before the socket finished: EOF towards the socket,
          // and since nothing can carry its bytes any more, close it once our FIN is flushed. (A socket left
          // half-open and unread here would never close.)
          socket.destroySoon();
        }
      }
      finish();
    });

    if (streamClosed) {
      // The client went away before the tunnel started: nothing will ever read or write the socket.
      socket.destroy();
      reset = true;
      socketClosed = true;
      finish();
      return;
    }
    socket.pipe(stream);
    stream.pipe(socket);
    if (socketClosed) finish();
  });
}

/** Tears a tunnel down from outside (policy change, drain deadline): both sides reset. */
export function abortTunnel(socket: Socket, stream: Http2Stream): void {
  if (!stream.closed && !stream.destroyed) stream.close(constants.NGHTTP2_CANCEL);
  resetSocket(socket);
}
