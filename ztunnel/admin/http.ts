/** Tiny HTTP servers for ztunnel's admin (15000), readiness (15021) and metrics (15020) ports. */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { ListenAddress } from '../config/settings.js';

export type Route = (req: IncomingMessage, url: URL) => Promise<{ status: number; body: string; type?: string }>;

export async function startHttp(address: ListenAddress, routes: Readonly<Record<string, Route>>): Promise<Server> {
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://admin');
    const route = routes[url.pathname];
    const reply = (status: number, body: string, type = 'text/plain; charset=utf-8'): void => {
      res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
      res.end(body);
    };
    if (!route) {
      reply(404, 'not found\n');
      return;
    }
    route(req, url).then(
      (r) => reply(r.status, r.body, r.type),
      (err: unknown) => reply(500, `${err instanceof Error ? err.message : String(err)}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(address.port, address.host, () => resolve());
  });
  return server;
}
