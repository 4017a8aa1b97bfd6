/**
 * CONNECT :authority parsing (RFC 9113 §8.5: the authority is host:port). HBONE targets are either a
 * socket address `ip:port` / `[ipv6]:port`, or (through waypoints and east-west gateways) `hostname:port`.
 * Anything else is a 400.
 */
import { isIP } from 'node:net';

export type HboneTarget =
  | { readonly kind: 'address'; readonly address: string; readonly port: number; readonly family: 4 | 6 }
  | { readonly kind: 'hostname'; readonly hostname: string; readonly port: number };

const MAX_AUTHORITY_LENGTH = 512;
// RFC 1123 hostname: labels of letters, digits and '-', separated by dots.
const HOSTNAME_RE = /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

function parsePort(s: string): number | undefined {
  if (!/^[0-9]{1,5}$/.test(s)) return undefined;
  const port = Number(s);
  return port >= 1 && port <= 65535 ? port : undefined;
}

export function parseAuthority(authority: string | undefined): HboneTarget | undefined {
  if (!authority || authority.length > MAX_AUTHORITY_LENGTH) return undefined;
  if (authority.startsWith('[')) {
    const close = authority.indexOf(']');
    if (close < 0 || authority[close + 1] !== ':') return undefined;
    const address = authority.slice(1, close);
    const port = parsePort(authority.slice(close + 2));
    if (isIP(address) !== 6 || port === undefined) return undefined;
    return { kind: 'address', address, port, family: 6 };
  }
  const colon = authority.lastIndexOf(':');
  if (colon <= 0) return undefined;
  const host = authority.slice(0, colon);
  const port = parsePort(authority.slice(colon + 1));
  if (port === undefined) return undefined;
  if (isIP(host) === 4) return { kind: 'address', address: host, port, family: 4 };
  if (host.includes(':')) return undefined; // a bare IPv6 address must be bracketed
  if (/^[0-9.]+$/.test(host)) return undefined; // dotted digits that are not a valid IPv4 address
  if (!HOSTNAME_RE.test(host)) return undefined;
  return { kind: 'hostname', hostname: host.toLowerCase(), port };
}

export function formatAuthority(address: string, port: number): string {
  return isIP(address) === 6 ? `[${address}]:${port}` : `${address}:${port}`;
}
