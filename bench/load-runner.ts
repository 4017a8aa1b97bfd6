/**
 * The fixed-rate load generator as a program, so that it can run inside a pod's network namespace:
 *   node dist/bench/load-runner.js '<FixedRateOptions as JSON>'   → prints a LatencySummary as JSON
 */
import { runFixedRate, type FixedRateOptions } from './lib/load.js';

const opts = JSON.parse(process.argv[2] ?? '{}') as FixedRateOptions;
runFixedRate(opts).then(
  (r) => {
    process.stdout.write(`${JSON.stringify(r)}\n`);
    process.exit(0);
  },
  (err: unknown) => {
    process.stderr.write(`load-runner: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
