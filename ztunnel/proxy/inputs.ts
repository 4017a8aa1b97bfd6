/**
 * What the three listener roles of a pod proxy share (ztunnel src/proxy.rs `ProxyInputs`): the node's context
 * (settings, state, certificates, metrics, access log), the pod's sockets, its connection sink, and the pod's own
 * workload.
 */
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { TcpMetrics } from '../../lib/telemetry/tcp-metrics.js';
import type { ZtunnelSettings } from '../config/settings.js';
import type { PodInfo } from '../dataplane/protocol.js';
import type { WorkerCertificates } from '../dataplane/worker-certificates.js';
import type { Workload } from '../state/model.js';
import type { WorkloadStore } from '../state/store.js';
import { type AcceptedConnection, type ByteCounts, type ConnectionSink, ProxyConnection } from './connection.js';
import type { PodSockets } from './sockets.js';

/** What a data-plane worker gives each of its pod proxies. */
export interface ProxyContext {
  readonly settings: ZtunnelSettings;
  readonly store: WorkloadStore;
  /** Asked for each identity's certificate; tells about every new one (renewals, and a retry that succeeded). */
  readonly certificates: WorkerCertificates;
  readonly metrics: TcpMetrics;
  /** The access log and the parent of each pod's logger. */
  readonly logger: Logger;
  /** How a pod's sockets are made; default: inside its network namespace (sockets.ts `inPodSockets`). */
  readonly sockets?: (pod: PodInfo, netnsFd: number) => PodSockets;
}

export class ProxyInputs {
  constructor(
    readonly ctx: ProxyContext,
    readonly sockets: PodSockets,
    readonly sink: ConnectionSink,
    /** The pod's own workload: the source of its outbound traffic, the destination of its inbound. */
    readonly self: () => Workload,
  ) {}

  /** A new connection, owned from here to its access-log line (connection.ts). */
  accept(accepted: AcceptedConnection, anchor?: { socket: Socket; bytes: ByteCounts }): ProxyConnection {
    return new ProxyConnection(this.sink, accepted, anchor);
  }

  /** The workload at `ip` on our network, if the state knows it. */
  workloadAt(ip: string | undefined): Workload | undefined {
    return ip ? this.ctx.store.workloadByIp(this.ctx.settings.network, ip) : undefined;
  }
}
