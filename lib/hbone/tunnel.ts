/**
 * Joins a TCP socket and an HBONE stream into one tunnel (RFC 9113 §8.5, CONNECT):
 * - TCP FIN → DATA with END_STREAM, and END_STREAM → TCP FIN, each direction on its own (half-close kept);
 * - a TCP error or abort → RST_STREAM(CONNECT_ERROR); a RST_STREAM with an error code → TCP RST;
 * - a stream lost with its HTTP/2 connection → TCP RST.
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

const NOTHING = Buffer.alloc(0);

/**
 * Resets a stream from our side with `code` and releases it.
 * - Node's close() first ends the writable side, and its RST_STREAM waits for pending output: with nothing
 *   pending, that output is an END_STREAM, which the peer would read as a clean FIN before the reset (and a FIN
 *   already forwarded to a TCP socket cannot be turned into a reset any more). An empty write still pending
 *   keeps the END_STREAM back, so the peer sees the RST_STREAM alone.
 * - Node keeps a stream closed with NO_ERROR (or half-closed by the peer) until its readable side is consumed;
 *   with the socket it was piped into gone nothing consumes it, and it would never emit 'close'. Destroying it
 *   releases it at once.
 */
export function resetStream(stream: Http2Stream, code: number = constants.NGHTTP2_CONNECT_ERROR): void {
  if (stream.destroyed) return;
  if (!stream.closed) {
    if (!stream.writableEnded) stream.write(NOTHING);
    stream.close(code);
  }
  stream.destroy();
}

/**
 * Resolves once both sides are closed. Either side may already be closed when this is called, with its 'close'
 * event in the past: that is checked here, not waited for.
 */
export function spliceTunnel(socket: Socket, stream: Http2Stream): Promise<TunnelResult> {
  return new Promise((resolve) => {
    let error: Error | undefined;
    let reset = false;
    let socketDone = false;
    let streamDone = false;
    // Half-close must survive: a FIN from one side must not end our writes towards it.
    socket.allowHalfOpen = true;

    const finish = (): void => {
      if (!socketDone || !streamDone) return;
      resolve({ bytesFromSocket: socket.bytesRead, bytesToSocket: socket.bytesWritten, reset, error });
    };

    const onSocketClosed = (): void => {
      if (socketDone) return;
      socketDone = true;
      // Clean = our FIN went out after the stream ended, and the peer's FIN came in: the stream ends by itself.
      const clean = socket.readableEnded && socket.writableFinished;
      if (!clean && !stream.destroyed) {
        reset = true;
        resetStream(stream);
      }
      finish();
    };

    const session = stream.session;
    /** The peer ended its side (END_STREAM, or RST_STREAM(NO_ERROR)) while the stream was alive. */
    let peerEnded = false;
    const onStreamClosed = (): void => {
      if (streamDone) return;
      streamDone = true;
      const rst = stream.rstCode ?? constants.NGHTTP2_NO_ERROR;
      // A stream lost with its HTTP/2 connection (the peer gone, a GOAWAY and then a close, a PING timeout) was
      // not ended by the peer: Node reports NO_ERROR for it, but its bytes may be cut short, so the TCP side
      // is reset rather than given a FIN an app would take for a complete answer.
      const lost = !peerEnded && session?.destroyed === true;
      if (!socket.destroyed) {
        if (rst !== constants.NGHTTP2_NO_ERROR || lost) {
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
    };

    socket.on('error', (err) => {
      error ??= err;
    });
    stream.on('error', (err) => {
      error ??= err;
    });
    socket.once('close', onSocketClosed);
    stream.once('close', onStreamClosed);

    if (stream.destroyed) {
      // The peer went away before the tunnel started: nothing will ever read or write the socket.
      reset = true;
      resetSocket(socket);
      onStreamClosed();
      if (socket.destroyed) onSocketClosed();
      return;
    }
    if (socket.destroyed) {
      onSocketClosed();
      return;
    }
    socket.pipe(stream);
    // The FIN towards the socket is ours to send: Node also ends the readable side of a stream it is tearing
    // down (its connection lost, or reset by the peer), and a FIN sent then could not be turned into the reset
    // it has to be. A stream already destroyed at its 'end' was not ended by the peer: its 'close' decides.
    stream.pipe(socket, { end: false });
    stream.once('end', () => {
      if (stream.destroyed) return;
      peerEnded = true;
      if (!socket.destroyed) socket.end();
    });
  });
}

/** Tears a tunnel down from outside (policy change, drain deadline): both sides reset. */
export function abortTunnel(socket: Socket, stream: Http2Stream): void {
  resetStream(stream, constants.NGHTTP2_CANCEL);
  resetSocket(socket);
}
