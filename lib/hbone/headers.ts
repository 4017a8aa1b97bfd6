/**
 * The request metadata HBONE carries besides :authority (ztunnel src/baggage.rs, src/proxy/outbound.rs):
 * `baggage` (W3C baggage with the source's Kubernetes metadata, for telemetry at the other end),
 * `forwarded` (RFC 7239, the original client address) and `traceparent` (W3C trace context).
 */
import { randomBytes } from 'node:crypto';
import { isIPv6 } from 'node:net';

export interface BaggageFields {
  readonly clusterId?: string | undefined;
  readonly namespace?: string | undefined;
  /** Lowercase workload kind: deployment | cronjob | pod | job. */
  readonly workloadType?: string | undefined;
  readonly workloadName?: string | undefined;
  readonly canonicalName?: string | undefined;
  readonly canonicalRevision?: string | undefined;
  readonly region?: string | undefined;
  readonly zone?: string | undefined;
}

// A value that could break the comma/equals framing is dropped rather than escaped (ztunnel skips empty ones).
const SAFE_VALUE_RE = /^[A-Za-z0-9._~:/@!$*+-]+$/;

/** `k8s.cluster.name=..,k8s.namespace.name=..,k8s.<type>.name=..,service.name=..,service.version=..,cloud.*` */
export function buildBaggage(f: BaggageFields): string {
  const entries: Array<[string, string | undefined]> = [
    ['k8s.cluster.name', f.clusterId],
    ['k8s.namespace.name', f.namespace],
    [`k8s.${f.workloadType ?? 'pod'}.name`, f.workloadName],
    ['service.name', f.canonicalName],
    ['service.version', f.canonicalRevision],
    ['cloud.region', f.region],
    ['cloud.availability_zone', f.zone],
  ];
  return entries
    .filter((e): e is [string, string] => typeof e[1] === 'string' && e[1] !== '' && SAFE_VALUE_RE.test(e[1]))
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}

const MAX_BAGGAGE_ENTRIES = 32;

/** Parses baggage into fields; unknown keys are ignored and the entry count is bounded (hostile input). */
export function parseBaggage(header: string | undefined): BaggageFields {
  if (!header) return {};
  const out: { -readonly [K in keyof BaggageFields]: string } = {};
  for (const entry of header.split(',').slice(0, MAX_BAGGAGE_ENTRIES)) {
    const eq = entry.indexOf('=');
    if (eq <= 0) continue;
    const key = entry.slice(0, eq).trim();
    const value =
      entry
        .slice(eq + 1)
        .split(';')[0]
        ?.trim() ?? '';
    if (!value) continue;
    switch (key) {
      case 'k8s.cluster.name':
        out.clusterId = value;
        break;
      case 'k8s.namespace.name':
        out.namespace = value;
        break;
      case 'service.name':
        out.canonicalName = value;
        break;
      case 'service.version':
        out.canonicalRevision = value;
        break;
      case 'cloud.region':
        out.region = value;
        break;
      case 'cloud.availability_zone':
        out.zone = value;
        break;
      default: {
        const m = /^k8s\.(deployment|cronjob|pod|job)\.name$/.exec(key);
        if (m) {
          out.workloadType = m[1] as string;
          out.workloadName = value;
        }
      }
    }
  }
  return out;
}

/** RFC 7239 `for="<ip:port>"`, plus `;host=<service>` when the intended service is known. IPv6 is bracketed. */
export function buildForwarded(clientIp: string, clientPort: number, host?: string): string {
  const addr = isIPv6(clientIp) ? `[${clientIp}]:${clientPort}` : `${clientIp}:${clientPort}`;
  return host ? `for="${addr}";host=${host}` : `for="${addr}"`;
}

const MAX_FORWARDED_LENGTH = 1024;
// RFC 7230 §3.2.6 token characters.
const TOKEN_RE = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * The `host=` parameter of a `forwarded` header (RFC 7239 §4, §5.3), from its first forwarded-element: what the
 * client said it meant to reach (ztunnel src/proxy.rs `parse_forwarded_host`). The value may be a token or a
 * quoted-string; parameter names are case-insensitive. Hostile input: long or malformed headers give undefined.
 */
export function parseForwardedHost(header: string | undefined): string | undefined {
  if (!header || header.length > MAX_FORWARDED_LENGTH || !/^[\x20-\x7e\t]*$/.test(header)) return undefined;
  let i = 0;
  const n = header.length;
  while (i < n) {
    while (i < n && (header[i] === ' ' || header[i] === '\t' || header[i] === ';')) i++;
    const eq = header.indexOf('=', i);
    if (eq < 0) return undefined;
    const name = header.slice(i, eq).trim().toLowerCase();
    let value: string;
    i = eq + 1;
    if (header[i] === '"') {
      // quoted-string (RFC 7230 §3.2.6): a backslash quotes the next character.
      let v = '';
      i++;
      for (; i < n && header[i] !== '"'; i++) {
        if (header[i] === '\\') i++;
        v += header[i] ?? '';
      }
      if (i >= n) return undefined;
      i++;
      value = v;
    } else {
      const end = header.slice(i).search(/[;,]/);
      value = (end < 0 ? header.slice(i) : header.slice(i, i + end)).trim();
      i = end < 0 ? n : i + end;
      if (value !== '' && !TOKEN_RE.test(value)) return undefined;
    }
    if (name === 'host') return value === '' ? undefined : value;
    while (i < n && (header[i] === ' ' || header[i] === '\t')) i++;
    if (header[i] === ',') return undefined; // end of the first forwarded-element
  }
  return undefined;
}

/** A fresh W3C traceparent: version 00, random trace and parent ids, not sampled. */
export function newTraceparent(): string {
  const r = randomBytes(24);
  return `00-${r.toString('hex', 0, 16)}-${r.toString('hex', 16, 24)}-00`;
}
