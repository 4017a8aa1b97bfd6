/**
 * Every budget of the identity layer (CA server, CA client, certificate manager) in one place, each with the
 * reason for its value. Numbers taken from Istio cite where they come from (ztunnel src/identity/manager.rs,
 * src/config.rs; istiod security/pkg/server/ca). HBONE budgets live in lib/hbone/config.ts.
 */

/** Workload certificate lifetime asked for and granted by default: ztunnel's SECRET_TTL default (24h). */
export const DEFAULT_WORKLOAD_CERT_TTL_SECONDS = 24 * 3600;

/** Longest lifetime the CA grants; longer requests are shortened, not refused (istiod's max workload TTL, 90d). */
export const DEFAULT_MAX_WORKLOAD_CERT_TTL_SECONDS = 90 * 24 * 3600;

/** Leaves start this much in the past so a peer whose clock is slightly behind still accepts them. */
export const CERT_BACKDATE_MS = 60_000;

/** A CSR with one SAN is well under 1 KiB; anything past this is hostile or broken and is not parsed. */
export const MAX_CSR_PEM_BYTES = 16 * 1024;

/**
 * Largest CreateCertificate request the server decodes (CSR + metadata); grpc-js refuses bigger messages with
 * RESOURCE_EXHAUSTED before any of our code runs, which bounds what an unauthenticated caller can make us buffer.
 */
export const CA_MAX_REQUEST_BYTES = 64 * 1024;

/** Largest response the client accepts: a chain is a few KiB even with several intermediates and roots. */
export const CA_MAX_RESPONSE_BYTES = 1024 * 1024;

/**
 * Deadline of one CreateCertificate call. A CA that accepts the connection but never answers must not hold
 * one of the MAX_CONCURRENT_CERT_FETCHES slots forever; the manager's backoff retries after it.
 */
export const CA_REQUEST_TIMEOUT_MS = 10_000;

/** How long close() lets in-flight signings finish before cutting connections. */
export const CA_SERVER_SHUTDOWN_GRACE_MS = 5_000;

/**
 * Lifetime of the CA's own TLS serving certificate when the caller does not choose one. It is re-issued at
 * every start and not rotated, so it must outlive any realistic process lifetime.
 */
export const DEFAULT_CA_SERVING_CERT_TTL_SECONDS = 365 * 24 * 3600;

/** The `clusterid` header value when none is configured (ztunnel's CLUSTER_ID default). */
export const DEFAULT_CLUSTER_ID = 'Kubernetes';

/** First retry after a failed certificate fetch (ztunnel: initial backoff 500ms). */
export const CERT_FETCH_BACKOFF_INITIAL_MS = 500;

/** Each further failure doubles the wait, so a CA outage is not met with a retry storm. */
export const CERT_FETCH_BACKOFF_MULTIPLIER = 2;

/** ±20% randomisation so that proxies restarted together do not retry in lock-step (ztunnel's factor). */
export const CERT_FETCH_BACKOFF_JITTER = 0.2;

/** Longest wait between retries (ztunnel: 150s): long enough to spare a struggling CA, short enough to heal. */
export const CERT_FETCH_BACKOFF_MAX_MS = 150_000;

/** CSR fetches in flight at once per proxy (ztunnel: 8): a node full of new pods must not flood the CA. */
export const MAX_CONCURRENT_CERT_FETCHES = 8;

/**
 * Shortest delay before a scheduled refresh. A certificate whose half-life is already past (a CA capping the
 * lifetime at its own expiry, clock skew) would otherwise make the manager refresh in a tight loop.
 */
export const MIN_CERT_REFRESH_DELAY_MS = 1_000;
