/** The node agent's errors: stable codes (CNI_AGENT_*) surfaced to the plugin as the HTTP error body. */
import { MeshError } from '../../lib/errors.js';

export const CniAgentErrorCode = {
  /** The plugin's request is not a valid CniPodEvent (HTTP 400). */
  BAD_EVENT: 'CNI_AGENT_BAD_EVENT',
  /** An enrolled pod without K8S_POD_UID in CNI_ARGS (HTTP 400): the uid is ztunnel's key for the pod. */
  MISSING_UID: 'CNI_AGENT_MISSING_UID',
  /** The pod's network namespace could not be opened (HTTP 500). */
  NETNS_UNAVAILABLE: 'CNI_AGENT_NETNS_UNAVAILABLE',
  /** Installing the redirection in the pod failed (HTTP 500); the cause says which command. */
  RULES_FAILED: 'CNI_AGENT_RULES_FAILED',
  /**
   * The enrollment source could not decide about a pod (HTTP 500): the API server is unreachable or refused the
   * lookup. The plugin fails the ADD and the runtime retries it, as with Istio's agent.
   */
  ENROLLMENT_UNAVAILABLE: 'CNI_AGENT_ENROLLMENT_UNAVAILABLE',
  /** The Kubernetes enrollment source did not finish its first list of namespaces and pods in time (startup). */
  KUBE_SYNC_TIMEOUT: 'CNI_AGENT_KUBE_SYNC_TIMEOUT',
  /** A configuration value in the environment is invalid (startup). */
  BAD_CONFIG: 'CNI_AGENT_BAD_CONFIG',
  /** The agent is stopping (HTTP 503). */
  STOPPING: 'CNI_AGENT_STOPPING',
} as const;
export type CniAgentErrorCode = (typeof CniAgentErrorCode)[keyof typeof CniAgentErrorCode];

export class CniAgentError extends MeshError {
  declare readonly code: CniAgentErrorCode;

  constructor(code: CniAgentErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}
