/**
 * Reaching a proxy's admin port. A ztunnel binds its admin on 127.0.0.1:15000 of the namespace it runs in
 * (a fake node's, or a Kubernetes node's); `--netns` makes the TCP connection from inside that namespace.
 */
import { request } from 'node:http';
import { dialFrom, openNetns, closeFd } from '../lib/native/index.js';

export interface AdminTarget {
  readonly host: string;
  readonly port: number;
  /** A network namespace name (/var/run/netns/<name>) or path to connect from. */
  readonly netns: string | undefined;
}

export function parseAdminAddress(s: string): { host: string; port: number } {
  const m = /^(?:\[?([^\]]+)\]?:)?(\d+)$/.exec(s);
  if (!m) throw new Error(`--admin "${s}" must be <port> or <host>:<port>`);
  return { host: m[1] ?? '127.0.0.1', port: Number(m[2]) };
}

export function adminGet(target: AdminTarget, path: string, method = 'GET'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    let nsFd: number | undefined;
    if (target.netns) nsFd = openNetns(target.netns.includes('/') ? target.netns : `/var/run/netns/${target.netns}`);
    const req = request(
      {
        host: target.host,
        port: target.port,
        path,
        method,
        timeout: 10_000,
        ...(nsFd !== undefined
          ? { createConnection: () => dialFrom({ netnsFd: nsFd as number, host: target.host, port: target.port }) }
          : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      },
    );
    req.on('error', (err) =>
      reject(
        new Error(
          `cannot reach the admin port at ${target.host}:${target.port}${target.netns ? ` in netns ${target.netns}` : ''}: ${err.message}`,
        ),
      ),
    );
    req.on('close', () => {
      if (nsFd !== undefined) closeFd(nsFd);
    });
    req.end();
  });
}
