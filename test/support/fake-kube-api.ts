/**
 * Enough of a Kubernetes API server for one node agent's enrollment source, over plain HTTP: namespaces and
 * pods (list, watch with a fieldSelector on spec.nodeName, get) and the pods/status merge patch, with knobs to
 * fail lists/gets and to hide pods from lists and watches (a watch that has not delivered them yet). Watches
 * start at "now" (resourceVersion is not honoured): change objects only after the informers are synced.
 * Not a substitute for a real API server (lib/kubetest); it lets the unit and fake-node tiers run without one.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig, type V1Namespace, type V1Pod } from '@kubernetes/client-node';

export class FakeApiServer {
  readonly namespaces = new Map<string, V1Namespace>();
  readonly pods = new Map<string, V1Pod>();
  /** Pods left out of lists and watches (the watch has not delivered them yet) but found by GET. */
  readonly hidden = new Set<string>();
  readonly requests: string[] = [];
  readonly patches: Array<{ path: string; contentType: string; body: unknown }> = [];
  patchStatus = 200;
  /** Answer the next n single-object GETs with 500. */
  failGets = 0;
  /** Answer the next n lists with 500. */
  failLists = 0;
  #rv = 1;
  readonly #watchers = new Set<{ kind: 'namespaces' | 'pods'; node: string | undefined; res: http.ServerResponse }>();
  readonly #server = http.createServer((req, res) => this.#serve(req, res));

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    for (const w of this.#watchers) w.res.end();
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  get watchers(): number {
    return this.#watchers.size;
  }

  setNamespace(ns: V1Namespace): void {
    const name = ns.metadata?.name ?? '';
    const type = this.namespaces.has(name) ? 'MODIFIED' : 'ADDED';
    const obj = this.#stamp(ns);
    this.namespaces.set(name, obj);
    this.#send('namespaces', undefined, type, obj);
  }

  setPod(p: V1Pod, opts: { hidden?: boolean } = {}): void {
    const key = `${p.metadata?.namespace ?? ''}/${p.metadata?.name ?? ''}`;
    const type = this.pods.has(key) && !this.hidden.has(key) ? 'MODIFIED' : 'ADDED';
    const obj = this.#stamp(p);
    this.pods.set(key, obj);
    if (opts.hidden === true) {
      this.hidden.add(key);
      return;
    }
    this.hidden.delete(key);
    this.#send('pods', p.spec?.nodeName, type, obj);
  }

  deletePod(ns: string, name: string): void {
    const key = `${ns}/${name}`;
    const p = this.pods.get(key);
    if (p === undefined) return;
    this.pods.delete(key);
    if (!this.hidden.delete(key)) this.#send('pods', p.spec?.nodeName, 'DELETED', this.#stamp(p));
  }

  #stamp<T extends { metadata?: { resourceVersion?: string } }>(o: T): T {
    const copy = structuredClone(o);
    copy.metadata = { ...copy.metadata, resourceVersion: String(++this.#rv) };
    return copy;
  }

  #send(kind: 'namespaces' | 'pods', node: string | undefined, type: string, object: unknown): void {
    for (const w of this.#watchers) {
      if (w.kind === kind && (w.node === undefined || w.node === node)) w.res.write(`${JSON.stringify({ type, object })}\n`);
    }
  }

  #json(res: http.ServerResponse, status: number, body: unknown): void {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  }

  #notFound(res: http.ServerResponse): void {
    this.#json(res, 404, { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'NotFound', code: 404 });
  }

  #serve(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    this.requests.push(`${req.method ?? ''} ${url.pathname}${url.searchParams.get('watch') === 'true' ? ' watch' : ''}`);
    const parts = url.pathname.split('/').filter((s) => s !== ''); // api v1 ...
    const node = url.searchParams.get('fieldSelector')?.replace(/^spec\.nodeName=/, '');
    const listOrWatch = (kind: 'namespaces' | 'pods', items: unknown[]): void => {
      if (url.searchParams.get('watch') === 'true') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.flushHeaders();
        const w = { kind, node, res };
        this.#watchers.add(w);
        res.on('close', () => this.#watchers.delete(w));
        return;
      }
      if (this.failLists > 0) {
        this.failLists--;
        this.#json(res, 500, { kind: 'Status', code: 500, message: 'boom' });
        return;
      }
      this.#json(res, 200, { kind: kind === 'pods' ? 'PodList' : 'NamespaceList', apiVersion: 'v1', metadata: { resourceVersion: String(this.#rv) }, items });
    };
    const single = (obj: unknown): void => {
      if (this.failGets > 0) {
        this.failGets--;
        this.#json(res, 500, { kind: 'Status', code: 500, message: 'etcd is sad' });
        return;
      }
      if (obj === undefined) this.#notFound(res);
      else this.#json(res, 200, obj);
    };
    if (req.method === 'GET' && parts.length === 3 && parts[2] === 'namespaces') {
      listOrWatch('namespaces', [...this.namespaces.values()]);
    } else if (req.method === 'GET' && parts.length === 3 && parts[2] === 'pods') {
      listOrWatch('pods', [...this.pods.entries()].filter(([k, p]) => !this.hidden.has(k) && (node === undefined || p.spec?.nodeName === node)).map(([, p]) => p));
    } else if (req.method === 'GET' && parts.length === 4 && parts[2] === 'namespaces') {
      single(this.namespaces.get(parts[3] ?? ''));
    } else if (req.method === 'GET' && parts.length === 6 && parts[4] === 'pods') {
      single(this.pods.get(`${parts[3] ?? ''}/${parts[5] ?? ''}`));
    } else if (req.method === 'PATCH' && parts.length === 7 && parts[4] === 'pods' && parts[6] === 'status') {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        this.patches.push({ path: url.pathname, contentType: req.headers['content-type'] ?? '', body: JSON.parse(Buffer.concat(chunks).toString('utf8')) });
        const key = `${parts[3] ?? ''}/${parts[5] ?? ''}`;
        if (this.patchStatus !== 200) {
          this.#json(res, this.patchStatus, { kind: 'Status', code: this.patchStatus, reason: 'Forbidden' });
          return;
        }
        const p = this.pods.get(key);
        if (p === undefined) {
          this.#notFound(res);
          return;
        }
        // Apply the annotations of the merge patch (null deletes) and tell the watchers, as the API server would.
        const next = structuredClone(p);
        const annotations: Record<string, string> = { ...next.metadata?.annotations };
        const patch = (this.patches.at(-1)?.body as { metadata?: { annotations?: Record<string, string | null> } }).metadata?.annotations ?? {};
        for (const [k, v] of Object.entries(patch)) {
          if (v === null) delete annotations[k];
          else annotations[k] = v;
        }
        next.metadata = { ...next.metadata, annotations };
        this.setPod(next, { hidden: this.hidden.has(key) });
        this.#json(res, 200, this.pods.get(key));
      });
    } else {
      this.#notFound(res);
    }
  }
}

/** A kubeconfig for `server` without credentials. */
export function kubeConfigFor(server: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'fake', server, skipTLSVerify: true }],
    users: [{ name: 'fake' }],
    contexts: [{ name: 'fake', cluster: 'fake', user: 'fake' }],
    currentContext: 'fake',
  });
  return kc;
}
