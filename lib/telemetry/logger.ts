/**
 * Structured logs (pino). One root logger per process (and per worker thread); components take children with
 * `component` set. The level is the program's to choose: its settings module reads LOG_LEVEL and its main calls
 * setLogLevel before it creates any logger (children take the level of the root when they are created).
 */
import { pino, type Logger } from 'pino';

export type { Logger };

/** pino's levels, as LOG_LEVEL accepts them. */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

let root: Logger | undefined;
let startLevel: string = 'info';

export function rootLogger(): Logger {
  root ??= pino({
    level: startLevel,
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  });
  return root;
}

export function componentLogger(component: string): Logger {
  return rootLogger().child({ component });
}

/**
 * Sets the level of the root logger and of every child created from it afterwards: at start (the program's
 * LOG_LEVEL) and at run time (ztunnel's admin POST /logging).
 */
export function setLogLevel(level: string): void {
  startLevel = level;
  if (root) root.level = level;
}
