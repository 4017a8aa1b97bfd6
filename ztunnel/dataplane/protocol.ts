/**
 * Messages between ztunnel's control-plane thread (main) and its data-plane workers. Everything crosses as
 * structured clones of plain records; a netns is passed as its fd number (fds are per process, not per thread).
 */
import type { WorkloadCertificate } from '../../lib/identity/certificate.js';
import type { NetnsIdentity } from '../../lib/native/index.js';
import type { Identity } from '../../lib/identity/spiffe.js';
import type { ZtunnelSettings } from '../config/settings.js';
import type { Authorization, Service, StateDelta, Workload } from '../state/model.js';

export interface PodInfo {
  readonly uid: string;
  readonly name: string;
  readonly namespace: string;
  readonly serviceAccount: string;
  /** The namespace the agent handed over, read from its fd on arrival: what tells a re-sent Add from a new sandbox. */
  readonly netns: NetnsIdentity;
}

/**
 * What a pod-add did (pod-registry.ts): a new proxy; the running one kept, because it already runs in that
 * namespace (the agent re-sends every pod after a reconnect); or the running one replaced, because the pod's
 * sandbox (and so its namespace) was re-created.
 */
export type PodAddOutcome = 'started' | 'kept' | 'replaced';

/** One live connection, as /config_dump's workloadState shows it. */
export interface ConnectionSummary {
  readonly src: string;
  readonly originalDst: string;
  readonly actualDst: string;
  readonly protocol: 'HBONE' | 'TCP';
}

export interface PodDump {
  readonly state: 'Pending' | 'Up';
  readonly info: { readonly name: string; readonly namespace: string; readonly serviceAccount: string };
  readonly connections: { readonly inbound: readonly ConnectionSummary[]; readonly outbound: readonly ConnectionSummary[] };
}

export type MainToWorker =
  | {
      readonly type: 'state-replace';
      readonly workloads: readonly Workload[];
      readonly services: readonly Service[];
      readonly policies: readonly Authorization[];
    }
  | { readonly type: 'state-delta'; readonly delta: StateDelta }
  | {
      readonly type: 'certificate';
      readonly identity: Identity;
      readonly certificate: WorkloadCertificate | undefined;
      readonly error: string | undefined;
    }
  /** Answered with a PodAddOutcome. The worker owns netnsFd from the moment this is posted. */
  | { readonly type: 'pod-add'; readonly id: number; readonly pod: PodInfo; readonly netnsFd: number }
  | { readonly type: 'pod-del'; readonly id: number; readonly uid: string }
  | { readonly type: 'dump'; readonly id: number }
  | { readonly type: 'metrics'; readonly id: number }
  | { readonly type: 'log-level'; readonly level: string }
  | { readonly type: 'drain'; readonly id: number; readonly deadlineMs: number };

export type WorkerToMain =
  | { readonly type: 'ready' }
  | { readonly type: 'reply'; readonly id: number; readonly error?: string; readonly data?: unknown }
  | { readonly type: 'certificate-request'; readonly identity: Identity };

export interface WorkerInit {
  readonly settings: ZtunnelSettings;
  readonly index: number;
}
