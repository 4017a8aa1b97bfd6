#!/usr/bin/env node
/**
 * The `controller` program (istiod's role for ambient L4). `controller [--kubeconfig PATH]`; settings in
 * controller/config/settings.ts. SIGTERM/SIGINT: release leadership and stop.
 */
import { describeError } from '../lib/errors.js';
import { componentLogger, setLogLevel } from '../lib/telemetry/logger.js';
import { Controller } from './app.js';
import { loadControllerSettings } from './config/settings.js';

async function main(): Promise<void> {
  const settings = loadControllerSettings();
  setLogLevel(settings.logLevel);
  const log = componentLogger('controller');
  const controller = await Controller.start(settings);
  const stop = (signal: string): void => {
    log.info({ signal }, 'shutting down');
    void controller.stop().then(() => process.exit(0));
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}

main().catch((err: unknown) => {
  componentLogger('controller').fatal({ err: describeError(err) }, 'controller failed to start');
  process.exitCode = 1;
  setTimeout(() => process.exit(1), 100).unref();
});
