/**
 * mesh-cni-agent configuration from the environment (names after Istio's istio-cni agent where they exist).
 *
 *   CNI_EVENT_ADDRESS        plugin event socket, default /var/run/istio-cni/pluginevent.sock; the pod state
 *                            file pods.json is kept in the same directory
 *   ZTUNNEL_UDS_ADDRESS      ZDS socket ztunnel connects to, default /var/run/ztunnel/ztunnel.sock
 *   AMBIENT_NAMESPACES       comma list of namespaces whose pods are enrolled; "*" = all (kube-system never).
 *                            Stands in for the namespace label istio.io/dataplane-mode=ambient until the
 *                            Kubernetes watch (issue #4). Empty = no pod is enrolled.
 *   AMBIENT_EXCLUDED_PODS    comma list of "namespace/name" that opt out (the pod label istio.io/dataplane-mode=none)
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
}

/** Namespaces never enrolled (Istio's default excludeNamespaces). */
export const ALWAYS_EXCLUDED_NAMESPACES: ReadonlySet<string> = new Set(['kube-system']);

function list(value: string | undefined): Set<string> {
  return new Set((value ?? '').split(',').map((s) => s.trim()).filter((s) => s !== ''));
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
  return {
    cniEventAddress,
    ztunnelUdsAddress: env.ZTUNNEL_UDS_ADDRESS?.trim() || ZDS_DEFAULT_SOCKET_PATH,
    stateFile: join(dirname(cniEventAddress), 'pods.json'),
    ambientNamespaces: list(env.AMBIENT_NAMESPACES),
    excludedPods,
    dnsCapture: bool('DNS_CAPTURE', env.DNS_CAPTURE, false),
    probeSnatAddress: probe,
  };
}

/** Whether a pod is enrolled in ambient, and why (for logs and the plugin's answer). */
export function enrollment(cfg: AgentConfig, namespace: string, name: string): { enrolled: boolean; reason: string } {
  if (ALWAYS_EXCLUDED_NAMESPACES.has(namespace)) return { enrolled: false, reason: `namespace ${namespace} is never enrolled` };
  if (cfg.excludedPods.has(`${namespace}/${name}`)) return { enrolled: false, reason: 'pod opted out (AMBIENT_EXCLUDED_PODS)' };
  if (cfg.ambientNamespaces.has('*') || cfg.ambientNamespaces.has(namespace)) {
    return { enrolled: true, reason: `namespace ${namespace} is ambient` };
  }
  return { enrolled: false, reason: `namespace ${namespace} is not in AMBIENT_NAMESPACES` };
}
