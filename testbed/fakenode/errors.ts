/**
 * The fake-node library's errors: a FakeNodeError is a MeshError whose code is one of FakeNodeErrorCode and
 * whose message says what failed and what to check next. CNI plugin failures are CniErrors, which also carry
 * the plugin's error result (CNI spec 1.0.0 §5 "Error": `code`, `msg`, `details`).
 */
import { MeshError } from '../../lib/errors.js';

export const FakeNodeErrorCode = {
  /** The caller is not root; network namespaces, veth links and CNI plugins need CAP_NET_ADMIN/CAP_SYS_ADMIN. */
  NOT_ROOT: 'FAKENODE_NOT_ROOT',
  /** A program the library runs (ip, nginx, curl, tcpdump, a CNI plugin) is not installed. */
  MISSING_TOOL: 'FAKENODE_MISSING_TOOL',
  /** An option or name was rejected before anything was created. */
  INVALID_ARGUMENT: 'FAKENODE_INVALID_ARGUMENT',
  /** A setup command (ip, sysctl, ...) exited non-zero; its stderr is in the message. */
  COMMAND_FAILED: 'FAKENODE_COMMAND_FAILED',
  /** A CNI plugin failed (CniError). */
  CNI_FAILED: 'FAKENODE_CNI_FAILED',
  /** A CNI plugin executable was not found in CNI_PATH (CNI spec 1.0.0 §3: "this is an error"). */
  CNI_PLUGIN_NOT_FOUND: 'FAKENODE_CNI_PLUGIN_NOT_FOUND',
  /** A CNI plugin succeeded but printed something that is not a CNI 1.0.0 result. */
  CNI_BAD_RESULT: 'FAKENODE_CNI_BAD_RESULT',
  /** A pod with this namespace/name already exists in the cluster. */
  POD_EXISTS: 'FAKENODE_POD_EXISTS',
  /** The cluster was destroyed (or is being destroyed); nothing new can be made in it. */
  CLUSTER_DESTROYED: 'FAKENODE_CLUSTER_DESTROYED',
  /** Waiting for something (a listener, a process's output) took longer than allowed. */
  TIMEOUT: 'FAKENODE_TIMEOUT',
  /** A process exited while the caller was waiting for it to become ready. */
  PROCESS_EXITED: 'FAKENODE_PROCESS_EXITED',
  /** Tearing down failed for some resources; the message lists them (everything else was still removed). */
  CLEANUP_FAILED: 'FAKENODE_CLEANUP_FAILED',
} as const;
export type FakeNodeErrorCode = (typeof FakeNodeErrorCode)[keyof typeof FakeNodeErrorCode];

export class FakeNodeError extends MeshError {
  declare readonly code: FakeNodeErrorCode;

  constructor(code: FakeNodeErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** The error result a CNI plugin prints on failure (CNI spec 1.0.0 §5 "Error"). */
export interface CniErrorResult {
  readonly cniVersion?: string;
  /** 1-99 are well-known (1 incompatible version, 4 bad env, 7 invalid config, 11 try again), 100+ plugin-specific. */
  readonly code: number;
  readonly msg: string;
  readonly details?: string;
}

/** A failed CNI plugin invocation: which plugin, which command, and what it said. */
export class CniError extends FakeNodeError {
  readonly command: 'ADD' | 'DEL' | 'CHECK';
  readonly network: string;
  readonly plugin: string;
  /** The plugin's exit code (null when it was killed, e.g. on timeout). */
  readonly exitCode: number | null;
  /** The parsed error result, when the plugin printed one. */
  readonly cniError: CniErrorResult | undefined;
  /** The plugin's stderr (unstructured logs, spec §5), trimmed. */
  readonly stderr: string;

  constructor(details: {
    command: 'ADD' | 'DEL' | 'CHECK';
    network: string;
    plugin: string;
    exitCode: number | null;
    cniError?: CniErrorResult;
    stderr: string;
    reason?: string;
  }) {
    const what =
      details.cniError === undefined
        ? (details.reason ?? `exited with ${details.exitCode ?? 'a signal'} without an error result`)
        : `error ${details.cniError.code}: ${details.cniError.msg}${details.cniError.details ? ` (${details.cniError.details})` : ''}`;
    const stderr = details.stderr === '' ? '' : `; stderr: ${details.stderr.slice(0, 500)}`;
    super(
      FakeNodeErrorCode.CNI_FAILED,
      `CNI ${details.command} of plugin "${details.plugin}" in network "${details.network}" failed: ${what}${stderr}`,
    );
    this.command = details.command;
    this.network = details.network;
    this.plugin = details.plugin;
    this.exitCode = details.exitCode;
    this.cniError = details.cniError;
    this.stderr = details.stderr;
  }
}
