/**
 * The kubetest library's errors: a KubeTestError is a MeshError whose code is one of KubeTestErrorCode and whose
 * message says what failed and what to check next (a missing Go toolchain, a log tail of a process that died,
 * the API server's own Status message for a rejected request).
 */
import { MeshError } from '../../lib/errors.js';

export const KubeTestErrorCode = {
  /** kube-apiserver is not built and cannot be built here (no `go`, or the Go module proxy is unreachable). */
  BINARY_UNAVAILABLE: 'KUBETEST_BINARY_UNAVAILABLE',
  /** Building kube-apiserver started but failed; the build's last output lines are in the message. */
  BUILD_FAILED: 'KUBETEST_BUILD_FAILED',
  /** etcd (Debian package etcd-server) is not installed. */
  ETCD_MISSING: 'KUBETEST_ETCD_MISSING',
  /** etcd or kube-apiserver exited or never became ready; the message carries the tail of its log. */
  START_FAILED: 'KUBETEST_START_FAILED',
  /** A wait (readiness, waitFor, a CRD becoming Established) ran out of time. */
  TIMEOUT: 'KUBETEST_TIMEOUT',
  /** The server was stopped; nothing more can be done with it. */
  STOPPED: 'KUBETEST_STOPPED',
  /** An option, manifest or object was rejected before anything was sent. */
  INVALID_ARGUMENT: 'KUBETEST_INVALID_ARGUMENT',
  /** The API server answered without what the harness asked for (a TokenRequest without a token). */
  API_ERROR: 'KUBETEST_API_ERROR',
  /** Stopping left something behind (a process, a directory); the message lists what. */
  CLEANUP_FAILED: 'KUBETEST_CLEANUP_FAILED',
} as const;
export type KubeTestErrorCode = (typeof KubeTestErrorCode)[keyof typeof KubeTestErrorCode];

export class KubeTestError extends MeshError {
  declare readonly code: KubeTestErrorCode;

  constructor(code: KubeTestErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

// A refused request is lib/kube's KubeApiError (KUBE_API_ERROR), raised by the raw client the harness shares.
export { KubeApiError, type KubeStatus } from '../../lib/kube/errors.js';
