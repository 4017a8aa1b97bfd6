/**
 * HTTP/1.1 serving for every component's small HTTP ports (ztunnel admin 15000, metrics 15020, readiness 15021; the
 * controller's debug 8080 and monitoring 15014; the node agent's CNI event socket). Input is hostile: nothing a
 * client sends may throw past this module.
 *   config.ts  budgets (head, body, time, connections) with reasons
 *   target.ts  the request target parsed without throwing (origin and absolute form)
 *   server.ts  HttpService: routes, the last-resort guard, parser errors, refusals logged with stable codes
 *   errors.ts  HttpError (a status and a code) and HttpErrorCode
 */
export { DEFAULT_HTTP_SERVER_LIMITS, HTTP_REJECT_LOG_INTERVAL_MS, type HttpServerLimits } from './config.js';
export { HttpError, HttpErrorCode } from './errors.js';
export {
  HttpService,
  jsonReply,
  methods,
  type HttpHandler,
  type HttpListenAddress,
  type HttpReply,
  type HttpRequest,
  type HttpServerOptions,
} from './server.js';
export { parseRequestTarget, type RequestTarget } from './target.js';
