#!/usr/bin/env node
/**
 * The `controller` program (istiod's role for ambient L4). `controller [--kubeconfig PATH]`; settings in
 * controller/config/settings.ts. SIGTERM/SIGINT: release leadership and stop.
 */
import { describeError } from '../lib/errors.js';
import { componentLogger } from '../lib/telemetry/logger.js';
import { Controller } from './app.js';
import { loadControllerSettings } from './config/settings.js';

const log = componentLogger('controller');

async function main(): Promise<void> {
  const controller = await Controller.start(loadControllerSettings());
  const stop = (signal: string): void => {
    log.info({ signal }, 'shutting down');
    void controller.stop().then(() => process.exit(0));
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}

main().catch((err: unknown) => {
  log.fatal({ err: describeError(err) }, 'controller failed to start');
  process.exitCode = 1;
  setTimeout(() => process.exit(1), 100).unref();
});
