/**
 * Log lines about hostile or broken peers, at most one per key per interval. A flood of bad requests must leave a
 * trace with its stable code without turning into a flood of log lines (which would be a second denial of service).
 */
export class ThrottledLog {
  readonly #intervalMs: number;
  readonly #now: () => number;
  readonly #last = new Map<string, { at: number; suppressed: number }>();

  constructor(intervalMs: number, now: () => number = Date.now) {
    this.#intervalMs = intervalMs;
    this.#now = now;
  }

  /** Calls `write` with the number of lines left out since the last one for `key`, or counts this one as left out. */
  emit(key: string, write: (suppressed: number) => void): void {
    const now = this.#now();
    const last = this.#last.get(key);
    if (last !== undefined && now - last.at < this.#intervalMs) {
      last.suppressed++;
      return;
    }
    this.#last.set(key, { at: now, suppressed: 0 });
    write(last?.suppressed ?? 0);
  }
}
