/**
 * Field paths as a person reads them in an error: `spec.rules[0].from`, `workloads[2].services["demo/echo"]`,
 * `ports[80]`. Every decoder builds its paths with these, so a rejection names the value the same way whether it
 * came from YAML, Kubernetes JSON or a protobuf.
 */

/** `path.key` (just `key` at the root). */
export const field = (path: string, key: string): string => (path === '' ? key : `${path}.${key}`);

/** `path[i]`: the i-th list element. */
export const item = (path: string, i: number): string => `${path}[${i}]`;

/** `path[80]` for a numeric map key, `path["demo/echo"]` for any other. */
export const entry = (path: string, key: string): string => (/^[0-9]+$/.test(key) ? `${path}[${key}]` : `${path}[${JSON.stringify(key)}]`);

/** A value as an error message quotes it: strings quoted and cut at 80 characters, maps and lists by kind. */
export function show(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'string') return JSON.stringify(v.length > 80 ? `${v.slice(0, 80)}...` : v);
  if (Array.isArray(v)) return 'a list';
  if (v instanceof Date) return Number.isNaN(v.getTime()) ? 'an invalid date' : v.toISOString();
  if (typeof v === 'object') return 'a map';
  return String(v);
}
