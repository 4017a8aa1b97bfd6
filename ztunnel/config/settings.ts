/**
 * Every ztunnel knob: an environment variable (Istio's name where Istio has one), its default and why.
 * Read once at start into a readonly record; nothing else in ztunnel reads process.env. The syntax of each type
 * (durations as Go writes them, sizes, addresses) is lib/config/env.ts's, the same in every program.
 */
import { type Env, EnvReader, type ListenAddress } from '../../lib/config/env.js';
import { MeshError } from '../../lib/errors.js';
import { DEFAULT_HBONE_CONFIG, type HboneConfig } from '../../lib/hbone/config.js';
import { DEFAULT_TRUST_DOMAIN } from '../../lib/identity/spiffe.js';
import { LOG_LEVELS, type LogLevel } from '../../lib/telemetry/logger.js';

export type { ListenAddress };

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
  /**
   * LOCALHOST_APP_TUNNEL: send PROXY-protocol app tunnels to localhost, so such an app (a waypoint) is only
   * reachable through ztunnel; the client travels in the PROXY header. Istio's default: true.
   */
  readonly localhostAppTunnel: boolean;
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
  /** LOG_LEVEL: trace|debug|info|warn|error|fatal|silent; the start level (admin POST /logging changes it). */
  readonly logLevel: LogLevel;
}

export class SettingsError extends MeshError {}

export function loadSettings(vars: Env = process.env): ZtunnelSettings {
  const env = new EnvReader(vars);
  // Istio writes addresses as URLs (https://istiod.istio-system.svc:15012); gRPC wants host:port.
  const hostPort = (v: string | undefined): string | undefined =>
    v
      ?.trim()
      .replace(/^[a-z]+:\/\//i, '')
      .replace(/\/$/, '') || undefined;
  const xds = hostPort(env.raw('XDS_ADDRESS'));
  const localXdsPath = env.optional('LOCAL_XDS_PATH');
  const fakeCa = env.bool('FAKE_CA', false);
  if (!xds && !localXdsPath) {
    throw new SettingsError(
      'CONFIG_NO_SOURCE',
      'set LOCAL_XDS_PATH (a local config file) or XDS_ADDRESS (a controller); ztunnel has no other way to learn workloads',
    );
  }
  // CA_ADDRESS="" is not "unset": as in ztunnel, it names no CA rather than falling back to XDS_ADDRESS.
  const caAddress = env.defined('CA_ADDRESS') ? hostPort(env.raw('CA_ADDRESS')) : xds;
  if (!fakeCa && !caAddress) {
    throw new SettingsError('CONFIG_NO_CA', 'no CA: set CA_ADDRESS or XDS_ADDRESS, or FAKE_CA=true to sign certificates locally');
  }
  const hbone: HboneConfig = Object.freeze({
    ...DEFAULT_HBONE_CONFIG,
    streamWindowBytes: env.size('HTTP2_STREAM_WINDOW_SIZE', DEFAULT_HBONE_CONFIG.streamWindowBytes),
    connectionWindowBytes: env.size('HTTP2_CONNECTION_WINDOW_SIZE', DEFAULT_HBONE_CONFIG.connectionWindowBytes),
    maxFrameBytes: env.size('HTTP2_FRAME_SIZE', DEFAULT_HBONE_CONFIG.maxFrameBytes),
    maxStreamsPerConnection: env.integer('POOL_MAX_STREAMS_PER_CONNECTION', DEFAULT_HBONE_CONFIG.maxStreamsPerConnection, 1, 10_000),
    poolIdleReleaseMs: env.durationMs('POOL_UNUSED_RELEASE_TIMEOUT', DEFAULT_HBONE_CONFIG.poolIdleReleaseMs),
  });
  const xdsRootCa = env.string('XDS_ROOT_CA', '/var/run/secrets/istio/root-cert.pem');
  const altXdsHostname = env.optional('ALT_XDS_HOSTNAME');
  return Object.freeze({
    localXdsPath,
    xdsAddress: xds,
    caAddress,
    fakeCa,
    fakeCaDir: env.optional('FAKE_CA_DIR'),
    xdsRootCa,
    caRootCa: env.string('CA_ROOT_CA', xdsRootCa),
    altXdsHostname,
    altCaHostname: env.optional('ALT_CA_HOSTNAME') ?? altXdsHostname,
    authTokenPath: env.string('AUTH_TOKEN', '/var/run/secrets/tokens/istio-token'),
    nodeName: env.string('NODE_NAME', ''),
    podName: env.string('POD_NAME', ''),
    podNamespace: env.string('POD_NAMESPACE', ''),
    instanceIp: env.string('INSTANCE_IP', ''),
    clusterId: env.string('CLUSTER_ID', env.string('ISTIO_META_CLUSTER_ID', 'Kubernetes')),
    trustDomain: env.string('TRUST_DOMAIN', DEFAULT_TRUST_DOMAIN),
    network: env.string('NETWORK', ''),
    inpodUds: env.string('INPOD_UDS', '/var/run/ztunnel/ztunnel.sock'),
    inpodEnabled: env.bool('INPOD_ENABLED', true),
    packetMark: env.integer('PACKET_MARK', 1337, 1, 0xffffffff),
    enableOrigSrc: env.bool('ENABLE_ORIG_SRC', true),
    localhostAppTunnel: env.bool('LOCALHOST_APP_TUNNEL', true),
    adminAddress: env.address('ZTUNNEL_ADMIN_ADDRESS', { host: '127.0.0.1', port: 15000 }),
    readinessAddress: env.address('ZTUNNEL_READINESS_ADDRESS', { host: '0.0.0.0', port: 15021 }),
    statsAddress: env.address('ZTUNNEL_STATS_ADDRESS', { host: '0.0.0.0', port: 15020 }),
    workerThreads: env.integer('ZTUNNEL_WORKER_THREADS', 1, 1, 64),
    secretTtlSeconds: Math.round(env.durationMs('SECRET_TTL', 24 * 3_600_000) / 1000),
    terminationDeadlineMs: env.durationMs('CONNECTION_TERMINATION_DEADLINE', 5000),
    connectTimeoutMs: 10_000,
    hbone,
    logLevel: env.oneOf('LOG_LEVEL', LOG_LEVELS, 'info'),
  });
}
