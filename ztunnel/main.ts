#!/usr/bin/env node
/**
 * The `ztunnel` program. Configured by environment variables (ztunnel/config/settings.ts lists them all);
 * SIGTERM or SIGINT drains and exits.
 */
import { describeError } from '../lib/errors.js';
import { componentLogger, setLogLevel } from '../lib/telemetry/logger.js';
import { Ztunnel } from './app.js';
import { loadSettings } from './config/settings.js';

async function main(): Promise<void> {
  const settings = loadSettings();
  setLogLevel(settings.logLevel);
  const log = componentLogger('ztunnel');
  const ztunnel = await Ztunnel.start(settings);
  const stop = (signal: string): void => {
    log.info({ signal }, 'shutting down');
    void ztunnel.shutdown().then(() => process.exit(0));
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}

main().catch((err: unknown) => {
  componentLogger('ztunnel').fatal({ err: describeError(err) }, 'ztunnel failed to start');
  process.exitCode = 1;
  setTimeout(() => process.exit(1), 100).unref();
});
