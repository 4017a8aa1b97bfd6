/** Service → service Address resource (the pure conversion is ../services.ts); it reads nothing else. */
import { makeResource, type XdsResource } from '../../../lib/xds/resource.js';
import type { DerivedCollection, Index, Runtime } from '../../krt/index.js';
import type { ServiceRecord } from '../../kube/records.js';
import type { ModelOptions } from '../options.js';
import { buildService, serviceResourceName } from '../services.js';
import type { ClusterInputs } from './inputs.js';
import { addressMeta, encodeAddress, sameResource } from './resources.js';

/** Service resources by what on-demand clients ask for (decoded from the resources, see resources.ts). */
export interface ServiceIndexes {
  readonly byName: Index<XdsResource>;
  readonly byAddress: Index<XdsResource>;
}

export interface ServiceCollection {
  /** Address resources named `<ns>/<hostname>`, by service key (`<ns>/<name>`). */
  readonly collection: DerivedCollection<ServiceRecord, XdsResource>;
  /** What on-demand lookups need; made on first use. */
  indexes(): ServiceIndexes;
}

export function serviceCollection(rt: Runtime, inputs: ClusterInputs, opts: ModelOptions): ServiceCollection {
  const collection = rt.collection(
    'serviceAddresses',
    inputs.services,
    (_ctx, svc) => {
      const s = buildService(svc, opts);
      return s === undefined
        ? undefined
        : makeResource(serviceResourceName(svc.namespace, s.hostname ?? ''), encodeAddress({ service: s }));
    },
    { equals: sameResource },
  );
  let indexes: ServiceIndexes | undefined;
  return {
    collection,
    indexes: () =>
      (indexes ??= {
        byName: collection.index('name', (r) => [r.name]),
        byAddress: collection.index('address', (r) => addressMeta(r).addresses),
      }),
  };
}
