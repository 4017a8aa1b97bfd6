/**
 * Cleanup discipline: every namespace, host link, directory and process a cluster makes is registered here
 * the moment it exists, and torn down in reverse order by teardown() (async, for destroy()) or teardownSync()
 * (for the process-exit hook, where no event-loop turn is left). Teardown continues past failures and
 * reports them all at the end, so one stuck resource never leaves the others behind.
 *
 * The exit hook: while any cluster is alive, 'exit' and SIGINT/SIGTERM/SIGHUP handlers tear down what is
 * left when the test runner aborts (a timeout, Ctrl-C) or a test forgets destroy(). SIGKILL cannot be
 * caught; cleanupStale() (stale.ts) handles what such a death leaves.
 */
import type { ChildProcess } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { killGroup, run, runSync } from './exec.js';

/** Environment variable set on every process the library starts; cleanupStale finds orphans by it. */
export const CLUSTER_ENV = 'FAKENODE_CLUSTER';

export interface TrackedChild {
  readonly child: ChildProcess;
  /** The namespace it runs in (undefined = the caller's). */
  readonly netns: string | undefined;
}

export class ResourceTracker {
  readonly children = new Set<TrackedChild>();
  /** In creation order; removed in reverse (pods before nodes before the switch). */
  readonly namespaces: string[] = [];
  readonly hostLinks: string[] = [];
  readonly dirs: string[] = [];

  /** Registers a running child; it unregisters itself when it exits. */
  trackChild(child: ChildProcess, netns: string | undefined): TrackedChild {
    const entry = { child, netns };
    this.children.add(entry);
    child.once('exit', () => this.children.delete(entry));
    child.once('error', () => this.children.delete(entry));
    return entry;
  }

  addNamespace(name: string): void {
    this.namespaces.push(name);
  }

  /** After a namespace was removed on purpose (deletePod). */
  forgetNamespace(name: string): void {
    const i = this.namespaces.lastIndexOf(name);
    if (i >= 0) this.namespaces.splice(i, 1);
  }
}

function isAlive(child: ChildProcess): boolean {
  return child.pid !== undefined && child.exitCode === null && child.signalCode === null;
}

function waitExit(child: ChildProcess, ms: number): Promise<void> {
  if (!isAlive(child)) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    child.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
  });
}

/** SIGTERM to each child's process group, SIGKILL to what is still running after graceMs. */
export async function stopChildren(children: Iterable<TrackedChild>, graceMs: number): Promise<void> {
  const list = [...children].filter((c) => isAlive(c.child));
  for (const c of list) killGroup(c.child, 'SIGTERM');
  await Promise.all(list.map((c) => waitExit(c.child, graceMs)));
  const stubborn = list.filter((c) => isAlive(c.child));
  for (const c of stubborn) killGroup(c.child, 'SIGKILL');
  await Promise.all(stubborn.map((c) => waitExit(c.child, 2_000)));
}

function parsePids(text: string): number[] {
  return text
    .split(/\s+/)
    .filter((s) => /^\d+$/.test(s))
    .map(Number)
    .filter((p) => p !== process.pid);
}

function killPids(pids: readonly number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/** True once the process is gone or a zombie (its parent died, and reaping it is up to init). */
function exited(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z';
  } catch {
    return true;
  }
}

/** Waits (up to timeoutMs) until SIGKILLed processes have actually exited, so callers can assert on it. */
async function waitExited(pids: readonly number[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (pids.some((p) => !exited(p)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
}

const GONE = /No such file|does not exist|Cannot find device|not found/i;

/**
 * Kills whatever still runs inside the namespace (processes we did not start, e.g. an app's workers whose
 * parent died) and deletes it. A namespace that is already gone counts as success.
 */
export async function removeNamespace(name: string): Promise<void> {
  const pids = await run('ip', ['netns', 'pids', name]);
  if (pids.code === 0) {
    const list = parsePids(pids.stdout);
    killPids(list);
    await waitExited(list, 2_000);
  }
  const del = await run('ip', ['netns', 'del', name]);
  if (del.code !== 0 && !GONE.test(del.stderr)) throw new Error(`ip netns del ${name}: ${del.stderr.trim()}`);
}

export function removeNamespaceSync(name: string): string | undefined {
  const pids = runSync('ip', ['netns', 'pids', name]);
  if (pids.code === 0) killPids(parsePids(pids.stdout));
  const del = runSync('ip', ['netns', 'del', name]);
  return del.code !== 0 && !GONE.test(del.stderr) ? `ip netns del ${name}: ${del.stderr.trim()}` : undefined;
}

export async function removeHostLink(name: string): Promise<void> {
  const r = await run('ip', ['link', 'del', name]);
  if (r.code !== 0 && !GONE.test(r.stderr)) throw new Error(`ip link del ${name}: ${r.stderr.trim()}`);
}

/** Tears everything down; returns one line per resource that could not be removed. */
export async function teardown(t: ResourceTracker, graceMs: number): Promise<string[]> {
  const failures: string[] = [];
  const attempt = async (what: string, fn: () => Promise<void>): Promise<void> => {
    try {
      await fn();
    } catch (e) {
      failures.push(`${what}: ${e instanceof Error ? e.message : String(e)}`);
    }
  };
  await attempt('processes', () => stopChildren(t.children, graceMs));
  for (const link of [...t.hostLinks].reverse()) await attempt(`host link ${link}`, () => removeHostLink(link));
  t.hostLinks.length = 0;
  // Pods first (their veths end on the nodes' bridges), then nodes, then the switch; independent ones in parallel.
  const namespaces = [...t.namespaces].reverse();
  await Promise.all(namespaces.filter((n) => n.includes('.pod.')).map((n) => attempt(`netns ${n}`, () => removeNamespace(n))));
  await Promise.all(namespaces.filter((n) => !n.includes('.pod.')).map((n) => attempt(`netns ${n}`, () => removeNamespace(n))));
  t.namespaces.length = 0;
  for (const dir of [...t.dirs].reverse()) await attempt(`directory ${dir}`, () => rm(dir, { recursive: true, force: true }));
  t.dirs.length = 0;
  return failures;
}

/** The same, synchronously and with SIGKILL right away (the process is exiting). */
export function teardownSync(t: ResourceTracker): string[] {
  const failures: string[] = [];
  for (const c of t.children) killGroup(c.child, 'SIGKILL');
  t.children.clear();
  for (const link of [...t.hostLinks].reverse()) runSync('ip', ['link', 'del', link]);
  t.hostLinks.length = 0;
  for (const n of [...t.namespaces].reverse()) {
    const f = removeNamespaceSync(n);
    if (f !== undefined) failures.push(f);
  }
  t.namespaces.length = 0;
  for (const dir of [...t.dirs].reverse()) {
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch (e) {
      failures.push(`directory ${dir}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  t.dirs.length = 0;
  return failures;
}

export { registerForExit, unregisterForExit } from '../../lib/exit-cleanup.js';
