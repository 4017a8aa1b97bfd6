/**
 * mesh-cni-agent configuration from the environment (names after Istio's istio-cni agent where they exist).
 *
 *   CNI_EVENT_ADDRESS        plugin event socket, default /var/run/istio-cni/pluginevent.sock; the pod state
 *                            file pods.json is kept in the same directory
 *   ZTUNNEL_UDS_ADDRESS      ZDS socket ztunnel connects to, default /var/run/ztunnel/ztunnel.sock
 *   ENROLLMENT               which pods are in the mesh (enrollment.ts): "kubernetes" (Istio's labels, read from
 *                            the API server) or "static" (the two lists below). Default: static when
 *                            AMBIENT_NAMESPACES or AMBIENT_EXCLUDED_PODS is set (someone chose lists: the fake nodes
 *                            and the local mesh, which inherit the developer's environment and must not start
 *                            following a real cluster because KUBECONFIG happens to be set), else kubernetes when a
 *                            kubeconfig is available, else static.
 *   KUBECONFIG               kubeconfig file (one path) for the kubernetes source; without it, the in-cluster
 *   KUBERNETES_SERVICE_HOST  service account is used when KUBERNETES_SERVICE_HOST is set (running in a pod).
 *   NODE_NAME                this node (downward API spec.nodeName); required by the kubernetes source, which
 *                            watches only the pods scheduled here.
 *   POD_NAMESPACE            the agent's namespace, where ztunnel runs too (its pods are never enrolled); default
 *                            istio-system.
 *   AMBIENT_NAMESPACES       static source: comma list of namespaces whose pods are enrolled; "*" = all (kube-system
 *                            never). Stands in for the namespace label istio.io/dataplane-mode=ambient. Empty = no
 *                            pod is enrolled.
 *   AMBIENT_EXCLUDED_PODS    static source: comma list of "namespace/name" that opt out (the pod label
 *                            istio.io/dataplane-mode=none)
 *   DNS_CAPTURE              "true" redirects the pods' DNS (port 53) to ztunnel's 15053. Default false HERE
 *                            (Istio's default is true): this project's ztunnel has no DNS proxy on 15053 yet, so
 *                            capturing port 53 would break every pod's name resolution.
 *   HOST_PROBE_SNAT_ADDRESS  default 169.254.7.127 (kubelet probes are let through from it)
 *   PATH                     where nsenter, iptables-restore, iptables-save and ip are found (the commands run
 *                            with this PATH and nothing else of the agent's environment)
 *   LOG_LEVEL                trace|debug|info|warn|error|fatal|silent, default info
 *
 * The syntax of booleans and lists is lib/config/env.ts's, the same in every program. Every problem is
 * CNI_AGENT_BAD_CONFIG (with CONFIG_BAD_ENV as the cause when a value does not parse).
 */
import { isIPv4 } from 'node:net';
import { dirname, join } from 'node:path';
import { type Env, EnvError, EnvReader } from '../../lib/config/env.js';
import { LOG_LEVELS, type LogLevel } from '../../lib/telemetry/logger.js';
import { ZDS_DEFAULT_SOCKET_PATH } from '../../lib/zds/index.js';
import { DEFAULT_CNI_EVENT_ADDRESS } from '../event.js';
import { CniAgentError, CniAgentErrorCode } from './errors.js';
import { Inpod } from './iptables.js';

export interface AgentConfig {
  cniEventAddress: string;
  ztunnelUdsAddress: string;
  /** `<dir of cniEventAddress>/pods.json`. */
  stateFile: string;
  /** Enrolled namespaces; '*' in the set = all. */
  ambientNamespaces: ReadonlySet<string>;
  /** "namespace/name" keys. */
  excludedPods: ReadonlySet<string>;
  dnsCapture: boolean;
  probeSnatAddress: string;
  /** The enrollment source main.ts builds. */
  enrollment: 'static' | 'kubernetes';
  /** KUBECONFIG, if set. */
  kubeconfigPath: string | undefined;
  /** KUBERNETES_SERVICE_HOST is set: the in-cluster service account is usable. */
  inCluster: boolean;
  /** NODE_NAME ('' when unset; required with kubernetes enrollment). */
  nodeName: string;
  /** POD_NAMESPACE or istio-system. */
  systemNamespace: string;
  /** PATH, where the programs run in pods (nsenter, iptables-restore, ip) are looked up. */
  commandPath: string;
  /** LOG_LEVEL. */
  logLevel: LogLevel;
}

/** PATH when the agent has none (a bare container): where Debian puts iptables, ip and nsenter. */
export const DEFAULT_COMMAND_PATH = '/usr/sbin:/usr/bin:/sbin:/bin';

/** Istio's default system namespace, where ztunnel runs; the agent's own namespace (POD_NAMESPACE) overrides it. */
export const DEFAULT_SYSTEM_NAMESPACE = 'istio-system';

/** Namespaces never enrolled (Istio's default excludeNamespaces). */
export const ALWAYS_EXCLUDED_NAMESPACES: ReadonlySet<string> = new Set(['kube-system']);

export function loadAgentConfig(vars: Env = process.env): AgentConfig {
  try {
    return readAgentConfig(new EnvReader(vars));
  } catch (err) {
    // One code for every configuration problem of the agent; the unparsable variable's CONFIG_BAD_ENV is the cause.
    if (err instanceof EnvError) throw new CniAgentError(CniAgentErrorCode.BAD_CONFIG, err.message, { cause: err });
    throw err;
  }
}

function readAgentConfig(env: EnvReader): AgentConfig {
  const cniEventAddress = env.string('CNI_EVENT_ADDRESS', DEFAULT_CNI_EVENT_ADDRESS);
  const probe = env.string('HOST_PROBE_SNAT_ADDRESS', Inpod.defaultProbeSnatAddress);
  if (!isIPv4(probe)) {
    throw new CniAgentError(CniAgentErrorCode.BAD_CONFIG, `HOST_PROBE_SNAT_ADDRESS must be an IPv4 address, got "${probe}"`);
  }
  const excludedPods = new Set(env.list('AMBIENT_EXCLUDED_PODS', []));
  for (const p of excludedPods) {
    if (!/^[^/]+\/[^/]+$/.test(p)) {
      throw new CniAgentError(CniAgentErrorCode.BAD_CONFIG, `AMBIENT_EXCLUDED_PODS entries are namespace/name, got "${p}"`);
    }
  }
  const kubeconfigPath = env.optional('KUBECONFIG');
  const inCluster = env.optional('KUBERNETES_SERVICE_HOST') !== undefined;
  const nodeName = env.string('NODE_NAME', '');
  // Static when lists were chosen (even empty ones) or no kubeconfig is available: see the module comment.
  const listsGiven = env.defined('AMBIENT_NAMESPACES') || env.defined('AMBIENT_EXCLUDED_PODS');
  const inferred = !listsGiven && (kubeconfigPath !== undefined || inCluster) ? 'kubernetes' : 'static';
  const source = env.oneOf('ENROLLMENT', ['kubernetes', 'static'] as const, inferred);
  if (source === 'kubernetes') {
    if (kubeconfigPath === undefined && !inCluster) {
      throw new CniAgentError(
        CniAgentErrorCode.BAD_CONFIG,
        'ENROLLMENT=kubernetes needs a kubeconfig: set KUBECONFIG, or run in a pod (KUBERNETES_SERVICE_HOST)',
      );
    }
    if (nodeName === '') {
      throw new CniAgentError(
        CniAgentErrorCode.BAD_CONFIG,
        'kubernetes enrollment needs NODE_NAME (downward API fieldRef spec.nodeName); or set ENROLLMENT=static',
      );
    }
  }
  return {
    cniEventAddress,
    ztunnelUdsAddress: env.string('ZTUNNEL_UDS_ADDRESS', ZDS_DEFAULT_SOCKET_PATH),
    stateFile: join(dirname(cniEventAddress), 'pods.json'),
    ambientNamespaces: new Set(env.list('AMBIENT_NAMESPACES', [])),
    excludedPods,
    dnsCapture: env.bool('DNS_CAPTURE', false),
    probeSnatAddress: probe,
    enrollment: source,
    kubeconfigPath,
    inCluster,
    nodeName,
    systemNamespace: env.string('POD_NAMESPACE', DEFAULT_SYSTEM_NAMESPACE),
    commandPath: env.string('PATH', DEFAULT_COMMAND_PATH),
    logLevel: env.oneOf('LOG_LEVEL', LOG_LEVELS, 'info'),
  };
}

/** Whether a pod is enrolled in ambient, and why (for logs and the plugin's answer). */
export function enrollment(
  cfg: Pick<AgentConfig, 'ambientNamespaces' | 'excludedPods'>,
  namespace: string,
  name: string,
): { enrolled: boolean; reason: string } {
  if (ALWAYS_EXCLUDED_NAMESPACES.has(namespace)) return { enrolled: false, reason: `namespace ${namespace} is never enrolled` };
  if (cfg.excludedPods.has(`${namespace}/${name}`)) return { enrolled: false, reason: 'pod opted out (AMBIENT_EXCLUDED_PODS)' };
  if (cfg.ambientNamespaces.has('*') || cfg.ambientNamespaces.has(namespace)) {
    return { enrolled: true, reason: `namespace ${namespace} is ambient` };
  }
  return { enrolled: false, reason: `namespace ${namespace} is not in AMBIENT_NAMESPACES` };
}
