/**
 * A CertificateProvider that asks a remote CA (istiod, or our controller) for certificates over
 * `istio.v1.auth.IstioCertificateService/CreateCertificate`, as ztunnel's caclient does: a fresh P-256 key and CSR
 * per fetch, `authorization: Bearer <token>` and `clusterid` headers, optional ImpersonatedIdentity metadata
 * (shared node proxy), TLS verified against the configured root, and a deadline.
 */
import { readFile } from 'node:fs/promises';
import * as grpc from '@grpc/grpc-js';
import { istio } from '../proto/index.js';
import { IstioCertificateServiceDefinition } from '../proto/services.js';
import { AUTHORIZATION_HEADER, CLUSTER_ID_HEADER, IMPERSONATED_IDENTITY_KEY, caErrorFromGrpc } from './ca-protocol.js';
import type { CertificateProvider } from './cert-manager.js';
import { type WorkloadCertificate, workloadCertificateFromChain } from './certificate.js';
import { createCsr, generateKeyPair } from './csr.js';
import { CA_MAX_RESPONSE_BYTES, CA_REQUEST_TIMEOUT_MS, DEFAULT_CLUSTER_ID, DEFAULT_WORKLOAD_CERT_TTL_SECONDS } from './defaults.js';
import { CaError, CaErrorCode } from './errors.js';
import { type Identity, formatSpiffeId } from './spiffe.js';

type CaRequest = istio.v1.auth.IstioCertificateRequest;
type CaResponse = istio.v1.auth.IstioCertificateResponse;

/** Returns the bearer token for the next call (undefined: send none). Called once per fetch so rotated tokens are picked up. */
export type TokenSource = () => string | undefined | Promise<string | undefined>;

/** Reads the token from a file on every call (projected service-account tokens are rotated by the kubelet). */
export function tokenFromFile(path: string): TokenSource {
  return async () => {
    let token: string;
    try {
      token = (await readFile(path, 'utf8')).trim();
    } catch (err) {
      throw new CaError(
        CaErrorCode.NO_TOKEN,
        `cannot read the CA token from ${path}; check the projected service-account token volume (audience istio-ca)`,
        { cause: err },
      );
    }
    if (token === '') throw new CaError(CaErrorCode.NO_TOKEN, `the CA token file ${path} is empty`);
    return token;
  };
}

export type CaClientTransport =
  /** Verify the CA against `rootCertPem`; `serverName` overrides the name checked (ztunnel's ALT_CA_HOSTNAME). */
  | { readonly kind: 'tls'; readonly rootCertPem: string; readonly serverName?: string }
  /** Plaintext, for tests against an insecure CA server only. */
  | { readonly kind: 'insecure' };

export interface CaClientOptions {
  /** host:port of the CA (ztunnel's CA_ADDRESS without the scheme), e.g. "istiod.istio-system.svc:15012". */
  readonly address: string;
  readonly transport: CaClientTransport;
  readonly token?: TokenSource;
  /** `clusterid` header (CLUSTER_ID); default "Kubernetes". */
  readonly clusterId?: string;
  /** validity_duration asked for, seconds (SECRET_TTL); the CA may shorten it. Default 24h. */
  readonly ttlSeconds?: number;
  /** Deadline per CreateCertificate call. */
  readonly timeoutMs?: number;
  /** Shared (node) mode: send ImpersonatedIdentity = the identity fetched, so the CA issues it for a pod on this node. */
  readonly impersonate?: boolean;
  /** Extra headers for every call (ztunnel's CA_HEADER_*). */
  readonly extraHeaders?: Readonly<Record<string, string>>;
}

function channelCredentials(t: CaClientTransport): grpc.ChannelCredentials {
  return t.kind === 'insecure' ? grpc.credentials.createInsecure() : grpc.credentials.createSsl(Buffer.from(t.rootCertPem));
}

function channelOptions(t: CaClientTransport): grpc.ChannelOptions {
  const opts: grpc.ChannelOptions = { 'grpc.max_receive_message_length': CA_MAX_RESPONSE_BYTES };
  if (t.kind === 'tls' && t.serverName) {
    // The certificate is checked against this name instead of the host in `address`.
    opts['grpc.ssl_target_name_override'] = t.serverName;
    opts['grpc.default_authority'] = t.serverName;
  }
  return opts;
}

export class CaClient implements CertificateProvider {
  readonly #opts: CaClientOptions;
  readonly #client: grpc.Client;
  readonly #ttlSeconds: number;
  readonly #timeoutMs: number;

  constructor(opts: CaClientOptions) {
    this.#opts = opts;
    this.#ttlSeconds = opts.ttlSeconds ?? DEFAULT_WORKLOAD_CERT_TTL_SECONDS;
    this.#timeoutMs = opts.timeoutMs ?? CA_REQUEST_TIMEOUT_MS;
    this.#client = new grpc.Client(opts.address, channelCredentials(opts.transport), channelOptions(opts.transport));
  }

  /** One CreateCertificate round trip for `identity`; throws CaError (CA_UNAVAILABLE, CA_REFUSED, CA_BAD_RESPONSE, CA_NO_TOKEN). */
  async fetch(identity: Identity): Promise<WorkloadCertificate> {
    const { keys, privateKeyPem } = await generateKeyPair();
    const csr = await createCsr(identity, keys);
    const request = istio.v1.auth.IstioCertificateRequest.create({
      csr,
      validityDuration: this.#ttlSeconds,
      ...(this.#opts.impersonate
        ? { metadata: { fields: { [IMPERSONATED_IDENTITY_KEY]: { stringValue: formatSpiffeId(identity) } } } }
        : {}),
    });
    const response = await this.#call(request, await this.#metadata());
    try {
      return workloadCertificateFromChain(identity, privateKeyPem, response.certChain ?? []);
    } catch (err) {
      throw new CaError(
        CaErrorCode.BAD_RESPONSE,
        `CA at ${this.#opts.address} returned an unusable chain for ${formatSpiffeId(identity)}`,
        { cause: err },
      );
    }
  }

  close(): void {
    this.#client.close();
  }

  async #metadata(): Promise<grpc.Metadata> {
    const md = new grpc.Metadata();
    for (const [k, v] of Object.entries(this.#opts.extraHeaders ?? {})) md.set(k, v);
    const token = this.#opts.token ? await this.#opts.token() : undefined;
    if (token) md.set(AUTHORIZATION_HEADER, `Bearer ${token}`);
    md.set(CLUSTER_ID_HEADER, this.#opts.clusterId ?? DEFAULT_CLUSTER_ID);
    return md;
  }

  #call(request: CaRequest, metadata: grpc.Metadata): Promise<CaResponse> {
    const method = IstioCertificateServiceDefinition.CreateCertificate;
    return new Promise<CaResponse>((resolve, reject) => {
      this.#client.makeUnaryRequest(
        method.path,
        method.requestSerialize,
        method.responseDeserialize,
        request,
        metadata,
        { deadline: Date.now() + this.#timeoutMs },
        (err, res) => {
          if (err) reject(caErrorFromGrpc(err, this.#opts.address));
          else if (!res) reject(new CaError(CaErrorCode.BAD_RESPONSE, `CA at ${this.#opts.address} sent an empty response`));
          else resolve(res);
        },
      );
    });
  }
}
