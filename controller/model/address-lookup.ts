/**
 * On-demand workload discovery, as istiod answers it (pilot/pkg/serviceregistry/ambient/ambientindex.go `Lookup`,
 * `AdditionalPodSubscriptions`; pilot/pkg/xds/workload.go `generateDeltasOndemand`). ztunnel with XDS_ON_DEMAND
 * subscribes to Address resources by name, and a name is resolved, in this order, as:
 *
 *   1. a workload uid                      → that workload
 *   2. `<network>/<ip>` of a workload      → the workloads with that address (`/<ip>` on the default network)
 *   3. a service `<ns>/<hostname>`, or     → the service and every workload whose Workload.services lists it
 *      `<network>/<ip>` of a service VIP
 *
 * and matches nothing otherwise (the server then lists the name in removed_resources). The answer carries the
 * resources under their own names (uid, `<ns>/<hostname>`) with their addresses as aliases. Besides what it asks
 * for, a ztunnel gets every workload on its node without asking, so its own pods are known before traffic flows.
 */
import { canonicalIp } from '../../lib/net/ip.js';
import { addressMeta } from './collections/resources.js';
import type { ServiceCollection } from './collections/services.js';
import type { WorkloadCollection } from './collections/workloads.js';

export interface AddressLookup {
  /** The resource names `name` stands for; empty when it matches nothing. */
  resolve(name: string): readonly string[];
  /** The workloads of the proxy's node (istiod's node-local subscriptions). */
  unasked(): readonly string[];
  /** `<network>/<ip>` of the named workload's or service's addresses. */
  aliases(name: string): readonly string[];
}

const NONE: readonly string[] = Object.freeze([]);

/** `<network>/<ip>` with the IP in canonical form, or undefined when the part after the first '/' is no IP. */
function addressKey(name: string): string | undefined {
  const slash = name.indexOf('/');
  if (slash < 0) return undefined;
  const ip = canonicalIp(name.slice(slash + 1));
  return ip === undefined ? undefined : `${name.slice(0, slash)}/${ip}`;
}

export function addressLookup(
  workloadCollection: WorkloadCollection,
  serviceCollection: ServiceCollection,
  nodeName: string | undefined,
): AddressLookup {
  const workloads = workloadCollection.indexes();
  const services = serviceCollection.indexes();
  const serviceWithWorkloads = (serviceName: string): readonly string[] => [
    serviceName,
    ...workloads.byService.lookup(serviceName).map((w) => w.name),
  ];
  return {
    resolve(name) {
      if (workloads.byName.lookup(name).length > 0) return [name];
      const addr = addressKey(name);
      if (addr !== undefined) {
        const byIp = workloads.byAddress.lookup(addr);
        if (byIp.length > 0) return byIp.map((w) => w.name);
      }
      if (services.byName.lookup(name).length > 0) return serviceWithWorkloads(name);
      const vip = addr === undefined ? undefined : services.byAddress.lookup(addr)[0];
      return vip === undefined ? NONE : serviceWithWorkloads(vip.name);
    },
    unasked() {
      return nodeName === undefined || nodeName === '' ? NONE : workloads.byNode.lookup(nodeName).map((w) => w.name);
    },
    aliases(name) {
      const r = workloads.byName.lookup(name)[0] ?? services.byName.lookup(name)[0];
      return r === undefined ? NONE : addressMeta(r).addresses;
    },
  };
}
