/**
 * Every controller knob: a flag or an environment variable (istiod's name where it has one), its default and why.
 * Read once at start; nothing else in the controller reads process.env. The syntax of each type (durations as Go
 * writes them, addresses, lists) is lib/config/env.ts's, the same in every program.
 */
import { parseArgs } from 'node:util';
import { type Env, EnvReader, type ListenAddress, parseListenAddress } from '../../lib/config/env.js';
import { DEFAULT_TRUST_DOMAIN } from '../../lib/identity/spiffe.js';
import { LOG_LEVELS, type LogLevel } from '../../lib/telemetry/logger.js';
import { DEFAULT_DEBOUNCE_AFTER_MS, DEFAULT_DEBOUNCE_MAX_MS } from '../xds/config.js';

export type { ListenAddress };

export interface ControllerSettings {
  /** --kubeconfig or KUBECONFIG; unset = in-cluster (KUBERNETES_SERVICE_HOST). */
  readonly kubeconfig: string | undefined;
  /** KUBERNETES_SERVICE_HOST is set: running in a pod, whose service account is the credential. */
  readonly inCluster: boolean;
  /** POD_NAMESPACE: where the controller runs and keeps its Lease and CA secret (istio-system). */
  readonly systemNamespace: string;
  /** POD_NAME: this replica's name, its leader-election identity. */
  readonly podName: string;
  /** Mesh root namespace: policies here are GLOBAL (istiod: rootNamespace = istio-system). */
  readonly rootNamespace: string;
  readonly trustDomain: string;
  /** CLUSTER_ID: the cluster name in workload uids and telemetry. */
  readonly clusterId: string;
  /** Suffix of service hostnames (<name>.<ns>.svc.<domain>). */
  readonly clusterDomain: string;
  /** --secure-grpc-addr: xDS and the CA over TLS (istiod: 15012). */
  readonly secureGrpcAddress: ListenAddress;
  /** --monitoring-addr: Prometheus metrics (istiod: 15014). */
  readonly monitoringAddress: ListenAddress;
  /** --http-addr: debug endpoints incl. /debug/syncz (proxy-status) and /ready (istiod: 8080). */
  readonly httpAddress: ListenAddress;
  /** DNS names in the serving certificate of 15012 (istiod.<ns>.svc and friends). */
  readonly servingDnsNames: readonly string[];
  /** CA_TRUSTED_NODE_ACCOUNTS: "ns/sa" list allowed to impersonate pods on their node (ztunnel). */
  readonly trustedNodeAccounts: readonly string[];
  /** CACERTS_DIR: Istio's plugged-in CA files (ca-cert.pem, ca-key.pem, root-cert.pem, cert-chain.pem). */
  readonly cacertsDir: string | undefined;
  /** PILOT_DEBOUNCE_AFTER: quiet time before a push. */
  readonly debounceAfterMs: number;
  /** PILOT_DEBOUNCE_MAX: longest a push waits under continuous churn (never less than PILOT_DEBOUNCE_AFTER). */
  readonly debounceMaxMs: number;
  /** Lease used to elect the one replica that writes. */
  readonly leaseName: string;
  /** LOG_LEVEL: trace|debug|info|warn|error|fatal|silent. */
  readonly logLevel: LogLevel;
}

export function loadControllerSettings(argv: readonly string[] = process.argv.slice(2), vars: Env = process.env): ControllerSettings {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      kubeconfig: { type: 'string' },
      'secure-grpc-addr': { type: 'string' },
      'monitoring-addr': { type: 'string' },
      'http-addr': { type: 'string' },
    },
    strict: true,
  });
  const env = new EnvReader(vars);
  // A flag wins over its variable (SECURE_GRPC_ADDR, MONITORING_ADDR, HTTP_ADDR: ours, for the local mesh).
  const address = (flag: 'secure-grpc-addr' | 'monitoring-addr' | 'http-addr', variable: string, dflt: ListenAddress): ListenAddress => {
    const v = values[flag];
    return v === undefined ? env.address(variable, dflt) : parseListenAddress(`--${flag}`, v, dflt.host);
  };
  const systemNamespace = env.string('POD_NAMESPACE', 'istio-system');
  const clusterDomain = env.string('CLUSTER_DOMAIN', 'cluster.local');
  const debounceAfterMs = env.durationMs('PILOT_DEBOUNCE_AFTER', DEFAULT_DEBOUNCE_AFTER_MS);
  return Object.freeze({
    kubeconfig: values.kubeconfig ?? env.optional('KUBECONFIG'),
    inCluster: env.optional('KUBERNETES_SERVICE_HOST') !== undefined,
    systemNamespace,
    podName: env.string('POD_NAME', `controller-${process.pid}`),
    rootNamespace: env.string('ROOT_NAMESPACE', systemNamespace),
    trustDomain: env.string('TRUST_DOMAIN', DEFAULT_TRUST_DOMAIN),
    clusterId: env.string('CLUSTER_ID', 'Kubernetes'),
    clusterDomain,
    secureGrpcAddress: address('secure-grpc-addr', 'SECURE_GRPC_ADDR', { host: '0.0.0.0', port: 15012 }),
    monitoringAddress: address('monitoring-addr', 'MONITORING_ADDR', { host: '0.0.0.0', port: 15014 }),
    httpAddress: address('http-addr', 'HTTP_ADDR', { host: '0.0.0.0', port: 8080 }),
    servingDnsNames: env.list('ISTIOD_SERVING_SANS', [
      `istiod.${systemNamespace}.svc`,
      `istiod.${systemNamespace}.svc.${clusterDomain}`,
      `istiod.${systemNamespace}`,
      'istiod',
    ]),
    trustedNodeAccounts: env.list('CA_TRUSTED_NODE_ACCOUNTS', [`${systemNamespace}/ztunnel`]),
    cacertsDir: env.optional('CACERTS_DIR'),
    debounceAfterMs,
    debounceMaxMs: Math.max(env.durationMs('PILOT_DEBOUNCE_MAX', DEFAULT_DEBOUNCE_MAX_MS), debounceAfterMs),
    leaseName: env.string('LEADER_ELECTION_LEASE', 'istio-ambient-controller'),
    logLevel: env.oneOf('LOG_LEVEL', LOG_LEVELS, 'info'),
  });
}
