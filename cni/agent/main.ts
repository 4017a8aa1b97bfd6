#!/usr/bin/env node
/**
 * mesh-cni-agent: the per-node agent of the ambient mesh (Istio's istio-cni node agent role). Receives the
 * mesh-cni plugin's pod events, redirects enrolled pods inside their network namespace, and serves ZDS to
 * ztunnel. Configuration: environment variables, see config.ts. SIGTERM/SIGINT stop it, leaving pod rules
 * in place.
 */
import { describeError } from '../../lib/errors.js';
import { componentLogger, type Logger, setLogLevel } from '../../lib/telemetry/logger.js';
import { NodeAgent, type NodeAgentOptions } from './agent.js';
import { loadAgentConfig, type AgentConfig } from './config.js';
import { StaticEnrollment } from './enrollment.js';

/** The enrollment source ENROLLMENT selects (config.ts); the pod annotator comes with the Kubernetes one only. */
async function enrollmentFor(config: AgentConfig, log: Logger): Promise<Pick<NodeAgentOptions, 'enrollment' | 'annotator'>> {
  if (config.enrollment === 'static') return { enrollment: new StaticEnrollment(config) };
  // Loaded only here: the Kubernetes client is large and the static agent (fake nodes, local mesh) never needs it.
  const { kubernetesEnrollmentFromConfig } = await import('./kube-enrollment.js');
  return kubernetesEnrollmentFromConfig(config, log.child({ enrollment: 'kubernetes' }));
}

async function main(): Promise<void> {
  const config = loadAgentConfig();
  setLogLevel(config.logLevel);
  const log = componentLogger('cni-agent');
  const agent = await NodeAgent.start({ config, logger: log, ...(await enrollmentFor(config, log)) });
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    agent.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err: describeError(err) }, 'stopping failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((err: unknown) => {
  componentLogger('cni-agent').fatal({ err: describeError(err) }, 'mesh-cni-agent failed to start');
  process.exit(1);
});
