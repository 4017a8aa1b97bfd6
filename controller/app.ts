/**
 * The controller (istiod's role for ambient L4), wired:
 *
 *   Kubernetes ─informers─▶ ClusterWatch (readonly records) ─▶ WdsSource (pure model, memoized)
 *        │                                                         │ push (debounced 100 ms / 10 s)
 *        │                                                         ▼
 *        │                                 :15012 TLS ── delta ADS (Address, Authorization) ─▶ ztunnels
 *        │                                           └── IstioCertificateService/CreateCertificate
 *        │                                                (TokenReview, node-bound impersonation)
 *        └─ leader only: ConfigMap istio-ca-root-cert in every namespace (Lease election)
 *
 *   :8080 /debug/syncz (proxy-status), /debug/rejections, /ready    :15014 /metrics
 *
 * Every replica serves xDS and the CA; only the leader writes to the API server.
 */
import type * as grpc from '@grpc/grpc-js';
import { CoreV1Api, KubeConfig, type V1ConfigMap } from '@kubernetes/client-node';
import { Counter, Gauge, Registry } from 'prom-client';
import type { Logger } from 'pino';
import { HttpService, jsonReply } from '../lib/http/index.js';
import { Informer } from '../lib/kube/informer.js';
import type { CertificateAuthority } from '../lib/identity/ca.js';
import { addCaService } from '../lib/identity/ca-server.js';
import { makeIdentity, formatSpiffeId } from '../lib/identity/spiffe.js';
import { TypeUrl } from '../lib/proto/index.js';
import { XdsError, XdsErrorCode } from '../lib/xds/errors.js';
import { componentLogger } from '../lib/telemetry/logger.js';
import { loadCertificateAuthority } from './ca/ca-material.js';
import { kubeCaAuthorizer, CA_AUDIENCE, type PodLocator } from './ca/kube-authorizer.js';
import { ROOT_CERT_CONFIGMAP, RootCertPublisher } from './ca/root-cert-publisher.js';
import { KubeTokenReviewer, type TokenReviewer } from './ca/token-review.js';
import type { ControllerSettings } from './config/settings.js';
import { xdsServingOptions } from './config/xds-options.js';
import { ClusterWatch } from './kube/watch.js';
import { LeaseElection } from './leader/lease-election.js';
import { WdsSource } from './wds-source.js';
import { type RunningXdsServer, type XdsAuthenticator, type XdsServer, startXdsServer } from './xds/index.js';

export const CONTROLLER_VERSION = '0.1.0';
const SERVING_CERT_TTL_SECONDS = 365 * 24 * 3600;
/** Streams get this long to end on SIGTERM before connections are cut (ztunnels reconnect to another replica). */
const GRPC_SHUTDOWN_GRACE_MS = 2_000;

function loadKubeConfig(settings: Pick<ControllerSettings, 'kubeconfig' | 'inCluster'>): KubeConfig {
  const kc = new KubeConfig();
  if (settings.kubeconfig) kc.loadFromFile(settings.kubeconfig);
  else if (settings.inCluster) kc.loadFromCluster();
  else throw new Error('no Kubernetes credentials: pass --kubeconfig, set KUBECONFIG, or run in a pod');
  return kc;
}

/** xDS callers authenticate like CA callers: a service-account token for audience istio-ca. */
function tokenAuthenticator(reviewer: TokenReviewer, trustDomain: string): XdsAuthenticator {
  return async (ctx) => {
    const header = ctx.metadata.authorization?.[0] ?? '';
    const m = /^Bearer\s+(\S+)$/i.exec(header.trim());
    if (!m?.[1])
      throw new XdsError(
        XdsErrorCode.UNAUTHENTICATED,
        'no "authorization: Bearer <token>" header; send the service-account token (audience istio-ca)',
      );
    const r = await reviewer.review(m[1], [CA_AUDIENCE]);
    if (!r.authenticated || !r.serviceAccount) {
      throw new XdsError(XdsErrorCode.UNAUTHENTICATED, `token rejected: ${r.error ?? `"${r.username}" is not a service account`}`);
    }
    return {
      authSource: 'kubernetes-token',
      identities: [formatSpiffeId(makeIdentity(r.serviceAccount.namespace, r.serviceAccount.name, trustDomain))],
    };
  };
}

export class Controller {
  readonly settings: ControllerSettings;
  readonly registry = new Registry();
  readonly #log: Logger;
  readonly #kc: KubeConfig;
  readonly #watch: ClusterWatch;
  readonly #source: WdsSource;
  #ca: CertificateAuthority | undefined;
  #xds: XdsServer | undefined;
  #grpc: grpc.Server | undefined;
  #serving: RunningXdsServer | undefined;
  #grpcPort = 0;
  #election: LeaseElection | undefined;
  #publisher: RootCertPublisher | undefined;
  #configMaps: Informer<V1ConfigMap> | undefined;
  readonly #http: HttpService[] = [];

  private constructor(settings: ControllerSettings) {
    this.settings = settings;
    this.#log = componentLogger('controller');
    this.#kc = loadKubeConfig(settings);
    this.#watch = new ClusterWatch(this.#kc, this.#log);
    this.#source = new WdsSource(() => this.#watch.snapshot(), {
      clusterId: settings.clusterId,
      clusterDomain: settings.clusterDomain,
      trustDomain: settings.trustDomain,
      rootNamespace: settings.rootNamespace,
      systemNamespace: settings.systemNamespace,
    });
  }

  static async start(settings: ControllerSettings): Promise<Controller> {
    const c = new Controller(settings);
    await c.#start();
    return c;
  }

  get grpcPort(): number {
    return this.#grpcPort;
  }

  get isLeader(): boolean {
    return this.#election?.isLeader ?? false;
  }

  async #start(): Promise<void> {
    const s = this.settings;
    const log = this.#log;
    this.#ca = await loadCertificateAuthority(this.#kc, s, log);
    const ca = this.#ca;
    const reviewer = new KubeTokenReviewer(this.#kc);

    // Metrics (istiod's names where they exist).
    const proxies = new Gauge({
      name: 'pilot_xds',
      help: 'Number of endpoints connected to this pilot using XDS',
      registers: [this.registry],
    });
    const pushes = new Counter({
      name: 'pilot_xds_pushes',
      help: 'Pilot build and send errors for lds, rds, cds and eds',
      labelNames: ['type'],
      registers: [this.registry],
    });
    const rejects = new Counter({
      name: 'pilot_total_xds_rejects',
      help: 'Total number of XDS responses from pilot rejected by proxy',
      labelNames: ['type'],
      registers: [this.registry],
    });
    new Gauge({
      name: 'istio_build',
      help: 'Istio component build info',
      labelNames: ['component', 'tag'],
      registers: [this.registry],
    }).set({ component: 'pilot', tag: CONTROLLER_VERSION }, 1);
    const shortType = (t: string): string => t.slice(t.lastIndexOf('.') + 1);

    // Cluster state first: a proxy connecting before the initial lists would see an empty mesh. Before the xDS
    // server exists no proxy is connected, so there is nothing to push.
    this.#watch.onEvent((e) => {
      this.#source.invalidate();
      this.#xds?.push({ typeUrls: new Set([TypeUrl.Address, TypeUrl.Authorization]), reason: `${e.kind}/${e.type}` });
      if (e.kind === 'namespaces' && e.type !== 'delete') this.#publisher?.enqueue(e.key);
    });
    await this.#watch.start();
    this.#source.snapshot(); // build once now, not on the first proxy

    const pods: PodLocator = {
      nodeOf: (namespace, name) => this.#watch.state.pods.get(`${namespace}/${name}`)?.nodeName || undefined,
      hasPodOnNode: (node, namespace, serviceAccount) => {
        for (const p of this.#watch.state.pods.values()) {
          if (p.nodeName === node && p.namespace === namespace && p.serviceAccount === serviceAccount && !p.deleting) return true;
        }
        return false;
      },
    };
    const serving = await ca.issueServingCertificate(s.servingDnsNames, SERVING_CERT_TTL_SECONDS);
    const running = await startXdsServer({
      ...xdsServingOptions(s),
      transport: { kind: 'tls', ...serving },
      source: this.#source,
      authenticate: tokenAuthenticator(reviewer, s.trustDomain),
      logger: log.child({ scope: 'xds' }),
      statusTypeUrls: [TypeUrl.Address, TypeUrl.Authorization],
      metrics: {
        connectionOpened: () => proxies.inc(),
        connectionClosed: () => proxies.dec(),
        responseSent: (typeUrl) => pushes.inc({ type: shortType(typeUrl) }),
        nack: (typeUrl) => rejects.inc({ type: shortType(typeUrl) }),
      },
      addServices: (server) =>
        addCaService(server, {
          ca,
          authorizer: kubeCaAuthorizer({ reviewer, trustDomain: s.trustDomain, trustedNodeAccounts: s.trustedNodeAccounts, pods }),
          logger: log.child({ scope: 'ca' }),
        }),
    });
    this.#serving = running;
    this.#xds = running.xds;
    this.#grpcPort = running.port;
    this.#grpc = running.server;

    // Writes: leader only.
    const rootPem = ca.rootCertsPem.join('');
    this.#publisher = new RootCertPublisher(this.#kc, rootPem, log.child({ scope: 'root-cert' }));
    this.#election = new LeaseElection(this.#kc, { namespace: s.systemNamespace, name: s.leaseName, identity: s.podName, logger: log });
    this.#election.onChange((leader) => this.#publisher?.setEnabled(leader, this.#watch.state.namespaces.keys()));
    this.#watchRootCertConfigMaps();
    this.#election.start();

    await this.#startHttp();
    log.info(
      { grpc: this.#grpcPort, trustDomain: s.trustDomain, identity: s.podName, servingDnsNames: s.servingDnsNames },
      'controller serving xDS and the CA',
    );
  }

  /** A deleted or edited root-cert ConfigMap is put back (by the leader). */
  #watchRootCertConfigMaps(): void {
    const core = this.#kc.makeApiClient(CoreV1Api);
    const fieldSelector = `metadata.name=${ROOT_CERT_CONFIGMAP}`;
    const informer = new Informer<V1ConfigMap>(this.#kc, {
      what: `ConfigMaps ${ROOT_CERT_CONFIGMAP}`,
      path: '/api/v1/configmaps',
      list: () => core.listConfigMapForAllNamespaces({ fieldSelector }),
      fieldSelector,
      logger: this.#log,
    });
    const check = (cm: V1ConfigMap): void => {
      const ns = cm.metadata?.namespace;
      if (ns && this.#publisher && !this.#publisher.isCurrent(cm)) this.#publisher.enqueue(ns);
    };
    informer.on('add', check);
    informer.on('update', check);
    informer.on('delete', (cm) => {
      const ns = cm.metadata?.namespace;
      if (ns && this.#watch.state.namespaces.has(ns)) this.#publisher?.enqueue(ns);
    });
    this.#configMaps = informer;
    // Not awaited: the publisher writes every namespace on becoming leader anyway; this only notices later edits.
    void informer.start();
  }

  async #startHttp(): Promise<void> {
    const s = this.settings;
    const logger = this.#log;
    this.#http.push(
      await HttpService.listen({
        name: 'debug',
        listen: s.httpAddress,
        logger,
        routes: {
          '/debug/syncz': () => jsonReply(200, this.#xds?.proxyStatus() ?? []),
          '/debug/rejections': () => jsonReply(200, this.#watch.rejections()),
          '/debug/wds': () => {
            const live = Object.fromEntries(
              Object.entries(this.#watch.state).map(([k, m]) => [k, (m as ReadonlyMap<string, unknown>).size]),
            );
            return jsonReply(200, { ...this.#source.stats, records: live, warnings: this.#source.snapshot().warnings });
          },
          '/debug/leader': () => jsonReply(200, { identity: s.podName, leader: this.isLeader }),
          '/ready': () => {
            const ready = this.#watch.synced && this.#grpc !== undefined;
            return { status: ready ? 200 : 503, body: ready ? 'ready\n' : 'not ready\n' };
          },
        },
      }),
    );
    this.#http.push(
      await HttpService.listen({
        name: 'monitoring',
        listen: s.monitoringAddress,
        logger,
        routes: { '/metrics': async () => ({ status: 200, body: await this.registry.metrics(), type: this.registry.contentType }) },
      }),
    );
  }

  /** SIGTERM: release the lease (another replica takes over at once), stop serving, close watches. */
  async stop(): Promise<void> {
    await this.#election?.stop();
    this.#publisher?.stop();
    await this.#serving?.close(GRPC_SHUTDOWN_GRACE_MS);
    await this.#configMaps?.stop().catch(() => undefined);
    await this.#watch.stop();
    await Promise.all(this.#http.map((h) => h.close()));
    this.#log.info('controller stopped');
  }
}
