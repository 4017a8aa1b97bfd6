/**
 * The controller's xDS server: delta ADS to ztunnels (workload discovery) and waypoints (Envoy xDS).
 *
 *   server.ts        the gRPC service, connection registry, push fan-out, start helper
 *   connection.ts    one stream: authenticate, decode, budgets, respond, push with backpressure
 *   subscription.ts  pure delta rules: wildcard, named and on-demand subscriptions, ACK/NACK/stale, what a proxy lacks
 *   debounce.ts      PILOT_DEBOUNCE_AFTER / PILOT_DEBOUNCE_MAX merging of push requests
 *   proxy.ts         Node -> ProxyInfo
 *   status.ts        proxy-status records (SYNCED / STALE / NOT SENT / ERROR / IGNORED)
 *   source.ts        ResourceSource (what a proxy may see, what on-demand names stand for) and an in-memory one
 *   auth.ts          the per-stream authentication hook
 *   metrics.ts       hooks for pilot_* style metrics
 *   config.ts        budgets and their defaults
 */
export {
  type XdsServerOptions,
  type XdsServerTransport,
  type StartXdsServerOptions,
  type RunningXdsServer,
  DEFAULT_XDS_LIMITS,
  AggregatedDiscoveryServiceRawDefinition,
  XdsServer,
  addXdsService,
  startXdsServer,
} from './server.js';
export type { XdsServerLimits } from './connection.js';
export { type OnDemandNames, type ResourceSource, MemoryResourceSource } from './source.js';
export { type ProxyInfo, type ProxyType, PROXY_TYPES, parseProxyNode } from './proxy.js';
export { type XdsAuthContext, type XdsCaller, type XdsAuthenticator, allowAnyCaller, staticTokenAuthenticator } from './auth.js';
export type { XdsServerMetrics } from './metrics.js';
export { type SyncStatus, type SyncFacts, type TypeStatusRecord, type ProxyStatusRecord, syncStatusOf } from './status.js';
export { type PushRequest, type MergedPushRequest, type PushDebouncerOptions, PushDebouncer } from './debounce.js';
export {
  type WatchState,
  type RequestKind,
  type RequestOutcome,
  type Delta,
  WILDCARD,
  newWatch,
  applyRequest,
  computeDelta,
  grantOnDemand,
  recordSent,
} from './subscription.js';
export { type DebounceSettings, DEFAULT_DEBOUNCE } from './config.js';
