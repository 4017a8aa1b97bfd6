/**
 * proxy-status: per connected proxy and type, whether it has what it was sent. Derivation as istiod's statusgen
 * (pilot/pkg/xds/statusgen.go) and istioctl's table (istioctl pkg/writer/pilot/status.go): ERROR if the last answer was a
 * NACK, NOT SENT if nothing was ever sent, SYNCED if the last response sent was ACKed, else STALE; IGNORED for a type
 * the proxy does not subscribe to. Records are plain data for the debug endpoint and `meshctl proxy-status`.
 */
import type { ProxyType } from './proxy.js';

export type SyncStatus = 'SYNCED' | 'STALE' | 'NOT SENT' | 'ERROR' | 'IGNORED';

/** The per-type facts the status is derived from. */
export interface SyncFacts {
  readonly nonceSent?: string;
  readonly nonceAcked?: string;
  readonly lastError?: string;
}

/** `undefined` = the proxy does not watch this type. */
export function syncStatusOf(facts: SyncFacts | undefined): SyncStatus {
  if (!facts) return 'IGNORED';
  if (facts.lastError) return 'ERROR';
  if (!facts.nonceSent) return 'NOT SENT';
  if (facts.nonceAcked === facts.nonceSent) return 'SYNCED';
  return 'STALE';
}

export interface TypeStatusRecord {
  readonly typeUrl: string;
  readonly status: SyncStatus;
  readonly nonceSent?: string;
  readonly nonceAcked?: string;
  /** Epoch ms of the last response sent / ACK received / NACK received. */
  readonly lastSentAt?: number;
  readonly lastAckedAt?: number;
  readonly lastErrorAt?: number;
  /** The error_detail message of the last NACK, while it stands. */
  readonly lastError?: string;
  /** Resources the proxy holds of this type, as far as the server knows (what it sent and was not told removed). */
  readonly resources: number;
  /** Wildcard subscription (all resources the proxy may see) rather than explicit names only. */
  readonly wildcard: boolean;
}

export interface ProxyStatusRecord {
  /** Istio's proxy ID, "<pod>.<namespace>". */
  readonly proxy: string;
  readonly nodeId: string;
  readonly type: ProxyType;
  readonly connectionId: string;
  readonly clusterId: string;
  readonly namespace: string;
  readonly nodeName?: string;
  readonly ipAddresses: readonly string[];
  readonly peerAddress: string;
  readonly identities: readonly string[];
  /** Epoch ms. */
  readonly connectedAt: number;
  /** One record per type, sorted by type URL: every watched type, plus requested types shown as IGNORED. */
  readonly types: readonly TypeStatusRecord[];
}

/** A record for a type the proxy does not watch. */
export function ignoredType(typeUrl: string): TypeStatusRecord {
  return { typeUrl, status: 'IGNORED', resources: 0, wildcard: false };
}
