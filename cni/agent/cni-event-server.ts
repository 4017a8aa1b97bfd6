/**
 * The agent's endpoint for the mesh-cni plugin: HTTP/1.1 on a Unix socket (wire format in cni/event.ts).
 * Input is untrusted: body size capped, JSON validated, every failure answered with a stable code.
 * The socket file is created mode 0600 (only root, i.e. the container runtime, may enrol pods) and a stale
 * one left by a previous agent is replaced (only if it is a socket).
 */
import { chmodSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import http from 'node:http';
import { dirname } from 'node:path';
import { describeError, errorCode } from '../../lib/errors.js';
import type { Logger } from '../../lib/telemetry/logger.js';
import {
  CNI_EVENT_ADD_PATH,
  CNI_EVENT_DEL_PATH,
  CNI_EVENT_MAX_BODY,
  parseCniPodEvent,
  type CniEventError,
  type CniEventReply,
  type CniPodEvent,
} from '../event.js';
import { CniAgentError, CniAgentErrorCode } from './errors.js';

export interface CniEventHandler {
  add(event: CniPodEvent): Promise<CniEventReply>;
  del(event: CniPodEvent): Promise<CniEventReply>;
}

function statusOf(err: unknown): number {
  switch (errorCode(err)) {
    case CniAgentErrorCode.BAD_EVENT:
    case CniAgentErrorCode.MISSING_UID:
      return 400;
    case CniAgentErrorCode.STOPPING:
      return 503;
    default:
      return 500;
  }
}

export class CniEventServer {
  readonly path: string;
  readonly #server: http.Server;

  static async listen(path: string, handler: CniEventHandler, log: Logger): Promise<CniEventServer> {
    mkdirSync(dirname(path), { recursive: true });
    try {
      if (lstatSync(path).isSocket()) unlinkSync(path);
    } catch {
      // nothing there
    }
    const server = http.createServer((req, res) => void serve(req, res, handler, log));
    server.requestTimeout = 60_000;
    server.headersTimeout = 10_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    });
    chmodSync(path, 0o600);
    return new CniEventServer(path, server);
  }

  private constructor(path: string, server: http.Server) {
    this.path = path;
    this.#server = server;
  }

  /** Stops accepting, drops idle keep-alive connections, and removes the socket file. */
  close(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeIdleConnections();
    });
  }
}

async function serve(req: http.IncomingMessage, res: http.ServerResponse, handler: CniEventHandler, log: Logger): Promise<void> {
  const reply = (status: number, body: CniEventReply | CniEventError): void => {
    if (res.headersSent) return;
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  };
  try {
    if (req.method !== 'POST' || (req.url !== CNI_EVENT_ADD_PATH && req.url !== CNI_EVENT_DEL_PATH)) {
      reply(404, { code: CniAgentErrorCode.BAD_EVENT, error: `no such endpoint: ${req.method ?? ''} ${req.url ?? ''}` });
      req.resume();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > CNI_EVENT_MAX_BODY) {
        reply(413, { code: CniAgentErrorCode.BAD_EVENT, error: `event larger than ${CNI_EVENT_MAX_BODY} bytes` });
        req.destroy();
        return;
      }
      chunks.push(chunk as Buffer);
    }
    let event: CniPodEvent;
    try {
      event = parseCniPodEvent(JSON.parse(Buffer.concat(chunks).toString('utf8')));
    } catch (err) {
      throw new CniAgentError(CniAgentErrorCode.BAD_EVENT, `invalid CNI event: ${(err as Error).message}`);
    }
    const wanted = req.url === CNI_EVENT_ADD_PATH ? 'ADD' : 'DEL';
    if (event.command !== wanted) {
      throw new CniAgentError(CniAgentErrorCode.BAD_EVENT, `command ${event.command} posted to ${req.url}`);
    }
    reply(200, await (wanted === 'ADD' ? handler.add(event) : handler.del(event)));
  } catch (err) {
    const status = statusOf(err);
    log.warn({ err: describeError(err), url: req.url }, 'CNI event failed');
    reply(status, { code: errorCode(err), error: describeError(err) });
  }
}
