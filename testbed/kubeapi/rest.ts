/**
 * JSON requests with a KubeConfig's credentials, for manifests, status writes and discovery: the project's one raw
 * client (lib/kube/rest.ts, shared with the controller), plus the Kubernetes-object shapes the harness writes.
 * apiStatusOf() turns client-node's ApiException and KubeApiError alike into a KubeStatus, so that tests check
 * `status.code`/`reason`/`message` without touching the client's error type.
 */
import type { KubeRequest, KubeResponse } from '../../lib/kube/rest.js';
import { KubeTestError, KubeTestErrorCode } from './errors.js';

export { apiStatusOf, kubeRequest, kubeRequestOk, statusFromBody } from '../../lib/kube/rest.js';

/** A Kubernetes object as JSON: what manifests contain and what the server returns. */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: KubeObjectMeta;
  [field: string]: unknown;
}

export interface KubeObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  [field: string]: unknown;
}

export type RestRequest = KubeRequest;
export type RestResponse = KubeResponse;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Narrows a parsed JSON body to a KubeObject (apiVersion, kind, metadata present), or throws. */
export function asKubeObject(v: unknown, what: string): KubeObject {
  if (isRecord(v) && typeof v.apiVersion === 'string' && typeof v.kind === 'string' && isRecord(v.metadata)) {
    return v as KubeObject;
  }
  throw new KubeTestError(KubeTestErrorCode.INVALID_ARGUMENT, `${what}: not a Kubernetes object (needs apiVersion, kind, metadata)`);
}

export { isRecord };
