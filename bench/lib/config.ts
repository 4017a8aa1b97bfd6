/**
 * The benchmarks' knobs from the environment; nothing else in bench/ reads process.env (programs a benchmark
 * starts get testbed/env.ts childEnv()).
 *
 *   BENCH_SECONDS  length of each measured run (hbone, ztunnel), default 10
 *   BENCH_CHANGES  changes per measure (controller), default 40
 *   BENCH_SCALES   pod counts to measure at (controller), comma list, default 1000,10000
 */
import { type Env, EnvError, EnvReader, parseInteger } from '../../lib/config/env.js';

export interface BenchConfig {
  readonly seconds: number;
  readonly changes: number;
  readonly scales: readonly number[];
}

export function loadBenchConfig(vars: Env = process.env): BenchConfig {
  const env = new EnvReader(vars);
  const scales = env.list('BENCH_SCALES', ['1000', '10000']).map((s) => parseInteger('BENCH_SCALES', s, 1));
  if (scales.length === 0) throw new EnvError('BENCH_SCALES', 'BENCH_SCALES lists no pod count');
  return Object.freeze({
    seconds: env.integer('BENCH_SECONDS', 10, 1),
    changes: env.integer('BENCH_CHANGES', 40, 1),
    scales: Object.freeze(scales),
  });
}
