/**
 * gRPC service definitions for @grpc/grpc-js built from the generated protobuf codecs, so that servers and
 * clients exchange typed messages without a runtime .proto loader. Paths are the wire contract.
 */
import type * as grpc from '@grpc/grpc-js';
import { envoy, istio } from './generated/proto.js';

interface Codec<T> {
  encode(message: T): { finish(): Uint8Array };
  decode(bytes: Uint8Array): T;
}

function method<Req, Res>(
  path: string,
  req: Codec<Req>,
  res: Codec<Res>,
  requestStream: boolean,
  responseStream: boolean,
): grpc.MethodDefinition<Req, Res> {
  return {
    path,
    requestStream,
    responseStream,
    requestSerialize: (m: Req) => Buffer.from(req.encode(m).finish()),
    requestDeserialize: (b: Buffer) => req.decode(b),
    responseSerialize: (m: Res) => Buffer.from(res.encode(m).finish()),
    responseDeserialize: (b: Buffer) => res.decode(b),
  };
}

type CaRequest = istio.v1.auth.IstioCertificateRequest;
type CaResponse = istio.v1.auth.IstioCertificateResponse;

/** istio.v1.auth.IstioCertificateService */
export const IstioCertificateServiceDefinition = {
  CreateCertificate: method<CaRequest, CaResponse>(
    '/istio.v1.auth.IstioCertificateService/CreateCertificate',
    istio.v1.auth.IstioCertificateRequest as Codec<CaRequest>,
    istio.v1.auth.IstioCertificateResponse as Codec<CaResponse>,
    false,
    false,
  ),
} satisfies grpc.ServiceDefinition;

type DeltaReq = envoy.service.discovery.v3.DeltaDiscoveryRequest;
type DeltaRes = envoy.service.discovery.v3.DeltaDiscoveryResponse;
type SotwReq = envoy.service.discovery.v3.DiscoveryRequest;
type SotwRes = envoy.service.discovery.v3.DiscoveryResponse;
const d = envoy.service.discovery.v3;

/** envoy.service.discovery.v3.AggregatedDiscoveryService */
export const AggregatedDiscoveryServiceDefinition = {
  StreamAggregatedResources: method<SotwReq, SotwRes>(
    '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources',
    d.DiscoveryRequest as Codec<SotwReq>,
    d.DiscoveryResponse as Codec<SotwRes>,
    true,
    true,
  ),
  DeltaAggregatedResources: method<DeltaReq, DeltaRes>(
    '/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources',
    d.DeltaDiscoveryRequest as Codec<DeltaReq>,
    d.DeltaDiscoveryResponse as Codec<DeltaRes>,
    true,
    true,
  ),
} satisfies grpc.ServiceDefinition;
