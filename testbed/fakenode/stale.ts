/**
 * Removing what a crashed run left behind (a SIGKILLed test process runs no exit hook): network namespaces
 * named `<prefix>…`, the processes still running in them or carrying the cluster's marker in their
 * environment, host links whose alias is the cluster prefix, and state directories.
 *
 * A cluster whose owner process is still alive is left alone (unless `force`), so cleanupStale() is safe to
 * call at the start of every test file even while other test files' clusters are running. The owner is
 * recorded in `<stateDir>/owner.json` as pid plus the process start time, which guards against pid reuse.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FakeNodeError, FakeNodeErrorCode } from './errors.js';
import { run } from './exec.js';
import { DEFAULT_STATE_ROOT, FAKENODE_PREFIX, ownerPrefix } from './plan.js';
import { CLUSTER_ENV, removeHostLink, removeNamespace } from './resources.js';

const OWNER_FILE = 'owner.json';

interface Owner {
  readonly pid: number;
  readonly startTime: string;
  readonly createdAt: string;
}

/** Field 22 of /proc/<pid>/stat: the process start time in clock ticks since boot. */
function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces and parentheses; fields after the last ')' are plain.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

export async function writeOwner(stateDir: string): Promise<void> {
  const owner: Owner = { pid: process.pid, startTime: processStartTime(process.pid) ?? '', createdAt: new Date().toISOString() };
  await writeFile(join(stateDir, OWNER_FILE), `${JSON.stringify(owner)}\n`);
}

async function ownerAlive(stateDir: string): Promise<boolean> {
  try {
    const owner = JSON.parse(await readFile(join(stateDir, OWNER_FILE), 'utf8')) as Partial<Owner>;
    if (typeof owner.pid !== 'number') return false;
    const start = processStartTime(owner.pid);
    return start !== undefined && start === owner.startTime;
  } catch {
    return false;
  }
}

export interface StaleCleanupOptions {
  /** The state root the clusters used; default /run/fakenode. */
  readonly stateRoot?: string;
  /** Remove clusters whose owner process is still alive too. */
  readonly force?: boolean;
  /** Match the one cluster whose prefix is exactly `prefix` (not every cluster whose name starts with it). */
  readonly exact?: boolean;
}

export interface StaleCleanupReport {
  /** Cluster prefixes something was removed for. */
  readonly clusters: readonly string[];
  readonly namespaces: readonly string[];
  readonly processes: readonly number[];
  readonly hostLinks: readonly string[];
  readonly directories: readonly string[];
  /** Clusters left alone because their owner is alive. */
  readonly skippedLive: readonly string[];
  /** Resources that could not be removed, with the reason. */
  readonly failures: readonly string[];
}

/**
 * Pids whose environment carries CLUSTER_ENV=<a prefix accepted by `match>`. This finds processes that left
 * our namespaces (or whose namespace is already gone); processes inside a namespace are found by
 * `ip netns pids` when it is removed, which also catches programs that overwrite their environment area
 * for a process title (nginx).
 */
function markedProcesses(match: (clusterPrefix: string) => boolean): Map<number, string> {
  const found = new Map<number, string>();
  const needle = `${CLUSTER_ENV}=`;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    let env: string;
    try {
      env = readFileSync(`/proc/${pid}/environ`, 'latin1');
    } catch {
      continue; // exited meanwhile, or a kernel thread
    }
    for (const kv of env.split('\0')) {
      if (kv.startsWith(needle) && match(kv.slice(needle.length))) found.set(pid, kv.slice(needle.length));
    }
  }
  return found;
}

/**
 * Removes leftovers of clusters whose names start with `prefix` (default: every fake-node cluster) and whose
 * owner process is gone. The prefix must start with "fn-", so nothing this library did not make is touched.
 */
export async function cleanupStale(prefix: string = FAKENODE_PREFIX, opts: StaleCleanupOptions = {}): Promise<StaleCleanupReport> {
  if (!prefix.startsWith(FAKENODE_PREFIX)) {
    throw new FakeNodeError(
      FakeNodeErrorCode.INVALID_ARGUMENT,
      `cleanupStale prefix "${prefix}" must start with "${FAKENODE_PREFIX}" (only this library's names are removed)`,
    );
  }
  const stateRoot = opts.stateRoot ?? DEFAULT_STATE_ROOT;
  const failures: string[] = [];
  const clusters = new Set<string>();

  // Which clusters are alive: decided once, from their owner files.
  const live = new Set<string>();
  const matches = (name: string): boolean => (opts.exact === true ? ownerPrefix(name) === prefix : name.startsWith(prefix));
  const dirs = (await readdir(stateRoot).catch(() => [] as string[])).filter(matches);
  if (opts.force !== true) {
    for (const d of dirs) if (await ownerAlive(join(stateRoot, d))) live.add(d);
  }
  const stale = (name: string): boolean => matches(name) && !live.has(ownerPrefix(name));

  // 1. Processes first, so nothing holds or recreates what is removed next.
  const processes: number[] = [];
  for (const [pid, owner] of markedProcesses(stale)) {
    try {
      process.kill(pid, 'SIGKILL');
      processes.push(pid);
      clusters.add(owner);
    } catch {
      // gone already
    }
  }

  // 2. Host links (their alias is the owning cluster's prefix).
  const hostLinks: string[] = [];
  const links = await run('ip', ['-j', 'link', 'show']);
  if (links.code === 0) {
    for (const l of JSON.parse(links.stdout) as { ifname?: string; ifalias?: string }[]) {
      if (l.ifname === undefined || l.ifalias === undefined || !stale(l.ifalias)) continue;
      try {
        await removeHostLink(l.ifname);
        hostLinks.push(l.ifname);
        clusters.add(ownerPrefix(l.ifalias));
      } catch (e) {
        failures.push(`host link ${l.ifname}: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
  }

  // 3. Namespaces: whatever still runs inside is killed by removeNamespace; pods before nodes before switches.
  const list = await run('ip', ['netns', 'list']);
  const names = list.stdout
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => n !== '' && stale(n));
  const ordered = [...names.filter((n) => n.includes('.pod.')), ...names.filter((n) => !n.includes('.pod.'))];
  const namespaces: string[] = [];
  for (const n of ordered) {
    try {
      await removeNamespace(n);
      namespaces.push(n);
      clusters.add(ownerPrefix(n));
    } catch (e) {
      failures.push(`netns ${n}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  // 4. State directories.
  const directories: string[] = [];
  for (const d of dirs) {
    if (live.has(d)) continue;
    try {
      await rm(join(stateRoot, d), { recursive: true, force: true });
      directories.push(join(stateRoot, d));
      clusters.add(d);
    } catch (e) {
      failures.push(`directory ${d}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  return {
    clusters: [...clusters].sort(),
    namespaces,
    processes,
    hostLinks,
    directories,
    skippedLive: [...live].sort(),
    failures,
  };
}
