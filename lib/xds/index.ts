/**
 * xDS shared by every component: the resource record, the delta ADS client (ztunnel, waypoints), the Node a proxy
 * sends, and the protocol conventions the controller's server shares with the client.
 */
export { type XdsResource, type ResourceSet, contentVersion, makeResource } from './resource.js';
export {
  type XdsUpdate,
  type XdsHandler,
  type XdsHandlerResult,
  type XdsWatch,
  type XdsClientTransport,
  type XdsClientEvent,
  type XdsClientOptions,
  type TokenSource,
  XdsClient,
} from './client.js';
export { type ZtunnelNodeOptions, NodeMetadataKey, DEFAULT_CLUSTER_ID, DEFAULT_INSTANCE_IP, formatNodeId, ztunnelNode } from './node.js';
export { type JsonValue, type JsonObject, toStruct, toValue, fromStruct } from './struct.js';
export { type Clock, type XdsBackoffPolicy, DEFAULT_XDS_BACKOFF, reconnectDelayMs, systemClock } from './backoff.js';
export { XdsError, XdsErrorCode, type XdsErrorCodeValue, type XdsRejection, XdsRejectedError, rejectionMessage } from './errors.js';
export { AUTHORIZATION_HEADER, CLUSTER_ID_HEADER, DELTA_ADS_PATH, isGracefulEnd, xdsStatusOf } from './protocol.js';
