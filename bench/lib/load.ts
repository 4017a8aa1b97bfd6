/**
 * A fixed-rate HTTP/1.1 load generator after Istio's method (fortio -qps with -uniform, no catch-up): requests
 * are scheduled at fixed intervals spread over N keep-alive connections, and latency is measured from the
 * *scheduled* start, so a stalled proxy shows up as latency instead of silently lowering the rate
 * (no coordinated omission).
 */
import { Agent, request } from 'node:http';

export interface FixedRateOptions {
  readonly url: string;
  readonly rps: number;
  readonly connections: number;
  readonly durationMs: number;
  readonly warmupMs: number;
  /** Request body size in bytes (POST when > 0). */
  readonly payloadBytes: number;
}

export interface LatencySummary {
  readonly requests: number;
  readonly errors: number;
  readonly achievedRps: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] as number;
}

export async function runFixedRate(opts: FixedRateOptions): Promise<LatencySummary> {
  const agent = new Agent({ keepAlive: true, maxSockets: opts.connections, maxFreeSockets: opts.connections });
  const body = Buffer.alloc(opts.payloadBytes, 0x61);
  const intervalMs = 1000 / opts.rps;
  const latencies: number[] = [];
  let errors = 0;
  const start = performance.now() + 50;
  const total = Math.round(((opts.warmupMs + opts.durationMs) / 1000) * opts.rps);
  const measureFrom = start + opts.warmupMs;

  const fire = (scheduled: number): Promise<void> =>
    new Promise((resolve) => {
      const req = request(
        opts.url,
        { agent, method: opts.payloadBytes > 0 ? 'POST' : 'GET', headers: { 'content-length': body.length } },
        (res) => {
          res.on('data', () => {});
          res.on('end', () => {
            if (scheduled >= measureFrom) {
              if (res.statusCode === 200) latencies.push(performance.now() - scheduled);
              else errors++;
            }
            resolve();
          });
        },
      );
      req.on('error', () => {
        if (scheduled >= measureFrom) errors++;
        resolve();
      });
      req.end(opts.payloadBytes > 0 ? body : undefined);
    });

  const pending: Promise<void>[] = [];
  for (let i = 0; i < total; i++) {
    const scheduled = start + i * intervalMs;
    // Never early: latency is measured from the scheduled time, so an early send would read as negative.
    while (performance.now() < scheduled) {
      const wait = scheduled - performance.now();
      await new Promise((r) => (wait >= 1 ? setTimeout(r, wait) : setImmediate(r)));
    }
    pending.push(fire(scheduled));
    if (pending.length > 4096) pending.splice(0, 2048);
  }
  await Promise.all(pending);
  agent.destroy();
  latencies.sort((a, b) => a - b);
  return {
    requests: latencies.length,
    errors,
    achievedRps: latencies.length / (opts.durationMs / 1000),
    p50Ms: percentile(latencies, 50),
    p90Ms: percentile(latencies, 90),
    p99Ms: percentile(latencies, 99),
    maxMs: latencies.at(-1) ?? NaN,
  };
}
