/**
 * Plain JSON requests to the API server with a @kubernetes/client-node KubeConfig's credentials: the one raw
 * client of the project, used by the controller (Leases) and the test harness (manifests, status writes).
 *
 * Why not the client's typed APIs for these: client-node 1.x serialises a request body through its model classes,
 * which keep only the fields its models know under their JavaScript names and write timestamps their own way. A
 * CustomResourceDefinition parsed from YAML loses `x-kubernetes-validations`, `enum`, `default` and more on the
 * way out, and a Lease's MicroTime goes out with three fractional digits where the API server wants six. Bodies
 * sent here go out exactly as written; everything else uses client-node.
 *
 * Credentials are applied per request, as client-node does (a rotated service-account token is picked up); the
 * agent client-node builds for the cluster is kept per KubeConfig, so its TLS sessions are resumed.
 */
import { type Agent as HttpAgent, request as httpRequest, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';
import { KubeApiError, KubeError, KubeErrorCode, type KubeStatus } from './errors.js';

export interface KubeRequest {
  readonly method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** Path and query, e.g. `/api/v1/namespaces/default/pods/x/status`. */
  readonly path: string;
  /** Sent as JSON. */
  readonly body?: unknown;
  /** Default application/json; patches name their kind (merge-patch+json, apply-patch+yaml, ...). */
  readonly contentType?: string;
  /** Default 30 s. */
  readonly timeoutMs?: number;
}

export interface KubeResponse {
  readonly status: number;
  /** The parsed JSON body (undefined when empty; the raw text when it is not JSON). */
  readonly body: unknown;
}

const DEFAULT_TIMEOUT_MS = 30_000;

// One agent per KubeConfig: what client-node would build per call, kept so that TLS sessions are reused.
const agents = new WeakMap<KubeConfig, HttpAgent>();

export async function kubeRequest(kc: KubeConfig, req: KubeRequest): Promise<KubeResponse> {
  const cluster = kc.getCurrentCluster();
  if (cluster === null) throw new KubeError(KubeErrorCode.NO_CLUSTER, 'the KubeConfig has no current cluster');
  const options: RequestOptions = {};
  await kc.applyToHTTPSOptions(options);
  let agent = agents.get(kc);
  if (agent === undefined && options.agent instanceof Object) {
    agent = options.agent as HttpAgent;
    agents.set(kc, agent);
  }
  const url = new URL(req.path, cluster.server);
  const payload = req.body === undefined ? undefined : Buffer.from(JSON.stringify(req.body));
  const headers: Record<string, string> = { ...(options.headers as Record<string, string> | undefined), Accept: 'application/json' };
  if (payload !== undefined) {
    headers['Content-Type'] = req.contentType ?? 'application/json';
    headers['Content-Length'] = String(payload.length);
  }
  const timeoutMs = req.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const send = url.protocol === 'http:' ? httpRequest : httpsRequest;
  return new Promise((resolve, reject) => {
    const r = send(url, { ...options, agent, method: req.method, headers, timeout: timeoutMs }, (res) => {
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
    r.on('timeout', () => r.destroy(new KubeError(KubeErrorCode.TIMEOUT, `${req.method} ${url.pathname}: no answer in ${timeoutMs} ms`)));
    r.on('error', reject);
    r.end(payload);
  });
}

/** Like kubeRequest, but a non-2xx answer throws KubeApiError and the body is returned. */
export async function kubeRequestOk(kc: KubeConfig, req: KubeRequest): Promise<unknown> {
  const res = await kubeRequest(kc, req);
  if (res.status < 200 || res.status > 299) throw new KubeApiError(`${req.method} ${req.path}`, statusFromBody(res.status, res.body));
  return res.body;
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

/**
 * The Kubernetes Status carried by an error from client-node (ApiException: `code` and a body holding the Status
 * JSON) or from this module (KubeApiError); undefined for anything else (a network error, a bug).
 */
export function apiStatusOf(err: unknown): KubeStatus | undefined {
  if (err instanceof KubeApiError) return err.status;
  if (err instanceof Error && 'code' in err && typeof err.code === 'number' && 'body' in err) {
    return statusFromBody(err.code, err.body);
  }
  return undefined;
}

/**
 * The HTTP status of a failed Kubernetes call, whatever raised it: KubeApiError, client-node's ApiException
 * (`code`), or its watch (an Error with `statusCode`); undefined for errors without one (network, bugs).
 */
export function httpStatusOf(err: unknown): number | undefined {
  if (err instanceof KubeApiError) return err.status.code;
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as { code?: unknown; statusCode?: unknown };
  if (typeof e.code === 'number') return e.code;
  if (typeof e.statusCode === 'number') return e.statusCode;
  return undefined;
}
