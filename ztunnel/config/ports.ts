/**
 * The ports ztunnel listens on inside every pod's network namespace (ztunnel src/config.rs). They are facts
 * of Istio's redirection rules (the CNI REDIRECTs to 15001/15006; peers dial 15008), not tunables.
 */
import { HBONE_PORT } from '../../lib/hbone/config.js';

/** Outbound capture: the pod's own connections, REDIRECTed here. */
export const OUTBOUND_PORT = 15001;
/** Inbound plaintext capture: connections to the pod that did not come over HBONE. */
export const INBOUND_PLAINTEXT_PORT = 15006;
/** Inbound HBONE (mTLS + HTTP/2 CONNECT). */
export const INBOUND_HBONE_PORT = HBONE_PORT;
/** DNS proxy, on localhost. */
export const DNS_PROXY_PORT = 15053;

/**
 * Ports a connection must never be forwarded to: ztunnel's own listeners (src/config.rs `illegal_ports`).
 * Forwarding there would loop the connection through ztunnel again.
 */
export const ILLEGAL_PORTS: ReadonlySet<number> = new Set([OUTBOUND_PORT, INBOUND_PLAINTEXT_PORT, INBOUND_HBONE_PORT]);
