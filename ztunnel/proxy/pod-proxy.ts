/**
 * The proxy of one pod (ztunnel's in-pod "shared" mode): three listeners created INSIDE the pod's network
 * namespace, so that to the pod it looks like a sidecar, while this process stays in the node's namespace.
 *
 *   15001 outbound   REDIRECTed app connections → original dst (SO_ORIGINAL_DST) → route:
 *                    HBONE to <pod IP>:15008 with this pod's certificate | plain TCP | passthrough | reject
 *   15006 inbound    plaintext from outside the mesh → L4 policy without identity → the app
 *   15008 HBONE      mTLS CONNECT from other proxies → validate → L4 policy with the peer identity → the app
 *
 * Every socket this proxy makes in the pod carries SO_MARK 0x539 so the pod's rules let it pass; connections
 * to the app are made from the client's IP (IP_TRANSPARENT) so the app sees who called.
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { ClientHttp2Stream } from 'node:http2';
import type { Logger } from 'pino';
import type { WorkloadCertificate } from '../../lib/identity/certificate.js';
import { describeError, errorCode } from '../../lib/errors.js';
import { formatAuthority } from '../../lib/hbone/authority.js';
import { HboneError, HboneErrorCode } from '../../lib/hbone/errors.js';
import { buildBaggage, buildForwarded } from '../../lib/hbone/headers.js';
import { HbonePool } from '../../lib/hbone/pool.js';
import { HboneServer, type HboneInboundDecision, type HboneInboundRequest } from '../../lib/hbone/server.js';
import { spliceTunnel, resetSocket } from '../../lib/hbone/tunnel.js';
import { dialUpstream } from '../../lib/hbone/upstream.js';
import { formatSpiffeId, makeIdentity, type Identity } from '../../lib/identity/spiffe.js';
import type { ResponseFlag, TcpMetrics } from '../../lib/telemetry/tcp-metrics.js';
import { ILLEGAL_PORTS, INBOUND_HBONE_PORT, INBOUND_PLAINTEXT_PORT, OUTBOUND_PORT } from '../config/ports.js';
import type { ZtunnelSettings } from '../config/settings.js';
import type { PodDump, PodInfo } from '../dataplane/protocol.js';
import type { WorkerCertificates } from '../dataplane/worker-certificates.js';
import { authorize, type ConnectionAttributes } from '../policy/rbac.js';
import { workloadWithDefaults, type Workload } from '../state/model.js';
import type { WorkloadStore } from '../state/store.js';
import { type ConnectionRecord, logConnection, trafficLabels } from '../telemetry/connection.js';
import { ConnectionTracker, type TrackedConnection } from './connections.js';
import { copyBidirectional } from './copy.js';
import { inPodSockets, type ListenTarget, type PodSockets } from './sockets.js';
import { identityOf, resolveInbound, routeOutbound } from './route.js';

/** How long a new pod waits for its workload to appear in the state before using the node agent's info (ztunnel: 5 s). */
const LOCAL_WORKLOAD_WAIT_MS = 5_000;

export interface ProxyContext {
  readonly settings: ZtunnelSettings;
  readonly store: WorkloadStore;
  readonly certificates: WorkerCertificates;
  readonly metrics: TcpMetrics;
  readonly logger: Logger;
  /** How a pod's sockets are made; default: inside its network namespace (tests inject loopback sockets). */
  readonly sockets?: (pod: PodInfo, netnsFd: number) => PodSockets;
}

function addr(ip: string | undefined, port: number | undefined): string {
  return formatAuthority(ip ?? '', port ?? 0);
}

/** The `baggage` header describing a workload (ztunnel src/baggage.rs). */
function baggageOf(w: Workload): string {
  return buildBaggage({
    clusterId: w.clusterId,
    namespace: w.namespace,
    workloadType: w.workloadType,
    workloadName: w.workloadName || w.name,
    canonicalName: w.canonicalName,
    canonicalRevision: w.canonicalRevision,
    region: w.locality?.region,
    zone: w.locality?.zone,
  });
}

function flagFor(err: unknown): ResponseFlag {
  if (err instanceof HboneError) {
    if (err.code === HboneErrorCode.TLS_FAILED || err.code === HboneErrorCode.IDENTITY_MISMATCH) return 'TLS_FAILURE';
    if (err.code === HboneErrorCode.UNAUTHORIZED) return 'DENY';
    if (err.code === HboneErrorCode.CONNECT_TIMEOUT) return 'NETWORK_POLICY';
  }
  return 'CONNECT';
}

export class PodProxy {
  /** The pod's identity: from its workload in the state (as ztunnel does), else from the node agent's info. */
  identity: Identity;
  readonly #pod: PodInfo;
  readonly #sockets: PodSockets;
  readonly #ctx: ProxyContext;
  readonly #log: Logger;
  readonly #pool: HbonePool;
  readonly #tracker = new ConnectionTracker();
  readonly #servers: Server[] = [];
  #hbone: HboneServer | undefined;
  #unsubscribeRenewal: (() => void) | undefined;
  #state: 'Pending' | 'Up' = 'Pending';
  #markServing: () => void = () => {};
  /** Resolves once inbound HBONE is served (the pod is Up). */
  readonly serving = new Promise<void>((resolve) => {
    this.#markServing = resolve;
  });
  #stopped = false;

  constructor(pod: PodInfo, netnsFd: number, ctx: ProxyContext) {
    this.#pod = pod;
    this.#sockets = ctx.sockets ? ctx.sockets(pod, netnsFd) : inPodSockets(netnsFd, ctx.settings.packetMark);
    this.#ctx = ctx;
    this.#log = ctx.logger.child({ pod: `${pod.namespace}/${pod.name}`, uid: pod.uid });
    this.identity = this.#resolveIdentity();
    this.#pool = new HbonePool({
      config: ctx.settings.hbone,
      logger: this.#log,
      // HBONE leaves from inside the pod, marked so that the pod's REDIRECT rules skip it.
      socketFactory: (d) => this.#sockets.dialOut(d.address, d.port),
    });
  }

  #resolveIdentity(): Identity {
    const known = this.#ctx.store.workloadsByName(this.#pod.namespace, this.#pod.name)[0];
    return known
      ? identityOf(known)
      : makeIdentity(this.#pod.namespace, this.#pod.serviceAccount || 'default', this.#ctx.settings.trustDomain);
  }

  #subscribeRenewals(): void {
    this.#unsubscribeRenewal?.();
    this.#unsubscribeRenewal = this.#ctx.certificates.onRenewal(this.identity, (c) => this.#hbone?.setCertificate(c));
  }

  #awaitOwnWorkload(timeoutMs: number): Promise<void> {
    const { store } = this.#ctx;
    if (store.workloadsByName(this.#pod.namespace, this.#pod.name).length > 0) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        off();
        resolve();
      };
      const off = store.onChange(() => {
        if (store.workloadsByName(this.#pod.namespace, this.#pod.name).length > 0) done();
      });
      const timer = setTimeout(done, timeoutMs);
    });
  }

  /** The state changed: if this pod's identity did too, serve new handshakes with the matching certificate. */
  refreshIdentity(): void {
    const id = this.#resolveIdentity();
    if (!this.#hbone || formatSpiffeId(id) === formatSpiffeId(this.identity)) return;
    this.identity = id;
    this.#subscribeRenewals();
    this.#ctx.certificates.get(id).then(
      (cert) => {
        if (formatSpiffeId(this.identity) === formatSpiffeId(id)) this.#hbone?.setCertificate(cert);
      },
      (err: unknown) => this.#log.warn({ err: describeError(err) }, 'no certificate for the new identity'),
    );
  }

  get state(): 'Pending' | 'Up' {
    return this.#state;
  }

  /**
   * Binds the three listeners inside the pod (fails fast on EADDRINUSE etc.) and resolves: that is when the node
   * agent gets its ack. HBONE (15008) is served as soon as the pod's workload and certificate are known; until
   * then the pod is Pending and connections wait in the listen backlog.
   */
  async start(): Promise<void> {
    const listen = (port: number): ListenTarget => this.#sockets.listen(port).target;
    const outboundFd = listen(OUTBOUND_PORT);
    const plainFd = listen(INBOUND_PLAINTEXT_PORT);
    const hboneFd = listen(INBOUND_HBONE_PORT);

    const outbound = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (s) => void this.#onOutbound(s));
    const plain = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (s) => void this.#onInboundPlaintext(s));
    for (const [server, fd] of [
      [outbound, outboundFd],
      [plain, plainFd],
    ] as const) {
      server.on('error', (err) => this.#log.error({ err: describeError(err) }, 'listener error'));
      await new Promise<void>((resolve) => server.listen(fd, resolve));
      this.#servers.push(server);
    }
    void this.#serveHbone(hboneFd);
  }

  /** Certificate first (retried with backoff while the CA cannot help), then the HBONE server on the bound fd. */
  async #serveHbone(hboneFd: ListenTarget): Promise<void> {
    // As ztunnel: the pod's identity comes from its workload, which may arrive just after the pod (wait a bit).
    await this.#awaitOwnWorkload(LOCAL_WORKLOAD_WAIT_MS);
    let delay = 500;
    let cert: WorkloadCertificate;
    for (;;) {
      if (this.#stopped) return;
      this.identity = this.#resolveIdentity();
      try {
        cert = await this.#ctx.certificates.get(this.identity);
        break;
      } catch (err) {
        this.#log.warn({ err: describeError(err), retryInMs: delay }, 'no certificate for the pod yet; HBONE inbound waits');
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 30_000);
      }
    }
    if (this.#stopped) return;
    this.#hbone = new HboneServer({
      certificate: cert,
      handler: (req, signal) => this.#onInboundHbone(req, signal),
      config: this.#ctx.settings.hbone,
      logger: this.#log,
      onReject: (code, status) => this.#log.debug({ code, status }, 'inbound HBONE refused'),
    });
    this.#subscribeRenewals();
    await this.#hbone.listen(hboneFd);
    this.#state = 'Up';
    this.#markServing();
    this.#log.info({ identity: this.identity }, 'pod proxy up: listening on 15001, 15006, 15008 in the pod network namespace');
  }

  /** Stops accepting, gives live connections `deadlineMs`, then closes what is left. */
  async stop(deadlineMs: number): Promise<void> {
    this.#stopped = true;
    this.#unsubscribeRenewal?.();
    for (const s of this.#servers) s.close();
    const hbone = this.#hbone?.close(deadlineMs);
    const until = Date.now() + deadlineMs;
    while (this.#tracker.size > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    this.#tracker.closeAll('pod proxy stopped');
    await hbone;
    this.#pool.close();
  }

  dump(): PodDump {
    return {
      state: this.#state,
      info: { name: this.#pod.name, namespace: this.#pod.namespace, serviceAccount: this.#pod.serviceAccount },
      connections: { inbound: this.#tracker.summaries('inbound'), outbound: this.#tracker.summaries('outbound') },
    };
  }

  /** Policies changed: close inbound connections that would now be denied. */
  recheckPolicies(): void {
    const { store } = this.#ctx;
    const closed = this.#tracker.recheck((attrs) => {
      const local = store.workloadByIp(this.#ctx.settings.network, attrs.destinationIp);
      if (!local) return undefined;
      const d = authorize(store.policiesForWorkload(local), attrs);
      return d.allowed ? undefined : d.reason;
    });
    if (closed > 0) this.#log.info({ closed }, 'closed connections denied by a policy change');
  }

  /** The workload this pod is, from the state; a minimal record from the pod's own info when not known yet. */
  #self(ip: string | undefined): Workload {
    const found = ip ? this.#ctx.store.workloadByIp(this.#ctx.settings.network, ip) : undefined;
    if (found) return found;
    const { settings } = this.#ctx;
    return workloadWithDefaults({
      uid: this.#pod.uid,
      name: this.#pod.name,
      namespace: this.#pod.namespace,
      workloadIps: ip ? [ip] : [],
      network: settings.network,
      trustDomain: settings.trustDomain,
      serviceAccount: this.identity.serviceAccount,
      node: settings.nodeName,
      workloadType: 'pod',
      clusterId: settings.clusterId,
    });
  }

  /** A socket to the app inside the pod, from the client's IP when possible (the app sees the real caller). */
  #appSocketFactory(clientIp: string) {
    const { settings } = this.#ctx;
    return (host: string, port: number): Socket => {
      const spoof = settings.enableOrigSrc && clientIp !== '' && clientIp !== host;
      return this.#sockets.dialApp(host, port, spoof ? clientIp : undefined);
    };
  }

  /**
   * `requestBytes` went from the client towards the destination, `responseBytes` came back. Istio counts the
   * first as istio_tcp_received_bytes_total and the second as istio_tcp_sent_bytes_total; the access log
   * prints them as bytes_sent / bytes_recv from the client's side (ztunnel's README example).
   */
  #finish(rec: ConnectionRecord, requestBytes: number, responseBytes: number, flag: ResponseFlag, error?: string): void {
    const labels = trafficLabels(rec, flag);
    this.#ctx.metrics.connectionClosed(labels, requestBytes, responseBytes);
    logConnection(this.#ctx.logger, rec, { bytesSent: requestBytes, bytesRecv: responseBytes, flag, error });
  }

  /**
   * A connection that reached its destination: counted as opened and tracked (for config_dump and for policy
   * rechecks) until the returned `done` counts it closed and writes its access-log line.
   */
  #opened(rec: ConnectionRecord, tracked: TrackedConnection): (requestBytes: number, responseBytes: number, error?: string) => void {
    this.#ctx.metrics.connectionOpened(trafficLabels(rec));
    const remove = this.#tracker.add(tracked);
    return (requestBytes, responseBytes, error) => {
      remove();
      this.#finish(rec, requestBytes, responseBytes, '-', error);
    };
  }

  #fail(rec: ConnectionRecord, flag: ResponseFlag, error: string): void {
    this.#ctx.metrics.connectionFailed(trafficLabels(rec, flag));
    logConnection(this.#ctx.logger, rec, { bytesSent: 0, bytesRecv: 0, flag, error });
  }

  async #onOutbound(client: Socket): Promise<void> {
    client.on('error', () => {});
    let dst: { address: string; port: number };
    try {
      dst = this.#sockets.originalDst(client);
    } catch (err) {
      this.#log.warn({ err: describeError(err) }, 'outbound connection without an original destination; closing');
      client.destroy();
      return;
    }
    const { store, settings } = this.#ctx;
    const source = this.#self(client.remoteAddress);
    const route = routeOutbound(store, source, { ip: dst.address, port: dst.port });
    const sourceIdentity = identityOf(source);
    const base = {
      direction: 'outbound' as const,
      srcAddr: addr(client.remoteAddress, client.remotePort),
      source,
      sourceIdentity,
      startedAt: Date.now(),
    };

    if (route.kind === 'reject') {
      this.#fail(
        {
          ...base,
          dstAddr: addr(dst.address, dst.port),
          dstHboneAddr: undefined,
          destination: undefined,
          destinationService: undefined,
          destinationIdentity: undefined,
          mtls: false,
        },
        'CONNECT',
        `${route.code}: ${route.reason}`,
      );
      resetSocket(client);
      return;
    }

    if (route.kind === 'hbone') {
      const rec: ConnectionRecord = {
        ...base,
        dstAddr: addr(route.address, route.port),
        dstHboneAddr: route.authority,
        destination: route.destination,
        destinationService: route.service,
        destinationIdentity: route.expectedIdentities[0],
        mtls: true,
      };
      let stream: ClientHttp2Stream;
      try {
        const certificate = await this.#ctx.certificates.get(sourceIdentity);
        ({ stream } = await this.#pool.connect({
          address: route.address,
          port: route.port,
          expectedIdentities: route.expectedIdentities,
          authority: route.authority,
          certificate,
          sourceIp: client.remoteAddress,
          baggage: baggageOf(source),
          forwarded: buildForwarded(client.remoteAddress ?? '', client.remotePort ?? 0, route.service?.hostname),
        }));
      } catch (err) {
        this.#fail(rec, flagFor(err), describeError(err));
        resetSocket(client);
        return;
      }
      const done = this.#opened(rec, {
        direction: 'outbound',
        summary: { src: rec.srcAddr, originalDst: addr(dst.address, dst.port), actualDst: rec.dstAddr, protocol: 'HBONE' },
        attributes: undefined,
        close: () => resetSocket(client),
      });
      const r = await spliceTunnel(client, stream);
      done(r.bytesFromSocket, r.bytesToSocket, r.reset && r.error ? describeError(r.error) : undefined);
      return;
    }

    // Plain TCP: a destination outside the mesh (tcp) or unknown (passthrough). Not spoofed: leaving from the
    // pod's namespace already gives it the pod's IP.
    const rec: ConnectionRecord = {
      ...base,
      dstAddr: addr(route.address, route.port),
      dstHboneAddr: undefined,
      destination: route.kind === 'tcp' ? route.destination : undefined,
      destinationService: route.kind === 'tcp' ? route.service : undefined,
      destinationIdentity: undefined,
      mtls: false,
    };
    let upstream: Socket;
    try {
      upstream = await dialUpstream(route.address, route.port, {
        timeoutMs: settings.connectTimeoutMs,
        socketFactory: (host, port) => this.#sockets.dialOut(host, port),
      });
    } catch (err) {
      this.#fail(rec, 'CONNECT', describeError(err));
      resetSocket(client);
      return;
    }
    const done = this.#opened(rec, {
      direction: 'outbound',
      summary: { src: rec.srcAddr, originalDst: addr(dst.address, dst.port), actualDst: rec.dstAddr, protocol: 'TCP' },
      attributes: undefined,
      close: () => resetSocket(client),
    });
    const r = await copyBidirectional(client, upstream);
    done(r.fromClient, r.toClient);
  }

  async #onInboundHbone(req: HboneInboundRequest, signal: AbortSignal): Promise<HboneInboundDecision> {
    const { store, settings } = this.#ctx;
    const local = store.workloadByIp(settings.network, req.localAddress) ?? this.#self(req.localAddress);
    const resolved = resolveInbound(store, local, req.localAddress, req.target);
    const source = store.workloadByIp(settings.network, req.remoteAddress);
    const rec: ConnectionRecord = {
      direction: 'inbound',
      srcAddr: addr(req.remoteAddress, req.remotePort),
      dstAddr: addr(req.localAddress, req.localPort),
      dstHboneAddr: req.authority,
      source,
      sourceIdentity: req.peerIdentity,
      destination: local,
      destinationService: resolved.kind === 'ok' ? resolved.service : undefined,
      destinationIdentity: identityOf(local),
      mtls: true,
      startedAt: Date.now(),
    };
    if (resolved.kind === 'reject') {
      this.#fail(rec, 'CONNECT', `${resolved.code}: ${resolved.reason}`);
      return { status: resolved.status, code: resolved.code, reason: resolved.reason };
    }
    const attributes: ConnectionAttributes = {
      sourceIdentity: req.peerIdentity,
      sourceIp: req.remoteAddress,
      destinationIp: req.localAddress,
      destinationPort: resolved.port,
    };
    const decision = authorize(store.policiesForWorkload(local), attributes);
    if (!decision.allowed) {
      this.#fail(rec, 'DENY', `connection closed due to policy rejection: ${decision.reason}`);
      return { status: 401, code: 'POLICY_DENIED', reason: decision.reason };
    }
    let upstream: Socket;
    try {
      upstream = await dialUpstream(req.localAddress, resolved.port, {
        signal,
        timeoutMs: settings.connectTimeoutMs,
        socketFactory: this.#appSocketFactory(req.remoteAddress),
      });
    } catch (err) {
      this.#fail(rec, 'CONNECT', describeError(err));
      return { status: 503, code: errorCode(err), reason: describeError(err) };
    }
    const done = this.#opened(rec, {
      direction: 'inbound',
      summary: { src: rec.srcAddr, originalDst: req.authority, actualDst: addr(req.localAddress, resolved.port), protocol: 'HBONE' },
      attributes,
      close: (reason) => {
        this.#log.info({ src: rec.srcAddr }, reason);
        resetSocket(upstream);
      },
    });
    return {
      status: 200,
      upstream,
      responseHeaders: {
        baggage: baggageOf(local),
      },
      // The spliced socket is the app: what was written to it is the request, what it sent is the response.
      onClosed: (r) => done(r.bytesToSocket, r.bytesFromSocket),
    };
  }

  async #onInboundPlaintext(client: Socket): Promise<void> {
    client.on('error', () => {});
    let dst: { address: string; port: number };
    try {
      dst = this.#sockets.originalDst(client);
    } catch {
      client.destroy();
      return;
    }
    const { store, settings } = this.#ctx;
    const local = store.workloadByIp(settings.network, dst.address) ?? this.#self(dst.address);
    const rec: ConnectionRecord = {
      direction: 'inbound',
      srcAddr: addr(client.remoteAddress, client.remotePort),
      dstAddr: addr(dst.address, dst.port),
      dstHboneAddr: undefined,
      source: store.workloadByIp(settings.network, client.remoteAddress ?? ''),
      sourceIdentity: undefined,
      destination: local,
      destinationService: undefined,
      destinationIdentity: undefined,
      mtls: false,
      startedAt: Date.now(),
    };
    if (ILLEGAL_PORTS.has(dst.port)) {
      this.#fail(rec, 'CONNECT', `SELF_CALL: port ${dst.port} is ztunnel's own`);
      client.destroy();
      return;
    }
    // No identity: STRICT mTLS (a DENY on "no principal") refuses these.
    const attributes: ConnectionAttributes = {
      sourceIdentity: undefined,
      sourceIp: client.remoteAddress ?? '',
      destinationIp: dst.address,
      destinationPort: dst.port,
    };
    const decision = authorize(store.policiesForWorkload(local), attributes);
    if (!decision.allowed) {
      this.#fail(rec, 'DENY', `connection closed due to policy rejection: ${decision.reason}`);
      resetSocket(client);
      return;
    }
    let upstream: Socket;
    try {
      upstream = await dialUpstream(dst.address, dst.port, {
        timeoutMs: settings.connectTimeoutMs,
        socketFactory: this.#appSocketFactory(client.remoteAddress ?? ''),
      });
    } catch (err) {
      this.#fail(rec, 'CONNECT', describeError(err));
      resetSocket(client);
      return;
    }
    const done = this.#opened(rec, {
      direction: 'inbound',
      summary: { src: rec.srcAddr, originalDst: rec.dstAddr, actualDst: rec.dstAddr, protocol: 'TCP' },
      attributes,
      close: (reason) => {
        this.#log.info({ src: rec.srcAddr }, reason);
        resetSocket(client);
      },
    });
    const r = await copyBidirectional(client, upstream);
    done(r.fromClient, r.toClient);
  }
}
