/**
 * A small reader for the classic pcap files tcpdump writes with `-w` (not pcapng), enough to prove what
 * crossed a link: Ethernet (with 802.1Q tags) carrying IPv4/IPv6 and TCP/UDP, with each packet's payload.
 * Format: the libpcap file format (24-byte global header, 16-byte record headers), either byte order,
 * microsecond or nanosecond timestamps.
 */

export interface CapturedPacket {
  /** Capture time in microseconds since the epoch. */
  readonly timestampUs: number;
  /** The frame's length on the wire (may exceed the captured bytes when the snap length cut it). */
  readonly wireLength: number;
  readonly ipVersion: 4 | 6 | undefined;
  readonly src: string | undefined;
  readonly dst: string | undefined;
  /** 'tcp' | 'udp' | 'icmp' | 'icmpv6' | 'arp' | 'other'. */
  readonly protocol: string;
  readonly srcPort: number | undefined;
  readonly dstPort: number | undefined;
  /** TCP sequence number and flags (FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08, ACK 0x10). */
  readonly tcpSeq: number | undefined;
  readonly tcpFlags: number | undefined;
  /** Transport payload (TCP/UDP data), empty for other packets. */
  readonly payload: Buffer;
}

const LINKTYPE_ETHERNET = 1;

function ipv6ToString(b: Buffer, off: number): string {
  const groups: string[] = [];
  for (let i = 0; i < 8; i++) groups.push(b.readUInt16BE(off + i * 2).toString(16));
  // Compress the longest run of zero groups (RFC 5952), so addresses compare equal to Node's formatting.
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen && j - i > 1) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

function parseTransport(
  proto: number,
  b: Buffer,
  off: number,
  end: number,
): Pick<CapturedPacket, 'protocol' | 'srcPort' | 'dstPort' | 'tcpSeq' | 'tcpFlags' | 'payload'> {
  const none = { srcPort: undefined, dstPort: undefined, tcpSeq: undefined, tcpFlags: undefined, payload: Buffer.alloc(0) };
  if (proto === 6 && end - off >= 20) {
    const dataOff = (b.readUInt8(off + 12) >> 4) * 4;
    return {
      protocol: 'tcp',
      srcPort: b.readUInt16BE(off),
      dstPort: b.readUInt16BE(off + 2),
      tcpSeq: b.readUInt32BE(off + 4),
      tcpFlags: b.readUInt8(off + 13),
      payload: Buffer.from(b.subarray(Math.min(off + dataOff, end), end)),
    };
  }
  if (proto === 17 && end - off >= 8) {
    return {
      ...none,
      protocol: 'udp',
      srcPort: b.readUInt16BE(off),
      dstPort: b.readUInt16BE(off + 2),
      payload: Buffer.from(b.subarray(off + 8, end)),
    };
  }
  return { ...none, protocol: proto === 1 ? 'icmp' : proto === 58 ? 'icmpv6' : 'other' };
}

function parseFrame(frame: Buffer, timestampUs: number, wireLength: number): CapturedPacket {
  const base = { timestampUs, wireLength };
  const other: CapturedPacket = {
    ...base,
    ipVersion: undefined,
    src: undefined,
    dst: undefined,
    protocol: 'other',
    srcPort: undefined,
    dstPort: undefined,
    tcpSeq: undefined,
    tcpFlags: undefined,
    payload: Buffer.alloc(0),
  };
  if (frame.length < 14) return other;
  let off = 12;
  let etherType = frame.readUInt16BE(off);
  while ((etherType === 0x8100 || etherType === 0x88a8) && frame.length >= off + 6) {
    off += 4;
    etherType = frame.readUInt16BE(off);
  }
  off += 2;
  if (etherType === 0x0806) return { ...other, protocol: 'arp' };
  if (etherType === 0x0800 && frame.length >= off + 20) {
    const ihl = (frame.readUInt8(off) & 0x0f) * 4;
    const total = frame.readUInt16BE(off + 2);
    // A GSO/TSO super-packet captured on a veth may carry total length 0; then the frame's end bounds it.
    const end = total === 0 ? frame.length : Math.min(frame.length, off + total);
    const src = [...frame.subarray(off + 12, off + 16)].join('.');
    const dst = [...frame.subarray(off + 16, off + 20)].join('.');
    return { ...base, ipVersion: 4, src, dst, ...parseTransport(frame.readUInt8(off + 9), frame, off + ihl, end) };
  }
  if (etherType === 0x86dd && frame.length >= off + 40) {
    const payloadLen = frame.readUInt16BE(off + 4);
    const end = payloadLen === 0 ? frame.length : Math.min(frame.length, off + 40 + payloadLen);
    // Extension headers are not followed: our traffic (TCP/UDP/ICMPv6) carries none.
    return {
      ...base,
      ipVersion: 6,
      src: ipv6ToString(frame, off + 8),
      dst: ipv6ToString(frame, off + 24),
      ...parseTransport(frame.readUInt8(off + 6), frame, off + 40, end),
    };
  }
  return other;
}

/** Parses a whole pcap file. A truncated last record (tcpdump killed mid-write) is ignored. */
export function parsePcap(file: Buffer): CapturedPacket[] {
  if (file.length < 24) return [];
  const magicLe = file.readUInt32LE(0);
  let le: boolean;
  let nanos: boolean;
  if (magicLe === 0xa1b2c3d4 || magicLe === 0xa1b23c4d) {
    le = true;
    nanos = magicLe === 0xa1b23c4d;
  } else {
    const magicBe = file.readUInt32BE(0);
    if (magicBe !== 0xa1b2c3d4 && magicBe !== 0xa1b23c4d)
      throw new Error('not a pcap file (bad magic); was the capture written as pcapng?');
    le = false;
    nanos = magicBe === 0xa1b23c4d;
  }
  const u32 = (o: number): number => (le ? file.readUInt32LE(o) : file.readUInt32BE(o));
  const linkType = u32(20) & 0x0fffffff;
  if (linkType !== LINKTYPE_ETHERNET) throw new Error(`unsupported pcap link type ${linkType} (only Ethernet)`);
  const packets: CapturedPacket[] = [];
  for (let off = 24; off + 16 <= file.length; ) {
    const sec = u32(off);
    const frac = u32(off + 4);
    const capLen = u32(off + 8);
    const wireLen = u32(off + 12);
    if (off + 16 + capLen > file.length) break;
    const ts = sec * 1_000_000 + (nanos ? Math.floor(frac / 1000) : frac);
    packets.push(parseFrame(file.subarray(off + 16, off + 16 + capLen), ts, wireLen));
    off += 16 + capLen;
  }
  return packets;
}

/** "src:port>dst:port" for a TCP/UDP packet. */
export function flowKey(p: Pick<CapturedPacket, 'src' | 'dst' | 'srcPort' | 'dstPort'>): string {
  return `${p.src ?? '?'}:${p.srcPort ?? 0}>${p.dst ?? '?'}:${p.dstPort ?? 0}`;
}

/**
 * The TCP/UDP payload of each one-directional flow, in capture order. TCP segments seen twice (same
 * sequence number and length, i.e. retransmissions) are counted once; no reordering is attempted, which is
 * enough for reading a request or a TLS handshake off a capture.
 */
export function flowPayloads(packets: readonly CapturedPacket[]): Map<string, Buffer> {
  const parts = new Map<string, Buffer[]>();
  const seen = new Set<string>();
  for (const p of packets) {
    if (p.payload.length === 0 || p.srcPort === undefined) continue;
    const key = flowKey(p);
    if (p.protocol === 'tcp') {
      const seg = `${key}#${p.tcpSeq ?? 0}#${p.payload.length}`;
      if (seen.has(seg)) continue;
      seen.add(seg);
    }
    let list = parts.get(key);
    if (list === undefined) {
      list = [];
      parts.set(key, list);
    }
    list.push(p.payload);
  }
  return new Map([...parts].map(([k, v]) => [k, Buffer.concat(v)]));
}
