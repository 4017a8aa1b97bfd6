/**
 * Ending an HBONE connection for good. `Http2Session.destroy()` closes the socket only after a write in progress
 * completes (node_http2.cc `Http2Session::Close`); when the peer has stopped reading, that write never completes
 * and the connection, its file descriptor and the peer's tunnels would stay open for ever. So the TLS socket
 * under the session is destroyed with it. (The session's `socket` property is a proxy that refuses `destroy`,
 * hence the raw socket is passed in.)
 */
import type { Http2Session } from 'node:http2';
import type { Socket } from 'node:net';

export function destroySession(session: Http2Session, socket: Socket | undefined, error?: Error): void {
  if (!session.destroyed) session.destroy(error);
  socket?.destroy();
}
