/**
 * Plain JSON requests to the API server with a @kubernetes/client-node KubeConfig's credentials.
 *
 * Why not the client's typed APIs for everything: client-node 1.x serialises a request body through its model
 * classes, which keep only the fields its models know under their JavaScript names. A CustomResourceDefinition
 * parsed from YAML loses `x-kubernetes-validations`, `x-kubernetes-int-or-string`, `enum`, `default` and more on
 * the way out, and timestamps must be Date objects. Manifests, status writes and discovery therefore go through
 * here as JSON, exactly as written; tests and the controller still use client-node for everything else.
 *
 * Also converts client-node's ApiException (whose body is the server's Status as JSON text) into a KubeStatus,
 * so that callers test `status.code`/`reason`/`message` without touching the client's error type.
 */
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { URL } from 'node:url';
import type { KubeConfig } from '@kubernetes/client-node';
import { KubeApiError, KubeTestError, KubeTestErrorCode, type KubeStatus } from './errors.js';

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

export interface RestResponse {
  readonly status: number;
  /** The parsed JSON body (undefined when empty; the raw text when it is not JSON). */
  readonly body: unknown;
}

export interface RestRequest {
  readonly method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** Path and query, e.g. `/api/v1/namespaces/default/pods/x/status`. */
  readonly path: string;
  /** Sent as JSON. */
  readonly body?: unknown;
  /** Default application/json; patches name their kind (merge-patch+json, apply-patch+yaml, ...). */
  readonly contentType?: string;
  readonly timeoutMs?: number;
}

interface Connection {
  readonly server: URL;
  readonly options: RequestOptions;
}

// One TLS agent (and so keep-alive connections) per KubeConfig rather than one per request.
const connections = new WeakMap<KubeConfig, Promise<Connection>>();

function connectionOf(kc: KubeConfig): Promise<Connection> {
  let c = connections.get(kc);
  if (c === undefined) {
    c = (async () => {
      const cluster = kc.getCurrentCluster();
      if (cluster === null) throw new KubeTestError(KubeTestErrorCode.INVALID_ARGUMENT, 'the KubeConfig has no current cluster');
      const options: RequestOptions = {};
      await kc.applyToHTTPSOptions(options);
      return { server: new URL(cluster.server), options };
    })();
    connections.set(kc, c);
  }
  return c;
}

export async function kubeRequest(kc: KubeConfig, req: RestRequest): Promise<RestResponse> {
  const { server, options } = await connectionOf(kc);
  const url = new URL(req.path, server);
  const payload = req.body === undefined ? undefined : Buffer.from(JSON.stringify(req.body));
  const headers: Record<string, string> = { ...(options.headers as Record<string, string> | undefined), Accept: 'application/json' };
  if (payload !== undefined) {
    headers['Content-Type'] = req.contentType ?? 'application/json';
    headers['Content-Length'] = String(payload.length);
  }
  return new Promise((resolve, reject) => {
    const r = httpsRequest(url, { ...options, method: req.method, headers, timeout: req.timeoutMs ?? 30_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown;
        if (text !== '') {
          try {
            body = JSON.parse(text) as unknown;
          } catch {
            body = text;
          }
        }
        resolve({ status: res.statusCode ?? 0, body });
      });
    });
    r.on('timeout', () =>
      r.destroy(new KubeTestError(KubeTestErrorCode.TIMEOUT, `${req.method} ${url.pathname}: no answer in ${req.timeoutMs ?? 30_000} ms`)),
    );
    r.on('error', reject);
    r.end(payload);
  });
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A KubeStatus from an HTTP status and a body that is (usually) a metav1.Status. */
export function statusFromBody(code: number, body: unknown): KubeStatus {
  let parsed: unknown = body;
  if (typeof body === 'string') {
    try {
      parsed = JSON.parse(body) as unknown;
    } catch {
      return { code, reason: '', message: body };
    }
  }
  if (isRecord(parsed) && parsed.kind === 'Status') {
    return {
      code: typeof parsed.code === 'number' ? parsed.code : code,
      reason: typeof parsed.reason === 'string' ? parsed.reason : '',
      message: typeof parsed.message === 'string' ? parsed.message : '',
    };
  }
  return { code, reason: code === 401 ? 'Unauthorized' : '', message: parsed === undefined ? '' : JSON.stringify(parsed) };
}

/** Like kubeRequest, but a non-2xx answer throws KubeApiError and the body is returned. */
export async function kubeRequestOk(kc: KubeConfig, req: RestRequest): Promise<unknown> {
  const res = await kubeRequest(kc, req);
  if (res.status < 200 || res.status > 299) throw new KubeApiError(`${req.method} ${req.path}`, statusFromBody(res.status, res.body));
  return res.body;
}

/**
 * The Kubernetes Status carried by an error from client-node (ApiException: `code` and a body holding the Status
 * JSON) or from this library (KubeApiError); undefined for anything else (a network error, a bug).
 */
export function apiStatusOf(err: unknown): KubeStatus | undefined {
  if (err instanceof KubeApiError) return err.status;
  if (err instanceof Error && 'code' in err && typeof err.code === 'number' && 'body' in err) {
    return statusFromBody(err.code, err.body);
  }
  return undefined;
}

/** Narrows a parsed JSON body to a KubeObject (apiVersion, kind, metadata present), or throws. */
export function asKubeObject(v: unknown, what: string): KubeObject {
  if (isRecord(v) && typeof v.apiVersion === 'string' && typeof v.kind === 'string' && isRecord(v.metadata)) {
    return v as KubeObject;
  }
  throw new KubeTestError(KubeTestErrorCode.INVALID_ARGUMENT, `${what}: not a Kubernetes object (needs apiVersion, kind, metadata)`);
}

export { isRecord };
