/** An HBONE server on loopback whose default handler connects tunnels to their :authority target. */
import type { AddressInfo } from 'node:net';
import type { WorkloadCertificate } from '../../lib/identity/certificate.js';
import { HboneServer, type HboneHandler, type HboneServerOptions } from '../../lib/hbone/server.js';
import { dialUpstream } from '../../lib/hbone/upstream.js';

export const connectToTarget: HboneHandler = async (req, signal) => {
  if (req.target.kind !== 'address') return { status: 400, code: 'TEST_HOSTNAME', reason: 'test server only dials addresses' };
  const upstream = await dialUpstream(req.target.address, req.target.port, { signal, timeoutMs: 2000 });
  return { status: 200, upstream, responseHeaders: { baggage: 'k8s.namespace.name=default,service.name=server' } };
};

export async function startHboneServer(
  certificate: WorkloadCertificate,
  opts: Partial<HboneServerOptions> = {},
): Promise<{ server: HboneServer; port: number }> {
  const server = new HboneServer({ certificate, handler: connectToTarget, ...opts });
  const addr: AddressInfo = await server.listen({ port: 0, host: '127.0.0.1' });
  return { server, port: addr.port };
}
