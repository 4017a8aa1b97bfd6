/**
 * Inbound plaintext (15006): connections to the pod that did not come over HBONE — from outside the mesh, or
 * from a pod no ztunnel captures (ztunnel src/proxy/inbound_passthrough.rs).
 *
 *   accept (paused) ─▶ original destination ─▶ one of ztunnel's own ports? ─ yes ─▶ reset
 *                   ─▶ authorize without an identity (STRICT mTLS denies these) ─ deny ─▶ reset
 *                   ─▶ connect to the app from the client's IP ─▶ copy (copy.ts)
 */
import type { Socket } from 'node:net';
import { resetSocket } from '../../lib/hbone/tunnel.js';
import { dialUpstream } from '../../lib/hbone/upstream.js';
import { ILLEGAL_PORTS } from '../config/ports.js';
import { authorize, type ConnectionAttributes } from '../policy/rbac.js';
import { clientBytes, endpoint, type ProxyConnection } from './connection.js';
import { copyBidirectional } from './copy.js';
import { ProxyError, ProxyErrorCode } from './errors.js';
import type { ProxyInputs } from './inputs.js';
import { guessInboundService, InboundRejectCode } from './route.js';

export class InboundPassthrough {
  readonly #in: ProxyInputs;

  constructor(inputs: ProxyInputs) {
    this.#in = inputs;
  }

  /** A connection accepted on 15006. */
  handle(client: Socket): void {
    // Read now: once the client has reset, the kernel no longer gives its address (getpeername: ENOTCONN).
    const peerIp = client.remoteAddress;
    const conn = this.#in.accept(
      { direction: 'inbound', srcAddr: endpoint(peerIp, client.remotePort), source: this.#in.workloadAt(peerIp) },
      { socket: client, bytes: clientBytes },
    );
    conn.run(() => this.#proxy(conn, client, peerIp ?? ''));
  }

  async #proxy(conn: ProxyConnection, client: Socket, peerIp: string): Promise<void> {
    const { store, settings } = this.#in.ctx;
    const dst = this.#in.sockets.originalDst(client);
    const dstAddr = endpoint(dst.address, dst.port);
    conn.target(dstAddr);
    if (ILLEGAL_PORTS.has(dst.port)) {
      throw new ProxyError(InboundRejectCode.SELF_CALL, `port ${dst.port} is ztunnel's own; refusing to loop`);
    }
    const local = this.#in.workloadAt(dst.address) ?? this.#in.self();
    const attributes: ConnectionAttributes = {
      sourceIdentity: undefined,
      sourceIp: peerIp,
      destinationIp: dst.address,
      destinationPort: dst.port,
    };
    conn.open(
      {
        dstAddr,
        dstHboneAddr: undefined,
        destination: local,
        destinationService: guessInboundService(store, local, dst.port),
        destinationIdentity: undefined,
        mtls: false,
      },
      { src: conn.srcAddr, originalDst: dstAddr, actualDst: dstAddr, protocol: 'TCP' },
      attributes,
    );
    const decision = authorize(store.policiesForWorkload(local), attributes);
    if (!decision.allowed) {
      throw new ProxyError(ProxyErrorCode.POLICY_DENIED, `connection closed due to policy rejection: ${decision.reason}`);
    }
    const spoof = settings.enableOrigSrc && peerIp !== '' && peerIp !== dst.address;
    const upstream = await dialUpstream(dst.address, dst.port, {
      signal: conn.signal,
      timeoutMs: settings.connectTimeoutMs,
      socketFactory: (host, port) => this.#in.sockets.dialApp(host, port, spoof ? peerIp : undefined),
    });
    conn.upstream(upstream, () => resetSocket(upstream));
    await copyBidirectional(client, upstream);
  }
}
