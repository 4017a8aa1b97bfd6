/**
 * HTTP/2 PING keepalive for HBONE sessions (ztunnel: every 10 s, dropped after 20 s without an answer), so a
 * dead peer or a black-holed path does not hold tunnels forever.
 */
import type { Http2Session } from 'node:http2';
import type { Socket } from 'node:net';
import { HboneError, HboneErrorCode } from './errors.js';
import { destroySession } from './session.js';

/** `socket` is the TLS socket under `session`: an unanswered PING often means a peer that stopped reading. */
export function startKeepalive(session: Http2Session, socket: Socket | undefined, intervalMs: number, timeoutMs: number): void {
  let waiting: NodeJS.Timeout | undefined;
  const timer = setInterval(() => {
    if (session.destroyed || session.closed || waiting) return;
    waiting = setTimeout(() => {
      destroySession(
        session,
        socket,
        new HboneError(HboneErrorCode.SESSION_FAILED, `HTTP/2 PING unanswered for ${timeoutMs} ms; dropping the connection`),
      );
    }, timeoutMs);
    waiting.unref();
    try {
      session.ping((err) => {
        if (waiting) clearTimeout(waiting);
        waiting = undefined;
        if (err && !session.destroyed) destroySession(session, socket, err);
      });
    } catch {
      // The session closed between the check and the ping; its close handler clears the timer.
    }
  }, intervalMs);
  timer.unref();
  session.once('close', () => {
    clearInterval(timer);
    if (waiting) clearTimeout(waiting);
  });
}
