/**
 * Path-aware readers for untyped input (YAML, Kubernetes JSON): each reads one value the schema expects, with the
 * path it sits at, and throws a DecodeError naming that path and what is wrong ("spec.ports[1].port: 70000 is not
 * a port (an integer 1..65535)"). A converter is a plain function built from these; its caller catches the one
 * DecodeError and turns it into its own answer (a LocalConfigError, a rejected Kubernetes object, a NACK).
 *
 * Conventions shared by every reader:
 *  - absent means `undefined` or `null`: a YAML key written with no value (`network:`) means "not set".
 *  - `optional*(o, key, path)` read `o[key]` and return a default when it is absent; `read*(v, path)` read a value
 *    that must be there.
 *  - messages start with what was found (`show`), then what was expected.
 */
import { MeshError } from '../errors.js';
import { type Cidr, canonicalIp, parseCidr } from '../net/ip.js';
import { field, item, entry, show } from './path.js';

export const DecodeErrorCode = {
  /** A value does not fit the schema; `path` says which, the message what is wrong. */
  INVALID: 'DECODE_INVALID_VALUE',
} as const;

export class DecodeError extends MeshError {
  /** Path of the offending value, e.g. `spec.rules[0].from`; "" for the input as a whole. */
  readonly path: string;
  /** What is wrong, without the path. */
  readonly problem: string;

  constructor(path: string, problem: string) {
    super(DecodeErrorCode.INVALID, path === '' ? problem : `${path}: ${problem}`);
    this.path = path;
    this.problem = problem;
  }
}

export type Obj = Readonly<Record<string, unknown>>;

export function fail(path: string, problem: string): never {
  throw new DecodeError(path, problem);
}

export const absent = (v: unknown): v is undefined | null => v === undefined || v === null;

/** A map (not a list, not a Date: client-node hands timestamps as Date objects). */
export function isMap(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

/** A map; with `known`, one holding only those keys (serde's deny_unknown_fields). */
export function readMap(v: unknown, path: string, known?: readonly string[]): Obj {
  if (!isMap(v)) fail(path, `expected a map, found ${show(v)}`);
  if (known !== undefined) {
    for (const k of Object.keys(v)) {
      if (!known.includes(k)) fail(field(path, k), `unknown field; expected one of: ${known.join(', ')}`);
    }
  }
  return v;
}

/** `o[key]` as a map, `{}` when absent. */
export function optionalMap(o: Obj, key: string, path: string): Obj {
  return absent(o[key]) ? {} : readMap(o[key], field(path, key));
}

/** `o[key]`, which must be present and a string (it may be empty). */
export function requiredString(o: Obj, key: string, path: string): string {
  const v = o[key];
  if (absent(v)) fail(field(path, key), 'is required');
  if (typeof v !== 'string') fail(field(path, key), `expected a string, found ${show(v)}`);
  return v;
}

/** `o[key]`, a string, `def` when absent. */
export function optionalString(o: Obj, key: string, path: string, def = ''): string {
  return absent(o[key]) ? def : requiredString(o, key, path);
}

/** `o[key]`, a string that is neither absent nor empty (Kubernetes names). */
export function nonEmptyString(o: Obj, key: string, path: string): string {
  const v = optionalString(o, key, path);
  if (v === '') fail(field(path, key), 'is required');
  return v;
}

/** `o[key]`, a boolean, false when absent. */
export function optionalBool(o: Obj, key: string, path: string): boolean {
  const v = o[key];
  if (absent(v)) return false;
  if (typeof v !== 'boolean') fail(field(path, key), `expected true or false, found ${show(v)}`);
  return v;
}

/** `o[key]`, a list, empty when absent. */
export function optionalList(o: Obj, key: string, path: string): readonly unknown[] {
  const v = o[key];
  if (absent(v)) return [];
  if (!Array.isArray(v)) fail(field(path, key), `expected a list, found ${show(v)}`);
  return v;
}

/** A list whose elements are read by `read`, each with its own path. */
export function readList<T>(v: unknown, path: string, read: (x: unknown, p: string) => T): T[] {
  if (!Array.isArray(v)) fail(path, `expected a list, found ${show(v)}`);
  return v.map((x, i) => read(x, item(path, i)));
}

/** `o[key]`, a list of strings, empty when absent. */
export function stringList(o: Obj, key: string, path: string): string[] {
  return optionalList(o, key, path).map((x, i) => {
    if (typeof x !== 'string') fail(item(field(path, key), i), `expected a string, found ${show(x)}`);
    return x;
  });
}

/** `o[key]`, a map of string to string (labels, annotations, selectors), frozen; `{}` when absent. */
export function stringMap(o: Obj, key: string, path: string): Readonly<Record<string, string>> {
  const v = o[key];
  if (absent(v)) return Object.freeze({});
  const m = readMap(v, field(path, key));
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(m)) {
    if (typeof x !== 'string') fail(entry(field(path, key), k), `expected a string, found ${show(x)}`);
    out[k] = x;
  }
  return Object.freeze(out);
}

/** An integer in min..max; `what` names it in the message ("a port", "a weight"). */
export function readInteger(v: unknown, path: string, min: number, max: number, what: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    fail(path, `${show(v)} is not ${what} (an integer ${min}..${max})`);
  }
  return v;
}

/** True when `v` is a TCP/UDP port number from `min` (1, or 0 where 0 means "unset") to 65535. */
export const isPort = (v: unknown, min: 0 | 1 = 1): v is number => typeof v === 'number' && Number.isInteger(v) && v >= min && v <= 65535;

export function readPort(v: unknown, path: string, min: 0 | 1 = 1): number {
  return readInteger(v, path, min, 65535, 'a port');
}

/** A string that is one of `values`. */
export function readEnum<T extends string>(v: unknown, path: string, values: readonly T[]): T {
  if (typeof v !== 'string' || !(values as readonly string[]).includes(v)) {
    fail(path, `${show(v)} is not one of: ${values.join(', ')}`);
  }
  return v as T;
}

/** `o[key]` as readEnum reads it, `def` when absent. */
export function optionalEnum<T extends string>(o: Obj, key: string, path: string, values: readonly T[], def: T): T {
  return absent(o[key]) ? def : readEnum(o[key], field(path, key), values);
}

/** An IP address, in the canonical text of lib/net/ip.ts. */
export function readIp(v: unknown, path: string): string {
  const ip = typeof v === 'string' ? canonicalIp(v) : undefined;
  if (ip === undefined) fail(path, `${show(v)} is not an IP address`);
  return ip;
}

/** An address block "10.0.0.0/8", or one address (a /32 or /128). */
export function readCidr(v: unknown, path: string): Cidr {
  const c = typeof v === 'string' ? parseCidr(v) : undefined;
  if (c === undefined) fail(path, `${show(v)} is not an IP address or CIDR block like "10.0.0.0/8"`);
  return c;
}

/** An RFC 3339 string (JSON) or a Date (client-node) as ms since the epoch; 0 when absent. */
export function readTimestamp(v: unknown, path: string): number {
  if (absent(v)) return 0;
  const ms = v instanceof Date ? v.getTime() : typeof v === 'string' ? Date.parse(v) : Number.NaN;
  if (Number.isNaN(ms)) fail(path, `${show(v)} is not a timestamp`);
  return ms;
}

/** "<a>/<b>" split at the first slash, both parts non-empty; undefined otherwise. */
export function splitPair(s: string): [string, string] | undefined {
  const slash = s.indexOf('/');
  if (slash <= 0 || slash === s.length - 1) return undefined;
  return [s.slice(0, slash), s.slice(slash + 1)];
}

/** Like splitPair, failing with the `form` the key should have (e.g. "<namespace>/<hostname>"). */
export function readPair(s: string, path: string, form: string): [string, string] {
  const pair = splitPair(s);
  if (pair === undefined) fail(path, `${show(s)} is not of the form "${form}"`);
  return pair;
}
