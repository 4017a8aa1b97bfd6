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
 *   LOG_LEVEL                trace|debug|info|warn|error|silent, default info (lib/telemetry/logger.ts)
 */
import { isIPv4 } from 'node:net';
import { dirname, join } from 'node:path';
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
}

/** Istio's default system namespace, where ztunnel runs; the agent's own namespace (POD_NAMESPACE) overrides it. */
export const DEFAULT_SYSTEM_NAMESPACE = 'istio-system';

/** Namespaces never enrolled (Istio's default excludeNamespaces). */
export const ALWAYS_EXCLUDED_NAMESPACES: ReadonlySet<string> = new Set(['kube-system']);

function list(value: string | undefined): Set<string> {
  return new Set(
    (value ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== ''),
  );
}

function bool(name: string, value: string | undefined, dflt: boolean): boolean {
  if (value === undefined || value.trim() === '') return dflt;
  const v = value.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(v)) return true;
  if (['0', 'false', 'no', 'off'].includes(v)) return false;
  throw new CniAgentError(CniAgentErrorCode.BAD_CONFIG, `${name} must be true or false, got "${value}"`);
}

export function loadAgentConfig(env: NodeJS.ProcessEnv = process.env): AgentConfig {
  const cniEventAddress = env.CNI_EVENT_ADDRESS?.trim() || DEFAULT_CNI_EVENT_ADDRESS;
  const probe = env.HOST_PROBE_SNAT_ADDRESS?.trim() || Inpod.defaultProbeSnatAddress;
  if (!isIPv4(probe)) {
    throw new CniAgentError(CniAgentErrorCode.BAD_CONFIG, `HOST_PROBE_SNAT_ADDRESS must be an IPv4 address, got "${probe}"`);
  }
  const excludedPods = list(env.AMBIENT_EXCLUDED_PODS);
  for (const p of excludedPods) {
    if (!/^[^/]+\/[^/]+$/.test(p)) {
      throw new CniAgentError(CniAgentErrorCode.BAD_CONFIG, `AMBIENT_EXCLUDED_PODS entries are namespace/name, got "${p}"`);
    }
  }
  const kubeconfigPath = env.KUBECONFIG?.trim() || undefined;
  const inCluster = (env.KUBERNETES_SERVICE_HOST?.trim() ?? '') !== '';
  const nodeName = env.NODE_NAME?.trim() ?? '';
  const mode = env.ENROLLMENT?.trim().toLowerCase() ?? '';
  let source: AgentConfig['enrollment'];
  if (mode === 'static' || mode === 'kubernetes') {
    source = mode;
  } else if (mode === '') {
    const listsGiven = env.AMBIENT_NAMESPACES !== undefined || env.AMBIENT_EXCLUDED_PODS !== undefined;
    source = !listsGiven && (kubeconfigPath !== undefined || inCluster) ? 'kubernetes' : 'static';
  } else {
    throw new CniAgentError(CniAgentErrorCode.BAD_CONFIG, `ENROLLMENT must be kubernetes or static, got "${env.ENROLLMENT ?? ''}"`);
  }
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
    ztunnelUdsAddress: env.ZTUNNEL_UDS_ADDRESS?.trim() || ZDS_DEFAULT_SOCKET_PATH,
    stateFile: join(dirname(cniEventAddress), 'pods.json'),
    ambientNamespaces: list(env.AMBIENT_NAMESPACES),
    excludedPods,
    dnsCapture: bool('DNS_CAPTURE', env.DNS_CAPTURE, false),
    probeSnatAddress: probe,
    enrollment: source,
    kubeconfigPath,
    inCluster,
    nodeName,
    systemNamespace: env.POD_NAMESPACE?.trim() || DEFAULT_SYSTEM_NAMESPACE,
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
