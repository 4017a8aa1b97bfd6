/**
 * Istio's L4 metrics (`istio_tcp_*`), with Istio's label set so existing dashboards work unchanged.
 * Counters are registered on a caller-owned prom-client Registry (one per data-plane worker; the admin side
 * aggregates them on scrape).
 */
import { Counter, Gauge, type Registry } from 'prom-client';

/** Istio's CommonTrafficLabels, in its order. Missing values are "unknown". */
export const TCP_METRIC_LABELS = [
  'reporter',
  'source_workload',
  'source_canonical_service',
  'source_canonical_revision',
  'source_workload_namespace',
  'source_principal',
  'source_app',
  'source_version',
  'source_cluster',
  'destination_service',
  'destination_service_namespace',
  'destination_service_name',
  'destination_workload',
  'destination_canonical_service',
  'destination_canonical_revision',
  'destination_workload_namespace',
  'destination_principal',
  'destination_app',
  'destination_version',
  'destination_cluster',
  'request_protocol',
  'response_flags',
  'connection_security_policy',
] as const;

export type TcpMetricLabels = Record<(typeof TCP_METRIC_LABELS)[number], string>;

/** Response flags ztunnel reports ("-" = none). */
export type ResponseFlag = '-' | 'DENY' | 'CONNECT' | 'TLS_FAILURE' | 'H2_HANDSHAKE_FAILURE' | 'NETWORK_POLICY' | 'IDENTITY_ERROR';

export class TcpMetrics {
  readonly opened: Counter<string>;
  readonly closed: Counter<string>;
  readonly sent: Counter<string>;
  readonly received: Counter<string>;
  readonly failed: Counter<string>;
  readonly socketsOpen: Gauge<string>;

  constructor(registry: Registry) {
    const labelNames = [...TCP_METRIC_LABELS];
    const registers = [registry];
    this.opened = new Counter({
      name: 'istio_tcp_connections_opened_total',
      help: 'The total number of TCP connections opened',
      labelNames,
      registers,
    });
    this.closed = new Counter({
      name: 'istio_tcp_connections_closed_total',
      help: 'The total number of TCP connections closed',
      labelNames,
      registers,
    });
    this.sent = new Counter({
      name: 'istio_tcp_sent_bytes_total',
      help: 'The size of total bytes sent during response in case of a TCP connection',
      labelNames,
      registers,
    });
    this.received = new Counter({
      name: 'istio_tcp_received_bytes_total',
      help: 'The size of total bytes received during request in case of a TCP connection',
      labelNames,
      registers,
    });
    this.failed = new Counter({
      name: 'istio_tcp_connections_failed_total',
      help: 'The total number of TCP connections that failed to establish',
      labelNames,
      registers,
    });
    this.socketsOpen = new Gauge({
      name: 'istio_tcp_sockets_open',
      help: 'The current number of open TCP sockets',
      labelNames: ['reporter'],
      registers,
    });
  }

  connectionOpened(labels: TcpMetricLabels): void {
    this.opened.inc(labels);
    this.socketsOpen.inc({ reporter: labels.reporter });
  }

  /** `received`: bytes of the request (from the client); `sent`: bytes of the response (Istio's definitions). */
  connectionClosed(labels: TcpMetricLabels, received: number, sent: number): void {
    this.closed.inc(labels);
    if (received > 0) this.received.inc(labels, received);
    if (sent > 0) this.sent.inc(labels, sent);
    this.socketsOpen.dec({ reporter: labels.reporter });
  }

  connectionFailed(labels: TcpMetricLabels): void {
    this.failed.inc(labels);
  }
}
