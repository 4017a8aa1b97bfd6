/**
 * Who is calling: a Kubernetes service-account token checked with the TokenReview API (audience istio-ca),
 * converted at the edge into a small readonly record. Bound tokens (TokenRequest with a pod) also tell the pod
 * and, on recent Kubernetes, the node.
 */
import { AuthenticationV1Api, type KubeConfig } from '@kubernetes/client-node';

export interface ReviewedToken {
  readonly authenticated: boolean;
  /** Why not, when not authenticated. */
  readonly error: string | undefined;
  readonly username: string;
  /** From `system:serviceaccount:<namespace>:<name>`. */
  readonly serviceAccount: { readonly namespace: string; readonly name: string } | undefined;
  /** From the extra info of a pod-bound token. */
  readonly podName: string | undefined;
  readonly podUid: string | undefined;
  readonly nodeName: string | undefined;
}

export interface TokenReviewer {
  review(token: string, audiences: readonly string[]): Promise<ReviewedToken>;
}

const SA_PREFIX = 'system:serviceaccount:';

export function parseServiceAccountUsername(username: string): { namespace: string; name: string } | undefined {
  if (!username.startsWith(SA_PREFIX)) return undefined;
  const [namespace, name, ...rest] = username.slice(SA_PREFIX.length).split(':');
  return namespace && name && rest.length === 0 ? { namespace, name } : undefined;
}

export class KubeTokenReviewer implements TokenReviewer {
  readonly #api: AuthenticationV1Api;

  constructor(kc: KubeConfig) {
    this.#api = kc.makeApiClient(AuthenticationV1Api);
  }

  async review(token: string, audiences: readonly string[]): Promise<ReviewedToken> {
    const res = await this.#api.createTokenReview({
      body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, audiences: [...audiences] } },
    });
    const status = res.status;
    const user = status?.user;
    const extra = user?.extra ?? {};
    const first = (k: string): string | undefined => extra[k]?.[0];
    const username = user?.username ?? '';
    return {
      authenticated: status?.authenticated === true,
      error: status?.error,
      username,
      serviceAccount: parseServiceAccountUsername(username),
      podName: first('authentication.kubernetes.io/pod-name'),
      podUid: first('authentication.kubernetes.io/pod-uid'),
      nodeName: first('authentication.kubernetes.io/node-name'),
    };
  }
}
