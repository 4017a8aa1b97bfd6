/** Resource use of a running process from /proc: resident memory and CPU seconds. */
import { readFileSync } from 'node:fs';

const CLK_TCK = 100; // Linux USER_HZ

export function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

/** User + system CPU seconds consumed so far. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

/** Samples peak RSS of some processes until stopped. */
export class PeakRss {
  readonly peak = new Map<number, number>();
  readonly #timer: NodeJS.Timeout;

  constructor(
    readonly pids: readonly number[],
    intervalMs = 200,
  ) {
    this.#timer = setInterval(() => this.sample(), intervalMs);
    this.sample();
  }

  sample(): void {
    for (const pid of this.pids) {
      try {
        this.peak.set(pid, Math.max(this.peak.get(pid) ?? 0, rssBytes(pid)));
      } catch {
        // process gone
      }
    }
  }

  stop(): void {
    clearInterval(this.#timer);
    this.sample();
  }
}
