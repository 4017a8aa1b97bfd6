/**
 * What every gRPC server of the project (the CA, xDS, the controller's 15012) does alike: TLS or plaintext
 * credentials, binding a host:port, a graceful shutdown with a hard deadline, and turning a typed error into the
 * status a call or stream ends with.
 */
import * as grpc from '@grpc/grpc-js';
import { describeError, errorCode } from './errors.js';

/** The status a server answers with for an error: what the caller sees, and the stable code for logs and metrics. */
export interface GrpcStatusReply {
  readonly code: grpc.status;
  /** Sent to the caller: says what was wrong, without revealing internals on INTERNAL. */
  readonly details: string;
  /** The stable code, for the log line and the metric. */
  readonly errorCode: string;
}

/**
 * Maps `err` through `statusOfCode` (stable error code -> status). An error whose code is not listed is an
 * unexpected failure: INTERNAL with `internalDetails`, its own message kept for the server's log only.
 */
export function statusReplyOf(err: unknown, statusOfCode: Readonly<Record<string, grpc.status>>, internalDetails: string): GrpcStatusReply {
  const code = errorCode(err);
  const mapped = statusOfCode[code];
  if (mapped === undefined) return { code: grpc.status.INTERNAL, details: internalDetails, errorCode: code };
  return { code: mapped, details: describeError(err), errorCode: code };
}

/** TLS with the serving chain (clients authenticate with a bearer token, not a client certificate), or plaintext for tests. */
export type GrpcServerTransport =
  | { readonly kind: 'tls'; readonly privateKeyPem: string; readonly certChainPem: readonly string[] }
  | { readonly kind: 'insecure' };

export function serverCredentials(t: GrpcServerTransport): grpc.ServerCredentials {
  if (t.kind === 'insecure') return grpc.ServerCredentials.createInsecure();
  // No client certificates are required: callers may have none yet (the CA issuing them is on this port).
  return grpc.ServerCredentials.createSsl(
    null,
    [{ private_key: Buffer.from(t.privateKeyPem), cert_chain: Buffer.from(t.certChainPem.join('')) }],
    false,
  );
}

/** Binds and resolves with the port actually bound (useful with port 0). */
export function bindServer(server: grpc.Server, host: string, port: number, transport: GrpcServerTransport): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(`${host}:${port}`, serverCredentials(transport), (err, bound) => (err ? reject(err) : resolve(bound)));
  });
}

/** Stops accepting, lets in-flight calls finish for up to `graceMs`, then cuts the rest. */
export function shutdownServer(server: grpc.Server, graceMs: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const force = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, graceMs);
    force.unref();
    server.tryShutdown(() => {
      clearTimeout(force);
      resolve();
    });
  });
}
