/**
 * The programs a test API server runs: kube-apiserver, built from the k8s.io/kubernetes Go module by
 * scripts/tools/kube-apiserver.sh (cached outside the repository; the script prints the binary's path and builds
 * it first when it is missing), and etcd from the Debian package etcd-server.
 *
 * A build takes minutes, so its progress is logged line by line, and concurrent callers (several test files, or
 * two test processes) never run two builds into the same cache directory: one promise per process, and `flock`
 * on a lock file between processes.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants as fsConstants, existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../../lib/telemetry/logger.js';
import { KubeTestError, KubeTestErrorCode } from './errors.js';
import { childEnv, testbedEnv } from '../env.js';

const SCRIPT_RELATIVE = join('scripts', 'tools', 'kube-apiserver.sh');
/** A build downloads ~300 modules and compiles kube-apiserver: minutes on a small machine, never an hour. */
const BUILD_TIMEOUT_MS = 60 * 60_000;
const OUTPUT_TAIL_LINES = 40;

/** The repository root: the first ancestor of this module holding scripts/tools/kube-apiserver.sh (works from dist/ and from the source tree). */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, SCRIPT_RELATIVE))) return dir;
    const parent = dirname(dir);
    if (parent === dir) {
      throw new KubeTestError(
        KubeTestErrorCode.BINARY_UNAVAILABLE,
        `cannot find ${SCRIPT_RELATIVE} above ${fileURLToPath(import.meta.url)}; run from a checkout of the repository`,
      );
    }
    dir = parent;
  }
}

/** The absolute path of `name` on PATH, or undefined. */
export function which(name: string): string | undefined {
  for (const dir of testbedEnv().searchPath) {
    const p = join(dir, name);
    try {
      accessSync(p, fsConstants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** etcd's path: $ETCD_BIN, or `etcd` on PATH (Debian's etcd-server installs /usr/bin/etcd). */
export function findEtcd(): string {
  const path = testbedEnv().etcdBin ?? which('etcd');
  if (path === undefined || !existsSync(path)) {
    throw new KubeTestError(
      KubeTestErrorCode.ETCD_MISSING,
      'etcd is not installed; install the Debian package etcd-server (scripts/setup.sh does) or set ETCD_BIN',
    );
  }
  return path;
}

let pending: Promise<string> | undefined;

/**
 * The path of the kube-apiserver binary, building it first if needed (see the module comment). Fails with
 * KUBETEST_BINARY_UNAVAILABLE when Go or the module proxy is missing, KUBETEST_BUILD_FAILED when the build
 * breaks; both messages carry the script's last output lines. Never falls back to anything else.
 */
export function ensureKubeApiServer(logger: Logger): Promise<string> {
  pending ??= runBuildScript(logger).catch((e: unknown) => {
    pending = undefined; // a later call may retry (e.g. after the network came back)
    throw e;
  });
  return pending;
}

function runBuildScript(logger: Logger): Promise<string> {
  const script = join(repoRoot(), SCRIPT_RELATIVE);
  const cache = testbedEnv().toolsCache;
  let cmd = script;
  let args: string[] = [];
  const flock = which('flock');
  if (flock !== undefined) {
    try {
      mkdirSync(cache, { recursive: true });
      // Serialises builds between processes: the script's `mv $OUT.tmp $OUT` is atomic, but two concurrent
      // `go build -o $OUT.tmp` are not.
      cmd = flock;
      args = [join(cache, 'kube-apiserver.lock'), script];
    } catch {
      // cache not writable: the script itself will explain when it needs to build
    }
  }
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: childEnv() });
    let stdout = '';
    const tail: string[] = [];
    let partial = '';
    let building = false;
    const timer = setTimeout(() => child.kill('SIGKILL'), BUILD_TIMEOUT_MS);
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      stdout += s;
    });
    child.stderr.setEncoding('utf8').on('data', (s: string) => {
      partial += s;
      const lines = partial.split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        if (line.trim() === '') continue;
        if (!building) {
          building = true;
          logger.warn({ script }, 'kube-apiserver is not built yet; building it now (several minutes, once per machine)');
        }
        logger.info({ component: 'kube-apiserver-build' }, line);
        tail.push(line);
        if (tail.length > OUTPUT_TAIL_LINES) tail.shift();
      }
    });
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(new KubeTestError(KubeTestErrorCode.BINARY_UNAVAILABLE, `cannot run ${script}: ${e.message}`, { cause: e }));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (partial.trim() !== '') tail.push(partial);
      const output = tail.join('\n');
      const path = stdout.trim().split('\n').pop() ?? '';
      if (code === 0 && path !== '' && existsSync(path)) {
        if (building) logger.info({ path, seconds: Math.round((Date.now() - started) / 1000) }, 'kube-apiserver built');
        resolve(path);
        return;
      }
      const how = signal !== null ? `was killed (${signal}${signal === 'SIGKILL' ? ', build timeout' : ''})` : `exited with ${code}`;
      if (/'go' is required/.test(output)) {
        reject(
          new KubeTestError(
            KubeTestErrorCode.BINARY_UNAVAILABLE,
            `kube-apiserver is not built and Go is not installed: install Go (https://go.dev/dl/, it must be on PATH) and run ${script} once, ` +
              `or copy a kube-apiserver binary to the path the script prints; output:\n${output}`,
          ),
        );
      } else if (/cannot read https?:\/\/|proxy\.golang\.org|dial tcp|i\/o timeout|no such host|TLS handshake/i.test(output)) {
        reject(
          new KubeTestError(
            KubeTestErrorCode.BINARY_UNAVAILABLE,
            `kube-apiserver is not built and the Go module proxy is unreachable (set GOPROXY/GOPROXY_BASE or allow network access), then run ${script}; ` +
              `${script} ${how}; output:\n${output}`,
          ),
        );
      } else {
        reject(new KubeTestError(KubeTestErrorCode.BUILD_FAILED, `${script} ${how}; its last output:\n${output}`));
      }
    });
  });
}
