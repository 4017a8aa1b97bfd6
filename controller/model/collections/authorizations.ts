/**
 * AuthorizationPolicy → its conversion for ztunnel (../authorization.ts) → the Authorization resource, and the
 * status messages of all policies as one sorted list. The conversion is its own collection so that a policy
 * whose message changes but whose resource does not keeps its resource object (and version).
 */
import type { istio } from '../../../lib/proto/index.js';
import { makeResource, type XdsResource } from '../../../lib/xds/resource.js';
import type { DerivedCollection, DerivedSingleton, Runtime } from '../../krt/index.js';
import type { AuthorizationPolicyRecord } from '../../kube/records.js';
import { convertAuthorizationPolicy, policyResourceName } from '../authorization.js';
import type { ModelOptions } from '../options.js';
import type { WdsWarning } from '../snapshot.js';
import type { ClusterInputs } from './inputs.js';
import { encodeAuthorization, sameResource } from './resources.js';

export interface PolicyConversion {
  readonly namespace: string;
  readonly name: string;
  readonly authorization: istio.security.Authorization.$Properties | undefined;
  /** The status message (reason UnsupportedValue), if the policy is accepted with a caveat or not sent. */
  readonly message: string | undefined;
}

export interface AuthorizationCollections {
  /** By policy key (`<ns>/<name>`). */
  readonly conversions: DerivedCollection<AuthorizationPolicyRecord, PolicyConversion>;
  readonly resources: DerivedCollection<PolicyConversion, XdsResource>;
  /** Sorted by namespace, then name. */
  readonly warnings: DerivedSingleton<readonly WdsWarning[]>;
}

const byNamespaceThenName = (a: WdsWarning, b: WdsWarning): number =>
  a.namespace !== b.namespace ? (a.namespace < b.namespace ? -1 : 1) : a.name < b.name ? -1 : a.name > b.name ? 1 : 0;

export function authorizationCollections(rt: Runtime, inputs: ClusterInputs, opts: ModelOptions): AuthorizationCollections {
  const conversions = rt.collection('policyConversions', inputs.authorizationPolicies, (_ctx, policy): PolicyConversion | undefined => {
    const conv = convertAuthorizationPolicy(policy, opts);
    return { namespace: policy.namespace, name: policy.name, authorization: conv.authorization, message: conv.warnings[0] };
  });
  const resources = rt.collection(
    'authorizations',
    conversions,
    (_ctx, c) =>
      c.authorization === undefined
        ? undefined
        : makeResource(policyResourceName(c.namespace, c.name), encodeAuthorization(c.authorization)),
    { equals: sameResource },
  );
  const warnings = rt.singleton('policyWarnings', (ctx): readonly WdsWarning[] =>
    ctx
      .fetch(conversions, { where: (c) => c.message !== undefined })
      .map(
        (c): WdsWarning => ({
          kind: 'AuthorizationPolicy',
          namespace: c.namespace,
          name: c.name,
          reason: 'UnsupportedValue',
          message: c.message as string,
        }),
      )
      .sort(byNamespaceThenName),
  );
  return { conversions, resources, warnings };
}
