/**
 * A CNI runtime, as a container runtime (containerd, CRI-O) is one, following the CNI specification 1.0.0:
 *   §1  network configuration lists (`cniVersion`, `name`, `plugins`);
 *   §2  the execution protocol: CNI_COMMAND / CNI_CONTAINERID / CNI_NETNS / CNI_IFNAME / CNI_ARGS / CNI_PATH in
 *       the environment, the plugin's configuration on stdin, a result (or an error result) on stdout;
 *   §3  executing a list: ADD runs the plugins in order, each given the previous plugin's result as
 *       `prevResult`; the final result is cached, and DEL runs the plugins in reverse order, each given that
 *       cached final result; "a delete must still be executed even if the add fails";
 *   §3  deriving the execution configuration: insert `cniVersion`, `name`, `runtimeConfig`, `prevResult`,
 *       remove `capabilities`, pass every other key through unchanged;
 *   §5  result types (success, error with `code`/`msg`/`details`).
 * Plugins run in the "runtime's networking domain" (§2) — for a fake node, the node's network namespace.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { CniError, FakeNodeError, FakeNodeErrorCode, type CniErrorResult } from './errors.js';
import { findExecutable, run } from './exec.js';
import type { ChildProcess } from 'node:child_process';
import { childEnv } from '../env.js';

export const CNI_VERSION = '1.0.0';

/** A plugin configuration object (§1): `type` names the executable; every other key is the plugin's own. */
export interface PluginConfig {
  readonly type: string;
  /** Capability names this plugin accepts in runtimeConfig (§3 "Deriving runtimeConfig"). */
  readonly capabilities?: Readonly<Record<string, boolean>>;
  readonly [key: string]: unknown;
}

/** A network configuration list (§1). */
export interface NetworkConfigList {
  readonly cniVersion: string;
  readonly name: string;
  readonly disableCheck?: boolean;
  readonly plugins: readonly PluginConfig[];
}

export interface CniInterface {
  readonly name: string;
  readonly mac?: string;
  /** The netns path for interfaces inside the container; absent for host interfaces. */
  readonly sandbox?: string;
}

export interface CniIpConfig {
  /** CIDR notation, e.g. "10.244.1.2/24". */
  readonly address: string;
  readonly gateway?: string;
  /** Index into `interfaces`. */
  readonly interface?: number;
}

export interface CniRoute {
  readonly dst: string;
  readonly gw?: string;
}

/** A success result (§5), with unknown keys kept so it can be passed on unchanged as prevResult. */
export interface CniResult {
  readonly cniVersion: string;
  readonly interfaces?: readonly CniInterface[];
  readonly ips?: readonly CniIpConfig[];
  readonly routes?: readonly CniRoute[];
  readonly dns?: {
    readonly nameservers?: readonly string[];
    readonly domain?: string;
    readonly search?: readonly string[];
    readonly options?: readonly string[];
  };
  readonly [key: string]: unknown;
}

/** The per-attachment parameters (§3 "Attachment Parameters") and where the plugins run. */
export interface AttachmentParams {
  readonly containerId: string;
  readonly netnsPath: string;
  readonly ifName: string;
  /** CNI_ARGS as ordered key/value pairs. */
  readonly args: readonly (readonly [string, string])[];
  /** Directories searched for plugin executables, also passed as CNI_PATH. */
  readonly cniPath: readonly string[];
  /** Explicit executables by plugin type, for plugins outside CNI_PATH's usual directories. */
  readonly pluginPaths?: ReadonlyMap<string, string>;
  /** Capability arguments offered to plugins that declare the capability (§3). */
  readonly capabilityArgs?: Readonly<Record<string, unknown>>;
  /** The named network namespace plugins execute in (the node's); undefined = the caller's. */
  readonly execNetns?: string;
  /** Per-plugin time limit; default 30 s. */
  readonly timeoutMs?: number;
  /** Registers each plugin process for cleanup while it runs. */
  readonly onSpawn?: (child: ChildProcess) => void;
}

/** The outcome of a successful ADD of a list: the final result and what DEL will need. */
export interface CniAttachment {
  readonly list: NetworkConfigList;
  readonly params: AttachmentParams;
  /** The final plugin's result (§3: the runtime must store it for CHECK and DEL). */
  readonly result: CniResult;
}

const RESERVED_KEYS = ['cniVersion', 'name', 'runtimeConfig', 'prevResult', 'args'] as const;

/** Formats CNI_ARGS ("FOO=BAR;ABC=123", §2); keys and values may not contain ';' or '='. */
export function formatCniArgs(args: readonly (readonly [string, string])[]): string {
  for (const [k, v] of args) {
    if (/[;=]/.test(k) || /[;=]/.test(v) || k === '') {
      throw new FakeNodeError(FakeNodeErrorCode.INVALID_ARGUMENT, `CNI_ARGS pair ${k}=${v} may not contain ';' or '='`);
    }
  }
  return args.map(([k, v]) => `${k}=${v}`).join(';');
}

/**
 * The configuration given to one plugin (§3 "Deriving execution configuration from plugin configuration"):
 * the plugin's object with `cniVersion` and `name` from the list, `runtimeConfig` from the capabilities it
 * declares and the runtime offers (omitted when empty, as libcni does), `prevResult` when there is one, and
 * `capabilities` removed. Keys are inserted after the plugin's own so a plugin cannot override them.
 */
export function deriveExecConfig(
  list: Pick<NetworkConfigList, 'cniVersion' | 'name'>,
  plugin: PluginConfig,
  prevResult: CniResult | undefined,
  capabilityArgs: Readonly<Record<string, unknown>> = {},
): Record<string, unknown> {
  const { capabilities, ...rest } = plugin;
  const runtimeConfig: Record<string, unknown> = {};
  for (const [cap, enabled] of Object.entries(capabilities ?? {})) {
    if (enabled && cap in capabilityArgs) runtimeConfig[cap] = capabilityArgs[cap];
  }
  return {
    ...rest,
    cniVersion: list.cniVersion,
    name: list.name,
    ...(Object.keys(runtimeConfig).length > 0 ? { runtimeConfig } : {}),
    ...(prevResult === undefined ? {} : { prevResult }),
  };
}

/** Throws unless a plugin object is usable in a list (has a type, uses no key reserved for the runtime, §1). */
export function validatePluginConfig(p: PluginConfig): void {
  if (typeof p.type !== 'string' || p.type === '' || p.type.includes('/')) {
    throw new FakeNodeError(FakeNodeErrorCode.INVALID_ARGUMENT, `plugin type ${JSON.stringify(p.type)} must be a non-empty file name`);
  }
  for (const k of RESERVED_KEYS) {
    if (k in p)
      throw new FakeNodeError(
        FakeNodeErrorCode.INVALID_ARGUMENT,
        `plugin "${p.type}" config may not set "${k}": the runtime inserts it (CNI spec §1, reserved keys)`,
      );
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Validates a plugin's stdout as a CNI success result (§5). */
export function parseCniResult(stdout: string, plugin: string): CniResult {
  let parsed: unknown;
  try {
    parsed = JSON.parse(stdout);
  } catch (e) {
    throw new FakeNodeError(FakeNodeErrorCode.CNI_BAD_RESULT, `plugin "${plugin}" printed no JSON result: ${stdout.slice(0, 300)}`, {
      cause: e,
    });
  }
  const bad = (why: string): FakeNodeError =>
    new FakeNodeError(FakeNodeErrorCode.CNI_BAD_RESULT, `plugin "${plugin}" returned an invalid result (${why}): ${stdout.slice(0, 300)}`);
  if (!isRecord(parsed)) throw bad('not an object');
  if (typeof parsed.cniVersion !== 'string') throw bad('no cniVersion');
  const { interfaces, ips, routes } = parsed;
  if (interfaces !== undefined && (!Array.isArray(interfaces) || !interfaces.every((i) => isRecord(i) && typeof i.name === 'string'))) {
    throw bad('interfaces');
  }
  if (ips !== undefined && (!Array.isArray(ips) || !ips.every((i) => isRecord(i) && typeof i.address === 'string'))) throw bad('ips');
  if (routes !== undefined && (!Array.isArray(routes) || !routes.every((r) => isRecord(r) && typeof r.dst === 'string')))
    throw bad('routes');
  return parsed as CniResult;
}

function parseCniErrorResult(text: string): CniErrorResult | undefined {
  try {
    const v: unknown = JSON.parse(text);
    if (isRecord(v) && typeof v.code === 'number' && typeof v.msg === 'string') {
      return {
        code: v.code,
        msg: v.msg,
        ...(typeof v.cniVersion === 'string' ? { cniVersion: v.cniVersion } : {}),
        ...(typeof v.details === 'string' && v.details !== '' ? { details: v.details } : {}),
      };
    }
  } catch {
    // not JSON
  }
  return undefined;
}

/** §3 step 1: find the executable for `type`; not finding it is an error. */
export function lookupPlugin(type: string, params: Pick<AttachmentParams, 'cniPath' | 'pluginPaths'>): string {
  const explicit = params.pluginPaths?.get(type);
  const found = explicit ?? findExecutable(type, params.cniPath);
  if (found === undefined) {
    throw new FakeNodeError(
      FakeNodeErrorCode.CNI_PLUGIN_NOT_FOUND,
      `CNI plugin "${type}" not found in CNI_PATH ${params.cniPath.join(':')} (Debian ships bridge, host-local and loopback in containernetworking-plugins)`,
    );
  }
  return found;
}

/** Executes one plugin once (§2) and returns its stdout; a failure becomes a CniError. */
export async function invokePlugin(
  command: 'ADD' | 'DEL' | 'CHECK',
  network: string,
  config: Record<string, unknown> & { type: string },
  params: AttachmentParams,
): Promise<string> {
  const exe = lookupPlugin(config.type, params);
  // Like libcni, the plugin inherits the runtime's environment (PATH for iptables etc.) plus the CNI_* parameters.
  const env = childEnv({
    CNI_COMMAND: command,
    CNI_CONTAINERID: params.containerId,
    CNI_NETNS: params.netnsPath,
    CNI_IFNAME: params.ifName,
    CNI_ARGS: formatCniArgs(params.args),
    CNI_PATH: params.cniPath.join(':'),
  });
  const r = await run(exe, [], {
    netns: params.execNetns,
    env,
    input: JSON.stringify(config),
    timeoutMs: params.timeoutMs ?? 30_000,
    onSpawn: params.onSpawn,
  });
  if (r.code !== 0) {
    // Plugins built on the reference skeleton print the error result on stdout; the spec's prose says stderr.
    const cniError = parseCniErrorResult(r.stdout) ?? parseCniErrorResult(r.stderr);
    const stderr = cniError !== undefined && parseCniErrorResult(r.stderr) !== undefined ? '' : r.stderr.trim();
    throw new CniError({
      command,
      network,
      plugin: config.type,
      exitCode: r.timedOut ? null : r.code,
      stderr,
      ...(cniError === undefined ? {} : { cniError }),
      ...(r.timedOut ? { reason: `timed out after ${params.timeoutMs ?? 30_000} ms` } : {}),
    });
  }
  return r.stdout;
}

/**
 * ADD of a network configuration list (§3 "Adding an attachment"). On failure, DEL is run for the whole list
 * in reverse order without a prevResult (§3 "a delete must still be executed even if the add fails"; §2: a
 * plugin given no prevResult cleans up what it can), and the ADD error is thrown.
 */
export async function addNetworkList(list: NetworkConfigList, params: AttachmentParams): Promise<CniAttachment> {
  list.plugins.forEach(validatePluginConfig);
  let prev: CniResult | undefined;
  try {
    for (const plugin of list.plugins) {
      const config = deriveExecConfig(list, plugin, prev, params.capabilityArgs) as Record<string, unknown> & { type: string };
      prev = parseCniResult(await invokePlugin('ADD', list.name, config, params), plugin.type);
    }
  } catch (addError) {
    // Every plugin gets its DEL even if an earlier one fails: this is cleanup, the ADD error is what counts.
    for (const plugin of [...list.plugins].reverse()) {
      const config = deriveExecConfig(list, plugin, undefined, params.capabilityArgs) as Record<string, unknown> & { type: string };
      await invokePlugin('DEL', list.name, config, params).catch(() => undefined);
    }
    throw addError;
  }
  if (prev === undefined) throw new FakeNodeError(FakeNodeErrorCode.INVALID_ARGUMENT, `network "${list.name}" has no plugins`);
  return { list, params, result: prev };
}

/**
 * DEL of a list (§3 "Deleting an attachment"): plugins in reverse order, each given the cached final ADD
 * result as prevResult. The first failure stops the walk and is thrown, as §3 step 4 says.
 */
export async function delNetworkList(
  list: NetworkConfigList,
  params: AttachmentParams,
  cachedResult: CniResult | undefined,
): Promise<void> {
  for (const plugin of [...list.plugins].reverse()) {
    const config = deriveExecConfig(list, plugin, cachedResult, params.capabilityArgs) as Record<string, unknown> & { type: string };
    await invokePlugin('DEL', list.name, config, params);
  }
}

/**
 * CHECK of a list (§3 "Checking an attachment"): plugins in order with the cached result; a list with
 * `disableCheck` succeeds without running anything.
 */
export async function checkNetworkList(attachment: CniAttachment): Promise<void> {
  if (attachment.list.disableCheck === true) return;
  for (const plugin of attachment.list.plugins) {
    const config = deriveExecConfig(attachment.list, plugin, attachment.result, attachment.params.capabilityArgs) as Record<
      string,
      unknown
    > & { type: string };
    await invokePlugin('CHECK', attachment.list.name, config, attachment.params);
  }
}

/** libcni-style result cache file name: `<network>-<container id>-<ifname>` (the spec's state key, §2). */
export function cacheFileName(dir: string, network: string, containerId: string, ifName: string): string {
  return join(dir, `${network}-${containerId}-${ifName}.json`);
}

/** Stores the final ADD result (§3: "The runtime must store the result ... persistently"). */
export async function writeCachedResult(dir: string, attachment: CniAttachment): Promise<string> {
  const file = cacheFileName(dir, attachment.list.name, attachment.params.containerId, attachment.params.ifName);
  await mkdir(dirname(file), { recursive: true });
  await writeFile(
    file,
    `${JSON.stringify(
      {
        kind: 'cniCacheV1',
        containerId: attachment.params.containerId,
        ifName: attachment.params.ifName,
        networkName: attachment.list.name,
        cniArgs: attachment.params.args,
        config: attachment.list,
        result: attachment.result,
      },
      null,
      2,
    )}\n`,
  );
  return file;
}

/** Removes the cached result after a successful DEL (CNI spec 0.4.0 §DEL, kept in practice by libcni). */
export async function removeCachedResult(dir: string, attachment: CniAttachment): Promise<void> {
  await rm(cacheFileName(dir, attachment.list.name, attachment.params.containerId, attachment.params.ifName), { force: true });
}
