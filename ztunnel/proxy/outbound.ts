/**
 * Outbound (15001): the pod's own connections, REDIRECTed here by its rules (ztunnel src/proxy/outbound.rs).
 *
 *   accept (paused) ─▶ original destination ─▶ route (route.ts) ─┬─ reject ─────────────────────────▶ reset
 *                                                                ├─ hbone ─ certificate ─ CONNECT ─▶ splice (tunnel.ts)
 *                                                                └─ tcp | passthrough ─ dial ──────▶ copy (copy.ts)
 *
 * The source is always this pod: in-pod, everything arriving here was sent by it. Nothing is read from the
 * client before the upstream is there, so a client that resets early is noticed when the relay starts.
 */
import { constants } from 'node:http2';
import type { Socket } from 'node:net';
import { buildForwarded } from '../../lib/hbone/headers.js';
import type { HbonePool } from '../../lib/hbone/pool.js';
import { resetSocket, resetStream, spliceTunnel } from '../../lib/hbone/tunnel.js';
import { dialUpstream } from '../../lib/hbone/upstream.js';
import type { Workload } from '../state/model.js';
import { baggageOf } from '../telemetry/baggage.js';
import { clientBytes, endpoint, type ProxyConnection } from './connection.js';
import { copyBidirectional } from './copy.js';
import { ProxyError } from './errors.js';
import type { ProxyInputs } from './inputs.js';
import { identityOf, type OutboundRoute, routeOutbound } from './route.js';

interface Peer {
  readonly ip: string | undefined;
  readonly port: number | undefined;
}

export class Outbound {
  readonly #in: ProxyInputs;
  readonly #pool: HbonePool;

  constructor(inputs: ProxyInputs, pool: HbonePool) {
    this.#in = inputs;
    this.#pool = pool;
  }

  /** A connection accepted on 15001. */
  handle(client: Socket): void {
    // Read now: once the client has reset, the kernel no longer gives its address (getpeername: ENOTCONN).
    const peer: Peer = { ip: client.remoteAddress, port: client.remotePort };
    const source = this.#in.self();
    const conn = this.#in.accept(
      { direction: 'outbound', srcAddr: endpoint(peer.ip, peer.port), source, sourceIdentity: identityOf(source) },
      { socket: client, bytes: clientBytes },
    );
    conn.run(() => this.#proxy(conn, client, source, peer));
  }

  async #proxy(conn: ProxyConnection, client: Socket, source: Workload, peer: Peer): Promise<void> {
    const dst = this.#in.sockets.originalDst(client);
    const originalDst = endpoint(dst.address, dst.port);
    conn.target(originalDst);
    const route = routeOutbound(this.#in.ctx.store, source, { ip: dst.address, port: dst.port });
    if (route.kind === 'reject') throw new ProxyError(route.code, route.reason);
    if (route.kind === 'hbone') await this.#toHbone(conn, client, source, peer, route, originalDst);
    else await this.#toTcp(conn, client, route, originalDst);
  }

  async #toHbone(
    conn: ProxyConnection,
    client: Socket,
    source: Workload,
    peer: Peer,
    route: Extract<OutboundRoute, { kind: 'hbone' }>,
    originalDst: string,
  ): Promise<void> {
    const dstAddr = endpoint(route.address, route.port);
    conn.open(
      {
        dstAddr,
        dstHboneAddr: route.authority,
        destination: route.destination,
        destinationService: route.service,
        destinationIdentity: route.expectedIdentities[0],
        mtls: true,
      },
      { src: conn.srcAddr, originalDst, actualDst: dstAddr, protocol: 'HBONE' },
    );
    const certificate = await conn.until(this.#in.ctx.certificates.get(identityOf(source)));
    const { stream } = await this.#pool.connect({
      address: route.address,
      port: route.port,
      expectedIdentities: route.expectedIdentities,
      authority: route.authority,
      certificate,
      sourceIp: peer.ip,
      baggage: baggageOf(source),
      forwarded: buildForwarded(peer.ip ?? '', peer.port ?? 0, route.service?.hostname),
      signal: conn.signal,
    });
    conn.upstream(stream, () => resetStream(stream, constants.NGHTTP2_CANCEL));
    await spliceTunnel(client, stream);
  }

  /** Plain TCP: a destination outside the mesh, or unknown (passthrough). It leaves from the pod, with its IP. */
  async #toTcp(
    conn: ProxyConnection,
    client: Socket,
    route: Extract<OutboundRoute, { kind: 'tcp' | 'passthrough' }>,
    originalDst: string,
  ): Promise<void> {
    const dstAddr = endpoint(route.address, route.port);
    conn.open(
      {
        dstAddr,
        dstHboneAddr: undefined,
        destination: route.kind === 'tcp' ? route.destination : undefined,
        destinationService: route.service,
        destinationIdentity: undefined,
        mtls: false,
      },
      { src: conn.srcAddr, originalDst, actualDst: dstAddr, protocol: 'TCP' },
    );
    const { sockets, ctx } = this.#in;
    const upstream = await dialUpstream(route.address, route.port, {
      signal: conn.signal,
      timeoutMs: ctx.settings.connectTimeoutMs,
      socketFactory: (host, port) => sockets.dialOut(host, port),
    });
    conn.upstream(upstream, () => resetSocket(upstream));
    await copyBidirectional(client, upstream);
  }
}
