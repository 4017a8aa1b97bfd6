/**
 * Errors of the project's own Kubernetes API calls (lib/kube/rest.ts): a KubeApiError carries the server's Status,
 * so callers test `status.code` / `status.reason` instead of parsing messages.
 */
import { MeshError } from '../errors.js';

export const KubeErrorCode = {
  /** The API server answered with an error Status (see KubeApiError.status). */
  API_ERROR: 'KUBE_API_ERROR',
  /** The KubeConfig has no current cluster to talk to. */
  NO_CLUSTER: 'KUBE_NO_CLUSTER',
  /** The API server did not answer in time. */
  TIMEOUT: 'KUBE_REQUEST_TIMEOUT',
  /** A list or watch failed; logged once per outage while the informer retries (lib/kube/informer.ts). */
  WATCH_FAILED: 'KUBE_WATCH_FAILED',
} as const;
export type KubeErrorCode = (typeof KubeErrorCode)[keyof typeof KubeErrorCode];

/** The parts of a Kubernetes `Status` object a caller looks at. */
export interface KubeStatus {
  /** HTTP status code (403, 404, 409, 422, ...). */
  readonly code: number;
  /** `Forbidden`, `NotFound`, `AlreadyExists`, `Conflict`, `Invalid`, ... ('' when the body was not a Status). */
  readonly reason: string;
  /** The server's human-readable message (for `Invalid`, each failing field and its validation message). */
  readonly message: string;
}

export class KubeError extends MeshError {
  declare readonly code: KubeErrorCode;

  constructor(code: KubeErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** A request the API server refused; `status` is its answer. */
export class KubeApiError extends KubeError {
  readonly status: KubeStatus;

  constructor(what: string, status: KubeStatus, options?: { cause?: unknown }) {
    super(KubeErrorCode.API_ERROR, `${what}: ${status.code} ${status.reason}: ${status.message}`, options);
    this.status = status;
  }
}
