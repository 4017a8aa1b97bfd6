/**
 * Running programs, optionally inside a named network namespace, without blocking the event loop.
 *
 * Everything goes through `ip netns exec <name>`: it enters the namespace and then exec()s the program in the
 * same process (no extra fork), so the pid we get is the program's own. It also remounts /sys for the
 * namespace, which programs that read /sys/class/net (CNI plugins, tcpdump) need to see the right links.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { accessSync, constants as fsConstants } from 'node:fs';
import { constants } from 'node:os';
import { delimiter, join } from 'node:path';
import { FakeNodeError, FakeNodeErrorCode } from './errors.js';
import { childEnv, testbedEnv } from '../env.js';

export interface ExecResult {
  /** Exit code; 128 + the signal number when the process was killed by a signal (as a shell reports it). */
  readonly code: number;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  /** True when the process was killed because it ran longer than `timeoutMs`. */
  readonly timedOut: boolean;
}

export interface RunOptions {
  /** Run inside this named network namespace (`ip netns list`); omitted = the caller's namespace. */
  readonly netns?: string;
  /** Environment of the child; default: this process's environment. */
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
  /** Written to the child's stdin, which is then closed. */
  readonly input?: string;
  /** Kill the child (its whole process group) after this long. Default 30 s. */
  readonly timeoutMs?: number;
  /** Called with the child right after it started (lets callers register it for cleanup). */
  readonly onSpawn?: (child: ChildProcess) => void;
}

/** The argv that runs `cmd args` in `netns` (or directly when netns is undefined). */
export function netnsArgv(netns: string | undefined, cmd: string, args: readonly string[]): [string, string[]] {
  return netns === undefined ? [cmd, [...args]] : ['ip', ['netns', 'exec', netns, cmd, ...args]];
}

/**
 * Runs a program to completion and returns its exit status and output. Never rejects because of the exit
 * status (callers decide what a non-zero code means); rejects only when the program cannot be started.
 */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<ExecResult> {
  const [file, argv] = netnsArgv(opts.netns, cmd, args);
  return new Promise((resolve, reject) => {
    // detached: the child leads its own process group, so a timeout kills its children too.
    const child = spawn(file, argv, {
      env: opts.env ?? childEnv(),
      cwd: opts.cwd,
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true,
    });
    opts.onSpawn?.(child);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.stdin.on('error', () => {}); // the program may exit without reading its input
    child.stdin.end(opts.input ?? '');
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child, 'SIGKILL');
    }, opts.timeoutMs ?? 30_000);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(new FakeNodeError(FakeNodeErrorCode.MISSING_TOOL, `cannot run ${file}: ${e.message}; is it installed?`, { cause: e }));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({
        code: code ?? 128 + (signal === null ? 0 : constants.signals[signal]),
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        timedOut,
      });
    });
  });
}

/** Like run(), but a non-zero exit becomes a FAKENODE_COMMAND_FAILED error; resolves to stdout. */
export async function runChecked(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<string> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) throw commandFailed(cmd, args, opts.netns, r);
  return r.stdout;
}

/** Synchronous variant for the process-exit hook, where no event loop turn is left. Never throws. */
export function runSync(cmd: string, args: readonly string[], netns?: string): ExecResult {
  const [file, argv] = netnsArgv(netns, cmd, args);
  const r = spawnSync(file, argv, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10_000 });
  return {
    code: r.status ?? 128,
    signal: r.signal,
    stdout: r.stdout ?? '',
    stderr: r.stderr ?? r.error?.message ?? '',
    timedOut: r.error !== undefined && (r.error as NodeJS.ErrnoException).code === 'ETIMEDOUT',
  };
}

export function commandFailed(cmd: string, args: readonly string[], netns: string | undefined, r: ExecResult): FakeNodeError {
  const where = netns === undefined ? '' : ` in netns ${netns}`;
  const why = r.timedOut ? 'timed out' : `exited with ${r.code}`;
  return new FakeNodeError(
    FakeNodeErrorCode.COMMAND_FAILED,
    `\`${[cmd, ...args].join(' ')}\`${where} ${why}: ${r.stderr.trim() || r.stdout.trim() || '(no output)'}`,
  );
}

/** Signals a child's process group (the child was spawned detached, so it leads one); ignores a gone group. */
export function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      // already gone
    }
  }
}

const toolCache = new Map<string, string>();

/** The absolute path of an executable found in PATH (or the given directories), or undefined. */
export function findExecutable(name: string, dirs?: readonly string[]): string | undefined {
  // Root's PATH does not always include the sbin directories where Debian puts ip and nginx.
  const search = dirs ?? [...testbedEnv().searchPath, '/usr/sbin', '/sbin', '/usr/bin', '/bin'];
  const key = `${name}\0${search.join(delimiter)}`;
  const cached = toolCache.get(key);
  if (cached !== undefined) return cached;
  let found: string | undefined;
  for (const dir of search) {
    if (dir === '') continue;
    const p = join(dir, name);
    try {
      accessSync(p, fsConstants.X_OK);
      found = p;
      break;
    } catch {
      // keep looking
    }
  }
  // Only hits are cached: a plugin may be built after a first failed lookup.
  if (found !== undefined) toolCache.set(key, found);
  return found;
}

/** Throws FAKENODE_MISSING_TOOL, naming the Debian package, when a program is not installed. */
export function requireTool(name: string, debianPackage: string): string {
  const p = findExecutable(name);
  if (p === undefined) {
    throw new FakeNodeError(
      FakeNodeErrorCode.MISSING_TOOL,
      `${name} is not installed; the fake-node tier needs it (Debian: apt-get install ${debianPackage})`,
    );
  }
  return p;
}
