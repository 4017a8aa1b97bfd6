/**
 * When an output counts as unchanged. Collections hold plain immutable data (records, protobuf property objects,
 * encoded bytes), so structural equality over objects, arrays and byte arrays is the default; `byEncoding` is
 * for values whose meaning is their wire form (an xDS resource: byte-identical means nothing to push).
 */
import type { Equals } from './collection.js';

export const identity: Equals<unknown> = Object.is;

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.length).equals(b);
}

/** Deep equality of plain data: primitives, arrays, plain objects (own enumerable keys), Uint8Arrays. */
export function valueEquals(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (a instanceof Uint8Array || b instanceof Uint8Array) {
    return a instanceof Uint8Array && b instanceof Uint8Array && sameBytes(a, b);
  }
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!valueEquals(a[i], b[i])) return false;
    return true;
  }
  const ra = a as Record<string, unknown>;
  const rb = b as Record<string, unknown>;
  let n = 0;
  for (const k in ra) {
    if (!Object.hasOwn(ra, k)) continue;
    n++;
    if (!Object.hasOwn(rb, k) || !valueEquals(ra[k], rb[k])) return false;
  }
  for (const k in rb) if (Object.hasOwn(rb, k)) n--;
  return n === 0;
}

/** Equal when the encodings are byte-identical. */
export function byEncoding<O>(encode: (value: O) => Uint8Array): Equals<O> {
  return (a, b) => sameBytes(encode(a), encode(b));
}
