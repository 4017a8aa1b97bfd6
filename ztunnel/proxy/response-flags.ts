/**
 * Error codes → Istio's response flags, in one table (ztunnel src/proxy/metrics.rs `ResponseFlags` and
 * `extract_failure_reason`). A code not listed is a connection failure (CONNECT), as in ztunnel.
 */
import { MeshError } from '../../lib/errors.js';
import { HboneErrorCode } from '../../lib/hbone/errors.js';
import { IdentityErrorCode } from '../../lib/identity/errors.js';
import type { ResponseFlag } from '../../lib/telemetry/tcp-metrics.js';
import { ProxyErrorCode } from './errors.js';

const FLAGS: ReadonlyMap<string, ResponseFlag> = new Map<string, ResponseFlag>([
  [HboneErrorCode.TLS_FAILED, 'TLS_FAILURE'],
  [HboneErrorCode.IDENTITY_MISMATCH, 'TLS_FAILURE'],
  [HboneErrorCode.PEER_IDENTITY, 'TLS_FAILURE'],
  [HboneErrorCode.SESSION_FAILED, 'H2_HANDSHAKE_FAILURE'],
  [HboneErrorCode.CONNECT_TIMEOUT, 'NETWORK_POLICY'],
  [HboneErrorCode.UNAUTHORIZED, 'DENY'],
  [ProxyErrorCode.POLICY_DENIED, 'DENY'],
  [ProxyErrorCode.POLICY_CHANGED, 'DENY'],
  // Ended by us on purpose, not a failure to connect.
  [ProxyErrorCode.DRAINED, '-'],
  ...Object.values(IdentityErrorCode).map((code): [string, ResponseFlag] => [code, 'IDENTITY_ERROR']),
]);

/** The flag of the first error in `err`'s cause chain whose code the table lists; CONNECT otherwise. */
export function responseFlagOf(err: unknown): ResponseFlag {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 16; e = e.cause, depth++) {
    const flag = e instanceof MeshError ? FLAGS.get(e.code) : undefined;
    if (flag !== undefined) return flag;
  }
  return 'CONNECT';
}

/** Flags that count as a failed connection (istio_tcp_connections_failed_total). */
export function isFailure(flag: ResponseFlag): boolean {
  return flag !== '-';
}
