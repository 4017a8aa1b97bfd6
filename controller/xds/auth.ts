/**
 * Authentication of xDS streams. istiod tries client certificate, JWT and Kubernetes token (TokenReview)
 * authenticators in order (pilot/pkg/xds/auth.go, security/pkg/server/ca/authenticate); this server takes one async function so the controller
 * can plug in its TokenReview-based one. It runs once per stream, before the first request is read.
 */
import type { PeerCertificate } from 'node:tls';
import { XdsError, XdsErrorCode } from '../../lib/xds/errors.js';

/** What an authenticator sees of a new stream; converted at the edge, never a grpc-js object. */
export interface XdsAuthContext {
  /** Request headers, lower-case name -> values (`authorization: Bearer <token>`, `clusterid`). `-bin` headers left out. */
  readonly metadata: Readonly<Record<string, readonly string[]>>;
  /** The caller's address as grpc-js reports it, e.g. "127.0.0.1:51234". */
  readonly peerAddress: string;
  /** The client certificate, when the transport asked for one and the client sent it. */
  readonly peerCertificate?: PeerCertificate;
}

/** Who the caller is, as istiod's security.Caller. */
export interface XdsCaller {
  /** How it was authenticated, e.g. "KubeJWTAuthenticator", "ClientCertAuthenticator", "none". */
  readonly authSource: string;
  /** SPIFFE identities (or other principal names) the caller proved. */
  readonly identities: readonly string[];
}

/**
 * Resolves with the caller, or rejects with XdsError(XDS_UNAUTHENTICATED) (the client gets UNAUTHENTICATED) or
 * XdsError(XDS_PERMISSION_DENIED). Any other rejection is an internal error.
 */
export type XdsAuthenticator = (ctx: XdsAuthContext) => Promise<XdsCaller>;

/**
 * LOCAL MODE AND TESTS ONLY: accepts every stream without looking at it, so anyone who can reach the port gets the
 * whole mesh's workload and policy data. istiod's plaintext port 15010 behaves like this; never use it on a port
 * reachable from workloads you do not trust.
 */
export function allowAnyCaller(): XdsAuthenticator {
  return () => Promise.resolve(Object.freeze({ authSource: 'none', identities: Object.freeze([]) }));
}

/** A bearer-token check for tests and simple setups: `authorization: Bearer <one of tokens>` -> identity. */
export function staticTokenAuthenticator(tokens: ReadonlyMap<string, string>): XdsAuthenticator {
  return (ctx) => {
    const header = ctx.metadata.authorization?.[0] ?? '';
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    if (!m) return Promise.reject(new XdsError(XdsErrorCode.UNAUTHENTICATED, 'no bearer token in the authorization header'));
    const identity = tokens.get(m[1] ?? '');
    if (identity === undefined) return Promise.reject(new XdsError(XdsErrorCode.UNAUTHENTICATED, 'the bearer token is not valid'));
    return Promise.resolve(Object.freeze({ authSource: 'StaticToken', identities: Object.freeze([identity]) }));
  };
}
