#!/usr/bin/env node
/**
 * meshctl: the operator CLI, in the spirit of istioctl.
 *
 *   meshctl ztunnel-config <workloads|services|policies|certificates|all> [--admin host:port] [--netns NAME] [-o table|json]
 *   meshctl proxy-status [--controller host:port] [-o table|json]
 */
import { parseArgs } from 'node:util';
import { parseAdminAddress } from './admin-client.js';
import { proxyStatus } from './proxy-status.js';
import { ZTUNNEL_CONFIG_KINDS, type ZtunnelConfigKind, ztunnelConfig } from './ztunnel-config.js';

const USAGE = `usage:
  meshctl ztunnel-config <${ZTUNNEL_CONFIG_KINDS.join('|')}> [--admin host:port] [--netns NAME] [-o table|json]
  meshctl proxy-status [--controller host:port] [-o table|json]

  --admin   the ztunnel admin address (default 127.0.0.1:15000)
  --netns        connect from inside this network namespace (a fake node, e.g. "fn-localmesh.node-1")
  --controller   the controller's debug address (default 127.0.0.1:8080)
  -o             output format (default table)
`;

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      admin: { type: 'string', default: '127.0.0.1:15000' },
      netns: { type: 'string' },
      controller: { type: 'string', default: '127.0.0.1:8080' },
      output: { type: 'string', short: 'o', default: 'table' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [command, kind] = positionals;
  if (values.help || !command) {
    process.stdout.write(USAGE);
    return values.help ? 0 : 2;
  }
  if (values.output !== 'table' && values.output !== 'json') {
    process.stderr.write(`meshctl: -o must be table or json\n`);
    return 2;
  }
  if (command === 'proxy-status') {
    const { host, port } = parseAdminAddress(values.controller ?? '127.0.0.1:8080');
    process.stdout.write(await proxyStatus({ host, port, netns: values.netns }, `${host}:${port}`, values.output));
    return 0;
  }
  if (command !== 'ztunnel-config') {
    process.stderr.write(`meshctl: unknown command "${command}"\n${USAGE}`);
    return 2;
  }
  if (!kind || !(ZTUNNEL_CONFIG_KINDS as readonly string[]).includes(kind)) {
    process.stderr.write(`meshctl: ztunnel-config needs one of ${ZTUNNEL_CONFIG_KINDS.join(', ')}\n`);
    return 2;
  }
  const { host, port } = parseAdminAddress(values.admin ?? '127.0.0.1:15000');
  process.stdout.write(await ztunnelConfig({ host, port, netns: values.netns }, kind as ZtunnelConfigKind, values.output));
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`meshctl: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
