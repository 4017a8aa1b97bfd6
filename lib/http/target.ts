/**
 * The request target of an HTTP/1.1 request (RFC 9112 §3.2), parsed without throwing. `new URL(req.url, base)`
 * throws on targets a client may send (`//`, `//:`, `http://[`), and a throw there used to take ztunnel down.
 */
export interface RequestTarget {
  /** The path as sent (not percent-decoded), e.g. `/healthz/ready`. */
  readonly path: string;
  readonly query: URLSearchParams;
}

/**
 * Origin form (`/path?query`) and absolute form (`http://host/path?query`, which servers must accept, RFC 9112
 * §3.2.2) give a target; authority form (CONNECT) and asterisk form (`OPTIONS *`) do not, as nothing here
 * serves them. Returns undefined for anything else.
 */
export function parseRequestTarget(target: string | undefined): RequestTarget | undefined {
  if (target === undefined || target === '') return undefined;
  if (target.startsWith('/')) {
    const hash = target.indexOf('#');
    const noFragment = hash < 0 ? target : target.slice(0, hash);
    const q = noFragment.indexOf('?');
    return {
      path: q < 0 ? noFragment : noFragment.slice(0, q),
      query: new URLSearchParams(q < 0 ? '' : noFragment.slice(q + 1)),
    };
  }
  if (!/^https?:\/\//i.test(target)) return undefined;
  let url: URL;
  try {
    url = new URL(target);
  } catch {
    return undefined;
  }
  return { path: url.pathname, query: url.searchParams };
}
