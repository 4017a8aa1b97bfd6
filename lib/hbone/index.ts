/**
 * HBONE: HTTP/2 CONNECT over mutual TLS 1.3 on port 15008, the tunnel between ztunnels and waypoints.
 *   config.ts     budgets (windows, caps, timeouts) with reasons
 *   tls.ts        TLS options and SPIFFE identity checks on both sides
 *   authority.ts  CONNECT :authority parsing
 *   headers.ts    baggage / forwarded / traceparent
 *   pool.ts       the client: pooled connections, one CONNECT stream per tunnel
 *   server.ts     the server: validation, handler hook, 200/400/401/503
 *   tunnel.ts     joining a TCP socket and a stream (half-close, reset propagation)
 *   keepalive.ts  PING-based liveness
 *   upstream.ts   connecting an accepted tunnel to its destination
 */
export { DEFAULT_HBONE_CONFIG, HBONE_PORT, hboneConfig, type HboneConfig } from './config.js';
export { HboneError, HboneErrorCode } from './errors.js';
export { parseAuthority, formatAuthority, type HboneTarget } from './authority.js';
export { buildBaggage, parseBaggage, buildForwarded, newTraceparent, type BaggageFields } from './headers.js';
export { HbonePool, poolKey, type HboneConnectRequest, type HboneDestination, type HboneSocketFactory, type HboneTunnel } from './pool.js';
export { HboneServer, type HboneHandler, type HboneInboundDecision, type HboneInboundRequest, type HboneServerOptions } from './server.js';
export { spliceTunnel, abortTunnel, type TunnelResult } from './tunnel.js';
export { dialUpstream, type UpstreamSocketFactory } from './upstream.js';
