/**
 * Outputs that are xDS resources: encoded once by the transform that makes them, and equal exactly when the
 * encoding is byte-identical. The collection then keeps the previous resource object, and with it its version,
 * so a rebuilt but unchanged resource is never pushed again.
 */
import { formatIp } from '../../../lib/net/ip.js';
import { istio } from '../../../lib/proto/index.js';
import type { XdsResource } from '../../../lib/xds/resource.js';
import { sameBytes } from '../../krt/index.js';

export const encodeAddress = (a: istio.workload.Address.$Properties): Uint8Array => istio.workload.Address.encode(a).finish();

export const encodeAuthorization = (a: istio.security.Authorization.$Properties): Uint8Array =>
  istio.security.Authorization.encode(a).finish();

export function sameResource(a: XdsResource, b: XdsResource): boolean {
  return a.name === b.name && sameBytes(a.body, b.body);
}

export function sameOptionalResource(a: XdsResource | undefined, b: XdsResource | undefined): boolean {
  return a === b || (a !== undefined && b !== undefined && sameResource(a, b));
}

/** What on-demand lookups need of an Address resource. */
export interface AddressMeta {
  /** `<network>/<ip>` of every address (a workload's IPs, a service's VIPs): on-demand names and aliases. */
  readonly addresses: readonly string[];
  /** A workload's node ("" for services). */
  readonly node: string;
  /** The keys of a workload's Workload.services (`<ns>/<hostname>`). */
  readonly services: readonly string[];
}

// Decoded only for on-demand clients, and once per resource object: most meshes never pay for it.
const metas = new WeakMap<XdsResource, AddressMeta>();

export function addressMeta(r: XdsResource): AddressMeta {
  let m = metas.get(r);
  if (m !== undefined) return m;
  const a = istio.workload.Address.decode(r.body);
  if (a.workload) {
    // Decoded messages carry every field (defaults included).
    const w = a.workload as istio.workload.Workload;
    m = {
      addresses: w.addresses.map((b) => `${w.network}/${formatIp(b)}`),
      node: w.node,
      services: Object.keys(w.services),
    };
  } else {
    m = {
      addresses: ((a.service as istio.workload.Service | null | undefined)?.addresses ?? []).map(
        (n) => `${n.network ?? ''}/${formatIp(n.address ?? new Uint8Array())}`,
      ),
      node: '',
      services: [],
    };
  }
  metas.set(r, m);
  return m;
}
