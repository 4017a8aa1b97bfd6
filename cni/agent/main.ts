#!/usr/bin/env node
/**
 * mesh-cni-agent: the per-node agent of the ambient mesh (Istio's istio-cni node agent role). Receives the
 * mesh-cni plugin's pod events, redirects enrolled pods inside their network namespace, and serves ZDS to
 * ztunnel. Configuration: environment variables, see config.ts. SIGTERM/SIGINT stop it, leaving pod rules
 * in place.
 */
import { describeError } from '../../lib/errors.js';
import { componentLogger } from '../../lib/telemetry/logger.js';
import { NodeAgent } from './agent.js';
import { loadAgentConfig } from './config.js';

const log = componentLogger('cni-agent');

async function main(): Promise<void> {
  const agent = await NodeAgent.start({ config: loadAgentConfig(), logger: log });
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    agent.stop().then(() => process.exit(0), (err: unknown) => {
      log.error({ err: describeError(err) }, 'stopping failed');
      process.exit(1);
    });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((err: unknown) => {
  log.fatal({ err: describeError(err) }, 'mesh-cni-agent failed to start');
  process.exit(1);
});
