/**
 * Hooks the xDS server calls so that the controller can keep Istio's pilot_* metrics (istio pilot/pkg/xds/monitoring.go:
 * pilot_xds, pilot_xds_pushes, pilot_total_xds_rejects, pilot_debounce_time, ...) without this module depending
 * on a metrics library. Every hook is optional and must not throw (a throw is caught and logged).
 */
import type { MergedPushRequest } from './debounce.js';
import type { ProxyInfo } from './proxy.js';

export interface XdsServerMetrics {
  /** A stream passed authentication and sent a valid first request (pilot_xds gauge +1). */
  connectionOpened?(proxy: ProxyInfo): void;
  /** A stream that was counted as opened ended (pilot_xds gauge -1). */
  connectionClosed?(proxy: ProxyInfo): void;
  /** A stream was refused or cut for a reason with a stable code (auth failure, hostile input, budget). */
  streamRejected?(code: string): void;
  /** One response was sent (pilot_xds_pushes{type}); bytes is the encoded resources' total size. */
  responseSent?(
    typeUrl: string,
    proxy: ProxyInfo,
    counts: { readonly resources: number; readonly removed: number; readonly bytes: number },
  ): void;
  /** A proxy NACKed a response (pilot_total_xds_rejects{type}). */
  nack?(typeUrl: string, proxy: ProxyInfo, message: string): void;
  /** The debouncer released a push (pilot_debounce_time, pilot_push_triggers{reason}). */
  pushReleased?(push: MergedPushRequest): void;
}
