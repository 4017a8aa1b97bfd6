/**
 * Budgets of the project's small HTTP/1.1 servers (ztunnel admin 15000, metrics 15020, readiness 15021; the
 * controller's debug 8080 and monitoring 15014; the node agent's CNI event socket), each with its reason. The
 * readiness and metrics ports listen on every address, so any pod on the node can reach them: what one client
 * can hold (connections, header bytes, body bytes, time) is bounded here, because those servers share the process
 * — and its file descriptors — with the data path.
 */
const KiB = 1024;

export interface HttpServerLimits {
  /** Largest request head (request line + headers). Node's default; no endpoint here reads a large header. */
  readonly maxHeaderBytes: number;
  /** Largest request body read or accepted (Content-Length). A CNI event is the biggest body we take (64 KiB). */
  readonly maxBodyBytes: number;
  /** A client must finish its request head in this long (slowloris). */
  readonly headersTimeoutMs: number;
  /** ...and the whole request, body included, in this long. */
  readonly requestTimeoutMs: number;
  /** An idle keep-alive connection is closed after this long (Node's default). */
  readonly keepAliveTimeoutMs: number;
  /** A connection with no socket activity at all (a client that stopped reading its answer) is dropped after this long. */
  readonly idleTimeoutMs: number;
  /**
   * Open connections per server; more are dropped at accept. Probes and scrapes need a handful; without a cap a
   * flood of idle connections from one pod would use up the descriptors the data path needs.
   */
  readonly maxConnections: number;
  /** How often Node checks the two request timeouts (its default, 30 s, lets a slow client stay 3× too long). */
  readonly timeoutCheckIntervalMs: number;
}

export const DEFAULT_HTTP_SERVER_LIMITS: HttpServerLimits = Object.freeze({
  maxHeaderBytes: 16 * KiB,
  maxBodyBytes: 64 * KiB,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 5_000,
  idleTimeoutMs: 60_000,
  maxConnections: 256,
  timeoutCheckIntervalMs: 1_000,
});

/** At most one log line per code this often from one server; the next line says how many were left out. */
export const HTTP_REJECT_LOG_INTERVAL_MS = 1_000;
