/**
 * Records converted at an edge are immutable all the way down: the converters build plain objects and arrays,
 * then freeze them here once, so no consumer can change what another one reads.
 */

/** Freezes `v` and everything reachable from it (plain objects, arrays, Maps' own properties); returns `v`. */
export function deepFreeze<T>(v: T): T {
  // Already-frozen values are skipped: records share sub-records (memoized), and cycles cannot recurse forever.
  if (typeof v === 'object' && v !== null && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v)) deepFreeze(x);
  }
  return v;
}
