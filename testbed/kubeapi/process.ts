/**
 * The long-running programs of a test API server (etcd, kube-apiserver) and the exit-time cleanup.
 *
 * Each program writes its output straight to a log file in the data directory (no piping through this event
 * loop; kube-apiserver can be chatty), and a failure message quotes the file's tail. Each leads its own process
 * group (detached) so that stopping it stops anything it forked. Where util-linux's `setpriv` exists, the program
 * is started through `setpriv --pdeathsig SIGKILL`, so the kernel kills it when this process dies, even by
 * SIGKILL, which no exit handler can catch; the 'exit'/signal hook below covers the normal cases and also removes
 * the data directory.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { which } from './binaries.js';
import { childEnv } from '../env.js';

/** Set in the environment of every program started here: the owning process, for cleanupStale(). */
export const OWNER_ENV = 'KUBETEST_OWNER_PID';

export interface ProcessExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** Bytes of a log file's end read for an error message. */
const TAIL_BYTES = 16 * 1024;

export function readLogTail(path: string, lines = 40): string {
  try {
    const size = statSync(path).size;
    const fd = openSync(path, 'r');
    try {
      const len = Math.min(size, TAIL_BYTES);
      const buf = Buffer.alloc(len);
      readSync(fd, buf, 0, len, size - len);
      return buf
        .toString('utf8')
        .split('\n')
        .filter((l) => l.trim() !== '')
        .slice(-lines)
        .join('\n');
    } finally {
      closeSync(fd);
    }
  } catch {
    return '(no log)';
  }
}

export class ManagedProcess {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  readonly logPath: string;
  /** Resolves when the program has exited (for whatever reason). */
  readonly exited: Promise<ProcessExit>;
  #exit: ProcessExit | undefined;

  private constructor(name: string, child: ChildProcess, pid: number, logPath: string) {
    this.name = name;
    this.child = child;
    this.pid = pid;
    this.logPath = logPath;
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.#exit = { code, signal };
        resolve(this.#exit);
      });
    });
  }

  /**
   * Starts `cmd args` with stdout and stderr appended to `logPath`. Rejects when the program cannot be started
   * at all (ENOENT, EACCES); a program that starts and then exits shows up in `exited`.
   */
  static start(
    name: string,
    cmd: string,
    args: readonly string[],
    opts: { logPath: string; env?: NodeJS.ProcessEnv },
  ): Promise<ManagedProcess> {
    const fd = openSync(opts.logPath, 'a');
    const setpriv = which('setpriv');
    const [file, argv] = setpriv === undefined ? [cmd, [...args]] : [setpriv, ['--pdeathsig', 'SIGKILL', '--', cmd, ...args]];
    return new Promise((resolve, reject) => {
      let child: ChildProcess;
      try {
        child = spawn(file, argv, {
          stdio: ['ignore', fd, fd],
          detached: true,
          env: { ...(opts.env ?? childEnv()), [OWNER_ENV]: String(process.pid) },
        });
      } catch (e) {
        closeSync(fd);
        reject(e instanceof Error ? e : new Error(String(e)));
        return;
      }
      closeSync(fd); // the child has its own copy
      child.once('error', (e) => reject(e));
      child.once('spawn', () => {
        if (child.pid === undefined) {
          reject(new Error(`${name}: spawned without a pid`));
          return;
        }
        resolve(new ManagedProcess(name, child, child.pid, opts.logPath));
      });
    });
  }

  get alive(): boolean {
    return this.#exit === undefined;
  }

  get exit(): ProcessExit | undefined {
    return this.#exit;
  }

  logTail(lines = 40): string {
    return readLogTail(this.logPath, lines);
  }

  /** Signals the whole process group (the program and anything it forked). */
  signal(sig: NodeJS.Signals): void {
    try {
      process.kill(-this.pid, sig);
    } catch {
      try {
        process.kill(this.pid, sig);
      } catch {
        // already gone
      }
    }
  }

  /** SIGTERM, then SIGKILL after graceMs (0: SIGKILL right away); resolves once the program has exited. */
  async stop(graceMs: number): Promise<ProcessExit> {
    if (!this.alive) return this.exited;
    if (graceMs <= 0) {
      this.signal('SIGKILL');
      return this.exited;
    }
    this.signal('SIGTERM');
    const timer = setTimeout(() => this.signal('SIGKILL'), graceMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }
}

/** True while `pid` exists and is not a zombie. */
export function pidAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

export { registerForExit, unregisterForExit } from '../../lib/exit-cleanup.js';

/**
 * Pids of programs started by a kubetest owner process that no longer exists (found by OWNER_ENV in
 * /proc/<pid>/environ). Normally none: setpriv's parent-death signal kills them with their owner.
 */
export function orphanedPids(): number[] {
  const out: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return out;
  }
  const prefix = `${OWNER_ENV}=`;
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    let env: string;
    try {
      env = readFileSync(`/proc/${e}/environ`, 'latin1');
    } catch {
      continue; // exited, or not ours to read
    }
    const entry = env.split('\0').find((v) => v.startsWith(prefix));
    if (entry === undefined) continue;
    const owner = Number(entry.slice(prefix.length));
    if (owner !== process.pid && !pidAlive(owner) && pidAlive(Number(e))) out.push(Number(e));
  }
  return out;
}
