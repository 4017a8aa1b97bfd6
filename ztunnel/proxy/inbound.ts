/**
 * Inbound HBONE (15008): CONNECTs from other proxies, after the HBONE server has checked TLS, the peer's trust
 * domain, the method and the authority (lib/hbone/server.ts). Here (ztunnel src/proxy/inbound.rs):
 *
 *   resolve the target (route.ts resolveInbound; `forwarded: host=` names the service) ─ reject ─▶ 400 / 503
 *   authorize with the peer identity (policy/rbac.ts) ───────────────────────────────── deny ───▶ 401
 *   connect to the app, from the client's IP (or to localhost for a PROXY app tunnel) ── fail ───▶ 503
 *   PROXY protocol v2 header first when the app tunnel asks for it ─────────────────────────────▶ 200, spliced
 *
 * The connection's anchor is the app socket: the record is written when it closes.
 */
import type { Socket } from 'node:net';
import { describeError, errorCode } from '../../lib/errors.js';
import { HboneErrorCode } from '../../lib/hbone/errors.js';
import { parseForwardedHost } from '../../lib/hbone/headers.js';
import type { HboneInboundDecision, HboneInboundRequest } from '../../lib/hbone/server.js';
import { dialUpstream } from '../../lib/hbone/upstream.js';
import { formatSpiffeId } from '../../lib/identity/spiffe.js';
import { ipFamily } from '../../lib/net/ip.js';
import { encodeProxyV2, PP2_TYPE_PEER_IDENTITY } from '../../lib/net/proxy-protocol.js';
import { authorize, type ConnectionAttributes } from '../policy/rbac.js';
import { baggageOf } from '../telemetry/baggage.js';
import { endpoint } from './connection.js';
import { ProxyError, ProxyErrorCode } from './errors.js';
import type { ProxyInputs } from './inputs.js';
import { identityOf, type InboundResolution, resolveInbound } from './route.js';

type Resolved = Extract<InboundResolution, { kind: 'ok' }>;

export class Inbound {
  readonly #in: ProxyInputs;

  constructor(inputs: ProxyInputs) {
    this.#in = inputs;
  }

  /** The HBONE server's handler: decides one CONNECT. `signal` aborts when the stream goes away first. */
  readonly handle = async (req: HboneInboundRequest, signal: AbortSignal): Promise<HboneInboundDecision> => {
    const { store, settings } = this.#in.ctx;
    const local = this.#in.workloadAt(req.localAddress) ?? this.#in.self();
    const conn = this.#in.accept({
      direction: 'inbound',
      srcAddr: endpoint(req.remoteAddress, req.remotePort),
      source: this.#in.workloadAt(req.remoteAddress),
      sourceIdentity: req.peerIdentity,
      destination: local,
    });
    // As ztunnel: dst.addr is where the tunnel arrived (<pod IP>:15008), dst.hbone_addr the CONNECT target.
    const dstAddr = endpoint(req.localAddress, req.localPort);
    conn.target(dstAddr);
    const resolved = resolveInbound(store, local, req.localAddress, req.target, parseForwardedHost(req.forwarded));
    if (resolved.kind === 'reject') {
      conn.fail(new ProxyError(resolved.code, resolved.reason));
      return { status: resolved.status, code: resolved.code, reason: resolved.reason };
    }
    const app = this.#appAddress(resolved, req);
    const attributes: ConnectionAttributes = {
      sourceIdentity: req.peerIdentity,
      sourceIp: req.remoteAddress,
      destinationIp: req.localAddress,
      destinationPort: resolved.port,
    };
    conn.open(
      { dstAddr, dstHboneAddr: req.authority, destinationService: resolved.service, destinationIdentity: identityOf(local), mtls: true },
      { src: conn.srcAddr, originalDst: req.authority, actualDst: endpoint(app.address, resolved.port), protocol: 'HBONE' },
      attributes,
    );
    const decision = authorize(store.policiesForWorkload(local), attributes);
    if (!decision.allowed) {
      conn.fail(new ProxyError(ProxyErrorCode.POLICY_DENIED, `connection closed due to policy rejection: ${decision.reason}`));
      return { status: 401, code: ProxyErrorCode.POLICY_DENIED, reason: decision.reason };
    }
    let upstream: Socket;
    try {
      upstream = await dialUpstream(app.address, resolved.port, {
        signal: AbortSignal.any([signal, conn.signal]),
        timeoutMs: settings.connectTimeoutMs,
        socketFactory: (host, port) => this.#in.sockets.dialApp(host, port, app.sourceIp),
      });
    } catch (err) {
      conn.fail(err);
      return { status: 503, code: errorCode(err), reason: describeError(err) };
    }
    const header = resolved.tunnel?.protocol === 'PROXY' ? proxyHeader(req, resolved.tunnel.target) : undefined;
    const headerBytes = header?.length ?? 0;
    // The spliced socket is the app: what was written to it is the request, what it sent is the response.
    conn.anchor(upstream, (s) => ({ request: s.bytesWritten - headerBytes, response: s.bytesRead }));
    if (conn.done) {
      return { status: 503, code: HboneErrorCode.UPSTREAM_FAILED, reason: 'the connection was closed while the app was connecting' };
    }
    if (header) upstream.write(header);
    return { status: 200, upstream, responseHeaders: { baggage: baggageOf(local) } };
  };

  /**
   * Where the app is dialled and from which source. A PROXY app tunnel carries the client in its header and is
   * sent to localhost (ztunnel LOCALHOST_APP_TUNNEL, so the app need not listen on the pod IP); anything else
   * goes to the pod IP from the client's own IP when ENABLE_ORIG_SRC is on.
   */
  #appAddress(resolved: Resolved, req: HboneInboundRequest): { readonly address: string; readonly sourceIp: string | undefined } {
    const { settings } = this.#in.ctx;
    if (resolved.tunnel?.protocol === 'PROXY' && settings.localhostAppTunnel) {
      return { address: ipFamily(resolved.address) === 6 ? '::1' : '127.0.0.1', sourceIp: undefined };
    }
    const client = req.remoteAddress;
    const spoof = settings.enableOrigSrc && client !== '' && client !== resolved.address;
    return { address: resolved.address, sourceIp: spoof ? client : undefined };
  }
}

/** PROXY v2 from the client to the tunnel target, with the client's SPIFFE identity (ztunnel src/proxy.rs). */
function proxyHeader(req: HboneInboundRequest, target: { readonly address: string; readonly port: number }): Buffer {
  return encodeProxyV2({ address: req.remoteAddress, port: req.remotePort }, target, [
    [PP2_TYPE_PEER_IDENTITY, Buffer.from(formatSpiffeId(req.peerIdentity))],
  ]);
}
