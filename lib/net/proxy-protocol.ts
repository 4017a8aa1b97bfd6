/**
 * PROXY protocol version 2, the binary header (haproxy's proxy-protocol.txt, section 2.2): what ztunnel writes to
 * an app whose workload declares an application tunnel with protocol PROXY (ztunnel src/proxy.rs
 * `write_proxy_protocol`), so that the app learns the original client and destination and the client's
 * identity. A waypoint in "sandwich" mode reads it back.
 *
 *   12 bytes signature · ver/cmd 0x21 (v2, PROXY) · family/transport (0x11 TCP/IPv4, 0x21 TCP/IPv6) ·
 *   2 bytes length · addresses (src, dst, src port, dst port) · TLVs (type, 2-byte length, value)
 */
import { canonicalIp, formatIp, parseIp, type IpBytes } from './ip.js';

export const PROXY_V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

/** Istio's TLV carrying the client's SPIFFE identity (ztunnel src/proxy.rs `PROXY_PROTOCOL_AUTHORITY_TLV`). */
export const PP2_TYPE_PEER_IDENTITY = 0xd0;

const VERSION_2_PROXY = 0x21;
const TCP_OVER_IPV4 = 0x11;
const TCP_OVER_IPV6 = 0x21;
const HEADER_BYTES = 16;
/** A v2 header never exceeds 16 + 65535 bytes; a reader needs no more than this to decide. */
export const PROXY_V2_MAX_BYTES = HEADER_BYTES + 0xffff;

export interface ProxyEndpoint {
  readonly address: string;
  readonly port: number;
}

export interface ProxyHeader {
  readonly source: ProxyEndpoint;
  readonly destination: ProxyEndpoint;
  /** Type → value; in the order written. */
  readonly tlvs: ReadonlyMap<number, Buffer>;
}

/** IPv4 bytes as an IPv4-mapped IPv6 address (::ffff:a.b.c.d), for a header whose other address is IPv6. */
function mapped(b: IpBytes): IpBytes {
  if (b.length === 16) return b;
  const out = new Uint8Array(16);
  out[10] = 0xff;
  out[11] = 0xff;
  out.set(b, 12);
  return out;
}

function bytesOf(e: ProxyEndpoint, what: string): IpBytes {
  const b = parseIp(e.address);
  if (!b) throw new RangeError(`PROXY header: ${what} "${e.address}" is not an IP address`);
  if (!Number.isInteger(e.port) || e.port < 0 || e.port > 0xffff) throw new RangeError(`PROXY header: ${what} port ${e.port}`);
  return b;
}

/** The v2 header for a TCP connection from `source` to `destination`, with `tlvs` (type → value) appended. */
export function encodeProxyV2(
  source: ProxyEndpoint,
  destination: ProxyEndpoint,
  tlvs: ReadonlyArray<readonly [number, Buffer]> = [],
): Buffer {
  let src = bytesOf(source, 'source');
  let dst = bytesOf(destination, 'destination');
  // One family per header: a mixed pair is sent as IPv6 with the IPv4 side mapped.
  if (src.length !== dst.length) {
    src = mapped(src);
    dst = mapped(dst);
  }
  const tlvBytes = tlvs.reduce((n, [, v]) => n + 3 + v.length, 0);
  const length = 2 * src.length + 4 + tlvBytes;
  if (length > 0xffff) throw new RangeError(`PROXY header: ${length} bytes of addresses and TLVs do not fit`);
  const out = Buffer.alloc(HEADER_BYTES + length);
  PROXY_V2_SIGNATURE.copy(out, 0);
  out[12] = VERSION_2_PROXY;
  out[13] = src.length === 4 ? TCP_OVER_IPV4 : TCP_OVER_IPV6;
  out.writeUInt16BE(length, 14);
  let at = HEADER_BYTES;
  out.set(src, at);
  at += src.length;
  out.set(dst, at);
  at += dst.length;
  out.writeUInt16BE(source.port, at);
  out.writeUInt16BE(destination.port, at + 2);
  at += 4;
  for (const [type, value] of tlvs) {
    if (!Number.isInteger(type) || type < 0 || type > 0xff) throw new RangeError(`PROXY header: TLV type ${type}`);
    out[at] = type;
    out.writeUInt16BE(value.length, at + 1);
    value.copy(out, at + 3);
    at += 3 + value.length;
  }
  return out;
}

export type ProxyDecodeResult =
  | { readonly kind: 'header'; readonly header: ProxyHeader; readonly bytes: number }
  /** Not enough bytes yet to decide. */
  | { readonly kind: 'incomplete' }
  | { readonly kind: 'invalid'; readonly reason: string };

/**
 * Reads a v2 header of a TCP connection (PROXY command) from the start of `buf`; `bytes` is how much of `buf` it
 * took. Input is hostile: every length is checked against what is there.
 */
export function decodeProxyV2(buf: Buffer): ProxyDecodeResult {
  const sig = Math.min(buf.length, PROXY_V2_SIGNATURE.length);
  if (!buf.subarray(0, sig).equals(PROXY_V2_SIGNATURE.subarray(0, sig))) return { kind: 'invalid', reason: 'no PROXY v2 signature' };
  if (buf.length < HEADER_BYTES) return { kind: 'incomplete' };
  if (buf[12] !== VERSION_2_PROXY) return { kind: 'invalid', reason: `version/command 0x${(buf[12] ?? 0).toString(16)} is not v2 PROXY` };
  const fam = buf[13];
  const addrLen = fam === TCP_OVER_IPV4 ? 4 : fam === TCP_OVER_IPV6 ? 16 : 0;
  if (addrLen === 0) return { kind: 'invalid', reason: `family/transport 0x${(fam ?? 0).toString(16)} is not TCP over IPv4/IPv6` };
  const length = buf.readUInt16BE(14);
  if (length < 2 * addrLen + 4) return { kind: 'invalid', reason: `length ${length} is shorter than the addresses` };
  if (buf.length < HEADER_BYTES + length) return { kind: 'incomplete' };
  const body = buf.subarray(HEADER_BYTES, HEADER_BYTES + length);
  // canonicalIp unwraps an IPv4-mapped address back to IPv4.
  const text = (b: IpBytes): string => {
    const t = formatIp(b);
    return canonicalIp(t) ?? t;
  };
  const src = text(body.subarray(0, addrLen));
  const dst = text(body.subarray(addrLen, 2 * addrLen));
  const srcPort = body.readUInt16BE(2 * addrLen);
  const dstPort = body.readUInt16BE(2 * addrLen + 2);
  const tlvs = new Map<number, Buffer>();
  for (let at = 2 * addrLen + 4; at < body.length; ) {
    if (at + 3 > body.length) return { kind: 'invalid', reason: 'truncated TLV header' };
    const type = body[at] as number;
    const len = body.readUInt16BE(at + 1);
    if (at + 3 + len > body.length) return { kind: 'invalid', reason: `TLV 0x${type.toString(16)} runs past the header` };
    tlvs.set(type, Buffer.from(body.subarray(at + 3, at + 3 + len)));
    at += 3 + len;
  }
  return {
    kind: 'header',
    header: { source: { address: src, port: srcPort }, destination: { address: dst, port: dstPort }, tlvs },
    bytes: HEADER_BYTES + length,
  };
}
