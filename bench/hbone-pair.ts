/**
 * One end of the benchmark's HBONE pair, run as its own process (as two ztunnels would be):
 *  - role "server": an HBONE server on loopback that connects each tunnel to its :authority;
 *  - role "client": a plain TCP listener that sends every accepted connection through an HBONE tunnel
 *    to a fixed target (a minimal ztunnel outbound).
 * Configured over IPC by bench/hbone.ts; answers { port } once listening.
 */
import { createServer, type AddressInfo } from 'node:net';
import { HbonePool } from '../lib/hbone/pool.js';
import { HboneServer } from '../lib/hbone/server.js';
import { dialUpstream } from '../lib/hbone/upstream.js';
import { spliceTunnel } from '../lib/hbone/tunnel.js';
import type { WorkloadCertificate } from '../lib/identity/certificate.js';
import type { Identity } from '../lib/identity/spiffe.js';

type Setup =
  | { role: 'server'; certificate: WorkloadCertificate }
  | { role: 'client'; certificate: WorkloadCertificate; serverPort: number; serverIdentity: Identity; target: string };

function revive(cert: WorkloadCertificate): WorkloadCertificate {
  // Dates arrive as strings over IPC.
  return { ...cert, notBefore: new Date(cert.notBefore), notAfter: new Date(cert.notAfter) };
}

process.once('message', async (msg: Setup) => {
  const certificate = revive(msg.certificate);
  if (msg.role === 'server') {
    const server = new HboneServer({
      certificate,
      handler: async (req, signal) => {
        if (req.target.kind !== 'address') return { status: 400, code: 'BENCH', reason: 'address only' };
        return { status: 200, upstream: await dialUpstream(req.target.address, req.target.port, { signal, timeoutMs: 5000 }) };
      },
    });
    const addr = await server.listen({ port: 0, host: '127.0.0.1' });
    process.send?.({ port: addr.port });
    return;
  }
  const pool = new HbonePool();
  const entry = createServer({ allowHalfOpen: true, noDelay: true }, async (socket) => {
    socket.on('error', () => {});
    try {
      const { stream } = await pool.connect({
        address: '127.0.0.1',
        port: msg.serverPort,
        expectedIdentities: [msg.serverIdentity],
        authority: msg.target,
        certificate,
      });
      void spliceTunnel(socket, stream);
    } catch {
      socket.destroy();
    }
  });
  entry.listen(0, '127.0.0.1', () => process.send?.({ port: (entry.address() as AddressInfo).port }));
});

// Exit normally on SIGTERM so that --cpu-prof and similar exit hooks can write their output.
process.on('SIGTERM', () => process.exit(0));
