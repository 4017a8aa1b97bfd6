/** The `baggage` header describing a workload, sent with every CONNECT and its answer (ztunnel src/baggage.rs). */
import { buildBaggage } from '../../lib/hbone/headers.js';
import type { Workload } from '../state/model.js';

export function baggageOf(w: Workload): string {
  return buildBaggage({
    clusterId: w.clusterId,
    namespace: w.namespace,
    workloadType: w.workloadType,
    workloadName: w.workloadName || w.name,
    canonicalName: w.canonicalName,
    canonicalRevision: w.canonicalRevision,
    region: w.locality?.region,
    zone: w.locality?.zone,
  });
}
