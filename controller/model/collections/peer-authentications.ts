/**
 * PeerAuthentication → the DENY policies ztunnel enforces instead (../peer-authentication.ts): one converted
 * policy per workload-selector PeerAuthentication with port-level settings, which reads the selector-less
 * policies of its namespace and of the root namespace, and the static STRICT policy, present while any
 * PeerAuthentication exists.
 */
import { makeResource, type XdsResource } from '../../../lib/xds/resource.js';
import type { DerivedCollection, DerivedSingleton, Runtime } from '../../krt/index.js';
import type { PeerAuthenticationRecord } from '../../kube/records.js';
import { policyResourceName } from '../authorization.js';
import type { ModelOptions } from '../options.js';
import { convertPeerAuthentication, namespacePolicy, staticStrictPolicy } from '../peer-authentication.js';
import type { ClusterInputs } from './inputs.js';
import { encodeAuthorization, sameResource } from './resources.js';

export interface PeerAuthenticationCollections {
  /** By PeerAuthentication key (`<ns>/<name>`); the resource is `<ns>/converted_peer_authentication_<name>`. */
  readonly converted: DerivedCollection<PeerAuthenticationRecord, XdsResource>;
  readonly staticStrict: DerivedSingleton<XdsResource>;
}

const selectorless = (p: PeerAuthenticationRecord): boolean => p.selector === undefined;

export function peerAuthenticationCollections(rt: Runtime, inputs: ClusterInputs, opts: ModelOptions): PeerAuthenticationCollections {
  const converted = rt.collection(
    'convertedPeerAuthentications',
    inputs.peerAuthentications,
    (ctx, pa) => {
      const root = opts.rootNamespace;
      // Only workload-selector policies with port-level settings outside the root namespace convert.
      if (pa.namespace === root || pa.selector === undefined || pa.portLevelMtls.length === 0) return undefined;
      const byNs = inputs.peerAuthenticationsByNamespace;
      const nsPolicy = namespacePolicy(ctx.fetchIndex(byNs, pa.namespace, { where: selectorless }), pa.namespace);
      const rootPolicy = namespacePolicy(ctx.fetchIndex(byNs, root, { where: selectorless }), root);
      const policy = convertPeerAuthentication(pa, nsPolicy, rootPolicy, root);
      return policy === undefined
        ? undefined
        : makeResource(policyResourceName(pa.namespace, policy.name ?? ''), encodeAuthorization(policy));
    },
    { equals: sameResource },
  );
  const staticStrict = rt.singleton(
    'staticStrictPolicy',
    (ctx) => {
      // Sent iff any PeerAuthentication exists; enforced only where a workload lists it.
      if (ctx.fetch(inputs.peerAuthentications).length === 0) return undefined;
      const policy = staticStrictPolicy(opts.rootNamespace);
      return makeResource(policyResourceName(opts.rootNamespace, policy.name ?? ''), encodeAuthorization(policy));
    },
    { equals: sameResource },
  );
  return { converted, staticStrict };
}
