/**
 * Every ztunnel knob: an environment variable (Istio's name where Istio has one), its default and why.
 * Read once at start into a readonly record; nothing else in ztunnel reads process.env.
 */
import { MeshError } from '../../lib/errors.js';
import { DEFAULT_HBONE_CONFIG, type HboneConfig } from '../../lib/hbone/config.js';
import { DEFAULT_TRUST_DOMAIN } from '../../lib/identity/spiffe.js';

export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

export interface ZtunnelSettings {
  /** LOCAL_XDS_PATH: Istio local-config YAML (workloads, services, policies); reloaded when it changes. */
  readonly localXdsPath: string | undefined;
  /** XDS_ADDRESS: controller address; empty = no controller (local mode). */
  readonly xdsAddress: string | undefined;
  /** CA_ADDRESS: defaults to XDS_ADDRESS, as in Istio. */
  readonly caAddress: string | undefined;
  /** FAKE_CA=true: sign workload certificates in-process instead of asking a CA. */
  readonly fakeCa: boolean;
  /**
   * FAKE_CA_DIR (ours): a CA in Istio's plugged-in layout (ca-cert.pem, ca-key.pem, root-cert.pem) that the fake
   * CA signs with. ztunnels that should trust each other (several fake nodes) must share it; without it each
   * process makes its own root and only same-process traffic verifies.
   */
  readonly fakeCaDir: string | undefined;
  /** XDS_ROOT_CA: PEM root that the controller's serving certificate must chain to (ConfigMap istio-ca-root-cert). */
  readonly xdsRootCa: string;
  /** CA_ROOT_CA: the same for the CA; defaults to XDS_ROOT_CA. */
  readonly caRootCa: string;
  /** ALT_XDS_HOSTNAME / ALT_CA_HOSTNAME: the name to verify in the controller's certificate (e.g. when dialling an IP). */
  readonly altXdsHostname: string | undefined;
  readonly altCaHostname: string | undefined;
  /** AUTH_TOKEN: path of the service-account token (audience istio-ca) sent to the controller; re-read per call. */
  readonly authTokenPath: string;
  readonly nodeName: string;
  readonly podName: string;
  readonly podNamespace: string;
  readonly instanceIp: string;
  readonly clusterId: string;
  readonly trustDomain: string;
  readonly network: string;
  /** INPOD_UDS: the node agent's ZDS socket. */
  readonly inpodUds: string;
  /** INPOD_ENABLED (ours, default true): take pods from the node agent; false = no in-pod proxies (tests). */
  readonly inpodEnabled: boolean;
  /** PACKET_MARK: SO_MARK on every socket we make in a pod, so its rules let them pass (Istio CNI: 1337). */
  readonly packetMark: number;
  /** ENABLE_ORIG_SRC: connect to apps from the client's IP (IP_TRANSPARENT), so apps see who called. */
  readonly enableOrigSrc: boolean;
  readonly adminAddress: ListenAddress;
  readonly readinessAddress: ListenAddress;
  readonly statsAddress: ListenAddress;
  /** ZTUNNEL_WORKER_THREADS: data-plane worker threads. Default 1: fake nodes share a small machine. */
  readonly workerThreads: number;
  /** SECRET_TTL: requested workload certificate lifetime. */
  readonly secretTtlSeconds: number;
  /** CONNECTION_TERMINATION_DEADLINE: how long draining waits for connections before closing them. */
  readonly terminationDeadlineMs: number;
  /** Upstream TCP connect budget (app connect from inbound, passthrough). ztunnel: 10 s. */
  readonly connectTimeoutMs: number;
  readonly hbone: HboneConfig;
}

export class SettingsError extends MeshError {}

type Env = Readonly<Record<string, string | undefined>>;

function bool(env: Env, name: string, dflt: boolean): boolean {
  const v = env[name];
  if (v === undefined || v === '') return dflt;
  if (/^(true|1|yes)$/i.test(v)) return true;
  if (/^(false|0|no)$/i.test(v)) return false;
  throw new SettingsError('CONFIG_BAD_ENV', `${name}="${v}" is not a boolean (true/false)`);
}

function int(env: Env, name: string, dflt: number, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  const v = env[name];
  if (v === undefined || v === '') return dflt;
  const n = /^0x[0-9a-f]+$/i.test(v) ? Number.parseInt(v, 16) : Number(v);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new SettingsError('CONFIG_BAD_ENV', `${name}="${v}" must be an integer in [${min}, ${max}]`);
  return n;
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** "500ms", "5s", "10m", "24h" (or a bare number of seconds), as Istio's duration variables. */
export function parseDurationMs(name: string, v: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(v.trim());
  if (!m) throw new SettingsError('CONFIG_BAD_ENV', `${name}="${v}" is not a duration like 500ms, 5s, 10m, 24h`);
  return Math.round(Number(m[1]) * (UNIT_MS[m[2] ?? 's'] ?? 1000));
}

function duration(env: Env, name: string, dfltMs: number): number {
  const v = env[name];
  return v === undefined || v === '' ? dfltMs : parseDurationMs(name, v);
}

function size(env: Env, name: string, dflt: number): number {
  const v = env[name];
  if (v === undefined || v === '') return dflt;
  const m = /^(\d+)(Ki|Mi)?$/.exec(v);
  if (!m) throw new SettingsError('CONFIG_BAD_ENV', `${name}="${v}" is not a size like 4194304, 4096Ki or 4Mi`);
  return Number(m[1]) * (m[2] === 'Mi' ? 1 << 20 : m[2] === 'Ki' ? 1 << 10 : 1);
}

function address(env: Env, name: string, dflt: ListenAddress): ListenAddress {
  const v = env[name];
  if (v === undefined || v === '') return dflt;
  const m = /^(?:\[?([^\]]*)\]?:)?(\d+)$/.exec(v);
  if (!m) throw new SettingsError('CONFIG_BAD_ENV', `${name}="${v}" must be <port> or <host>:<port>`);
  return { host: m[1] || dflt.host, port: Number(m[2]) };
}

export function loadSettings(env: Env = process.env): ZtunnelSettings {
  // Istio writes addresses as URLs (https://istiod.istio-system.svc:15012); gRPC wants host:port.
  const hostPort = (v: string | undefined): string | undefined =>
    v
      ?.trim()
      .replace(/^[a-z]+:\/\//i, '')
      .replace(/\/$/, '') || undefined;
  const xds = env.XDS_ADDRESS === undefined ? undefined : hostPort(env.XDS_ADDRESS);
  const localXdsPath = env.LOCAL_XDS_PATH?.trim() || undefined;
  const fakeCa = bool(env, 'FAKE_CA', false);
  if (!xds && !localXdsPath) {
    throw new SettingsError(
      'CONFIG_NO_SOURCE',
      'set LOCAL_XDS_PATH (a local config file) or XDS_ADDRESS (a controller); ztunnel has no other way to learn workloads',
    );
  }
  const caAddress = env.CA_ADDRESS === undefined ? xds : hostPort(env.CA_ADDRESS);
  if (!fakeCa && !caAddress) {
    throw new SettingsError('CONFIG_NO_CA', 'no CA: set CA_ADDRESS or XDS_ADDRESS, or FAKE_CA=true to sign certificates locally');
  }
  const hbone: HboneConfig = Object.freeze({
    ...DEFAULT_HBONE_CONFIG,
    streamWindowBytes: size(env, 'HTTP2_STREAM_WINDOW_SIZE', DEFAULT_HBONE_CONFIG.streamWindowBytes),
    connectionWindowBytes: size(env, 'HTTP2_CONNECTION_WINDOW_SIZE', DEFAULT_HBONE_CONFIG.connectionWindowBytes),
    maxFrameBytes: size(env, 'HTTP2_FRAME_SIZE', DEFAULT_HBONE_CONFIG.maxFrameBytes),
    maxStreamsPerConnection: int(env, 'POOL_MAX_STREAMS_PER_CONNECTION', DEFAULT_HBONE_CONFIG.maxStreamsPerConnection, 1, 10_000),
    poolIdleReleaseMs: duration(env, 'POOL_UNUSED_RELEASE_TIMEOUT', DEFAULT_HBONE_CONFIG.poolIdleReleaseMs),
  });
  return Object.freeze({
    localXdsPath,
    xdsAddress: xds,
    caAddress,
    fakeCa,
    fakeCaDir: env.FAKE_CA_DIR?.trim() || undefined,
    xdsRootCa: env.XDS_ROOT_CA || '/var/run/secrets/istio/root-cert.pem',
    caRootCa: env.CA_ROOT_CA || env.XDS_ROOT_CA || '/var/run/secrets/istio/root-cert.pem',
    altXdsHostname: env.ALT_XDS_HOSTNAME || undefined,
    altCaHostname: env.ALT_CA_HOSTNAME || env.ALT_XDS_HOSTNAME || undefined,
    authTokenPath: env.AUTH_TOKEN || '/var/run/secrets/tokens/istio-token',
    nodeName: env.NODE_NAME ?? '',
    podName: env.POD_NAME ?? '',
    podNamespace: env.POD_NAMESPACE ?? '',
    instanceIp: env.INSTANCE_IP ?? '',
    clusterId: env.CLUSTER_ID ?? env.ISTIO_META_CLUSTER_ID ?? 'Kubernetes',
    trustDomain: env.TRUST_DOMAIN ?? DEFAULT_TRUST_DOMAIN,
    network: env.NETWORK ?? '',
    inpodUds: env.INPOD_UDS ?? '/var/run/ztunnel/ztunnel.sock',
    inpodEnabled: bool(env, 'INPOD_ENABLED', true),
    packetMark: int(env, 'PACKET_MARK', 1337, 1, 0xffffffff),
    enableOrigSrc: bool(env, 'ENABLE_ORIG_SRC', true),
    adminAddress: address(env, 'ZTUNNEL_ADMIN_ADDRESS', { host: '127.0.0.1', port: 15000 }),
    readinessAddress: address(env, 'ZTUNNEL_READINESS_ADDRESS', { host: '0.0.0.0', port: 15021 }),
    statsAddress: address(env, 'ZTUNNEL_STATS_ADDRESS', { host: '0.0.0.0', port: 15020 }),
    workerThreads: int(env, 'ZTUNNEL_WORKER_THREADS', 1, 1, 64),
    secretTtlSeconds: Math.round(duration(env, 'SECRET_TTL', 24 * 3_600_000) / 1000),
    terminationDeadlineMs: duration(env, 'CONNECTION_TERMINATION_DEADLINE', 5000),
    connectTimeoutMs: 10_000,
    hbone,
  });
}
