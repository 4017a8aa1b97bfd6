/**
 * Typed access to the project's protobuf messages (generated from proto/ by protobufjs at build time) and
 * the type URLs that name them on the wire. Import messages from here, never from the generated file.
 */
export { envoy, google, istio } from './generated/proto.js';

const TYPE_PREFIX = 'type.googleapis.com/';

/** xDS type URLs, exactly as Istio and Envoy spell them. */
export const TypeUrl = {
  /** Workload discovery: istio.workload.Address (Workload | Service). */
  Address: `${TYPE_PREFIX}istio.workload.Address`,
  /** L4 policy for ztunnel. */
  Authorization: `${TYPE_PREFIX}istio.security.Authorization`,
  Listener: `${TYPE_PREFIX}envoy.config.listener.v3.Listener`,
  Cluster: `${TYPE_PREFIX}envoy.config.cluster.v3.Cluster`,
  RouteConfiguration: `${TYPE_PREFIX}envoy.config.route.v3.RouteConfiguration`,
  ClusterLoadAssignment: `${TYPE_PREFIX}envoy.config.endpoint.v3.ClusterLoadAssignment`,
  Secret: `${TYPE_PREFIX}envoy.extensions.transport_sockets.tls.v3.Secret`,
} as const;

export type TypeUrlValue = (typeof TypeUrl)[keyof typeof TypeUrl];
