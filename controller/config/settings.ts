/**
 * Every controller knob: a flag or an environment variable (istiod's name where it has one), its default and why.
 * Read once at start; nothing else in the controller reads process.env.
 */
import { parseArgs } from 'node:util';
import { MeshError } from '../../lib/errors.js';
import { DEFAULT_TRUST_DOMAIN } from '../../lib/identity/spiffe.js';

export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

export interface ControllerSettings {
  /** --kubeconfig or KUBECONFIG; unset = in-cluster (KUBERNETES_SERVICE_HOST). */
  readonly kubeconfig: string | undefined;
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
  /** PILOT_DEBOUNCE_MAX: longest a push waits under continuous churn. */
  readonly debounceMaxMs: number;
  /** Lease used to elect the one replica that writes. */
  readonly leaseName: string;
}

export class ControllerSettingsError extends MeshError {}

function duration(name: string, v: string | undefined, dfltMs: number): number {
  if (v === undefined || v === '') return dfltMs;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(v.trim());
  if (!m) throw new ControllerSettingsError('CONFIG_BAD_ENV', `${name}="${v}" is not a duration like 100ms, 10s`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] ?? 's'] ?? 1000;
  return Math.round(Number(m[1]) * unit);
}

function address(name: string, v: string | undefined, dflt: ListenAddress): ListenAddress {
  if (v === undefined || v === '') return dflt;
  const m = /^(?:\[?([^\]]*)\]?)?:(\d+)$/.exec(v) ?? /^()(\d+)$/.exec(v);
  if (!m) throw new ControllerSettingsError('CONFIG_BAD_ENV', `${name}="${v}" must be :port or host:port`);
  return { host: m[1] || dflt.host, port: Number(m[2]) };
}

const list = (v: string | undefined, dflt: readonly string[]): readonly string[] =>
  v === undefined
    ? dflt
    : v
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s !== '');

export function loadControllerSettings(
  argv: readonly string[] = process.argv.slice(2),
  env: Readonly<Record<string, string | undefined>> = process.env,
): ControllerSettings {
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
  const systemNamespace = env.POD_NAMESPACE || 'istio-system';
  const clusterDomain = env.CLUSTER_DOMAIN || 'cluster.local';
  return Object.freeze({
    kubeconfig: values.kubeconfig ?? (env.KUBECONFIG || undefined),
    systemNamespace,
    podName: env.POD_NAME || `controller-${process.pid}`,
    rootNamespace: env.ROOT_NAMESPACE || systemNamespace,
    trustDomain: env.TRUST_DOMAIN || DEFAULT_TRUST_DOMAIN,
    clusterId: env.CLUSTER_ID || 'Kubernetes',
    clusterDomain,
    secureGrpcAddress: address('--secure-grpc-addr', values['secure-grpc-addr'] ?? env.SECURE_GRPC_ADDR, { host: '0.0.0.0', port: 15012 }),
    monitoringAddress: address('--monitoring-addr', values['monitoring-addr'] ?? env.MONITORING_ADDR, { host: '0.0.0.0', port: 15014 }),
    httpAddress: address('--http-addr', values['http-addr'] ?? env.HTTP_ADDR, { host: '0.0.0.0', port: 8080 }),
    servingDnsNames: list(env.ISTIOD_SERVING_SANS, [
      `istiod.${systemNamespace}.svc`,
      `istiod.${systemNamespace}.svc.${clusterDomain}`,
      `istiod.${systemNamespace}`,
      'istiod',
    ]),
    trustedNodeAccounts: list(env.CA_TRUSTED_NODE_ACCOUNTS, [`${systemNamespace}/ztunnel`]),
    cacertsDir: env.CACERTS_DIR || undefined,
    debounceAfterMs: duration('PILOT_DEBOUNCE_AFTER', env.PILOT_DEBOUNCE_AFTER, 100),
    debounceMaxMs: duration('PILOT_DEBOUNCE_MAX', env.PILOT_DEBOUNCE_MAX, 10_000),
    leaseName: env.LEADER_ELECTION_LEASE || 'istio-ambient-controller',
  });
}
