/**
 * A real Kubernetes API server for tests and benchmarks: etcd and kube-apiserver on loopback, fresh keys and a
 * fresh data directory per server, RBAC enforced, service-account tokens (TokenRequest, TokenReview) working.
 * No controller-manager, scheduler or kubelet: see objects.ts for the helpers that play their parts.
 *
 *   const api = await startApiServer({ name: 'crds' });
 *   const core = api.kubeConfig.makeApiClient(CoreV1Api);
 *   ...
 *   await api.stop();
 *
 * Why these flags (details beside each below): static bearer tokens for an admin in system:masters and optional
 * extra users; Node,RBAC authorization so that a limited ServiceAccount really is limited; the ServiceAccount
 * token issuer configured so TokenRequest can mint audience-bound, pod-bound tokens (e.g. for `istio-ca`) that
 * TokenReview then verifies; the default admission plugins kept (none of them needs another component to admit a
 * Pod, as long as its ServiceAccount exists, which is what real clusters require too).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { stringify as toYaml } from 'yaml';
import { describeError } from '../../lib/errors.js';
import { componentLogger, type Logger } from '../../lib/telemetry/logger.js';
import { ensureKubeApiServer, findEtcd } from './binaries.js';
import { KubeTestError, KubeTestErrorCode } from './errors.js';
import { createServiceAccount } from './objects.js';
import { createApiServerPki } from './pki.js';
import { ManagedProcess, orphanedPids, pidAlive, registerForExit, unregisterForExit } from './process.js';
import { kubeRequest, type RestResponse } from './rest.js';
import { waitFor } from './wait.js';

/** The issuer a kubeadm cluster uses; also the only API audience, so tokens for other audiences cannot call the API. */
export const SERVICE_ACCOUNT_ISSUER = 'https://kubernetes.default.svc.cluster.local';
export const DEFAULT_SERVICE_CIDR = '10.96.0.0/16';
export const CLUSTER_DOMAIN = 'cluster.local';
/** The admin user of the static token file, in system:masters (RBAC's superuser group). */
export const ADMIN_USER = 'kubetest-admin';
/** Namespaces kube-apiserver creates itself; each gets the `default` ServiceAccount the controller-manager would add. */
const SYSTEM_NAMESPACES = ['default', 'kube-system', 'kube-public', 'kube-node-lease'] as const;

export interface StaticUser {
  readonly name: string;
  readonly groups?: readonly string[];
  /** Default: the name. */
  readonly uid?: string;
}

export interface StartApiServerOptions {
  /** Names the data directory and the log lines. Default "kubetest". */
  readonly name?: string;
  /** Must be absent or empty (it is removed by stop()). Default: a fresh directory under $TMPDIR/kubetest/. */
  readonly dataDir?: string;
  readonly logger?: Logger;
  /** Extra users of the static token file (e.g. `{ name: 'system:node:n1', groups: ['system:nodes'] }`); tokens in `userTokens`. */
  readonly users?: readonly StaticUser[];
  /** Service ClusterIP range. Default 10.96.0.0/16 (the `kubernetes` Service gets its first address). */
  readonly serviceCidr?: string;
  /** Time allowed for etcd and kube-apiserver to become ready (the build, if any, is not counted). Default 60 s. */
  readonly startTimeoutMs?: number;
  /** Keep the data directory (logs, certificates, kubeconfig) after stop(), for debugging. */
  readonly keepDataDir?: boolean;
  /** Appended to kube-apiserver's arguments (later flags win). */
  readonly extraApiServerArgs?: readonly string[];
  /**
   * Other addresses of this host clients will use (e.g. the host end of a fake cluster's link, so that programs in
   * node namespaces can reach the API server): added to the serving certificate, and the server then listens on
   * all addresses instead of loopback only.
   */
  readonly extraAddresses?: readonly string[];
}

export interface ServiceAccountTokenOptions {
  /** Audiences the token is for (`aud`), e.g. ['istio-ca']. Default: the API server's audience. */
  readonly audiences?: readonly string[];
  /** Bind the token to a pod: it is then valid only while that pod (same uid) exists, and TokenReview reports it. */
  readonly boundPod?: { readonly name: string; readonly uid: string };
  /** Lifetime; the API server requires at least 600. Default 3600. */
  readonly expirationSeconds?: number;
}

export interface ServiceAccountToken {
  readonly token: string;
  readonly expirationTimestamp: Date;
}

/** Milliseconds spent in each phase of startApiServer. */
export interface StartupTimings {
  /** Finding (or building) kube-apiserver and etcd. */
  readonly binariesMs: number;
  readonly pkiMs: number;
  readonly etcdMs: number;
  /** From starting kube-apiserver until /readyz answered 200. */
  readonly apiServerMs: number;
  /** Creating the system namespaces' default ServiceAccounts. */
  readonly bootstrapMs: number;
  readonly totalMs: number;
}

export interface ApiServerPorts {
  readonly apiServer: number;
  readonly etcdClient: number;
  readonly etcdPeer: number;
}

function isEmptyDir(dir: string): boolean {
  return !existsSync(dir) || readdirSync(dir).length === 0;
}

/** Ports the kernel says are free right now (bound to port 0, then released). */
async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
          const s = createServer();
          s.once('error', reject);
          s.listen(0, '127.0.0.1', () => resolve(s));
        }),
    ),
  );
  const ports = servers.map((s) => {
    const a = s.address();
    return typeof a === 'object' && a !== null ? a.port : 0;
  });
  await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  return ports;
}

function firstServiceIp(cidr: string): string {
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)\/(\d+)$/.exec(cidr);
  if (m === null) throw new KubeTestError(KubeTestErrorCode.INVALID_ARGUMENT, `serviceCidr must be an IPv4 CIDR, got ${cidr}`);
  const prefix = Number(m[5]);
  const ip = ((Number(m[1]) << 24) | (Number(m[2]) << 16) | (Number(m[3]) << 8) | Number(m[4])) >>> 0;
  const network = prefix === 0 ? 0 : (ip & (~0 << (32 - prefix))) >>> 0;
  const first = network + 1;
  return [first >>> 24, (first >>> 16) & 255, (first >>> 8) & 255, first & 255].join('.');
}

function etcdHealthy(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = httpGet({ host: '127.0.0.1', port, path: '/health', timeout: 1000 }, (res) => {
      let body = '';
      res
        .setEncoding('utf8')
        .on('data', (c: string) => (body += c))
        .on('end', () => resolve(res.statusCode === 200 && /"health":\s*"true"/.test(body)));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
  });
}

const PORT_IN_USE = /address already in use|bind: address/i;
const KUBETEST_TMP = join(tmpdir(), 'kubetest');

export interface StaleCleanupReport {
  /** Programs (etcd, kube-apiserver) whose owning test process had died, now killed. */
  readonly killedPids: readonly number[];
  readonly removedDirs: readonly string[];
}

/**
 * Cleans up after test processes that died without stopping their API servers (SIGKILL, a crash): kills their
 * etcd and kube-apiserver (normally already dead through the parent-death signal) and removes their data
 * directories under $TMPDIR/kubetest (named <name>-<owner pid>-XXXXXX). startApiServer runs it first.
 */
export async function cleanupStale(logger: Logger = componentLogger('kubetest')): Promise<StaleCleanupReport> {
  const killedPids = orphanedPids();
  for (const pid of killedPids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }
  if (killedPids.length > 0) {
    logger.warn({ pids: killedPids }, 'killed etcd/kube-apiserver processes whose test process had died');
    await waitFor(() => killedPids.every((p) => !pidAlive(p)), 5_000, { intervalMs: 20, description: 'orphaned processes to exit' });
  }
  const removedDirs: string[] = [];
  let entries: string[] = [];
  try {
    entries = readdirSync(KUBETEST_TMP);
  } catch {
    // nothing was ever started here
  }
  for (const e of entries) {
    const m = /-(\d+)-[A-Za-z0-9]{6}$/.exec(e);
    if (m === null || Number(m[1]) === process.pid || pidAlive(Number(m[1]))) continue;
    const dir = join(KUBETEST_TMP, e);
    try {
      rmSync(dir, { recursive: true, force: true });
      removedDirs.push(dir);
    } catch {
      // not removable by us: leave it
    }
  }
  if (removedDirs.length > 0) logger.info({ dirs: removedDirs }, 'removed data directories of test API servers whose process died');
  return { killedPids, removedDirs };
}

export class ApiServer {
  readonly name: string;
  /** https://127.0.0.1:<port> */
  readonly url: string;
  readonly kubeconfigPath: string;
  /** The cluster CA (PEM); the serving certificate chains to it. */
  readonly caPem: string;
  /** Bearer token of the admin user (system:masters). */
  readonly adminToken: string;
  /** Admin credentials as a @kubernetes/client-node KubeConfig (loaded from kubeconfigPath). */
  readonly kubeConfig: KubeConfig;
  /** Tokens of StartApiServerOptions.users, by user name. */
  readonly userTokens: ReadonlyMap<string, string>;
  readonly dataDir: string;
  readonly etcdUrl: string;
  readonly ports: ApiServerPorts;
  readonly serviceAccountIssuer = SERVICE_ACCOUNT_ISSUER;
  readonly apiAudiences: readonly string[] = [SERVICE_ACCOUNT_ISSUER];
  readonly serviceCidr: string;
  readonly startup: StartupTimings;
  readonly #apiServer: ManagedProcess;
  readonly #etcd: ManagedProcess;
  readonly #logger: Logger;
  readonly #keepDataDir: boolean;
  #stopping: Promise<void> | undefined;

  /** @internal use startApiServer() */
  constructor(init: {
    name: string;
    url: string;
    kubeconfigPath: string;
    caPem: string;
    adminToken: string;
    kubeConfig: KubeConfig;
    userTokens: ReadonlyMap<string, string>;
    dataDir: string;
    etcdUrl: string;
    ports: ApiServerPorts;
    serviceCidr: string;
    startup: StartupTimings;
    apiServer: ManagedProcess;
    etcd: ManagedProcess;
    logger: Logger;
    keepDataDir: boolean;
  }) {
    this.name = init.name;
    this.url = init.url;
    this.kubeconfigPath = init.kubeconfigPath;
    this.caPem = init.caPem;
    this.adminToken = init.adminToken;
    this.kubeConfig = init.kubeConfig;
    this.userTokens = init.userTokens;
    this.dataDir = init.dataDir;
    this.etcdUrl = init.etcdUrl;
    this.ports = init.ports;
    this.serviceCidr = init.serviceCidr;
    this.startup = init.startup;
    this.#apiServer = init.apiServer;
    this.#etcd = init.etcd;
    this.#logger = init.logger;
    this.#keepDataDir = init.keepDataDir;
    registerForExit(this);
  }

  /** Process ids (for leak checks). */
  get pids(): { readonly apiServer: number; readonly etcd: number } {
    return { apiServer: this.#apiServer.pid, etcd: this.#etcd.pid };
  }

  get stopped(): boolean {
    return this.#stopping !== undefined;
  }

  #assertRunning(): void {
    if (this.#stopping !== undefined) throw new KubeTestError(KubeTestErrorCode.STOPPED, `API server ${this.name} was stopped`);
  }

  /** A KubeConfig for the same server authenticating with `token` (a ServiceAccount's, or a static user's). */
  kubeConfigForToken(token: string, user = 'token-user'): KubeConfig {
    return kubeConfigFor(this.name, this.url, this.caPem, user, token);
  }

  /**
   * Mints a ServiceAccount token through the TokenRequest API (POST .../serviceaccounts/<sa>/token), as the kubelet
   * does for projected token volumes. The ServiceAccount (and the bound pod) must exist.
   */
  async createServiceAccountToken(
    namespace: string,
    serviceAccount: string,
    opts: ServiceAccountTokenOptions = {},
  ): Promise<ServiceAccountToken> {
    this.#assertRunning();
    const core = this.kubeConfig.makeApiClient(CoreV1Api);
    const res = await core.createNamespacedServiceAccountToken({
      name: serviceAccount,
      namespace,
      body: {
        apiVersion: 'authentication.k8s.io/v1',
        kind: 'TokenRequest',
        spec: {
          audiences: [...(opts.audiences ?? this.apiAudiences)],
          expirationSeconds: opts.expirationSeconds ?? 3600,
          ...(opts.boundPod === undefined
            ? {}
            : { boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: opts.boundPod.name, uid: opts.boundPod.uid } }),
        },
      },
    });
    const status = res.status;
    if (status === undefined || status.token === '') {
      throw new KubeTestError(KubeTestErrorCode.API_ERROR, `TokenRequest for ${namespace}/${serviceAccount} returned no token`);
    }
    return { token: status.token, expirationTimestamp: new Date(status.expirationTimestamp) };
  }

  /**
   * A raw HTTPS request to the server (CA pinned), e.g. `/readyz`. Authenticates as the admin unless `token` is
   * given; `token: null` sends no credentials (anonymous).
   */
  async request(
    path: string,
    opts: { readonly method?: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'; readonly token?: string | null; readonly body?: unknown } = {},
  ): Promise<RestResponse> {
    this.#assertRunning();
    const kc =
      opts.token === undefined ? this.kubeConfig : opts.token === null ? anonymousKubeConfig(this) : this.kubeConfigForToken(opts.token);
    return kubeRequest(kc, { method: opts.method ?? 'GET', path, body: opts.body });
  }

  /** The last lines of kube-apiserver's or etcd's log. */
  logTail(which: 'apiserver' | 'etcd', lines = 40): string {
    return (which === 'apiserver' ? this.#apiServer : this.#etcd).logTail(lines);
  }

  /**
   * Stops kube-apiserver, then etcd, and removes the data directory. Idempotent: later calls return the first
   * call's promise. Fails with KUBETEST_CLEANUP_FAILED if something was left.
   *
   * By default kube-apiserver is killed outright: its graceful shutdown costs about a second and protects nothing
   * here (the data is thrown away). `graceful: true` sends SIGTERM instead (SIGKILL after 10 s), for tests of how
   * clients behave when the API server goes away properly (watches closed, GOAWAY).
   */
  stop(opts: { readonly graceful?: boolean } = {}): Promise<void> {
    this.#stopping ??= this.#stop(opts.graceful === true);
    return this.#stopping;
  }

  async #stop(graceful: boolean): Promise<void> {
    const started = Date.now();
    const failures: string[] = [];
    // The API server first, so that it does not log etcd connection errors for nothing.
    await this.#apiServer.stop(graceful ? 10_000 : 0);
    await this.#etcd.stop(5_000);
    for (const p of [this.#apiServer, this.#etcd]) {
      if (pidAlive(p.pid)) failures.push(`${p.name} (pid ${p.pid}) is still running`);
    }
    if (!this.#keepDataDir) {
      try {
        rmSync(this.dataDir, { recursive: true, force: true });
      } catch (e) {
        failures.push(`data directory ${this.dataDir}: ${describeError(e)}`);
      }
    }
    unregisterForExit(this);
    this.#logger.info(
      { name: this.name, ms: Date.now() - started, keptDataDir: this.#keepDataDir ? this.dataDir : undefined },
      'test API server stopped',
    );
    if (failures.length > 0) {
      throw new KubeTestError(KubeTestErrorCode.CLEANUP_FAILED, `stopping API server ${this.name} left: ${failures.join('; ')}`);
    }
  }

  /** @internal exit hook: no event loop left, so kill outright and remove files synchronously. */
  destroySync(): void {
    this.#stopping ??= Promise.resolve();
    this.#apiServer.signal('SIGKILL');
    this.#etcd.signal('SIGKILL');
    if (!this.#keepDataDir) rmSync(this.dataDir, { recursive: true, force: true });
  }
}

function kubeConfigFor(name: string, url: string, caPem: string, user: string, token: string | undefined): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name, server: url, caData: Buffer.from(caPem).toString('base64'), skipTLSVerify: false }],
    users: [{ name: user, ...(token === undefined ? {} : { token }) }],
    contexts: [{ name, cluster: name, user }],
    currentContext: name,
  });
  return kc;
}

const anonymousConfigs = new WeakMap<ApiServer, KubeConfig>();
function anonymousKubeConfig(api: ApiServer): KubeConfig {
  let kc = anonymousConfigs.get(api);
  if (kc === undefined) {
    kc = kubeConfigFor(api.name, api.url, api.caPem, 'anonymous', undefined);
    anonymousConfigs.set(api, kc);
  }
  return kc;
}

/** A kubeconfig file (the format kubectl and every client read) with the CA and the token embedded. */
function kubeconfigYaml(name: string, url: string, caPem: string, user: string, token: string): string {
  return toYaml({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name, cluster: { server: url, 'certificate-authority-data': Buffer.from(caPem).toString('base64') } }],
    users: [{ name: user, user: { token } }],
    contexts: [{ name, context: { cluster: name, user, namespace: 'default' } }],
    'current-context': name,
    preferences: {},
  });
}

/** A token of 32 random bytes; static token files allow any printable characters but commas. */
function newToken(): string {
  return randomBytes(32).toString('base64url');
}

function csvField(s: string): string {
  if (/[",\n]/.test(s)) {
    if (s.includes('"') || s.includes('\n'))
      throw new KubeTestError(KubeTestErrorCode.INVALID_ARGUMENT, `user names and groups may not contain quotes or newlines: ${s}`);
    return `"${s}"`;
  }
  return s;
}

/**
 * Starts etcd and kube-apiserver (see the module comment) and returns once /readyz answers 200 and the system
 * namespaces have their default ServiceAccounts. Builds kube-apiserver first if it is not built yet (minutes;
 * progress is logged). Fails with a KubeTestError whose message includes the failing program's log tail; never
 * substitutes anything for the real server.
 */
export async function startApiServer(opts: StartApiServerOptions = {}): Promise<ApiServer> {
  const t0 = Date.now();
  const name = opts.name ?? 'kubetest';
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(name) || name.length > 40) {
    throw new KubeTestError(
      KubeTestErrorCode.INVALID_ARGUMENT,
      `name must be a short DNS label (it names files and the etcd member), got "${name}"`,
    );
  }
  const logger = (opts.logger ?? componentLogger('kubetest')).child({ apiServer: name });
  const serviceCidr = opts.serviceCidr ?? DEFAULT_SERVICE_CIDR;
  const serviceIp = firstServiceIp(serviceCidr);
  const startTimeout = opts.startTimeoutMs ?? 60_000;

  const apiServerBin = await ensureKubeApiServer(logger);
  const etcdBin = findEtcd();
  const tBinaries = Date.now();

  let dataDir: string;
  if (opts.dataDir !== undefined) {
    if (!isEmptyDir(opts.dataDir)) {
      throw new KubeTestError(
        KubeTestErrorCode.INVALID_ARGUMENT,
        `dataDir ${opts.dataDir} is not empty; stop() removes it, so it must be fresh`,
      );
    }
    mkdirSync(opts.dataDir, { recursive: true, mode: 0o700 });
    dataDir = opts.dataDir;
  } else {
    await cleanupStale(logger);
    mkdirSync(KUBETEST_TMP, { recursive: true });
    dataDir = mkdtempSync(join(KUBETEST_TMP, `${name}-${process.pid}-`));
  }

  let etcd: ManagedProcess | undefined;
  let apiServer: ManagedProcess | undefined;
  const abandon = async (): Promise<void> => {
    await apiServer?.stop(2_000);
    await etcd?.stop(2_000);
  };
  // Until an ApiServer owns them, the exit hook must still find these processes and the directory.
  const interim = {
    destroySync: (): void => {
      apiServer?.signal('SIGKILL');
      etcd?.signal('SIGKILL');
      if (opts.keepDataDir !== true) rmSync(dataDir, { recursive: true, force: true });
    },
  };
  registerForExit(interim);
  try {
    const pki = await createApiServerPki({ serviceIp, clusterDomain: CLUSTER_DOMAIN, extraAddresses: opts.extraAddresses ?? [] });
    const pkiDir = join(dataDir, 'pki');
    mkdirSync(pkiDir, { mode: 0o700 });
    const file = (n: string, content: string, mode = 0o600): string => {
      const p = join(pkiDir, n);
      writeFileSync(p, content, { mode });
      return p;
    };
    file('ca.crt', pki.caCertPem, 0o644);
    file('ca.key', pki.caKeyPem);
    const servingCert = file('apiserver.crt', pki.servingCertPem, 0o644);
    const servingKey = file('apiserver.key', pki.servingKeyPem);
    const saKey = file('sa.key', pki.serviceAccountKeyPem);
    const saPub = file('sa.pub', pki.serviceAccountPublicKeyPem, 0o644);
    const adminToken = newToken();
    const userTokens = new Map<string, string>();
    // Static token file: token,user,uid,"group1,group2" (kube-apiserver --token-auth-file).
    const lines = [`${adminToken},${ADMIN_USER},${ADMIN_USER},system:masters`];
    for (const u of opts.users ?? []) {
      if (u.name === ADMIN_USER || userTokens.has(u.name))
        throw new KubeTestError(KubeTestErrorCode.INVALID_ARGUMENT, `duplicate user ${u.name}`);
      const token = newToken();
      userTokens.set(u.name, token);
      lines.push(`${token},${csvField(u.name)},${csvField(u.uid ?? u.name)},${csvField((u.groups ?? []).join(','))}`);
    }
    const tokenFile = file('tokens.csv', `${lines.join('\n')}\n`);
    const tPki = Date.now();

    let ports: ApiServerPorts | undefined;
    let tEtcd = tPki;
    let url = '';
    let kubeConfig: KubeConfig | undefined;
    // A port found free can be taken by someone else before our program binds it; then start again on new ports.
    for (let attempt = 1; ; attempt++) {
      const [apiPort, clientPort, peerPort] = await freePorts(3);
      ports = { apiServer: apiPort ?? 0, etcdClient: clientPort ?? 0, etcdPeer: peerPort ?? 0 };
      const etcdDir = join(dataDir, `etcd-${attempt}`);
      const etcdUrl = `http://127.0.0.1:${ports.etcdClient}`;
      const peerUrl = `http://127.0.0.1:${ports.etcdPeer}`;
      etcd = await ManagedProcess.start(
        'etcd',
        etcdBin,
        [
          `--name=${name}`,
          `--data-dir=${etcdDir}`,
          `--listen-client-urls=${etcdUrl}`,
          `--advertise-client-urls=${etcdUrl}`,
          // A single member still needs a peer listener; on its own free port so runs never collide on 2380.
          `--listen-peer-urls=${peerUrl}`,
          `--initial-advertise-peer-urls=${peerUrl}`,
          `--initial-cluster=${name}=${peerUrl}`,
          '--initial-cluster-state=new',
          `--initial-cluster-token=${name}-${process.pid}-${attempt}`,
          // Test data is thrown away: skipping fsync makes writes (every object create) several times faster.
          '--unsafe-no-fsync',
          // A lone member on loopback: elect itself in ~100 ms instead of the default ~1 s.
          '--heartbeat-interval=10',
          '--election-timeout=100',
          '--logger=zap',
          '--log-outputs=stderr',
          '--log-level=warn',
        ],
        { logPath: join(dataDir, 'etcd.log') },
      );
      const etcdReady = await waitForReady(etcd, () => etcdHealthy(ports?.etcdClient ?? 0), startTimeout);
      if (etcdReady === 'exited' && PORT_IN_USE.test(etcd.logTail()) && attempt < 3) {
        logger.warn({ attempt }, 'etcd port taken meanwhile; retrying on other ports');
        continue;
      }
      if (etcdReady !== 'ready') throw startFailure(etcd, etcdReady, startTimeout);
      tEtcd = Date.now();

      url = `https://127.0.0.1:${ports.apiServer}`;
      const args = [
        `--etcd-servers=${etcdUrl}`,
        `--bind-address=${(opts.extraAddresses ?? []).length > 0 ? '0.0.0.0' : '127.0.0.1'}`,
        `--secure-port=${ports.apiServer}`,
        '--advertise-address=127.0.0.1',
        // The lease endpoint reconciler would publish the advertise address as the `kubernetes` Service's endpoint,
        // and Endpoints reject loopback addresses; the Service itself (ClusterIP) is still created.
        '--endpoint-reconciler-type=none',
        `--tls-cert-file=${servingCert}`,
        `--tls-private-key-file=${servingKey}`,
        `--token-auth-file=${tokenFile}`,
        // Node authorizes kubelet identities (system:node:<name>) for their own pods; RBAC everything else. No
        // AlwaysAllow: a ServiceAccount without a binding must be forbidden, as in a real cluster.
        '--authorization-mode=Node,RBAC',
        `--service-account-issuer=${SERVICE_ACCOUNT_ISSUER}`,
        `--service-account-key-file=${saPub}`,
        `--service-account-signing-key-file=${saKey}`,
        // Only the issuer: tokens minted for another audience (istio-ca) must not work against the API itself.
        `--api-audiences=${SERVICE_ACCOUNT_ISSUER}`,
        `--service-cluster-ip-range=${serviceCidr}`,
        // The chart's ztunnel and CNI DaemonSets are privileged; without this even a dry-run apply rejects them.
        '--allow-privileged=true',
        '--profiling=false',
        // No SIGTERM grace: tests want the server gone, not drained.
        '--shutdown-delay-duration=0s',
        ...(opts.extraApiServerArgs ?? []),
      ];
      apiServer = await ManagedProcess.start('kube-apiserver', apiServerBin, args, { logPath: join(dataDir, 'kube-apiserver.log') });
      kubeConfig = kubeConfigFor(name, url, pki.caCertPem, ADMIN_USER, adminToken);
      const kc = kubeConfig;
      const apiReady = await waitForReady(
        apiServer,
        async () => {
          try {
            return (await kubeRequest(kc, { method: 'GET', path: '/readyz', timeoutMs: 2_000 })).status === 200;
          } catch {
            return false;
          }
        },
        startTimeout,
      );
      if (apiReady === 'exited' && PORT_IN_USE.test(apiServer.logTail()) && attempt < 3) {
        logger.warn({ attempt }, 'kube-apiserver port taken meanwhile; retrying on other ports');
        await abandon();
        continue;
      }
      if (apiReady !== 'ready') throw startFailure(apiServer, apiReady, startTimeout);
      break;
    }
    const tApi = Date.now();

    const kubeconfigPath = join(dataDir, 'admin.kubeconfig');
    writeFileSync(kubeconfigPath, kubeconfigYaml(name, url, pki.caCertPem, ADMIN_USER, adminToken), { mode: 0o600 });
    // The returned KubeConfig is read from the file, so the file is known to work with @kubernetes/client-node.
    const fromFile = new KubeConfig();
    fromFile.loadFromFile(kubeconfigPath);

    // What kube-controller-manager's serviceaccount controller would do; Pods without serviceAccountName use
    // `default`, and ServiceAccount admission rejects a Pod whose ServiceAccount does not exist.
    for (const ns of SYSTEM_NAMESPACES) {
      await waitFor(() => createServiceAccount(fromFile, ns, 'default'), startTimeout, {
        description: `namespace ${ns} (made by kube-apiserver at startup)`,
      });
    }
    const tBoot = Date.now();

    const startup: StartupTimings = {
      binariesMs: tBinaries - t0,
      pkiMs: tPki - tBinaries,
      etcdMs: tEtcd - tPki,
      apiServerMs: tApi - tEtcd,
      bootstrapMs: tBoot - tApi,
      totalMs: tBoot - t0,
    };
    if (ports === undefined || apiServer === undefined || etcd === undefined || kubeConfig === undefined) {
      throw new KubeTestError(KubeTestErrorCode.START_FAILED, 'internal: startup finished without processes'); // unreachable
    }
    const server = new ApiServer({
      name,
      url,
      kubeconfigPath,
      caPem: pki.caCertPem,
      adminToken,
      kubeConfig: fromFile,
      userTokens,
      dataDir,
      etcdUrl: `http://127.0.0.1:${ports.etcdClient}`,
      ports,
      serviceCidr,
      startup,
      apiServer,
      etcd,
      logger,
      keepDataDir: opts.keepDataDir === true,
    });
    unregisterForExit(interim);
    logger.info({ url, dataDir, ...startup }, 'test API server ready');
    return server;
  } catch (e) {
    await abandon();
    unregisterForExit(interim);
    if (opts.keepDataDir !== true) rmSync(dataDir, { recursive: true, force: true });
    throw e;
  }
}

/** Polls `ready` until true, the process exits, or the timeout passes. */
async function waitForReady(
  proc: ManagedProcess,
  ready: () => Promise<boolean>,
  timeoutMs: number,
): Promise<'ready' | 'exited' | 'timeout'> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!proc.alive) return 'exited';
    if (await ready()) return 'ready';
    if (!proc.alive) return 'exited';
    await new Promise((r) => setTimeout(r, 50));
  }
  return 'timeout';
}

function startFailure(proc: ManagedProcess, how: 'exited' | 'timeout', timeoutMs: number): KubeTestError {
  const exit = proc.exit;
  const what =
    how === 'exited'
      ? `exited (${exit?.signal ?? `code ${exit?.code ?? '?'}`}) before it was ready`
      : `was not ready within ${timeoutMs} ms`;
  return new KubeTestError(KubeTestErrorCode.START_FAILED, `${proc.name} ${what}; last lines of ${proc.logPath}:\n${proc.logTail(30)}`);
}
