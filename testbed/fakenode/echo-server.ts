/**
 * A TCP echo server run as its own process inside a pod (apps.ts startEchoServer), so the peer address it
 * reports is what the kernel of the pod's namespace saw — the way a mesh must preserve it.
 *
 *   node echo-server.js --port <port> [--host <addr>] [--no-greeting]
 *
 * Prints one JSON line per event on stdout: {"event":"listening",...} once, then {"event":"connection",
 * "peer":{address,port},"local":{address,port}} per connection. Unless --no-greeting, each connection first
 * receives that same connection line (so a client learns what the server saw), then every byte is echoed.
 * End of input is echoed as end of output (half-close aware).
 */
import net from 'node:net';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i < 0 ? undefined : process.argv[i + 1];
}

const port = Number(arg('--port') ?? '0');
const host = arg('--host') ?? '0.0.0.0';
const greeting = !process.argv.includes('--no-greeting');

const server = net.createServer({ allowHalfOpen: true }, (s) => {
  s.on('error', () => {});
  const line = JSON.stringify({
    event: 'connection',
    peer: { address: s.remoteAddress, port: s.remotePort },
    local: { address: s.localAddress, port: s.localPort },
  });
  process.stdout.write(`${line}\n`);
  if (greeting) s.write(`${line}\n`);
  s.pipe(s);
});

server.on('error', (e) => {
  process.stderr.write(`echo-server: ${e.message}\n`);
  process.exit(1);
});

server.listen(port, host, () => {
  const a = server.address() as net.AddressInfo;
  process.stdout.write(`${JSON.stringify({ event: 'listening', address: a.address, port: a.port })}\n`);
});

for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  process.on(sig, () => {
    server.close();
    process.exit(0);
  });
}
