/**
 * Applies and removes the in-pod redirection (iptables.ts) inside a pod's network namespace.
 *
 * How we enter the namespace: every command runs as `nsenter --net=/proc/self/fd/3 <cmd>` with the agent's
 * open netns descriptor passed to the child as its fd 3. Why not lib/native withNetns + spawn: withNetns
 * switches only the calling thread and only for synchronous work; spawn forks inside the call today, but that
 * is a libuv detail, and spawnSync would block the agent's event loop for the whole iptables run. Why the fd and
 * not the CNI_NETNS path: the descriptor is the namespace the agent enrolled (and will hand to ztunnel); a path
 * can disappear or be reused by a new sandbox, the descriptor cannot. nsenter (util-linux) is on every node.
 *
 * Idempotence: apply reads the pod's `iptables-save`, and feeds iptables-restore one block per table that first
 * deletes whatever of ours is there and then adds the full set (atomic per table). The `ip rule` is added only
 * when missing and the table-100 route uses `ip route replace`. Removal deletes every jump into our chains,
 * flushes and deletes the chains, every copy of the ip rule, and the route: nothing is left behind.
 */
import { spawn } from 'node:child_process';
import { MeshError } from '../../lib/errors.js';
import { DEFAULT_COMMAND_PATH } from './config.js';
import {
  hasInpodChains,
  inpodReconcile,
  inpodTeardown,
  ipRouteArgs,
  ipRuleArgs,
  parseIptablesSave,
  type InpodRuleOptions,
} from './iptables.js';

export interface NetnsRulesOptions extends InpodRuleOptions {
  /** Programs (PATH lookup unless absolute); overridable for iptables-legacy hosts. */
  nsenter?: string;
  iptablesRestore?: string;
  iptablesSave?: string;
  ip?: string;
  /** Per-command limit, default 40 s. */
  timeoutMs?: number;
  /** PATH of the commands (the agent's PATH setting; default DEFAULT_COMMAND_PATH). */
  commandPath?: string;
}

export class NetnsRulesError extends MeshError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('CNI_NETNS_RULES_FAILED', message, options);
  }
}

/**
 * --noflush: keep everything else in the pod's tables (Istio applies the golden this way). --wait: with the
 * legacy backend the xtables lock file is node-wide, so pods enrolled at the same time take turns instead of
 * failing; the nft backend accepts and ignores it.
 */
const RESTORE_ARGS = ['--noflush', '--wait', '30'];

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `cmd args` inside the namespace `netnsFd`; resolves with the exit status (never rejects on status). */
function runInNetns(netnsFd: number, opts: NetnsRulesOptions, cmd: string, args: string[], stdin?: string): Promise<RunResult> {
  return new Promise<RunResult>((resolve, reject) => {
    const child = spawn(opts.nsenter ?? 'nsenter', ['--net=/proc/self/fd/3', cmd, ...args], {
      stdio: ['pipe', 'pipe', 'pipe', netnsFd],
      timeout: opts.timeoutMs ?? 40_000, // longer than iptables-restore --wait 30
      env: { PATH: opts.commandPath ?? DEFAULT_COMMAND_PATH, LC_ALL: 'C' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr?.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.once('error', (err) => reject(new NetnsRulesError(`could not run ${cmd} in the pod netns: ${err.message}`, { cause: err })));
    child.once('close', (code, signal) => resolve({ code: code ?? (signal === null ? 1 : 128), stdout, stderr }));
    child.stdin?.on('error', () => undefined); // a child that exits early closes its stdin; the status tells
    child.stdin?.end(stdin ?? '');
  });
}

async function mustRun(netnsFd: number, opts: NetnsRulesOptions, cmd: string, args: string[], stdin?: string): Promise<string> {
  const r = await runInNetns(netnsFd, opts, cmd, args, stdin);
  if (r.code !== 0) {
    throw new NetnsRulesError(
      `${cmd} ${args.join(' ')} failed in the pod netns (exit ${r.code}): ${r.stderr.trim() || r.stdout.trim()}` +
        (stdin === undefined ? '' : `\ninput was:\n${stdin}`),
    );
  }
  return r.stdout;
}

async function savedRules(netnsFd: number, opts: NetnsRulesOptions) {
  return parseIptablesSave(await mustRun(netnsFd, opts, opts.iptablesSave ?? 'iptables-save', []));
}

/** The ip rule lines (`ip rule show`) that are ours. */
async function ourIpRules(netnsFd: number, opts: NetnsRulesOptions): Promise<number> {
  const out = await mustRun(netnsFd, opts, opts.ip ?? 'ip', ['-4', 'rule', 'show']);
  // e.g. "32764:	from all fwmark 0x111/0xfff lookup 100"
  return out.split('\n').filter((l) => /^32764:\s.*fwmark 0x111\/0xfff lookup 100\b/.test(l.trim())).length;
}

/** Installs (or reconciles) the in-pod rules and policy routing in the namespace. */
export async function applyInpodRules(netnsFd: number, opts: NetnsRulesOptions): Promise<void> {
  const saved = await savedRules(netnsFd, opts);
  await mustRun(netnsFd, opts, opts.iptablesRestore ?? 'iptables-restore', RESTORE_ARGS, inpodReconcile(saved, opts));
  if ((await ourIpRules(netnsFd, opts)) === 0) {
    await mustRun(netnsFd, opts, opts.ip ?? 'ip', ['-4', 'rule', 'add', ...ipRuleArgs()]);
  }
  await mustRun(netnsFd, opts, opts.ip ?? 'ip', ['-4', 'route', 'replace', ...ipRouteArgs()]);
}

/** Removes everything applyInpodRules installed (nothing, if it is not there). */
export async function removeInpodRules(netnsFd: number, opts: NetnsRulesOptions): Promise<void> {
  const teardown = inpodTeardown(await savedRules(netnsFd, opts));
  if (teardown !== '') await mustRun(netnsFd, opts, opts.iptablesRestore ?? 'iptables-restore', RESTORE_ARGS, teardown);
  for (let n = await ourIpRules(netnsFd, opts); n > 0; n--) {
    await mustRun(netnsFd, opts, opts.ip ?? 'ip', ['-4', 'rule', 'del', ...ipRuleArgs()]);
  }
  const route = await runInNetns(netnsFd, opts, opts.ip ?? 'ip', ['-4', 'route', 'del', ...ipRouteArgs()]);
  // "No such process" (route absent) or "FIB table does not exist" (table 100 never used): already clean.
  if (route.code !== 0 && !/No such process|FIB table does not exist|Cannot find device/.test(route.stderr)) {
    throw new NetnsRulesError(`ip route del ${ipRouteArgs().join(' ')} failed in the pod netns: ${route.stderr.trim()}`);
  }
}

/** Whether the namespace has any of our chains (for status and tests). */
export async function hasInpodRules(netnsFd: number, opts: NetnsRulesOptions): Promise<boolean> {
  return hasInpodChains(await savedRules(netnsFd, opts));
}
