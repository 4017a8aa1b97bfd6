/**
 * The Node a proxy identifies itself with on its first xDS request. Istio's id format is
 * `<type>~<ip>~<pod>.<namespace>~<namespace>.svc.cluster.local` (pilot/pkg/model/context.go ParseServiceNodeWithMetadata);
 * ztunnel fills metadata NAME, NAMESPACE, INSTANCE_IPS, NODE_NAME plus ProxyConfig proxyMetadata and ISTIO_METAJSON_*
 * (ztunnel src/xds/client.rs Config::node).
 */
import type { envoy } from '../proto/index.js';
import { type JsonObject, toStruct } from './struct.js';

/** Metadata keys Istio reads from a Node (pilot/pkg/model/context.go NodeMetadata json names). */
export const NodeMetadataKey = {
  NAME: 'NAME',
  NAMESPACE: 'NAMESPACE',
  INSTANCE_IPS: 'INSTANCE_IPS',
  NODE_NAME: 'NODE_NAME',
  CLUSTER_ID: 'CLUSTER_ID',
  SERVICE_ACCOUNT: 'SERVICE_ACCOUNT',
} as const;

/** ztunnel's INSTANCE_IP fallback when none is set. */
export const DEFAULT_INSTANCE_IP = '1.1.1.1';
/** The CLUSTER_ID default of ztunnel and istiod. */
export const DEFAULT_CLUSTER_ID = 'Kubernetes';

export interface ZtunnelNodeOptions {
  /** INSTANCE_IP (the ztunnel pod's IP); default 1.1.1.1 as ztunnel. */
  readonly ip?: string;
  /** POD_NAME / POD_NAMESPACE of the ztunnel pod. */
  readonly podName: string;
  readonly podNamespace: string;
  /** NODE_NAME: the Kubernetes node this ztunnel serves. */
  readonly nodeName: string;
  /** CLUSTER_ID; default "Kubernetes". */
  readonly clusterId?: string;
  /** More metadata (ProxyConfig proxyMetadata, ISTIO_METAJSON_*); the standard keys above win over these. */
  readonly metadata?: JsonObject;
}

/** Istio's node id: four `~`-separated parts. */
export function formatNodeId(type: string, ip: string, podName: string, namespace: string): string {
  return `${type}~${ip}~${podName}.${namespace}~${namespace}.svc.cluster.local`;
}

/** The Node ztunnel sends, as ztunnel builds it. */
export function ztunnelNode(opts: ZtunnelNodeOptions): envoy.config.core.v3.Node.$Properties {
  const ip = opts.ip ?? DEFAULT_INSTANCE_IP;
  return {
    id: formatNodeId('ztunnel', ip, opts.podName, opts.podNamespace),
    metadata: toStruct({
      ...(opts.metadata ?? {}),
      [NodeMetadataKey.NAME]: opts.podName,
      [NodeMetadataKey.NAMESPACE]: opts.podNamespace,
      [NodeMetadataKey.INSTANCE_IPS]: ip,
      [NodeMetadataKey.NODE_NAME]: opts.nodeName,
      [NodeMetadataKey.CLUSTER_ID]: opts.clusterId ?? DEFAULT_CLUSTER_ID,
    }),
  };
}
