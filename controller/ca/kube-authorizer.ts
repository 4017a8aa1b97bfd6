/**
 * The controller's CA authorization (istiod's KubeJWTAuthenticator + node authorizer):
 *  - every caller presents `authorization: Bearer <service-account token>` with audience istio-ca, checked by
 *    TokenReview; a plain caller may only receive its own identity;
 *  - `ImpersonatedIdentity` (a ztunnel asking for a pod on its node) is honoured only for callers in the trusted
 *    node accounts (CA_TRUSTED_NODE_ACCOUNTS, default istio-system/ztunnel), only with a pod-bound token, and only
 *    for the identity of a pod that runs on the caller's own node. Everything else is refused with the reason.
 */
import type { CaAuthorizer, CaRequestContext } from '../../lib/identity/ca-server.js';
import { CaError, CaErrorCode } from '../../lib/identity/errors.js';
import { type Identity, formatSpiffeId, makeIdentity } from '../../lib/identity/spiffe.js';
import type { TokenReviewer } from './token-review.js';

export const CA_AUDIENCE = 'istio-ca';

/** The pods the controller knows, for the node check (from its informer cache). */
export interface PodLocator {
  /** Node of a pod, by namespace and name. */
  nodeOf(namespace: string, name: string): string | undefined;
  /** Is a pod of this namespace and service account scheduled on `node`? */
  hasPodOnNode(node: string, namespace: string, serviceAccount: string): boolean;
}

export interface KubeCaAuthorizerOptions {
  readonly reviewer: TokenReviewer;
  readonly trustDomain: string;
  /** "namespace/serviceaccount" entries allowed to impersonate pods on their node. */
  readonly trustedNodeAccounts: readonly string[];
  readonly pods: PodLocator;
}

const unauthenticated = (message: string): CaError => new CaError(CaErrorCode.UNAUTHENTICATED, message);

function bearer(ctx: CaRequestContext): string | undefined {
  for (const v of ctx.metadata.authorization ?? []) {
    const m = /^Bearer\s+(\S+)$/i.exec(v.trim());
    if (m) return m[1];
  }
  return undefined;
}

export function kubeCaAuthorizer(opts: KubeCaAuthorizerOptions): CaAuthorizer {
  const trusted = new Set(opts.trustedNodeAccounts);
  return {
    async authorize(ctx: CaRequestContext): Promise<Identity> {
      const token = bearer(ctx);
      if (!token) throw unauthenticated('no "authorization: Bearer <token>" header: send the service-account token (audience istio-ca)');
      const review = await opts.reviewer.review(token, [CA_AUDIENCE]).catch((err: unknown) => {
        throw new CaError(CaErrorCode.UNAUTHENTICATED, `TokenReview failed: ${err instanceof Error ? err.message : String(err)}`, {
          cause: err,
        });
      });
      if (!review.authenticated)
        throw unauthenticated(`token rejected by the API server: ${review.error ?? 'not authenticated'} (is its audience ${CA_AUDIENCE}?)`);
      const sa = review.serviceAccount;
      if (!sa) throw unauthenticated(`"${review.username}" is not a service account; only workloads may get certificates`);
      const caller = makeIdentity(sa.namespace, sa.name, opts.trustDomain);
      const target = ctx.impersonatedIdentity;
      if (!target) return caller;

      // Impersonation: "request impersonation authentication failure" is istiod's wording for every refusal.
      if (!trusted.has(`${sa.namespace}/${sa.name}`)) {
        throw unauthenticated(
          `request impersonation authentication failure: ${formatSpiffeId(caller)} is not a trusted node account (${[...trusted].join(', ') || 'none configured'})`,
        );
      }
      if (target.trustDomain !== opts.trustDomain) {
        throw unauthenticated(
          `request impersonation authentication failure: trust domain of ${formatSpiffeId(target)} is not ${opts.trustDomain}`,
        );
      }
      const node = review.nodeName ?? (review.podName ? opts.pods.nodeOf(sa.namespace, review.podName) : undefined);
      if (!node) {
        throw unauthenticated(
          'request impersonation authentication failure: the token is not bound to a pod on a known node; use a pod-bound (projected) token',
        );
      }
      if (!opts.pods.hasPodOnNode(node, target.namespace, target.serviceAccount)) {
        throw unauthenticated(
          `request impersonation authentication failure: no pod with identity ${formatSpiffeId(target)} runs on node ${node}`,
        );
      }
      return target;
    },
  };
}
