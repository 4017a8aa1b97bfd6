/**
 * Processes inside a fake node's or pod's network namespace. A NetworkNamespace (the base of FakeNode and
 * Pod) starts long-running processes with spawn() and runs commands to completion with exec(); both are
 * registered with the cluster so that destroy() (or the exit hook) stops them.
 *
 * Each process leads its own process group (spawned detached), so stopping it also stops the children it
 * forked (nginx's workers); whatever still runs in a namespace when it is deleted is killed by pid.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import type { Logger } from '../../lib/telemetry/logger.js';
import { FakeNodeError, FakeNodeErrorCode } from './errors.js';
import { killGroup, netnsArgv, run, runChecked, type ExecResult } from './exec.js';
import { CLUSTER_ENV, type ResourceTracker } from './resources.js';
import { childEnv } from '../env.js';

/** What a NetworkNamespace needs from the cluster that made it. */
export interface ClusterContext {
  readonly prefix: string;
  readonly stateDir: string;
  readonly logger: Logger;
  readonly tracker: ResourceTracker;
  /** Throws FAKENODE_CLUSTER_DESTROYED once destroy() has started. */
  assertUsable(): void;
}

export interface ProcessExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface SpawnOptions {
  /** Added to this process's environment. */
  readonly env?: Readonly<Record<string, string>>;
  readonly cwd?: string;
  /** 'pipe' to write to the process's stdin (`proc.child.stdin`); default 'ignore'. */
  readonly stdin?: 'pipe' | 'ignore';
  /** Bytes of stdout and of stderr kept in memory. Default 1 MiB each. */
  readonly outputLimit?: number;
  /** Which part to keep when the output exceeds the limit: the tail (logs; default) or the head (a capture file). */
  readonly keep?: 'head' | 'tail';
}

export interface ExecOptions {
  readonly env?: Readonly<Record<string, string>>;
  readonly cwd?: string;
  readonly input?: string;
  /** Default 30 s; the process group is killed after it. */
  readonly timeoutMs?: number;
}

const DEFAULT_OUTPUT_LIMIT = 1 << 20;

/** Output kept from a stream, bounded. */
class OutputBuffer {
  private chunks: Buffer[] = [];
  private size = 0;
  /** Bytes dropped because of the limit. */
  dropped = 0;

  constructor(
    private readonly limit: number,
    private readonly keep: 'head' | 'tail',
  ) {}

  push(c: Buffer): void {
    if (this.keep === 'head') {
      const room = this.limit - this.size;
      if (room <= 0) {
        this.dropped += c.length;
        return;
      }
      const part = c.length > room ? c.subarray(0, room) : c;
      this.dropped += c.length - part.length;
      this.chunks.push(part);
      this.size += part.length;
      return;
    }
    this.chunks.push(c);
    this.size += c.length;
    while (this.size > this.limit && this.chunks.length > 1) {
      const first = this.chunks.shift() as Buffer;
      this.size -= first.length;
      this.dropped += first.length;
    }
  }

  buffer(): Buffer {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0] ?? Buffer.alloc(0);
  }
}

/** A process running in a namespace. */
export class NsProcess {
  readonly child: ChildProcess;
  /** The program's pid (`ip netns exec` exec()s it in place). */
  readonly pid: number;
  readonly netns: string;
  /** The command line, for messages. */
  readonly commandLine: string;
  /** Resolves when the process has exited and its output is complete; never rejects. */
  readonly exited: Promise<ProcessExit>;
  private readonly out: OutputBuffer;
  private readonly err: OutputBuffer;
  private exit: ProcessExit | undefined;
  private readonly waiters = new Set<() => void>();

  constructor(child: ChildProcess, netns: string, commandLine: string, opts: SpawnOptions) {
    if (child.pid === undefined) throw new Error('spawn returned no pid');
    this.child = child;
    this.pid = child.pid;
    this.netns = netns;
    this.commandLine = commandLine;
    const limit = opts.outputLimit ?? DEFAULT_OUTPUT_LIMIT;
    this.out = new OutputBuffer(limit, opts.keep ?? 'tail');
    this.err = new OutputBuffer(limit, opts.keep ?? 'tail');
    const notify = (): void => {
      for (const w of [...this.waiters]) w();
    };
    child.stdout?.on('data', (c: Buffer) => {
      this.out.push(c);
      notify();
    });
    child.stderr?.on('data', (c: Buffer) => {
      this.err.push(c);
      notify();
    });
    this.exited = new Promise((resolve) => {
      child.once('close', (code, signal) => {
        this.exit = { code, signal };
        notify();
        resolve(this.exit);
      });
    });
  }

  get running(): boolean {
    return this.exit === undefined;
  }

  /** The exit status once exited. */
  get exitStatus(): ProcessExit | undefined {
    return this.exit;
  }

  /** Everything kept from stdout so far, as text. */
  get stdout(): string {
    return this.out.buffer().toString('utf8');
  }

  get stderr(): string {
    return this.err.buffer().toString('utf8');
  }

  /** Everything kept from stdout so far, as bytes (binary output such as a pcap stream). */
  stdoutBytes(): Buffer {
    return this.out.buffer();
  }

  /**
   * Resolves with the first match of `pattern` in the output (stdout, stderr or both). Rejects with
   * FAKENODE_PROCESS_EXITED if the process exits first, FAKENODE_TIMEOUT after timeoutMs (default 10 s).
   */
  waitForOutput(pattern: RegExp, opts: { stream?: 'stdout' | 'stderr' | 'both'; timeoutMs?: number } = {}): Promise<RegExpMatchArray> {
    const stream = opts.stream ?? 'both';
    const check = (): RegExpMatchArray | null => {
      const text = stream === 'stdout' ? this.stdout : stream === 'stderr' ? this.stderr : `${this.stdout}\n${this.stderr}`;
      return pattern.exec(text);
    };
    return new Promise((resolve, reject) => {
      const done = (): void => {
        clearTimeout(timer);
        this.waiters.delete(waiter);
      };
      const waiter = (): void => {
        const m = check();
        if (m !== null) {
          done();
          resolve(m);
        } else if (this.exit !== undefined) {
          done();
          reject(this.exitedError(`before printing ${String(pattern)}`));
        }
      };
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(
          new FakeNodeError(
            FakeNodeErrorCode.TIMEOUT,
            `${this.commandLine} (netns ${this.netns}) printed nothing matching ${String(pattern)} within ${opts.timeoutMs ?? 10_000} ms; stderr: ${this.stderr.slice(-500)}`,
          ),
        );
      }, opts.timeoutMs ?? 10_000);
      this.waiters.add(waiter);
      waiter();
    });
  }

  /** A FAKENODE_PROCESS_EXITED error describing how the process ended, with the tail of its stderr. */
  exitedError(context: string): FakeNodeError {
    const how =
      this.exit === undefined
        ? 'is running'
        : this.exit.signal !== null
          ? `was killed by ${this.exit.signal}`
          : `exited with ${this.exit.code}`;
    const tail = (this.stderr.trim() || this.stdout.trim()).slice(-800);
    return new FakeNodeError(
      FakeNodeErrorCode.PROCESS_EXITED,
      `${this.commandLine} (netns ${this.netns}) ${how} ${context}${tail === '' ? '' : `: ${tail}`}`,
    );
  }

  /** Sends a signal to the process group. */
  signal(signal: NodeJS.Signals): void {
    killGroup(this.child, signal);
  }

  /** SIGTERM, then SIGKILL after graceMs (default 2 s); resolves with the exit status. */
  async stop(graceMs = 2_000): Promise<ProcessExit> {
    if (this.exit !== undefined) return this.exit;
    this.signal('SIGTERM');
    const timer = setTimeout(() => this.signal('SIGKILL'), graceMs);
    const exit = await this.exited;
    clearTimeout(timer);
    return exit;
  }
}

/** A named network namespace made by the cluster: the switch, a node or a pod. */
export class NetworkNamespace {
  /** The `ip netns` name. */
  readonly netnsName: string;
  /** The bind-mounted namespace file, as CNI_NETNS and setns(2) want it. */
  readonly netnsPath: string;
  protected readonly ctx: ClusterContext;

  constructor(ctx: ClusterContext, netnsName: string) {
    this.ctx = ctx;
    this.netnsName = netnsName;
    this.netnsPath = `/run/netns/${netnsName}`;
  }

  /** A directory for files of processes run here (app configs, logs), inside the cluster's state directory. */
  get workDir(): string {
    return join(this.ctx.stateDir, 'work', this.netnsName);
  }

  private env(extra: Readonly<Record<string, string>> | undefined): NodeJS.ProcessEnv {
    return childEnv({ ...extra, [CLUSTER_ENV]: this.ctx.prefix });
  }

  /** Starts a long-running process in this namespace; it is stopped by destroy() if still running. */
  spawn(cmd: string, args: readonly string[] = [], opts: SpawnOptions = {}): NsProcess {
    this.ctx.assertUsable();
    const [file, argv] = netnsArgv(this.netnsName, cmd, args);
    const child = spawn(file, argv, {
      env: this.env(opts.env),
      cwd: opts.cwd,
      stdio: [opts.stdin ?? 'ignore', 'pipe', 'pipe'],
      detached: true,
    });
    if (child.pid === undefined) {
      // spawn() reports ENOENT asynchronously; without a pid nothing was started.
      child.once('error', () => {});
      throw new FakeNodeError(FakeNodeErrorCode.MISSING_TOOL, `cannot start ${file}; is iproute2 installed?`);
    }
    this.ctx.tracker.trackChild(child, this.netnsName);
    const proc = new NsProcess(child, this.netnsName, [cmd, ...args].join(' '), opts);
    this.ctx.logger.debug({ netns: this.netnsName, pid: proc.pid, cmd: proc.commandLine }, 'spawned');
    return proc;
  }

  /** Runs a command in this namespace to completion: { code, stdout, stderr }. A non-zero code is not an error. */
  exec(cmd: string, args: readonly string[] = [], opts: ExecOptions = {}): Promise<ExecResult> {
    this.ctx.assertUsable();
    return run(cmd, args, {
      netns: this.netnsName,
      env: this.env(opts.env),
      cwd: opts.cwd,
      input: opts.input,
      timeoutMs: opts.timeoutMs,
      onSpawn: (child) => this.ctx.tracker.trackChild(child, this.netnsName),
    });
  }

  /** Like exec(), but a non-zero exit rejects with FAKENODE_COMMAND_FAILED; resolves to stdout. */
  execChecked(cmd: string, args: readonly string[] = [], opts: ExecOptions = {}): Promise<string> {
    this.ctx.assertUsable();
    return runChecked(cmd, args, {
      netns: this.netnsName,
      env: this.env(opts.env),
      cwd: opts.cwd,
      input: opts.input,
      timeoutMs: opts.timeoutMs,
      onSpawn: (child) => this.ctx.tracker.trackChild(child, this.netnsName),
    });
  }
}
