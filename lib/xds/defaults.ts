/**
 * Budgets of the xDS client, each with the reason for its value. Numbers taken from ztunnel cite its src/xds/client.rs. Server budgets live in controller/xds/config.ts.
 */

/** First reconnect delay, and the delay after a graceful close (ztunnel INITIAL_BACKOFF = 10ms). */
export const XDS_BACKOFF_INITIAL_MS = 10;

/** Each consecutive failure doubles the delay (ztunnel: backoff * 2). */
export const XDS_BACKOFF_MULTIPLIER = 2;

/** Longest wait between attempts (ztunnel MAX_BACKOFF = 15s): a restarted control plane is found within 15s. */
export const XDS_BACKOFF_MAX_MS = 15_000;

/**
 * ±10% randomisation. ztunnel has none; a node-wide outage would otherwise bring every ztunnel back in the same
 * millisecond, and a control plane that just restarted should not take thousands of full pushes at once.
 */
export const XDS_BACKOFF_JITTER = 0.1;

/**
 * Deadline for the TCP and TLS connection to the control plane. A blackholed address must count as a failure
 * (and back off) instead of hanging the client in CONNECTING; a healthy istiod answers in milliseconds.
 */
export const XDS_CONNECT_TIMEOUT_MS = 10_000;

/** Largest response accepted (ztunnel: max_decoding_message_size 200 MiB): a full push to a big mesh is large. */
export const XDS_CLIENT_MAX_RECEIVE_BYTES = 200 * 1024 * 1024;

/** HTTP/2 keepalive ping interval and timeout (ztunnel: 30s / 10s), so a dead control plane is noticed. */
export const XDS_KEEPALIVE_TIME_MS = 30_000;
export const XDS_KEEPALIVE_TIMEOUT_MS = 10_000;

/** gRPC status code put in error_detail of a NACK (Envoy uses INTERNAL; Istio only reads the message). */
export const XDS_NACK_STATUS_CODE = 13;
