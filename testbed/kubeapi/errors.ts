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
  /** The API server answered a request with an error Status (see KubeApiError). */
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

/** The parts of a Kubernetes `Status` object a test or a caller looks at. */
export interface KubeStatus {
  /** HTTP status code (403, 404, 409, 422, ...). */
  readonly code: number;
  /** `Forbidden`, `NotFound`, `AlreadyExists`, `Conflict`, `Invalid`, ... ('' when the body was not a Status). */
  readonly reason: string;
  /** The server's human-readable message (for `Invalid`, it lists each failing field and its validation message). */
  readonly message: string;
}

/** A request the API server refused; `status` is its answer. */
export class KubeApiError extends KubeTestError {
  readonly status: KubeStatus;

  constructor(what: string, status: KubeStatus, options?: { cause?: unknown }) {
    super(KubeTestErrorCode.API_ERROR, `${what}: ${status.code} ${status.reason}: ${status.message}`, options);
    this.status = status;
  }
}
