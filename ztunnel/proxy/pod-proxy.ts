/**
 * The proxy of one pod (ztunnel's in-pod "shared" mode): three listeners created INSIDE the pod's network
 * namespace, so that to the pod it looks like a sidecar, while this process stays in the node's namespace. This
 * file owns the listeners, the pod's identity and certificate, and drain; each listener's role is its own file:
 *
 *   15001 outbound.ts             the pod's connections → route → HBONE (pooled, this pod's certificate) | TCP
 *   15006 inbound-passthrough.ts  plaintext from outside the mesh → L4 policy without identity → the app
 *   15008 inbound.ts              (HBONE server: lib/hbone/server.ts) → resolve → L4 policy → the app
 *
 * Every connection is one ProxyConnection (connection.ts), which counts, tracks and logs it. Every socket comes
 * from the pod's PodSockets (sockets.ts): in production inside the netns, marked, the app dialled from the
 * client's IP; in the in-process tests on loopback.
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { Logger } from 'pino';
import { describeError } from '../../lib/errors.js';
import { HbonePool } from '../../lib/hbone/pool.js';
import { HboneServer } from '../../lib/hbone/server.js';
import type { WorkloadCertificate } from '../../lib/identity/certificate.js';
import { formatSpiffeId, type Identity, makeIdentity, sameIdentity } from '../../lib/identity/spiffe.js';
import { INBOUND_HBONE_PORT, INBOUND_PLAINTEXT_PORT, OUTBOUND_PORT } from '../config/ports.js';
import type { PodDump, PodInfo } from '../dataplane/protocol.js';
import { authorize } from '../policy/rbac.js';
import { workloadWithDefaults, type Workload } from '../state/model.js';
import { ConnectionTracker } from './connections.js';
import { ProxyError, ProxyErrorCode } from './errors.js';
import { Inbound } from './inbound.js';
import { InboundPassthrough } from './inbound-passthrough.js';
import { type ProxyContext, ProxyInputs } from './inputs.js';
import { Outbound } from './outbound.js';
import { identityOf } from './route.js';
import { inPodSockets, type PodListener, type PodSockets } from './sockets.js';

export type { ProxyContext } from './inputs.js';

/** How long a new pod waits for its workload to appear in the state before using the node agent's info (ztunnel: 5 s). */
const LOCAL_WORKLOAD_WAIT_MS = 5_000;

/**
 * How much longer than the drain the HBONE server keeps its sessions. At the drain deadline the pod proxy resets
 * what is left itself (each connection logged as drained, each peer told by RST_STREAM); the sessions, idle and
 * GOAWAY'd by then, are closed by their clients, and only one that lingers past this is destroyed.
 */
const SESSION_CLOSE_MARGIN_MS = 1_000;

export class PodProxy {
  /** The pod's identity: from its workload in the state (as ztunnel does), else from the node agent's info. */
  identity: Identity;
  readonly #pod: PodInfo;
  readonly #ctx: ProxyContext;
  readonly #log: Logger;
  readonly #sockets: PodSockets;
  readonly #pool: HbonePool;
  readonly #tracker = new ConnectionTracker();
  readonly #inputs: ProxyInputs;
  readonly #servers: Server[] = [];
  #hboneListener: PodListener | undefined;
  /** Listening sockets reserved but not yet handed to a server: stop() frees them (a start that failed half-way). */
  readonly #unserved = new Set<PodListener>();
  #hbone: HboneServer | undefined;
  /** True once the identity is settled (the own workload arrived or the wait ended): certificates are asked for. */
  #identityChosen = false;
  #unsubscribeRenewal: (() => void) | undefined;
  #state: 'Pending' | 'Up' = 'Pending';
  #stopped = false;
  #markServing: () => void = () => {};
  /** Resolves once inbound HBONE is served (the pod is Up). */
  readonly serving = new Promise<void>((resolve) => {
    this.#markServing = resolve;
  });

  constructor(pod: PodInfo, netnsFd: number, ctx: ProxyContext) {
    this.#pod = pod;
    this.#ctx = ctx;
    this.#log = ctx.logger.child({ pod: `${pod.namespace}/${pod.name}`, uid: pod.uid });
    this.#sockets = ctx.sockets ? ctx.sockets(pod, netnsFd) : inPodSockets(netnsFd, ctx.settings.packetMark);
    this.identity = this.#resolveIdentity();
    this.#pool = new HbonePool({
      config: ctx.settings.hbone,
      logger: this.#log,
      // HBONE leaves from inside the pod, marked so that the pod's REDIRECT rules skip it.
      socketFactory: (d) => this.#sockets.dialOut(d.address, d.port),
    });
    this.#inputs = new ProxyInputs(ctx, this.#sockets, { metrics: ctx.metrics, logger: ctx.logger, tracker: this.#tracker }, () =>
      this.#self(),
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
    const outboundListener = this.#reserve(OUTBOUND_PORT);
    const plaintextListener = this.#reserve(INBOUND_PLAINTEXT_PORT);
    this.#hboneListener = this.#reserve(INBOUND_HBONE_PORT);
    const outbound = new Outbound(this.#inputs, this.#pool);
    const passthrough = new InboundPassthrough(this.#inputs);
    // Paused: nothing is read from a client before its upstream is there.
    const roles: ReadonlyArray<readonly [PodListener, (s: Socket) => void]> = [
      [outboundListener, (s) => outbound.handle(s)],
      [plaintextListener, (s) => passthrough.handle(s)],
    ];
    for (const [listener, handle] of roles) {
      const server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, handle);
      server.on('error', (err) => this.#log.error({ err: describeError(err) }, 'listener error'));
      this.#servers.push(server);
      this.#unserved.delete(listener);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(listener.target, () => {
          server.off('error', reject);
          resolve();
        });
      });
    }
    void this.#chooseIdentity();
  }

  #reserve(port: number): PodListener {
    const listener = this.#sockets.listen(port);
    this.#unserved.add(listener);
    return listener;
  }

  /** As ztunnel: the pod's identity comes from its workload, which may arrive just after the pod (wait a bit). */
  async #chooseIdentity(): Promise<void> {
    await this.#awaitOwnWorkload(LOCAL_WORKLOAD_WAIT_MS);
    if (this.#stopped) return;
    this.#identityChosen = true;
    this.#useIdentity(this.#resolveIdentity());
  }

  /**
   * Asks for the identity's certificate and follows its renewals. No retry of our own: when a fetch fails the
   * certificate manager retries with its backoff (lib/identity/cert-manager.ts), and the certificate it finally
   * gets reaches us as a renewal.
   */
  #useIdentity(id: Identity): void {
    this.identity = id;
    this.#unsubscribeRenewal?.();
    this.#unsubscribeRenewal = this.#ctx.certificates.onRenewal(id, (cert) => this.#certificateArrived(id, cert));
    this.#ctx.certificates.get(id).then(
      (cert) => this.#certificateArrived(id, cert),
      (err: unknown) =>
        this.#log.warn(
          { err: describeError(err), identity: formatSpiffeId(id) },
          this.#hbone ? 'no certificate for the new identity yet' : 'no certificate for the pod yet; inbound HBONE waits for it',
        ),
    );
  }

  /** Serves HBONE with the first certificate of the current identity; later ones are swapped in for new handshakes. */
  #certificateArrived(id: Identity, cert: WorkloadCertificate): void {
    if (this.#stopped || !sameIdentity(id, this.identity)) return;
    if (this.#hbone) {
      this.#hbone.setCertificate(cert);
      return;
    }
    const listener = this.#hboneListener;
    if (!listener) return;
    const inbound = new Inbound(this.#inputs);
    const hbone = new HboneServer({
      certificate: cert,
      handler: inbound.handle,
      config: this.#ctx.settings.hbone,
      logger: this.#log,
      onReject: (code, status) => this.#log.debug({ code, status }, 'inbound HBONE refused'),
    });
    this.#hbone = hbone;
    this.#unserved.delete(listener);
    hbone.listen(listener.target).then(
      () => {
        // Stopped while binding: close() found nothing listening yet.
        if (this.#stopped) return void hbone.close(0);
        this.#state = 'Up';
        this.#markServing();
        this.#log.info({ identity: this.identity }, 'pod proxy up: listening on 15001, 15006, 15008 in the pod network namespace');
      },
      (err: unknown) => this.#log.error({ err: describeError(err) }, 'cannot serve inbound HBONE'),
    );
  }

  /** The state changed: if this pod's identity did too, serve new handshakes with the matching certificate. */
  refreshIdentity(): void {
    if (!this.#identityChosen || this.#stopped) return;
    const id = this.#resolveIdentity();
    if (!sameIdentity(id, this.identity)) this.#useIdentity(id);
  }

  /** Stops accepting, gives live connections `deadlineMs`, then closes what is left. */
  async stop(deadlineMs: number): Promise<void> {
    this.#stopped = true;
    this.#unsubscribeRenewal?.();
    for (const s of this.#servers) s.close();
    // GOAWAY now: peers open no new tunnels here, the live ones carry on until the deadline.
    const hbone = this.#hbone?.close(deadlineMs + SESSION_CLOSE_MARGIN_MS);
    for (const l of this.#unserved) l.release();
    this.#unserved.clear();
    await this.#drained(deadlineMs);
    this.#tracker.closeAll(new ProxyError(ProxyErrorCode.DRAINED, `pod proxy stopped; connection closed after the ${deadlineMs} ms drain`));
    // Closing resets each connection's socket; each leaves the tracker when that socket's 'close' has come.
    await this.#tracker.whenEmpty();
    await hbone;
    this.#pool.close();
  }

  /** Resolves when the tracker empties or `deadlineMs` passes, whichever is first. */
  #drained(deadlineMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([
      this.#tracker.whenEmpty(),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, deadlineMs);
      }),
    ]).finally(() => clearTimeout(timer));
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
    const { store, settings } = this.#ctx;
    const closed = this.#tracker.recheck(
      (attrs) => {
        const local = store.workloadByIp(settings.network, attrs.destinationIp);
        if (!local) return undefined;
        const d = authorize(store.policiesForWorkload(local), attrs);
        return d.allowed ? undefined : d.reason;
      },
      (reason) => new ProxyError(ProxyErrorCode.POLICY_CHANGED, `connection closed due to policy change: ${reason}`),
    );
    if (closed > 0) this.#log.info({ closed }, 'closed connections denied by a policy change');
  }

  #ownWorkload(): Workload | undefined {
    return this.#ctx.store.workloadsByName(this.#pod.namespace, this.#pod.name)[0];
  }

  #resolveIdentity(): Identity {
    const known = this.#ownWorkload();
    return known
      ? identityOf(known)
      : makeIdentity(this.#pod.namespace, this.#pod.serviceAccount || 'default', this.#ctx.settings.trustDomain);
  }

  #awaitOwnWorkload(timeoutMs: number): Promise<void> {
    const { store } = this.#ctx;
    if (this.#ownWorkload()) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        off();
        resolve();
      };
      const off = store.onChange(() => {
        if (this.#ownWorkload()) done();
      });
      const timer = setTimeout(done, timeoutMs);
    });
  }

  /** The workload this pod is, from the state; a minimal record from the pod's own info when not known yet. */
  #self(): Workload {
    const found = this.#ownWorkload();
    if (found) return found;
    const { settings } = this.#ctx;
    return workloadWithDefaults({
      uid: this.#pod.uid,
      name: this.#pod.name,
      namespace: this.#pod.namespace,
      network: settings.network,
      trustDomain: settings.trustDomain,
      serviceAccount: this.identity.serviceAccount,
      node: settings.nodeName,
      workloadType: 'pod',
      clusterId: settings.clusterId,
    });
  }
}
