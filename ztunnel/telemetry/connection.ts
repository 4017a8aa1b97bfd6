/**
 * What ztunnel reports about one proxied connection: Istio's metric labels and the access-log line
 * ("connection complete" with src./dst. fields, as ztunnel's access log target prints them).
 */
import type { Logger } from 'pino';
import type { ResponseFlag, TcpMetricLabels } from '../../lib/telemetry/tcp-metrics.js';
import { type Identity, formatSpiffeId } from '../../lib/identity/spiffe.js';
import type { Service, Workload } from '../state/model.js';

export interface ConnectionRecord {
  readonly direction: 'inbound' | 'outbound';
  /** Client address as ip:port. */
  readonly srcAddr: string;
  /** Where bytes actually went: <pod IP>:15008 for HBONE, the app for plain TCP. */
  readonly dstAddr: string;
  /** The CONNECT target (HBONE only). */
  readonly dstHboneAddr: string | undefined;
  readonly source: Workload | undefined;
  readonly sourceIdentity: Identity | undefined;
  readonly destination: Workload | undefined;
  readonly destinationService: Service | undefined;
  readonly destinationIdentity: Identity | undefined;
  readonly mtls: boolean;
  readonly startedAt: number;
}

const u = (v: string | undefined): string => (v ? v : 'unknown');

export function trafficLabels(rec: ConnectionRecord, flag: ResponseFlag = '-'): TcpMetricLabels {
  const s = rec.source;
  const d = rec.destination;
  const svc = rec.destinationService;
  return {
    reporter: rec.direction === 'outbound' ? 'source' : 'destination',
    source_workload: u(s?.workloadName || s?.name),
    source_canonical_service: u(s?.canonicalName),
    source_canonical_revision: u(s?.canonicalRevision),
    source_workload_namespace: u(s?.namespace),
    // Istio only reports a principal it verified (inbound mTLS peer, or our own identity outbound).
    source_principal: rec.mtls && rec.sourceIdentity ? formatSpiffeId(rec.sourceIdentity) : 'unknown',
    source_app: u(s?.canonicalName),
    source_version: u(s?.canonicalRevision),
    source_cluster: u(s?.clusterId),
    destination_service: u(svc?.hostname),
    destination_service_namespace: u(svc?.namespace ?? d?.namespace),
    destination_service_name: u(svc?.name),
    destination_workload: u(d?.workloadName || d?.name),
    destination_canonical_service: u(d?.canonicalName),
    destination_canonical_revision: u(d?.canonicalRevision),
    destination_workload_namespace: u(d?.namespace),
    destination_principal: rec.mtls && rec.destinationIdentity ? formatSpiffeId(rec.destinationIdentity) : 'unknown',
    destination_app: u(d?.canonicalName),
    destination_version: u(d?.canonicalRevision),
    destination_cluster: u(d?.clusterId),
    request_protocol: 'tcp',
    response_flags: flag,
    connection_security_policy: rec.mtls ? 'mutual_tls' : 'unknown',
  };
}

/** One access-log line per finished connection (target "access", as ztunnel). */
export function logConnection(
  logger: Logger,
  rec: ConnectionRecord,
  outcome: { readonly bytesSent: number; readonly bytesRecv: number; readonly flag: ResponseFlag; readonly error?: string | undefined },
): void {
  const fields: Record<string, string | number> = {
    scope: 'access',
    'src.addr': rec.srcAddr,
    'dst.addr': rec.dstAddr,
    direction: rec.direction,
    bytes_sent: outcome.bytesSent,
    bytes_recv: outcome.bytesRecv,
    duration: `${Date.now() - rec.startedAt}ms`,
  };
  if (rec.dstHboneAddr) fields['dst.hbone_addr'] = rec.dstHboneAddr;
  if (rec.source) {
    fields['src.workload'] = rec.source.name;
    fields['src.namespace'] = rec.source.namespace;
  }
  if (rec.mtls && rec.sourceIdentity) fields['src.identity'] = formatSpiffeId(rec.sourceIdentity);
  if (rec.destinationService) fields['dst.service'] = rec.destinationService.hostname;
  if (rec.destination) {
    fields['dst.workload'] = rec.destination.name;
    fields['dst.namespace'] = rec.destination.namespace;
  }
  if (rec.mtls && rec.destinationIdentity) fields['dst.identity'] = formatSpiffeId(rec.destinationIdentity);
  if (outcome.flag !== '-') fields.flags = outcome.flag;
  if (outcome.error) {
    fields.error = outcome.error;
    logger.error(fields, 'connection complete');
  } else {
    logger.info(fields, 'connection complete');
  }
}
