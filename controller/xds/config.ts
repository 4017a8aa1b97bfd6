/**
 * Budgets of the xDS server, each with its reason (Istio's pilot/pkg/features/tuning.go, pilot/pkg/xds/discovery.go).
 * The two debounce knobs are read from the environment by the controller's settings (controller/config/settings.ts).
 */

/** PILOT_DEBOUNCE_AFTER: a push waits until no change has arrived for this long, so a burst becomes one push. */
export const DEFAULT_DEBOUNCE_AFTER_MS = 100;

/** PILOT_DEBOUNCE_MAX: under continuous churn a push still happens this long after the first change. */
export const DEFAULT_DEBOUNCE_MAX_MS = 10_000;

/**
 * Largest request decoded (Istio's ISTIO_GPRC_MAXRECVMSGSIZE default, 4 MB). grpc-js answers bigger messages with
 * RESOURCE_EXHAUSTED before our code runs. A reconnecting ztunnel's initial_resource_versions for ~50k resources
 * still fits.
 */
export const XDS_MAX_REQUEST_BYTES = 4 * 1024 * 1024;

/**
 * Requests a stream may send in a burst, and refilled per second. A well-behaved proxy sends one ACK per response
 * and a few subscription changes (ztunnel on-demand lookups come in bursts of at most a few hundred); a client
 * past this is flooding and is disconnected.
 */
export const XDS_REQUEST_BURST = 1_000;
export const XDS_REQUESTS_PER_SECOND = 200;

/** Distinct type URLs one stream may watch; Istio serves about ten. */
export const XDS_MAX_TYPES_PER_STREAM = 32;

/** Explicitly subscribed names per type per stream (a ztunnel with on-demand lookups of a large mesh stays below). */
export const XDS_MAX_NAMES_PER_TYPE = 200_000;

/** Longest type URL or resource name accepted; real ones are under 300 bytes. */
export const XDS_MAX_NAME_BYTES = 4_096;

/**
 * How long the authenticator (a Kubernetes TokenReview) may take before the stream is refused with UNAVAILABLE;
 * the proxy retries with backoff instead of waiting on a stream that never starts.
 */
export const XDS_AUTH_TIMEOUT_MS = 10_000;

/** How long close() lets streams end gracefully before cutting connections. */
export const XDS_SHUTDOWN_GRACE_MS = 5_000;

/**
 * Proxies a push visits before yielding to the event loop, so that pushing to thousands of proxies does not starve
 * ACK handling and new connections.
 */
export const XDS_PUSH_BATCH = 100;

export interface DebounceSettings {
  readonly afterMs: number;
  readonly maxMs: number;
}

export const DEFAULT_DEBOUNCE: DebounceSettings = Object.freeze({ afterMs: DEFAULT_DEBOUNCE_AFTER_MS, maxMs: DEFAULT_DEBOUNCE_MAX_MS });
