/**
 * Who is on the other end of a stream: the Node of the first request converted into a plain, frozen ProxyInfo,
 * following Istio's ParseServiceNodeWithMetadata (pilot/pkg/model/context.go): the id is
 * `<type>~<ip>~<id>~<dns domain>`, the type one of sidecar | router | waypoint | ztunnel, IP addresses from metadata
 * INSTANCE_IPS when present (else the id's second part), namespace from metadata NAMESPACE (else the second dot-separated
 * part of the id), cluster from metadata CLUSTER_ID.
 */
import { isIP } from 'node:net';
import type { envoy } from '../../lib/proto/index.js';
import { XdsError, XdsErrorCode } from '../../lib/xds/errors.js';
import { DEFAULT_CLUSTER_ID, NodeMetadataKey } from '../../lib/xds/node.js';
import { type JsonObject, fromStruct } from '../../lib/xds/struct.js';
import type { XdsCaller } from './auth.js';

export const PROXY_TYPES = ['sidecar', 'router', 'waypoint', 'ztunnel'] as const;
export type ProxyType = (typeof PROXY_TYPES)[number];

export interface ProxyInfo {
  /** The Node id exactly as sent. */
  readonly nodeId: string;
  readonly type: ProxyType;
  /** Istio's proxy ID, the id's third part: "<pod>.<namespace>" (what proxy-status prints as NAME). */
  readonly id: string;
  readonly podName: string;
  readonly namespace: string;
  /** The id's fourth part, e.g. "istio-system.svc.cluster.local". */
  readonly dnsDomain: string;
  readonly ipAddresses: readonly string[];
  /** Metadata NODE_NAME: the Kubernetes node a ztunnel serves. */
  readonly nodeName: string | undefined;
  readonly clusterId: string;
  readonly metadata: JsonObject;
  /** Who the authenticator said the caller is. */
  readonly caller: XdsCaller;
  /** Unique per stream: "<id>-<counter>", like istiod's connection ids. */
  readonly connectionId: string;
  readonly peerAddress: string;
  /** Epoch ms. */
  readonly connectedAt: number;
}

export interface ProxyConnectionFacts {
  readonly caller: XdsCaller;
  readonly connectionId: (proxyId: string) => string;
  readonly peerAddress: string;
  readonly connectedAt: number;
  /** The `clusterid` request header, used when the metadata has no CLUSTER_ID. */
  readonly clusterIdHeader?: string;
}

function bad(message: string): XdsError {
  return new XdsError(XdsErrorCode.BAD_NODE, message);
}

function stringField(md: JsonObject, key: string): string | undefined {
  const v = md[key];
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/** Converts the first request's Node; throws XdsError(XDS_BAD_NODE) with what is wrong. */
export function parseProxyNode(node: envoy.config.core.v3.Node.$Properties | null | undefined, facts: ProxyConnectionFacts): ProxyInfo {
  const nodeId = node?.id ?? '';
  if (nodeId === '') throw bad('the first request must carry node.id (missing node information)');
  const parts = nodeId.split('~');
  if (parts.length !== 4) throw bad(`node id "${nodeId}" must have 4 parts separated by "~": <type>~<ip>~<pod>.<namespace>~<domain>`);
  const [type = '', idIp = '', id = '', dnsDomain = ''] = parts;
  if (!(PROXY_TYPES as readonly string[]).includes(type))
    throw bad(`node id "${nodeId}" has unknown proxy type "${type}"; expected one of ${PROXY_TYPES.join(', ')}`);
  if (id === '') throw bad(`node id "${nodeId}" has an empty proxy id`);
  const metadata = fromStruct(node?.metadata);
  const ipList = stringField(metadata, NodeMetadataKey.INSTANCE_IPS)
    ?.split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '') ?? [idIp];
  const ipAddresses = ipList.filter((ip) => isIP(ip) !== 0);
  if (ipAddresses.length === 0) throw bad(`node "${nodeId}" carries no valid IP address (id or metadata INSTANCE_IPS)`);
  const idParts = id.split('.');
  const podName = stringField(metadata, NodeMetadataKey.NAME) ?? idParts[0] ?? id;
  const namespace = stringField(metadata, NodeMetadataKey.NAMESPACE) ?? idParts[1] ?? '';
  return Object.freeze({
    nodeId,
    type: type as ProxyType,
    id,
    podName,
    namespace,
    dnsDomain,
    ipAddresses: Object.freeze(ipAddresses),
    nodeName: stringField(metadata, NodeMetadataKey.NODE_NAME),
    clusterId: stringField(metadata, NodeMetadataKey.CLUSTER_ID) ?? facts.clusterIdHeader ?? DEFAULT_CLUSTER_ID,
    metadata,
    caller: facts.caller,
    connectionId: facts.connectionId(id),
    peerAddress: facts.peerAddress,
    connectedAt: facts.connectedAt,
  });
}
