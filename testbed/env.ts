/**
 * The testbed harness's configuration from the environment (fake nodes, the test API server, and the tests and
 * benchmarks that start programs). The only place in testbed/ and test/ that reads process.env:
 *
 *   PATH              where programs the harness runs are found (iproute2, iptables, nginx, curl, etcd, flock)
 *   ETCD_BIN          etcd to use instead of the one on PATH (Debian's etcd-server installs /usr/bin/etcd)
 *   MESH_TOOLS_CACHE  where kube-apiserver is built and kept, default /var/cache/ambient-mesh (also read by
 *                     scripts/tools/kube-apiserver.sh, with KUBE_VERSION)
 *   LOG_LEVEL         the level of this process's loggers (the harness's and those of components a test runs in
 *                     process), applied when this module is loaded: a harness process has no main to do it
 *
 * Programs the harness starts (ztunnel, the node agent, the controller, kube-apiserver) inherit the harness's
 * environment plus what each start adds: childEnv().
 */
import { delimiter } from 'node:path';
import { EnvReader } from '../lib/config/env.js';
import { LOG_LEVELS, type LogLevel, setLogLevel } from '../lib/telemetry/logger.js';

export interface TestbedEnv {
  /** PATH as set (the default when unset), for a program started with a minimal environment. */
  readonly path: string;
  /** PATH split into directories; empty entries dropped. */
  readonly searchPath: readonly string[];
  readonly etcdBin: string | undefined;
  readonly toolsCache: string;
  readonly logLevel: LogLevel;
}

const DEFAULT_SEARCH_PATH = '/usr/local/bin:/usr/bin:/bin';

export function readTestbedEnv(env: Readonly<Record<string, string | undefined>> = process.env): TestbedEnv {
  const path = env.PATH || DEFAULT_SEARCH_PATH;
  return Object.freeze({
    path,
    searchPath: Object.freeze(path.split(delimiter).filter((d) => d !== '')),
    etcdBin: env.ETCD_BIN || undefined,
    toolsCache: env.MESH_TOOLS_CACHE || '/var/cache/ambient-mesh',
    logLevel: new EnvReader(env).oneOf('LOG_LEVEL', LOG_LEVELS, 'info'),
  });
}

/** The environment of this process as it is now; read at the call, since a test may start programs late. */
export function testbedEnv(): TestbedEnv {
  return readTestbedEnv(process.env);
}

/** The environment a started program gets: this process's, with `extra` on top (an undefined value removes one). */
export function childEnv(extra: Readonly<Record<string, string | undefined>> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

// Before any harness module creates a logger (imports are evaluated first).
setLogLevel(testbedEnv().logLevel);
