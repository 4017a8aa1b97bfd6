/**
 * google.protobuf.Struct <-> plain JSON values, for Node metadata. Converting at the edge keeps protobuf shapes out
 * of the rest of the code. Decoding is defensive: the Struct comes from a client and may be deep or odd.
 */
import type { google } from '../proto/index.js';

export type JsonValue = null | boolean | number | string | readonly JsonValue[] | { readonly [key: string]: JsonValue };
export type JsonObject = { readonly [key: string]: JsonValue };

type ValueProps = google.protobuf.Value.$Properties;
type StructProps = google.protobuf.Struct.$Properties;

/** Nesting deeper than this is cut (a metadata value that deep is hostile, not configuration). */
const MAX_DEPTH = 16;

export function toValue(v: JsonValue): ValueProps {
  if (v === null) return { nullValue: 0 };
  if (typeof v === 'boolean') return { boolValue: v };
  if (typeof v === 'number') return { numberValue: v };
  if (typeof v === 'string') return { stringValue: v };
  if (Array.isArray(v)) return { listValue: { values: (v as readonly JsonValue[]).map(toValue) } };
  return { structValue: toStruct(v as JsonObject) };
}

export function toStruct(obj: JsonObject): StructProps {
  const fields: Record<string, ValueProps> = {};
  for (const [k, v] of Object.entries(obj)) fields[k] = toValue(v);
  return { fields };
}

function fromValue(v: ValueProps | null | undefined, depth: number): JsonValue {
  if (!v) return null;
  if (typeof v.stringValue === 'string') return v.stringValue;
  if (typeof v.boolValue === 'boolean') return v.boolValue;
  if (typeof v.numberValue === 'number') return v.numberValue;
  if (depth >= MAX_DEPTH) return null;
  if (v.structValue) return fromStruct(v.structValue, depth + 1);
  if (v.listValue) return (v.listValue.values ?? []).map((x) => fromValue(x, depth + 1));
  return null;
}

/** A frozen plain object; keys that would reach the prototype when assigned or merged are dropped. */
export function fromStruct(s: StructProps | null | undefined, depth = 0): JsonObject {
  const out: Record<string, JsonValue> = {};
  for (const [k, v] of Object.entries(s?.fields ?? {})) {
    if (k === '__proto__' || k === 'constructor' || k === 'prototype') continue;
    out[k] = fromValue(v, depth);
  }
  return Object.freeze(out);
}
