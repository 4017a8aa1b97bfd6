/**
 * The CA's gRPC face: `istio.v1.auth.IstioCertificateService/CreateCertificate` over a CertificateAuthority.
 *
 * Request lifecycle: raw bytes -> decode (INVALID_ARGUMENT if not an IstioCertificateRequest) -> read the
 * ImpersonatedIdentity metadata strictly -> verify the CSR -> ask the CaAuthorizer which single identity this
 * caller may receive -> CertificateAuthority.signCsr, which refuses unless the CSR's SAN is that identity ->
 * answer leaf, intermediates..., root bundle. Every refusal is one log line with its stable code; statuses come
 * from ca-protocol.ts only.
 */
import * as grpc from '@grpc/grpc-js';
import { bindServer, shutdownServer, type GrpcServerTransport } from '../grpc-server.js';
import { componentLogger, type Logger } from '../telemetry/logger.js';
import { describeError } from '../errors.js';
import { istio } from '../proto/index.js';
import { IstioCertificateServiceDefinition } from '../proto/services.js';
import type { CertificateAuthority } from './ca.js';
import { grpcStatusOf, IMPERSONATED_IDENTITY_KEY } from './ca-protocol.js';
import { verifyCsr } from './csr.js';
import { CA_MAX_REQUEST_BYTES, CA_SERVER_SHUTDOWN_GRACE_MS, DEFAULT_CA_SERVING_CERT_TTL_SECONDS } from './defaults.js';
import { CaError, CaErrorCode } from './errors.js';
import { type Identity, formatSpiffeId, parseSpiffeId } from './spiffe.js';

type CaRequest = istio.v1.auth.IstioCertificateRequest;
type CaResponse = istio.v1.auth.IstioCertificateResponse;

/** What an authorizer sees of one CreateCertificate call; converted at the edge, never a grpc-js object. */
export interface CaRequestContext {
  /** Request headers, lower-case name -> values (e.g. `authorization: Bearer <token>`, `clusterid`). Binary `-bin` headers are left out. */
  readonly metadata: Readonly<Record<string, readonly string[]>>;
  /** The caller's address as grpc-js reports it, e.g. "127.0.0.1:51234" or "[::1]:51234". */
  readonly peerAddress: string;
  /** The identity the CSR asks for (its one URI SAN). */
  readonly requestedIdentity: Identity;
  /** `ImpersonatedIdentity` from the request metadata: a node proxy asking on behalf of a pod on its node. */
  readonly impersonatedIdentity?: Identity;
}

/**
 * Decides who the caller is and which one identity it may receive. Throws CaError(CA_UNAUTHENTICATED) when the
 * caller cannot be identified and CaError(CA_PERMISSION_DENIED) when it may not have what it asks for. Async so
 * that a Kubernetes TokenReview (and a node check for impersonation) fits behind it.
 */
export interface CaAuthorizer {
  authorize(ctx: CaRequestContext): Promise<Identity>;
}

/**
 * LOCAL MODE AND TESTS ONLY: grants whatever identity the request asks for (the impersonated one when present,
 * else the CSR's) as long as it is in `trustDomain`. It checks no token, so anyone who can reach the CA can
 * become any service account. Never use it on a CA reachable from a real cluster.
 */
export function allowRequestedIdentity(trustDomain: string): CaAuthorizer {
  return {
    authorize(ctx: CaRequestContext): Promise<Identity> {
      const wanted = ctx.impersonatedIdentity ?? ctx.requestedIdentity;
      if (wanted.trustDomain !== trustDomain) {
        return Promise.reject(
          new CaError(
            CaErrorCode.PERMISSION_DENIED,
            `${formatSpiffeId(wanted)} is outside this CA's trust domain "${trustDomain}"; check TRUST_DOMAIN on the proxy`,
          ),
        );
      }
      // The CSR must still carry exactly this identity: signCsr compares it with the SAN.
      return Promise.resolve(wanted);
    },
  };
}

export interface CaServiceOptions {
  readonly ca: CertificateAuthority;
  readonly authorizer: CaAuthorizer;
  readonly logger?: Logger;
}

/** Server-side method definition that hands the handler raw bytes, so undecodable requests get our status and log line. */
const RawCreateCertificate: grpc.MethodDefinition<Buffer, CaResponse> = {
  ...IstioCertificateServiceDefinition.CreateCertificate,
  requestSerialize: (b: Buffer) => b,
  requestDeserialize: (b: Buffer) => b,
};

export const IstioCertificateServiceRawDefinition = { CreateCertificate: RawCreateCertificate } satisfies grpc.ServiceDefinition;

function defaultLogger(): Logger {
  return componentLogger('ca-server');
}

function decodeRequest(bytes: Buffer): CaRequest {
  try {
    return istio.v1.auth.IstioCertificateRequest.decode(bytes);
  } catch (err) {
    throw new CaError(CaErrorCode.BAD_REQUEST, 'request is not an istio.v1.auth.IstioCertificateRequest', { cause: err });
  }
}

/** Reads ImpersonatedIdentity from the request's metadata Struct; absent is fine, anything malformed is not. */
function impersonatedIdentityOf(req: CaRequest): Identity | undefined {
  const value = req.metadata?.fields?.[IMPERSONATED_IDENTITY_KEY];
  if (value === undefined) return undefined;
  if (typeof value.stringValue !== 'string') {
    throw new CaError(CaErrorCode.BAD_REQUEST, `metadata ${IMPERSONATED_IDENTITY_KEY} must be a string SPIFFE ID`);
  }
  try {
    return parseSpiffeId(value.stringValue);
  } catch (err) {
    throw new CaError(CaErrorCode.BAD_REQUEST, `metadata ${IMPERSONATED_IDENTITY_KEY} is not a SPIFFE identity`, { cause: err });
  }
}

/** int64 arrives as a number or a Long; both become a plain number of seconds. */
function secondsOf(v: number | { toNumber(): number } | null | undefined): number | undefined {
  if (v === null || v === undefined) return undefined;
  return typeof v === 'number' ? v : v.toNumber();
}

function metadataRecord(md: grpc.Metadata): Readonly<Record<string, readonly string[]>> {
  const out: Record<string, readonly string[]> = {};
  for (const [key, values] of Object.entries(md.toJSON())) {
    if (key.endsWith('-bin')) continue;
    out[key] = Object.freeze(values.filter((v): v is string => typeof v === 'string'));
  }
  return Object.freeze(out);
}

/** Istio's response layout: one certificate per element, each ending in "\n" (ztunnel expects it), root bundle last. */
function responseChain(chain: readonly string[]): string[] {
  return chain.map((pem) => (pem.endsWith('\n') ? pem : `${pem}\n`));
}

/** The CreateCertificate handler, for adding to a grpc.Server that may also serve xDS (istiod shares port 15012). */
export function createCaServiceHandlers(opts: CaServiceOptions): grpc.UntypedServiceImplementation {
  const log = opts.logger ?? defaultLogger();
  const handle = async (call: grpc.ServerUnaryCall<Buffer, CaResponse>, facts: Record<string, string>): Promise<CaResponse> => {
    const req = decodeRequest(call.request);
    const impersonatedIdentity = impersonatedIdentityOf(req);
    if (impersonatedIdentity) facts.impersonated = formatSpiffeId(impersonatedIdentity);
    const csr = await verifyCsr(req.csr ?? '');
    facts.requested = formatSpiffeId(csr.identity);
    const ctx: CaRequestContext = Object.freeze({
      metadata: metadataRecord(call.metadata),
      peerAddress: facts.peer ?? '',
      requestedIdentity: csr.identity,
      ...(impersonatedIdentity ? { impersonatedIdentity } : {}),
    });
    const allowed = await opts.authorizer.authorize(ctx);
    facts.allowed = formatSpiffeId(allowed);
    const ttlSeconds = opts.ca.effectiveTtlSeconds(secondsOf(req.validityDuration));
    // signCsr verifies the CSR again (cheap) so that the SAN check lives in the CA, whatever calls it.
    const chain = await opts.ca.signCsr(req.csr ?? '', allowed, { ttlSeconds });
    log.debug({ ...facts, ttlSeconds }, 'issued workload certificate');
    return istio.v1.auth.IstioCertificateResponse.create({ certChain: responseChain(chain) });
  };
  const CreateCertificate: grpc.handleUnaryCall<Buffer, CaResponse> = (call, callback) => {
    const facts: Record<string, string> = { peer: call.getPeer() };
    handle(call, facts).then(
      (res) => callback(null, res),
      (err: unknown) => {
        const reply = grpcStatusOf(err);
        const line = { ...facts, code: reply.errorCode, status: grpc.status[reply.code], err: describeError(err) };
        if (reply.code === grpc.status.INTERNAL) log.error(line, 'CA failed to handle a certificate request');
        else log.warn(line, 'CA refused a certificate request');
        callback({ code: reply.code, details: reply.details });
      },
    );
  };
  return { CreateCertificate };
}

/** Adds the CA service to an existing server. */
export function addCaService(server: grpc.Server, opts: CaServiceOptions): void {
  server.addService(IstioCertificateServiceRawDefinition, createCaServiceHandlers(opts));
}

/** How the CA listens: TLS with its serving certificate (what proxies expect), or plaintext for tests. */
export type CaServerTransport = GrpcServerTransport;

/** A TLS transport whose serving certificate the CA issues for itself, with `dnsNames` (e.g. istiod.istio-system.svc). */
export async function caServingTransport(
  ca: CertificateAuthority,
  dnsNames: readonly string[],
  ttlSeconds: number = DEFAULT_CA_SERVING_CERT_TTL_SECONDS,
): Promise<CaServerTransport> {
  const serving = await ca.issueServingCertificate(dnsNames, ttlSeconds);
  return { kind: 'tls', privateKeyPem: serving.privateKeyPem, certChainPem: serving.certChainPem };
}

export interface StartCaServerOptions extends CaServiceOptions {
  readonly transport: CaServerTransport;
  /** Defaults to 127.0.0.1; use "0.0.0.0" or "[::]" to serve the cluster. */
  readonly host?: string;
  /** 0 (default) picks a free port. */
  readonly port?: number;
}

export interface RunningCaServer {
  /** The port actually bound. */
  readonly port: number;
  readonly server: grpc.Server;
  /** Stops accepting, lets in-flight calls finish for up to `graceMs`, then cuts the rest. */
  close(graceMs?: number): Promise<void>;
}

export async function startCaServer(opts: StartCaServerOptions): Promise<RunningCaServer> {
  const server = new grpc.Server({ 'grpc.max_receive_message_length': CA_MAX_REQUEST_BYTES });
  addCaService(server, opts);
  const host = opts.host ?? '127.0.0.1';
  const port = await bindServer(server, host, opts.port ?? 0, opts.transport).catch((err: unknown) => {
    throw new CaError(CaErrorCode.UNAVAILABLE, `CA server cannot listen on ${host}:${opts.port ?? 0}`, { cause: err });
  });
  let closing: Promise<void> | undefined;
  const close = (graceMs: number = CA_SERVER_SHUTDOWN_GRACE_MS): Promise<void> => (closing ??= shutdownServer(server, graceMs));
  return { port, server, close };
}
