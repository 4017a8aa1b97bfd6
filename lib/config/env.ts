/**
 * Environment variables as every program of the project reads them. Each program has one settings module that
 * reads its variables through an EnvReader, once, at start; library code takes the resulting values as
 * parameters and never reads the environment itself.
 *
 * The syntax, the same in every program:
 *  - unset or blank: the default. Values are trimmed.
 *  - booleans: true/false, 1/0, yes/no, on/off, any case.
 *  - integers: decimal, or hexadecimal with 0x (PACKET_MARK=0x539).
 *  - durations: Go's time.ParseDuration syntax, which Istio's variables use (PILOT_DEBOUNCE_AFTER=100ms,
 *    SECRET_TTL=24h, 1m30s, 1.5s, 500us, 0): one or more <number><unit> with units ns, us, µs, ms, s, m, h. A bare
 *    number is seconds, as ztunnel's own parser (the duration_str crate, src/config.rs) reads it; Go would refuse
 *    it, so Istio's documented values never depend on it.
 *  - sizes: bytes, or with a binary suffix Ki, Mi, Gi (HTTP2_STREAM_WINDOW_SIZE=4Mi).
 *  - listen addresses: <port>, :<port>, <host>:<port> or [<ipv6>]:<port>; a missing host is the default's.
 *  - lists: comma-separated, entries trimmed, empty entries dropped. Unlike the scalars, a list set to "" is the
 *    empty list rather than the default, so that a default list can be switched off.
 *
 * A value that does not parse is an EnvError (CONFIG_BAD_ENV) naming the variable and what it should look like:
 * a program refuses to start rather than run with a setting it did not understand.
 */
import { MeshError } from '../errors.js';

export type Env = Readonly<Record<string, string | undefined>>;

export const EnvErrorCode = {
  /** A variable is set to something that does not parse as its type. */
  BAD_VALUE: 'CONFIG_BAD_ENV',
} as const;

export class EnvError extends MeshError {
  /** The variable (or flag) whose value was refused. */
  readonly variable: string;

  constructor(variable: string, message: string) {
    super(EnvErrorCode.BAD_VALUE, message);
    this.variable = variable;
  }
}

export interface ListenAddress {
  readonly host: string;
  /** 0 = any free port. */
  readonly port: number;
}

const TRUE = new Set(['true', '1', 'yes', 'on']);
const FALSE = new Set(['false', '0', 'no', 'off']);

export function parseBool(name: string, text: string): boolean {
  const v = text.trim().toLowerCase();
  if (TRUE.has(v)) return true;
  if (FALSE.has(v)) return false;
  throw new EnvError(name, `${name}="${text}" is not a boolean (true or false)`);
}

export function parseInteger(name: string, text: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  const v = text.trim();
  const n = /^0x[0-9a-f]+$/i.test(v) ? Number.parseInt(v, 16) : /^-?[0-9]+$/.test(v) ? Number(v) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new EnvError(name, `${name}="${text}" must be an integer in [${min}, ${max}]`);
  }
  return n;
}

const DURATION_UNIT_MS: Readonly<Record<string, number>> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const DURATION_TERM = /([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|ms|s|m|h)/y;

/** A duration in milliseconds (fractional below 1 ms: "500us" is 0.5). */
export function parseDurationMs(name: string, text: string): number {
  const s = text.trim();
  const bad = (): never => {
    throw new EnvError(name, `${name}="${text}" is not a duration; write it like 500ms, 10s, 1m30s or 24h`);
  };
  // A bare number: seconds (ztunnel's reading; Go accepts only "0" unitless, which means the same).
  if (/^([0-9]+(\.[0-9]*)?|\.[0-9]+)$/.test(s)) return Number(s) * 1000;
  if (s === '') bad();
  let total = 0;
  DURATION_TERM.lastIndex = 0;
  while (DURATION_TERM.lastIndex < s.length) {
    const m = DURATION_TERM.exec(s);
    if (m === null) bad();
    else total += Number(m[1]) * (DURATION_UNIT_MS[m[2] ?? ''] ?? Number.NaN);
  }
  if (!Number.isFinite(total)) bad();
  return total;
}

const SIZE_UNIT: Readonly<Record<string, number>> = { '': 1, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30 };

/** A size in bytes. */
export function parseSize(name: string, text: string): number {
  const m = /^([0-9]+)(Ki|Mi|Gi)?$/.exec(text.trim());
  const n = m ? Number(m[1]) * (SIZE_UNIT[m[2] ?? ''] ?? 1) : Number.NaN;
  if (!Number.isSafeInteger(n)) throw new EnvError(name, `${name}="${text}" is not a size like 4194304, 4096Ki or 4Mi`);
  return n;
}

export function parseListenAddress(name: string, text: string, defaultHost: string): ListenAddress {
  const v = text.trim();
  const m = /^\[([^\]]+)\]:([0-9]+)$/.exec(v) ?? /^(?:(.*):)?([0-9]+)$/.exec(v);
  const port = m ? Number(m[2]) : Number.NaN;
  if (!m || port > 65535) throw new EnvError(name, `${name}="${text}" must be <port>, :<port> or <host>:<port>`);
  return { host: m[1] || defaultHost, port };
}

export function parseList(text: string): string[] {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

/** Reads one program's variables from `env` (its settings module passes process.env; tests pass a record). */
export class EnvReader {
  readonly #env: Env;

  constructor(env: Env) {
    this.#env = env;
  }

  /** The value as set, untrimmed; undefined when unset (a variable set to "" is defined). */
  raw(name: string): string | undefined {
    return this.#env[name];
  }

  /** True when the variable is set at all, even to "". */
  defined(name: string): boolean {
    return this.#env[name] !== undefined;
  }

  /** The trimmed value; undefined when unset or blank. */
  optional(name: string): string | undefined {
    const v = this.#env[name]?.trim();
    return v === undefined || v === '' ? undefined : v;
  }

  string(name: string, dflt: string): string {
    return this.optional(name) ?? dflt;
  }

  bool(name: string, dflt: boolean): boolean {
    const v = this.optional(name);
    return v === undefined ? dflt : parseBool(name, v);
  }

  integer(name: string, dflt: number, min?: number, max?: number): number {
    const v = this.optional(name);
    return v === undefined ? dflt : parseInteger(name, v, min, max);
  }

  durationMs(name: string, dfltMs: number): number {
    const v = this.optional(name);
    return v === undefined ? dfltMs : parseDurationMs(name, v);
  }

  size(name: string, dflt: number): number {
    const v = this.optional(name);
    return v === undefined ? dflt : parseSize(name, v);
  }

  address(name: string, dflt: ListenAddress): ListenAddress {
    const v = this.optional(name);
    return v === undefined ? dflt : parseListenAddress(name, v, dflt.host);
  }

  list(name: string, dflt: readonly string[]): readonly string[] {
    const v = this.#env[name];
    return v === undefined ? dflt : parseList(v);
  }

  /** One of `values`, matched without regard to case and returned as listed. */
  oneOf<T extends string>(name: string, values: readonly T[], dflt: T): T {
    const v = this.optional(name);
    if (v === undefined) return dflt;
    const found = values.find((x) => x.toLowerCase() === v.toLowerCase());
    if (found === undefined) throw new EnvError(name, `${name}="${v}" must be one of: ${values.join(', ')}`);
    return found;
  }
}
