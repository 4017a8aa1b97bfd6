/**
 * Packet capture with the real tcpdump inside a namespace, for proving what crossed a wire: a node's uplink
 * carries exactly the traffic between that node (and its pods) and the rest of the cluster, so a capture
 * there shows whether a pod-to-pod request crossed in plaintext or as TLS to 15008.
 *
 * tcpdump writes a pcap stream to stdout (`-w -`, packet-buffered, immediate mode), which we keep in memory
 * and parse (pcap.ts) when the capture stops; SIGINT makes tcpdump flush and exit cleanly.
 */
import { FakeNodeError, FakeNodeErrorCode } from './errors.js';
import { requireTool } from './exec.js';
import { flowPayloads, parsePcap, type CapturedPacket } from './pcap.js';
import type { NetworkNamespace, NsProcess } from './process.js';

export interface CaptureOptions {
  /** Bytes kept per packet (tcpdump -s); default 0 = whole packets. */
  readonly snapLength?: number;
  /** Upper bound on the pcap bytes kept in memory; default 64 MiB (later packets are dropped). */
  readonly maxBytes?: number;
  /** How long to wait for tcpdump to start capturing; default 10 s. */
  readonly startTimeoutMs?: number;
}

export interface CaptureResult {
  readonly packets: readonly CapturedPacket[];
  /** Sum of the packets' on-the-wire lengths (Ethernet frames). */
  readonly wireBytes: number;
  /** Sum of TCP/UDP payload bytes. */
  readonly payloadBytes: number;
  /** The TCP/UDP payload of each direction of each flow, keyed "src:port>dst:port". */
  readonly flows: ReadonlyMap<string, Buffer>;
  /** True if any packet's payload contains the text or bytes (a plaintext leak detector). */
  contains(needle: string | Buffer): boolean;
  /** Packets to or from a TCP/UDP port. */
  onPort(port: number): CapturedPacket[];
}

export interface Capture {
  readonly interface: string;
  readonly netns: string;
  readonly filter: string;
  /** The tcpdump process (e.g. to read its stderr). */
  readonly process: NsProcess;
  /** Stops tcpdump and returns what it captured. Idempotent. */
  stop(): Promise<CaptureResult>;
}

export function summarizeCapture(packets: readonly CapturedPacket[]): CaptureResult {
  const flows = flowPayloads(packets);
  return {
    packets,
    wireBytes: packets.reduce((n, p) => n + p.wireLength, 0),
    payloadBytes: packets.reduce((n, p) => n + p.payload.length, 0),
    flows,
    contains(needle: string | Buffer): boolean {
      const n = typeof needle === 'string' ? Buffer.from(needle) : needle;
      // Search whole flows too, so a needle split across two segments is still found.
      return packets.some((p) => p.payload.includes(n)) || [...flows.values()].some((b) => b.includes(n));
    },
    onPort(port: number): CapturedPacket[] {
      return packets.filter((p) => p.srcPort === port || p.dstPort === port);
    },
  };
}

/** Starts tcpdump on `iface` inside `ns` with a pcap-filter(7) expression; resolves once it is capturing. */
export async function startCapture(ns: NetworkNamespace, iface: string, filter: string, opts: CaptureOptions = {}): Promise<Capture> {
  requireTool('tcpdump', 'tcpdump');
  const args = ['-i', iface, '-n', '-U', '--immediate-mode', '-s', String(opts.snapLength ?? 0), '-w', '-'];
  // -Z root: Debian's tcpdump otherwise drops to the tcpdump user after opening the device.
  args.push('-Z', 'root');
  if (filter.trim() !== '') args.push(filter);
  const proc = ns.spawn('tcpdump', args, { outputLimit: opts.maxBytes ?? 64 << 20, keep: 'head' });
  try {
    await proc.waitForOutput(/listening on /, { stream: 'stderr', timeoutMs: opts.startTimeoutMs ?? 10_000 });
  } catch (e) {
    await proc.stop(500);
    throw new FakeNodeError(
      FakeNodeErrorCode.COMMAND_FAILED,
      `tcpdump did not start on ${iface} in ${ns.netnsName} (is the filter "${filter}" valid?)`,
      { cause: e },
    );
  }
  let result: Promise<CaptureResult> | undefined;
  return {
    interface: iface,
    netns: ns.netnsName,
    filter,
    process: proc,
    stop(): Promise<CaptureResult> {
      result ??= (async () => {
        // SIGINT: tcpdump flushes its buffer and exits 0; SIGKILL only if it hangs.
        proc.signal('SIGINT');
        const timer = setTimeout(() => proc.signal('SIGKILL'), 5_000);
        await proc.exited;
        clearTimeout(timer);
        return summarizeCapture(parsePcap(proc.stdoutBytes()));
      })();
      return result;
    },
  };
}
