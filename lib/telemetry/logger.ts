/**
 * Structured logs (pino). One root logger per process; components take children with `component` set.
 * LOG_LEVEL picks the level (trace|debug|info|warn|error|silent, default info). Tests set it to silent.
 */
import { pino, type Logger } from 'pino';

export type { Logger };

let root: Logger | undefined;

export function rootLogger(): Logger {
  root ??= pino({
    level: process.env.LOG_LEVEL ?? 'info',
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  });
  return root;
}

export function componentLogger(component: string): Logger {
  return rootLogger().child({ component });
}

/** Changes the level of the root logger and every child created from it afterwards (admin POST /logging). */
export function setLogLevel(level: string): void {
  rootLogger().level = level;
}
