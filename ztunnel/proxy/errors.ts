/**
 * Why the data path refused or ended a connection, as stable codes. Route decisions bring their own codes
 * (route.ts: RouteRejectCode, InboundRejectCode); a rejection becomes a ProxyError carrying that code, so that
 * the access log, the response flag (response-flags.ts) and tests all key on the code, never on the text.
 */
import { MeshError } from '../../lib/errors.js';
import type { InboundRejectCode, OutboundRejectCode } from './route.js';

export const ProxyErrorCode = {
  /** L4 authorization denied the connection when it arrived (ztunnel: AuthorizationPolicyRejection). */
  POLICY_DENIED: 'PROXY_POLICY_DENIED',
  /** A policy change denied a live connection, which was closed (ztunnel: AuthorizationPolicyLateRejection). */
  POLICY_CHANGED: 'PROXY_POLICY_CHANGED',
  /** The pod proxy stopped (pod deleted, ztunnel draining) and the drain deadline passed. */
  DRAINED: 'PROXY_DRAINED',
  /** A setup step finished after its connection was already over (its client gone, or closed from outside). */
  CLOSED: 'PROXY_CLOSED',
} as const;
export type ProxyErrorCode = (typeof ProxyErrorCode)[keyof typeof ProxyErrorCode];

export class ProxyError extends MeshError {
  declare readonly code: ProxyErrorCode | OutboundRejectCode | InboundRejectCode;

  constructor(code: ProxyErrorCode | OutboundRejectCode | InboundRejectCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}
