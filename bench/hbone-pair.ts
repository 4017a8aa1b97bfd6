/**
 * One end of the benchmark's HBONE pair, run as its own process (as two ztunnels would be):
 *  - role "server": an HBONE server on loopback that connects each tunnel to its :authority;
 *  - role "client": a plain TCP listener that sends every accepted connection through an HBONE tunnel
 *    to a fixed target (a minimal ztunnel outbound).
 * Calibration roles, to show what Node itself costs on the same path without our protocol:
 *  - role "tcp-relay": accepts TCP and pipes it to a fixed target (a pair of these = two plain Node relays);
 *  - roles "tls-client" / "tls-server": the same relay pair with mutual TLS 1.3 between them, no HTTP/2.
 * Configured over IPC by bench/hbone.ts; answers { port } once listening.
 */
import { connect as tcpConnect, createServer, type AddressInfo, type Socket } from 'node:net';
import { connect as tlsConnect, createServer as createTlsServer } from 'node:tls';
import { HbonePool } from '../lib/hbone/pool.js';
import { HboneServer } from '../lib/hbone/server.js';
import { dialUpstream } from '../lib/hbone/upstream.js';
import { spliceTunnel } from '../lib/hbone/tunnel.js';
import { makeServerIdentityCheck, secureContextFor, serverTlsOptions } from '../lib/hbone/tls.js';
import type { WorkloadCertificate } from '../lib/identity/certificate.js';
import type { Identity } from '../lib/identity/spiffe.js';

type Setup =
  | { role: 'server'; certificate: WorkloadCertificate }
  | { role: 'client'; certificate: WorkloadCertificate; serverPort: number; serverIdentity: Identity; target: string }
  | { role: 'tcp-relay'; targetPort: number }
  | { role: 'tls-server'; certificate: WorkloadCertificate; targetPort: number }
  | { role: 'tls-client'; certificate: WorkloadCertificate; serverPort: number; serverIdentity: Identity };

function relay(a: Socket, b: Socket): void {
  a.on('error', () => b.destroy());
  b.on('error', () => a.destroy());
  a.pipe(b);
  b.pipe(a);
}

function listening(server: ReturnType<typeof createServer>): void {
  server.listen(0, '127.0.0.1', () => process.send?.({ port: (server.address() as AddressInfo).port }));
}

function revive(cert: WorkloadCertificate): WorkloadCertificate {
  // Dates arrive as strings over IPC.
  return { ...cert, notBefore: new Date(cert.notBefore), notAfter: new Date(cert.notAfter) };
}

process.once('message', async (msg: Setup) => {
  if (msg.role === 'tcp-relay') {
    listening(
      createServer({ allowHalfOpen: true, noDelay: true }, (c) =>
        relay(c, tcpConnect({ host: '127.0.0.1', port: msg.targetPort, noDelay: true })),
      ),
    );
    return;
  }
  const certificate = revive(msg.certificate);
  if (msg.role === 'tls-server') {
    const server = createTlsServer({ ...serverTlsOptions(certificate), allowHalfOpen: true }, (c) => {
      c.setNoDelay(true);
      relay(c, tcpConnect({ host: '127.0.0.1', port: msg.targetPort, noDelay: true }));
    });
    listening(server);
    return;
  }
  if (msg.role === 'tls-client') {
    listening(
      createServer({ allowHalfOpen: true, noDelay: true }, (c) => {
        const t = tlsConnect({
          host: '127.0.0.1',
          port: msg.serverPort,
          secureContext: secureContextFor(certificate),
          ALPNProtocols: ['h2'],
          checkServerIdentity: makeServerIdentityCheck([msg.serverIdentity]),
        });
        t.setNoDelay(true);
        relay(c, t);
      }),
    );
    return;
  }
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
