/**
 * The benchmarks' knobs from the environment; nothing else in bench/ reads process.env (programs a benchmark
 * starts get testbed/env.ts childEnv()).
 *
 *   BENCH_SECONDS  length of each measured run (hbone, ztunnel), default 10
 *   BENCH_CHANGES  changes per measure (controller), default 40
 *   BENCH_SCALES   pod counts to measure at (controller), comma list, default 1000,10000
 *   BENCH_CONNECTIONS       idle connections to open (idle), default 2000
 *   BENCH_IDLE_SECONDS      how long they idle before the second reading (idle), default 25: two keepalive PINGs
 *   BENCH_IDLE_TRAFFIC_KIB  one round trip of this much on each before the last reading (idle), default 256
 *   BENCH_IDLE_AFTER        true: one more reading after idling again (idle), default false
 *   BENCH_IDLE_CONFIG       JSON overrides of lib/hbone/config.ts for both ends (idle), to try a budget
 */
import { type Env, EnvError, EnvReader, parseInteger } from '../../lib/config/env.js';

export interface BenchConfig {
  readonly seconds: number;
  readonly changes: number;
  readonly scales: readonly number[];
  readonly idle: {
    readonly connections: number;
    readonly seconds: number;
    readonly trafficBytes: number;
    readonly readAgain: boolean;
    readonly hboneOverrides: Readonly<Record<string, unknown>>;
  };
}

function jsonObject(name: string, text: string | undefined): Readonly<Record<string, unknown>> {
  if (text === undefined || text === '') return {};
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new EnvError(name, `${name} must be a JSON object`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new EnvError(name, `${name} must be a JSON object`);
  return v as Record<string, unknown>;
}

export function loadBenchConfig(vars: Env = process.env): BenchConfig {
  const env = new EnvReader(vars);
  const scales = env.list('BENCH_SCALES', ['1000', '10000']).map((s) => parseInteger('BENCH_SCALES', s, 1));
  if (scales.length === 0) throw new EnvError('BENCH_SCALES', 'BENCH_SCALES lists no pod count');
  return Object.freeze({
    seconds: env.integer('BENCH_SECONDS', 10, 1),
    changes: env.integer('BENCH_CHANGES', 40, 1),
    scales: Object.freeze(scales),
    idle: Object.freeze({
      connections: env.integer('BENCH_CONNECTIONS', 2000, 1),
      seconds: env.integer('BENCH_IDLE_SECONDS', 25, 0),
      trafficBytes: env.integer('BENCH_IDLE_TRAFFIC_KIB', 256, 1) * 1024,
      readAgain: env.bool('BENCH_IDLE_AFTER', false),
      hboneOverrides: jsonObject('BENCH_IDLE_CONFIG', env.optional('BENCH_IDLE_CONFIG')),
    }),
  });
}
