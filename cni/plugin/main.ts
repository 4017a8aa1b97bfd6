#!/usr/bin/env node
/**
 * mesh-cni: the chained CNI plugin of the ambient mesh (Istio's istio-cni plugin role, ambient mode). It sets up
 * no networking itself: on ADD it hands the pod to the node agent (mesh-cni-agent), which enters the pod's netns,
 * installs the redirection rules and gives the netns to ztunnel; the agent's answer decides success.
 *
 * CNI spec 1.0.0 (containernetworking/cni SPEC.md), the parts used here:
 *   - Parameters come in env: CNI_COMMAND (ADD, DEL, CHECK, VERSION), CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME,
 *     CNI_ARGS ("K1=V1;K2=V2"), CNI_PATH. ADD and CHECK need all four of CONTAINERID/NETNS/IFNAME/PATH; DEL may
 *     have an empty CNI_NETNS. The network configuration (JSON: cniVersion, name, type, prevResult, plugin keys)
 *     is on stdin.
 *   - Success: ADD prints a result on stdout; a chained plugin that changes nothing passes prevResult through.
 *     DEL and CHECK print nothing. VERSION prints {"cniVersion", "supportedVersions"}.
 *   - Failure: a non-zero exit and {"cniVersion","code","msg","details"} on stdout. Well-known codes: 1
 *     incompatible version, 4 invalid environment variables, 6 failed to decode content, 7 invalid network
 *     config, 11 try again later; 100+ are the plugin's own.
 *   - DEL "should generally complete without error even if some resources are missing": here it always exits 0
 *     (logging what failed), so that a pod is always deletable, whatever state the agent is in.
 *
 * Kubernetes runtimes (containerd, CRI-O) put K8S_POD_NAMESPACE, K8S_POD_NAME, K8S_POD_UID (and
 * K8S_POD_INFRA_CONTAINER_ID, IgnoreUnknown) in CNI_ARGS. Without namespace and name the container is not a
 * Kubernetes pod and is passed through untouched (as Istio's plugin does).
 *
 * Started once per pod: imports only node:http and the dependency-free event and env modules.
 */
import http from 'node:http';
import {
  CNI_EVENT_ADD_PATH,
  CNI_EVENT_DEL_PATH,
  DEFAULT_CNI_EVENT_ADDRESS,
  type CniEventError,
  type CniEventReply,
  type CniPodEvent,
} from '../event.js';
import { type CniEnv, type CniVariable, readCniEnv } from './env.js';

/** Versions whose result format (ips[].address) we read. 0.1/0.2 results have another shape. */
const SUPPORTED_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0'] as const;
const DEFAULT_VERSION = '1.0.0';

/** CNI spec 1.0.0 "Error" codes. */
const CniErrorCode = {
  INCOMPATIBLE_VERSION: 1,
  UNSUPPORTED_FIELD: 2,
  UNKNOWN_CONTAINER: 3,
  INVALID_ENV: 4,
  IO_FAILURE: 5,
  DECODE_FAILED: 6,
  INVALID_CONFIG: 7,
  TRY_AGAIN_LATER: 11,
  /** Ours: the node agent refused the pod (its message is in details). */
  AGENT_REFUSED: 100,
} as const;

/** ADD and CHECK need these (CNI spec); DEL may come with an empty CNI_NETNS. */
const REQUIRED_FOR_ADD: readonly CniVariable[] = ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH'];

const ADD_TIMEOUT_MS = 60_000; // rules (iptables lock wait <= 30 s) + one ztunnel ack (5 s)
const DEL_TIMEOUT_MS = 5_000; // a DEL never waits long: it succeeds anyway

class CniError extends Error {
  constructor(
    readonly code: number,
    msg: string,
    readonly details = '',
  ) {
    super(msg);
  }
}

interface NetConf {
  cniVersion: string;
  name: string;
  type: string;
  prevResult?: Record<string, unknown>;
  cni_event_address?: string;
  log_level?: string;
}

let cniVersion = DEFAULT_VERSION;
let debug = false;

function log(level: 'debug' | 'info' | 'warn' | 'error', msg: string, fields: Record<string, unknown> = {}): void {
  if (level === 'debug' && !debug) return;
  // stderr only: stdout carries the CNI result and nothing else.
  process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), level, component: 'mesh-cni', msg, ...fields })}\n`);
}

function readStdin(): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    process.stdin.on('data', (c: Buffer) => chunks.push(c));
    process.stdin.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    process.stdin.once('error', reject);
  });
}

function parseConf(text: string): NetConf {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new CniError(
      CniErrorCode.DECODE_FAILED,
      'failed to decode the network configuration on stdin',
      err instanceof Error ? err.message : String(err),
    );
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new CniError(CniErrorCode.DECODE_FAILED, 'the network configuration on stdin is not a JSON object');
  }
  const o = value as Record<string, unknown>;
  if (typeof o.cniVersion === 'string' && o.cniVersion !== '') cniVersion = o.cniVersion;
  debug = o.log_level === 'debug';
  for (const key of ['cniVersion', 'name', 'type'] as const) {
    if (typeof o[key] !== 'string' || o[key] === '') {
      throw new CniError(CniErrorCode.INVALID_CONFIG, `invalid network configuration: "${key}" must be a non-empty string`);
    }
  }
  if (!(SUPPORTED_VERSIONS as readonly string[]).includes(o.cniVersion as string)) {
    throw new CniError(
      CniErrorCode.INCOMPATIBLE_VERSION,
      `incompatible CNI version ${String(o.cniVersion)}`,
      `supported: ${SUPPORTED_VERSIONS.join(', ')}`,
    );
  }
  if (o.prevResult !== undefined && (typeof o.prevResult !== 'object' || o.prevResult === null || Array.isArray(o.prevResult))) {
    throw new CniError(CniErrorCode.INVALID_CONFIG, 'invalid network configuration: "prevResult" must be an object');
  }
  if (o.cni_event_address !== undefined && (typeof o.cni_event_address !== 'string' || o.cni_event_address === '')) {
    throw new CniError(CniErrorCode.INVALID_CONFIG, 'invalid network configuration: "cni_event_address" must be a non-empty string');
  }
  return o as unknown as NetConf;
}

/** CNI_ARGS: "K1=V1;K2=V2" (CNI spec). A pair without "=" is invalid. */
function parseCniArgs(raw: string): Map<string, string> {
  const args = new Map<string, string>();
  if (raw.trim() === '') return args;
  for (const pair of raw.split(';')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new CniError(CniErrorCode.INVALID_ENV, `invalid CNI_ARGS pair "${pair}": expected KEY=VALUE`);
    args.set(pair.slice(0, eq), pair.slice(eq + 1));
  }
  return args;
}

/** The pod's addresses from a 0.3.0+ result: ips[].address "10.1.2.3/24" → "10.1.2.3". */
function resultIps(prevResult: Record<string, unknown> | undefined): string[] {
  const ips = prevResult?.ips;
  if (!Array.isArray(ips)) return [];
  const out: string[] = [];
  for (const entry of ips) {
    const address = (entry as { address?: unknown } | null)?.address;
    if (typeof address === 'string' && address !== '') out.push(address.split('/')[0] ?? address);
  }
  return out;
}

const cni: CniEnv = readCniEnv();

function env(name: CniVariable, required: boolean): string {
  const v = cni[name];
  if (required && v === '') throw new CniError(CniErrorCode.INVALID_ENV, `required environment variable ${name} is not set`);
  return v;
}

/** POSTs the event to the agent; resolves with its reply or throws CniError. */
function postEvent(socketPath: string, path: string, event: CniPodEvent, timeoutMs: number): Promise<CniEventReply> {
  const body = JSON.stringify(event);
  return new Promise<CniEventReply>((resolve, reject) => {
    const req = http.request(
      {
        socketPath,
        path,
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), host: 'mesh-cni-agent' },
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.once('error', (err) => reject(new CniError(CniErrorCode.TRY_AGAIN_LATER, 'reading the node agent answer failed', err.message)));
        res.once('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown;
          try {
            parsed = JSON.parse(text);
          } catch {
            parsed = undefined;
          }
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) {
            const reply = parsed as Partial<CniEventReply> | undefined;
            resolve({ enrolled: reply?.enrolled === true, message: typeof reply?.message === 'string' ? reply.message : '' });
            return;
          }
          const e = parsed as Partial<CniEventError> | undefined;
          const detail = typeof e?.error === 'string' ? `${e.code ?? 'error'}: ${e.error}` : text.slice(0, 2000);
          reject(
            new CniError(
              status === 503 ? CniErrorCode.TRY_AGAIN_LATER : CniErrorCode.AGENT_REFUSED,
              `the node agent refused pod ${event.podNamespace}/${event.podName} (HTTP ${status})`,
              detail,
            ),
          );
        });
      },
    );
    req.once('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.once('error', (err: NodeJS.ErrnoException) => {
      reject(
        new CniError(
          CniErrorCode.TRY_AGAIN_LATER,
          `the node agent at ${socketPath} is not reachable`,
          `${`${err.code ?? ''} ${err.message}`.trim()} (is mesh-cni-agent running on this node?)`,
        ),
      );
    });
    req.end(body);
  });
}

function podEvent(command: 'ADD' | 'DEL', conf: NetConf | undefined, args: Map<string, string>): CniPodEvent {
  return {
    command,
    containerId: cni.CNI_CONTAINERID,
    netns: cni.CNI_NETNS,
    ifName: cni.CNI_IFNAME,
    podNamespace: args.get('K8S_POD_NAMESPACE') ?? '',
    podName: args.get('K8S_POD_NAME') ?? '',
    podUid: args.get('K8S_POD_UID') ?? '',
    ips: resultIps(conf?.prevResult),
  };
}

async function cmdAdd(stdin: string): Promise<string> {
  const conf = parseConf(stdin);
  for (const name of REQUIRED_FOR_ADD) env(name, true);
  const args = parseCniArgs(env('CNI_ARGS', false));
  // Pass prevResult through untouched: this plugin adds no interfaces or addresses.
  const result = JSON.stringify(conf.prevResult ?? { cniVersion: conf.cniVersion });
  const event = podEvent('ADD', conf, args);
  if (event.podNamespace === '' || event.podName === '') {
    log('debug', 'not a Kubernetes pod (no K8S_POD_NAMESPACE/K8S_POD_NAME in CNI_ARGS); passing through');
    return result;
  }
  const socket = conf.cni_event_address ?? DEFAULT_CNI_EVENT_ADDRESS;
  const reply = await postEvent(socket, CNI_EVENT_ADD_PATH, event, ADD_TIMEOUT_MS);
  log(reply.enrolled ? 'info' : 'debug', reply.message || 'node agent accepted the pod', {
    pod: `${event.podNamespace}/${event.podName}`,
    enrolled: reply.enrolled,
  });
  return result;
}

async function cmdDel(stdin: string): Promise<void> {
  // Never fail: whatever goes wrong is logged and the pod stays deletable.
  let conf: NetConf | undefined;
  try {
    conf = parseConf(stdin);
  } catch (err) {
    log('warn', 'DEL with an unusable network configuration; using defaults', { err: (err as Error).message });
  }
  let args = new Map<string, string>();
  try {
    args = parseCniArgs(cni.CNI_ARGS);
  } catch (err) {
    log('warn', 'DEL with malformed CNI_ARGS', { err: (err as Error).message });
  }
  const event = podEvent('DEL', conf, args);
  if (event.podNamespace === '' && event.podUid === '' && event.containerId === '') return;
  try {
    const reply = await postEvent(conf?.cni_event_address ?? DEFAULT_CNI_EVENT_ADDRESS, CNI_EVENT_DEL_PATH, event, DEL_TIMEOUT_MS);
    log('debug', reply.message || 'node agent handled DEL', { pod: `${event.podNamespace}/${event.podName}` });
  } catch (err) {
    const e = err as CniError;
    log('warn', `DEL not delivered to the node agent; succeeding anyway: ${e.message}`, {
      details: e.details,
      pod: `${event.podNamespace}/${event.podName}`,
    });
  }
}

async function main(): Promise<number> {
  const command = cni.CNI_COMMAND;
  const stdin = command === '' ? '' : await readStdin();
  try {
    switch (command) {
      case 'VERSION': {
        // The spec passes {"cniVersion"} on stdin; answer in that version when we support it.
        try {
          const v = (JSON.parse(stdin) as { cniVersion?: unknown }).cniVersion;
          if (typeof v === 'string' && (SUPPORTED_VERSIONS as readonly string[]).includes(v)) cniVersion = v;
        } catch {
          // no or bad stdin: answer in our default version
        }
        process.stdout.write(`${JSON.stringify({ cniVersion, supportedVersions: SUPPORTED_VERSIONS })}\n`);
        return 0;
      }
      case 'ADD':
        process.stdout.write(`${await cmdAdd(stdin)}\n`);
        return 0;
      case 'DEL':
        await cmdDel(stdin);
        return 0;
      case 'CHECK': {
        // Like Istio's plugin: nothing of ours lives in the container's network config to check.
        const conf = parseConf(stdin);
        for (const name of REQUIRED_FOR_ADD) env(name, true);
        if (conf.cniVersion.startsWith('0.3.')) {
          throw new CniError(CniErrorCode.INCOMPATIBLE_VERSION, `CHECK is not supported by CNI version ${conf.cniVersion}`);
        }
        return 0;
      }
      default:
        throw new CniError(
          CniErrorCode.INVALID_ENV,
          command === '' ? 'CNI_COMMAND is not set' : `unknown CNI_COMMAND ${command}`,
          'supported: ADD, DEL, CHECK, VERSION',
        );
    }
  } catch (err) {
    const e = err instanceof CniError ? err : new CniError(CniErrorCode.IO_FAILURE, err instanceof Error ? err.message : String(err));
    log('error', e.message, { code: e.code, details: e.details, command });
    process.stdout.write(`${JSON.stringify({ cniVersion, code: e.code, msg: e.message, details: e.details })}\n`);
    return 1;
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stdout.write(`${JSON.stringify({ cniVersion, code: CniErrorCode.IO_FAILURE, msg: String(err), details: '' })}\n`);
    process.exitCode = 1;
  },
);
