/**
 * ztunnel, wired. This thread is the control plane: it learns the mesh (local file now, the controller
 * later), holds certificates, takes pods from the node agent, and serves admin, readiness and metrics. The
 * data plane runs on worker threads (dataplane/), so none of this work delays a packet.
 *
 *   settings ─▶ state source ──▶ WorkloadStore (here, for dumps) ──▶ data-plane workers (replicas)
 *   node agent ─ZDS─▶ WorkloadManager ─▶ DataPlane.addPod ─▶ PodProxy in the pod's netns
 *   worker asks for a certificate ─▶ CertificateManager (FAKE_CA or the CA) ─▶ every worker
 */
import { readFile } from 'node:fs/promises';
import { Gauge, Registry } from 'prom-client';
import type { Logger } from 'pino';
import { describeError } from '../lib/errors.js';
import { HttpError, HttpErrorCode, HttpService, methods, type HttpReply } from '../lib/http/index.js';
import { CertificateAuthority } from '../lib/identity/ca.js';
import { CaClient, tokenFromFile } from '../lib/identity/ca-client.js';
import { CertificateManager, type CertificateProvider } from '../lib/identity/cert-manager.js';
import { LocalCaProvider } from '../lib/identity/local-ca-provider.js';
import { componentLogger, setLogLevel } from '../lib/telemetry/logger.js';
import type { LocalConfigState } from './config/local-config.js';
import type { ZtunnelSettings } from './config/settings.js';
import { DataPlane } from './dataplane/data-plane.js';
import { WorkloadManager } from './inpod/workload-manager.js';
import { ZdsClient } from './inpod/zds-client.js';
import { LocalFileSource } from './sources/local-file.js';
import { XdsSource } from './sources/xds.js';
import { identityOf } from './proxy/route.js';
import type { StateDelta } from './state/model.js';
import { WorkloadStore } from './state/store.js';

export const ZTUNNEL_VERSION = '0.1.0';
const LOG_LEVELS = new Set(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent', 'off']);

async function certificateProvider(settings: ZtunnelSettings): Promise<CertificateProvider> {
  const ttlSeconds = settings.secretTtlSeconds;
  if (!settings.fakeCa) {
    if (!settings.caAddress) throw new Error('no CA_ADDRESS (or XDS_ADDRESS) and FAKE_CA is off: ztunnel has nowhere to get certificates');
    const rootCertPem = await readFile(settings.caRootCa, 'utf8').catch((err: unknown) => {
      throw new Error(`cannot read the CA root certificate CA_ROOT_CA=${settings.caRootCa}: ${describeError(err)}`);
    });
    // Shared (node) mode: ztunnel asks for each pod's identity by impersonation; the CA checks the pod is on our node.
    return new CaClient({
      address: settings.caAddress,
      transport: { kind: 'tls', rootCertPem, ...(settings.altCaHostname ? { serverName: settings.altCaHostname } : {}) },
      token: tokenFromFile(settings.authTokenPath),
      clusterId: settings.clusterId,
      ttlSeconds,
      impersonate: true,
    });
  }
  if (settings.fakeCaDir) {
    return new LocalCaProvider(await CertificateAuthority.fromDirectory({ trustDomain: settings.trustDomain, dir: settings.fakeCaDir }), {
      ttlSeconds,
    });
  }
  return LocalCaProvider.create({ trustDomain: settings.trustDomain, ttlSeconds });
}

export class Ztunnel {
  readonly settings: ZtunnelSettings;
  readonly store = new WorkloadStore();
  readonly registry = new Registry();
  readonly #log: Logger;
  readonly #certs: CertificateManager;
  readonly #dataPlane: DataPlane;
  readonly #manager: WorkloadManager;
  #source: LocalFileSource | undefined;
  #xds: XdsSource | undefined;
  #staticConfig: LocalConfigState | undefined;
  #zds: ZdsClient | undefined;
  readonly #servers: HttpService[] = [];
  #stopping: Promise<void> | undefined;
  #logLevel: string;

  private constructor(settings: ZtunnelSettings, provider: CertificateProvider) {
    this.settings = settings;
    this.#logLevel = settings.logLevel;
    this.#log = componentLogger('ztunnel');
    this.#certs = new CertificateManager({ provider, logger: componentLogger('cert-manager') });
    this.#dataPlane = new DataPlane(settings, this.#certs, this.#log);
    this.#manager = new WorkloadManager(this.#dataPlane, this.#certs, this.store, settings.trustDomain, this.registry, this.#log);
    new Gauge({
      name: 'istio_build',
      help: 'Istio component build info',
      labelNames: ['component', 'tag'],
      registers: [this.registry],
    }).set({ component: 'ztunnel', tag: ZTUNNEL_VERSION }, 1);
  }

  static async start(settings: ZtunnelSettings): Promise<Ztunnel> {
    const z = new Ztunnel(settings, await certificateProvider(settings));
    await z.#dataPlane.ready();
    if (settings.localXdsPath) {
      z.#source = new LocalFileSource(settings.localXdsPath, (state) => z.#applyState(state), z.#log);
      await z.#source.start();
    }
    if (settings.xdsAddress) {
      z.#xds = new XdsSource(settings, (delta) => z.#applyDelta(delta), z.#log);
      await z.#xds.start();
    }
    await z.#startServers();
    if (settings.inpodEnabled) {
      z.#zds = new ZdsClient({
        path: settings.inpodUds,
        handler: z.#manager,
        logger: z.#log,
      });
      z.#zds.start();
    }
    z.#log.info(
      {
        node: settings.nodeName,
        admin: settings.adminAddress,
        inpod: settings.inpodEnabled ? settings.inpodUds : false,
        workers: settings.workerThreads,
      },
      'ztunnel started',
    );
    return z;
  }

  /** Ready when the mesh state is loaded and, in in-pod mode, the agent's snapshot has been applied. */
  readiness(): { ready: boolean; reasons: string[] } {
    const reasons: string[] = [];
    if (this.#source && this.#source.status.loads === 0) reasons.push('local config not loaded');
    if (this.#xds && !this.#xds.synced) reasons.push(`not synced with the controller at ${this.settings.xdsAddress} yet`);
    if (this.settings.inpodEnabled && !this.#zds?.snapshotReceived)
      reasons.push(`no snapshot from the node agent at ${this.settings.inpodUds} yet`);
    return { ready: reasons.length === 0, reasons };
  }

  async configDump(): Promise<object> {
    const sortBy = <T>(xs: Iterable<T>, key: (x: T) => string): T[] => [...xs].sort((a, b) => key(a).localeCompare(key(b)));
    return {
      workloads: sortBy(this.store.workloads(), (w) => w.uid),
      services: sortBy(this.store.services(), (s) => `${s.namespace}/${s.hostname}`),
      policies: sortBy(this.store.policies(), (p) => `${p.namespace}/${p.name}`),
      certificates: this.#certs.dump(),
      workloadState: await this.#dataPlane.dump(),
      // Ours, not Istio's: the ZDS link to the node agent (each reconnect brings a snapshot; see inpod/zds-client.ts).
      inpod: this.#zds && {
        uds: this.#zds.path,
        connected: this.#zds.connected,
        snapshotReceived: this.#zds.snapshotReceived,
        connections: this.#zds.connections,
      },
      staticConfig: this.#staticConfig,
      version: { version: ZTUNNEL_VERSION, runtime: `node ${process.version}`, istioVersion: '1.32' },
      config: this.settings,
    };
  }

  /** SIGTERM / POST /quitquitquit: stop taking pods, drain live connections until the deadline, exit. */
  shutdown(): Promise<void> {
    this.#stopping ??= (async () => {
      this.#log.info({ deadlineMs: this.settings.terminationDeadlineMs }, 'draining');
      await this.#zds?.close();
      this.#source?.close();
      this.#xds?.close();
      await this.#dataPlane.drain(this.settings.terminationDeadlineMs);
      await this.#dataPlane.close();
      this.#certs.close();
      await Promise.all(this.#servers.map((s) => s.close()));
      this.#log.info('ztunnel stopped');
    })();
    return this.#stopping;
  }

  /** A change from the controller: into the store here, to every worker, and certificates warmed for new pods of this node. */
  #applyDelta(delta: StateDelta): void {
    this.store.apply(delta);
    this.#dataPlane.applyDelta(delta);
    for (const w of delta.workloads ?? []) {
      if (w.node === this.settings.nodeName && w.protocol === 'HBONE') this.#certs.prefetch(identityOf(w));
    }
  }

  #applyState(state: LocalConfigState): void {
    this.#staticConfig = state;
    this.store.replaceAll(state);
    this.#dataPlane.replaceState(state);
  }

  async #startServers(): Promise<void> {
    const s = this.settings;
    const logger = this.#log;
    this.#servers.push(
      await HttpService.listen({
        name: 'admin',
        listen: s.adminAddress,
        logger,
        routes: {
          '/config_dump': async () => ({
            status: 200,
            body: `${JSON.stringify(await this.configDump(), null, 2)}\n`,
            type: 'application/json',
          }),
          '/logging': methods({
            POST: (req) => {
              const level = req.query.get('level');
              if (level === null) return { status: 200, body: `current log level is ${this.#logLevel}\n` };
              if (!LOG_LEVELS.has(level)) {
                throw new HttpError(
                  400,
                  HttpErrorCode.BAD_REQUEST,
                  `unknown level "${level.slice(0, 40)}"; use one of ${[...LOG_LEVELS].join(', ')}`,
                );
              }
              const pinoLevel = level === 'off' ? 'silent' : level;
              this.#logLevel = level;
              setLogLevel(pinoLevel);
              this.#dataPlane.setLogLevel(pinoLevel);
              return { status: 200, body: `current log level is ${level}\n` };
            },
          }),
          '/quitquitquit': methods({
            POST: () => {
              setImmediate(() => void this.shutdown().then(() => process.exit(0)));
              return { status: 200, body: 'shutdown now\n' };
            },
          }),
        },
      }),
    );
    this.#servers.push(
      await HttpService.listen({
        name: 'readiness',
        listen: s.readinessAddress,
        logger,
        routes: {
          '/healthz/ready': () => {
            const r = this.readiness();
            return r.ready ? { status: 200, body: 'ready\n' } : { status: 503, body: `not ready: ${r.reasons.join('; ')}\n` };
          },
        },
      }),
    );
    const metrics = async (): Promise<HttpReply> => {
      const merged = Registry.merge([this.registry, await this.#dataPlane.metrics()]);
      return { status: 200, body: await merged.metrics(), type: merged.contentType };
    };
    this.#servers.push(
      await HttpService.listen({
        name: 'metrics',
        listen: s.statsAddress,
        logger,
        routes: { '/metrics': metrics, '/stats/prometheus': metrics },
      }),
    );
  }

  logError(err: unknown): void {
    this.#log.error({ err: describeError(err) }, 'ztunnel error');
  }
}
