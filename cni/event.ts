/**
 * The wire format between the mesh-cni plugin and the mesh-cni-agent: HTTP/1.1 over the agent's Unix socket
 * (network-config key `cni_event_address`, agent env CNI_EVENT_ADDRESS; default
 * /var/run/istio-cni/pluginevent.sock), as Istio's plugin does (POST /cmdadd, istio cni/pkg/constants).
 *
 *   POST /cmdadd   body CniPodEvent (command "ADD")   200 CniEventReply | 4xx/5xx CniEventError
 *   POST /cmddel   body CniPodEvent (command "DEL")   200 CniEventReply | 4xx/5xx CniEventError
 *
 * /cmddel is this project's addition: Istio's agent learns pod deletions from its Kubernetes informer. With the
 * static enrollment source (no API server) the plugin's DEL is the only signal; with the Kubernetes source a
 * deleted pod object takes the pod out of the mesh, and the DEL is still what makes the agent forget it.
 * Content-Type application/json, UTF-8.
 *
 * This module has no imports: the plugin runs once per pod and must start fast.
 */

export const CNI_EVENT_ADD_PATH = '/cmdadd';
export const CNI_EVENT_DEL_PATH = '/cmddel';
export const DEFAULT_CNI_EVENT_ADDRESS = '/var/run/istio-cni/pluginevent.sock';
/** Largest request body the agent reads. */
export const CNI_EVENT_MAX_BODY = 64 * 1024;

/** One CNI invocation as the agent needs it (from CNI_* env, CNI_ARGS and prevResult). */
export interface CniPodEvent {
  command: 'ADD' | 'DEL';
  /** CNI_CONTAINERID (the sandbox id). */
  containerId: string;
  /** CNI_NETNS, e.g. /var/run/netns/cni-1234 or /proc/<pid>/ns/net; may be '' on DEL (CNI spec). */
  netns: string;
  /** CNI_IFNAME. */
  ifName: string;
  /** CNI_ARGS K8S_POD_NAMESPACE / K8S_POD_NAME / K8S_POD_UID ('' when absent). */
  podNamespace: string;
  podName: string;
  podUid: string;
  /** The pod's addresses from prevResult.ips[].address, without prefix length. */
  ips: string[];
}

/** 200 answer. */
export interface CniEventReply {
  /** True when the pod is (now) in the mesh: rules applied, handed to ztunnel or queued for it. */
  enrolled: boolean;
  /** Human-readable outcome, logged by the plugin. */
  message: string;
}

/** Error answer (non-2xx). */
export interface CniEventError {
  /** Stable code, e.g. CNI_AGENT_BAD_EVENT. */
  code: string;
  error: string;
}

function str(o: Record<string, unknown>, key: string, allowEmpty: boolean): string {
  const v = o[key];
  if (typeof v !== 'string') throw new Error(`field "${key}" must be a string`);
  if (!allowEmpty && v === '') throw new Error(`field "${key}" must not be empty`);
  if (v.length > 4096) throw new Error(`field "${key}" is too long`);
  return v;
}

/** Validates untrusted JSON as a CniPodEvent; throws Error with the reason. */
export function parseCniPodEvent(value: unknown): CniPodEvent {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('the event must be a JSON object');
  const o = value as Record<string, unknown>;
  const command = o.command;
  if (command !== 'ADD' && command !== 'DEL') throw new Error('field "command" must be "ADD" or "DEL"');
  const ips = o.ips ?? [];
  if (!Array.isArray(ips) || ips.length > 64 || !ips.every((ip): ip is string => typeof ip === 'string' && ip.length <= 64)) {
    throw new Error('field "ips" must be an array of at most 64 address strings');
  }
  return {
    command,
    containerId: str(o, 'containerId', command === 'DEL'),
    netns: str(o, 'netns', command === 'DEL'),
    ifName: str(o, 'ifName', true),
    podNamespace: str(o, 'podNamespace', true),
    podName: str(o, 'podName', true),
    podUid: str(o, 'podUid', true),
    ips: [...ips],
  };
}
