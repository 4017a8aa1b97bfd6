/**
 * IP address and CIDR helpers for ztunnel's state, router and policy engine, and the controller's converters. Addresses are compared in one
 * canonical text form so that "::1", "0:0::1" and "::ffff:10.0.0.1" (how Node reports an IPv4 peer on a
 * dual-stack socket) index and match the same entries.
 */
import { isIP } from 'node:net';

/** An address block: `address` in canonical form and its prefix length. */
export interface Cidr {
  readonly address: string;
  readonly prefixLength: number;
}

export type IpFamily = 4 | 6;

/** Raw bytes of an address: 4 for IPv4, 16 for IPv6. */
export type IpBytes = Uint8Array;

function parseV4(s: string): IpBytes | undefined {
  const parts = s.split('.');
  if (parts.length !== 4) return undefined;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i] as string;
    // No leading zeros: "010" is octal to some parsers and decimal to others, so it is refused.
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    out[i] = n;
  }
  return out;
}

function parseV6(s: string): IpBytes | undefined {
  if (s.includes('%')) return undefined; // zone ids name an interface, not an address
  let tail: IpBytes | undefined;
  let text = s;
  const lastColon = s.lastIndexOf(':');
  if (s.includes('.', lastColon)) {
    tail = parseV4(s.slice(lastColon + 1));
    if (!tail) return undefined;
    text = `${s.slice(0, lastColon + 1)}0:0`;
  }
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const groups = (h: string): number[] | undefined => {
    if (h === '') return [];
    const out: number[] = [];
    for (const g of h.split(':')) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  const head = groups(halves[0] as string);
  const rest = halves.length === 2 ? groups(halves[1] as string) : [];
  if (!head || !rest) return undefined;
  const missing = 8 - head.length - rest.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  const all = [...head, ...new Array<number>(halves.length === 2 ? missing : 0).fill(0), ...rest];
  const out = new Uint8Array(16);
  all.forEach((g, i) => {
    out[i * 2] = g >> 8;
    out[i * 2 + 1] = g & 0xff;
  });
  if (tail) out.set(tail, 12);
  return out;
}

/** True for ::ffff:a.b.c.d (RFC 4291 §2.5.5.2), which stands for the IPv4 address a.b.c.d. */
function isV4Mapped(b: IpBytes): boolean {
  if (b.length !== 16) return false;
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return false;
  return b[10] === 0xff && b[11] === 0xff;
}

/**
 * Parses an IPv4 or IPv6 address into bytes; an IPv4-mapped IPv6 address becomes its 4 IPv4 bytes.
 * Returns undefined for anything else (hostnames, zone ids, leading zeros, brackets).
 */
export function parseIp(s: string): IpBytes | undefined {
  const b = parseRaw(s);
  if (!b) return undefined;
  return isV4Mapped(b) ? b.slice(12) : b;
}

/** Like parseIp but keeps an IPv4-mapped address as its 16 bytes. */
function parseRaw(s: string): IpBytes | undefined {
  const family = isIP(s);
  return family === 4 ? parseV4(s) : family === 6 ? parseV6(s) : undefined;
}

export function formatIp(b: IpBytes): string {
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((b[i] as number) << 8) | (b[i + 1] as number));
  // RFC 5952 §4.2: compress the longest run of two or more zero groups (the first one on a tie).
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (gs: number[]): string => gs.map((g) => g.toString(16)).join(':');
  if (bestStart < 0) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLen))}`;
}

/** The canonical text of an address (RFC 5952 for IPv6, IPv4-mapped unwrapped), or undefined if it is not one. */
export function canonicalIp(s: string): string | undefined {
  const b = parseIp(s);
  return b ? formatIp(b) : undefined;
}

/** Family of the address after unwrapping IPv4-mapped forms; undefined if it is not an address. */
export function ipFamily(s: string): IpFamily | undefined {
  const b = parseIp(s);
  return b ? (b.length === 4 ? 4 : 6) : undefined;
}

export function isLoopback(s: string): boolean {
  const b = parseIp(s);
  if (!b) return false;
  if (b.length === 4) return b[0] === 127;
  return b.every((x, i) => (i === 15 ? x === 1 : x === 0));
}

/** Parses "10.0.0.0/8", "fd00::/8" or a bare address (a host route: /32 or /128). */
export function parseCidr(s: string): Cidr | undefined {
  const slash = s.indexOf('/');
  const addrText = slash < 0 ? s : s.slice(0, slash);
  const raw = parseRaw(addrText);
  if (!raw) return undefined;
  const max = raw.length * 8;
  let prefixLength = max;
  if (slash >= 0) {
    const p = s.slice(slash + 1);
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return undefined;
    prefixLength = Number(p);
    if (prefixLength > max) return undefined;
  }
  // ::ffff:10.0.0.0/104 is the IPv4 block 10.0.0.0/8; anything shorter than /96 spans non-mapped space too.
  if (isV4Mapped(raw) && prefixLength >= 96) {
    return { address: formatIp(raw.slice(12)), prefixLength: prefixLength - 96 };
  }
  return { address: formatIp(raw), prefixLength };
}

export function formatCidr(c: Cidr): string {
  return `${c.address}/${c.prefixLength}`;
}

// Cidr records are immutable, so their parsed bytes can be cached by identity.
const cidrBytes = new WeakMap<Cidr, IpBytes | null>();

function bytesOfCidr(c: Cidr): IpBytes | undefined {
  let b = cidrBytes.get(c);
  if (b === undefined) {
    b = parseRaw(c.address) ?? null;
    cidrBytes.set(c, b);
  }
  return b ?? undefined;
}

/**
 * Whether `ip` (text or bytes) lies in `cidr`. IPv4-mapped addresses count as IPv4, so 10.0.0.0/8 contains
 * ::ffff:10.0.0.1; an IPv4 block never contains a (non-mapped) IPv6 address, nor the reverse.
 */
export function cidrContains(cidr: Cidr, ip: string | IpBytes): boolean {
  const net = bytesOfCidr(cidr);
  let addr = typeof ip === 'string' ? parseIp(ip) : ip;
  if (!net || !addr) return false;
  if (net.length === 16 && addr.length === 4 && isV4Mapped(net) && cidr.prefixLength >= 96) {
    // A block written in IPv4-mapped form (::ffff:10.0.0.0/104) is an IPv4 block. Other IPv6 blocks, even ::/0,
    // contain no IPv4 address, as in ztunnel (ipnet).
    addr = Uint8Array.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ...addr]);
  }
  if (net.length !== addr.length) return false;
  const bits = Math.min(cidr.prefixLength, net.length * 8);
  const full = bits >> 3;
  for (let i = 0; i < full; i++) if (net[i] !== addr[i]) return false;
  const rem = bits & 7;
  if (rem === 0) return true;
  const mask = (0xff << (8 - rem)) & 0xff;
  return ((net[full] as number) & mask) === ((addr[full] as number) & mask);
}
