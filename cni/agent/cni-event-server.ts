/**
 * The agent's endpoint for the mesh-cni plugin: HTTP/1.1 on a Unix socket (wire format in cni/event.ts).
 * Input is untrusted: body size capped, JSON validated, every failure answered with a stable code.
 * Served by lib/http: the socket file is created mode 0600 and a stale one left by a previous agent is
 * replaced (only if it is a socket).
 */
import { MeshError, describeError, errorCode } from '../../lib/errors.js';
import { HttpService, methods, type HttpReply, type HttpRequest } from '../../lib/http/index.js';
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

/** An ADD can wait on iptables and the enrollment source; the plugin gives up after about a minute too. */
const CNI_EVENT_REQUEST_TIMEOUT_MS = 60_000;

function statusOf(err: unknown): number | undefined {
  switch (errorCode(err)) {
    case CniAgentErrorCode.BAD_EVENT:
    case CniAgentErrorCode.MISSING_UID:
      return 400;
    case CniAgentErrorCode.STOPPING:
      return 503;
    default:
      // A typed failure (rules, netns, enrollment, ZDS) goes back to the plugin with its code and message.
      return err instanceof MeshError ? 500 : undefined;
  }
}

function errorReply(status: number, code: string, error: string): HttpReply {
  const body: CniEventError = { code, error };
  return { status, body: JSON.stringify(body), type: 'application/json' };
}

export class CniEventServer {
  readonly path: string;
  readonly #http: HttpService;

  static async listen(path: string, handler: CniEventHandler, log: Logger): Promise<CniEventServer> {
    const serve =
      (wanted: 'ADD' | 'DEL') =>
      async (req: HttpRequest): Promise<HttpReply> => {
        const body = await req.body();
        let event: CniPodEvent;
        try {
          event = parseCniPodEvent(JSON.parse(body.toString('utf8')));
        } catch (err) {
          throw new CniAgentError(CniAgentErrorCode.BAD_EVENT, `invalid CNI event: ${describeError(err)}`);
        }
        if (event.command !== wanted) {
          throw new CniAgentError(CniAgentErrorCode.BAD_EVENT, `command ${event.command} posted to ${req.path}`);
        }
        const reply = await (wanted === 'ADD' ? handler.add(event) : handler.del(event));
        return { status: 200, body: JSON.stringify(reply), type: 'application/json' };
      };
    const http = await HttpService.listen({
      name: 'cni-event',
      // 0600: only root (the container runtime running the plugin) may enrol pods.
      listen: { path, mode: 0o600 },
      logger: log,
      limits: { maxBodyBytes: CNI_EVENT_MAX_BODY, requestTimeoutMs: CNI_EVENT_REQUEST_TIMEOUT_MS },
      routes: {
        [CNI_EVENT_ADD_PATH]: methods({ POST: serve('ADD') }),
        [CNI_EVENT_DEL_PATH]: methods({ POST: serve('DEL') }),
      },
      statusOf,
      errorReply,
    });
    return new CniEventServer(path, http);
  }

  private constructor(path: string, http: HttpService) {
    this.path = path;
    this.#http = http;
  }

  /** Stops accepting, drops idle keep-alive connections, lets requests in flight finish (bounded by their timeout). */
  close(): Promise<void> {
    return this.#http.close(CNI_EVENT_REQUEST_TIMEOUT_MS);
  }
}
